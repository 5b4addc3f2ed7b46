package console

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/redirectd/redirectd/decision"
)

// pageSize is the rules one search page lists.
const pageSize = 50

type searchPage struct {
	Q, Field string
	Fields   []string
	Rules    []decision.Rule
	// Next is the position in file order to go on from; 0 when this is
	// the last page. After is the id to go on from when listing all.
	Next      int
	After     string
	Total     int
	Scanned   int
	Searching bool
}

var searchFields = []string{"any", "id", "host", "path", "to"}

// serveSearch lists rules whose id, host, path or target contains q
// (exact, case-sensitive substring), pageSize at a time. Without q it
// pages through every rule in id order (Index.IDs). With q it scans the
// set in file order (Index.All, which reuses one Rule, so the scan
// allocates only for the rules it keeps); the next page starts where the
// last one stopped, a position in file order (README "Web console").
func (c *Console) serveSearch(w http.ResponseWriter, r *http.Request) {
	ix := c.index(w, r)
	if ix == nil {
		return
	}
	qv := r.URL.Query()
	p := &searchPage{Q: qv.Get("q"), Field: qv.Get("field"), Fields: searchFields, Total: ix.Len()}
	if p.Field == "" {
		p.Field = "any"
	}
	p.Rules, p.Next, p.After, p.Scanned = search(ix, p.Q, p.Field, qv.Get("after"), qv.Get("from"))
	p.Searching = p.Q != ""
	c.render(w, r, http.StatusOK, "search", "Rules", p)
}

// search returns one page: the rules, and where the next page starts.
func search(ix *decision.Index, q, field, after, from string) (rules []decision.Rule, next int, nextAfter string, scanned int) {
	if q == "" {
		rules = ix.Rules(after, pageSize+1)
		if len(rules) > pageSize {
			rules = rules[:pageSize]
			nextAfter = rules[pageSize-1].ID
		}
		return rules, 0, nextAfter, len(rules)
	}
	start, _ := strconv.Atoi(from)
	match := matcher(q, field)
	pos := 0
	for r := range ix.All() {
		pos++
		if pos <= start {
			continue
		}
		scanned++
		if !match(r) {
			continue
		}
		if len(rules) == pageSize {
			return rules, pos - 1, "", scanned
		}
		rules = append(rules, *r)
	}
	return rules, 0, "", scanned
}

func matcher(q, field string) func(r *decision.Rule) bool {
	switch field {
	case "id":
		return func(r *decision.Rule) bool { return strings.Contains(r.ID, q) }
	case "host":
		return func(r *decision.Rule) bool { return strings.Contains(r.Host, q) }
	case "path":
		return func(r *decision.Rule) bool { return strings.Contains(r.Path, q) }
	case "to":
		return func(r *decision.Rule) bool { return strings.Contains(r.To, q) }
	}
	return func(r *decision.Rule) bool {
		return strings.Contains(r.ID, q) || strings.Contains(r.Host, q) || strings.Contains(r.Path, q) || strings.Contains(r.To, q)
	}
}

type rulePage struct {
	Rule      decision.Rule
	YAML      string
	Hits      RuleHits
	PerMinute []uint32
	Warnings  []decision.Problem
	// Out is where the rule's target leads: the rule that would answer a
	// client following it, or why that cannot be said.
	Out     string
	OutNote string
	// In are the rules whose target this rule redirects again, found on
	// demand (?in=1): InNote says how, and what it cost.
	In     []string
	InNote string
	Edit   editForm
}

// editForm is the rule editor: the rule's YAML, the version it was read
// at (Hash is what a save is checked against), and the outcome of the
// last submit.
type editForm struct {
	Writable error
	Version  uint64
	Hash     string
	YAML     string
	Error    string
	Conflict bool
	Saved    string
}

// serveRule shows one rule: its fields as they would be written in a
// rules file, its usage, where its target leads and its warnings.
func (c *Console) serveRule(w http.ResponseWriter, r *http.Request) {
	ix := c.index(w, r)
	if ix == nil {
		return
	}
	id := r.PathValue("id")
	rule, ok := ix.Rule(id)
	if !ok {
		c.render(w, r, http.StatusNotFound, "error", "No such rule", &errorPage{Message: "No rule has the id " + strconv.Quote(id) + " in the serving set (version " + strconv.FormatUint(ix.Info().Version, 10) + ")."})
		return
	}
	p := &rulePage{Rule: rule, Hits: c.b.Hits(id), PerMinute: c.b.PerMinute(id, c.opts.Now())}
	rule.Line = 0
	p.YAML = string(decision.MarshalRules([]decision.Rule{rule}))
	p.Edit = editForm{Writable: c.b.Writable(), Version: ix.Info().Version, Hash: ix.Info().Hash, YAML: p.YAML, Saved: r.URL.Query().Get("saved")}
	for _, w := range ix.Warnings() {
		if w.RuleID == id {
			p.Warnings = append(p.Warnings, w)
		}
	}
	p.Out, p.OutNote = c.chainOut(ix, &rule)
	if r.URL.Query().Get("in") != "" {
		p.In, p.InNote = c.chainIn(ix, &rule)
	}
	c.render(w, r, http.StatusOK, "rule", "Rule "+id, p)
}

// chainOut decides the rule's target as a client following the redirect
// with GET would request it, and names the rule that would answer.
func (c *Console) chainOut(ix *decision.Index, r *decision.Rule) (string, string) {
	if r.Match == decision.MatchPattern || r.Match == decision.MatchRegex {
		return "", "The target depends on the request (captures); trace a concrete URL to see where it leads."
	}
	req := decision.Request{Method: "GET", Target: r.To}
	if strings.HasPrefix(r.To, "/") {
		switch {
		case r.Host == "":
			return "", "The target is a path on whatever host the request came to; trace a concrete URL to see where it leads."
		case strings.HasPrefix(r.Host, "*."):
			req.Host = "www" + r.Host[1:]
		default:
			req.Host = r.Host
		}
	}
	d, err := ix.Decide(&req, c.opts.Now())
	switch {
	case err != nil:
		return "", "The target cannot be decided: " + err.Error()
	case !d.Redirect:
		return "", "No rule redirects the target: a client following this redirect ends there."
	}
	return d.RuleID, "A client following this redirect is redirected again, to " + d.Location + "."
}

// putRule creates or replaces the one rule written in the form's YAML,
// through the admin API's code path. A rule set changed since the page
// was read is a conflict: nothing is written and the person's text is
// shown again beside the error.
func (c *Console) putRule(w http.ResponseWriter, r *http.Request) {
	ix := c.index(w, r)
	if ix == nil {
		return
	}
	text := r.PostFormValue("yaml")
	form := editForm{Writable: c.b.Writable(), Version: ix.Info().Version, Hash: ix.Info().Hash, YAML: text}
	fail := func(status int, msg string) {
		form.Error = msg
		c.render(w, r, status, "edit", "Rule not saved", &form)
	}
	exp, err := expected(r)
	if err != nil {
		fail(http.StatusBadRequest, err.Error())
		return
	}
	rules, err := decision.ParseRules("rule.yaml", []byte(text))
	switch {
	case err != nil:
		fail(http.StatusBadRequest, err.Error())
		return
	case len(rules) != 1:
		fail(http.StatusBadRequest, fmt.Sprintf("the text holds %d rules; write exactly one (\"rules:\" and one \"- id: ...\" entry)", len(rules)))
		return
	}
	done, err := c.b.Put(r.Context(), exp, &rules[0])
	if err != nil {
		form.Conflict = errors.Is(err, ErrConflict)
		status := http.StatusBadRequest
		if form.Conflict {
			// The form keeps the hash the person read (its number is not
			// in the form): submitting it again conflicts again, until
			// they have seen the rule as it is now.
			status, form.Version, form.Hash = http.StatusConflict, 0, exp
		}
		fail(status, err.Error())
		return
	}
	http.Redirect(w, r, "/rules/"+url.PathEscape(rules[0].ID)+"?saved="+strconv.FormatUint(done.Version, 10), http.StatusSeeOther)
}

// deleteRule removes a rule, unless the set changed since the page was
// read.
func (c *Console) deleteRule(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	exp, err := expected(r)
	if err == nil {
		_, err = c.b.Delete(r.Context(), exp, id)
	}
	if err != nil {
		status := http.StatusBadRequest
		if errors.Is(err, ErrConflict) {
			status = http.StatusConflict
		}
		c.render(w, r, status, "error", "Rule not deleted", &errorPage{Message: err.Error()})
		return
	}
	http.Redirect(w, r, "/rules?deleted="+url.QueryEscape(id), http.StatusSeeOther)
}

// mostChainIn bounds the rules chainIn lists.
const mostChainIn = 100

// chainIn finds the rules whose target this rule redirects again. No index
// maps targets to rules, so it scans the whole set (Index.All) for targets
// that contain the rule's literal path (its path up to the first ':' or
// '*' for a pattern), and confirms each by deciding that target
// (chainOut). A regex rule has no literal path to look for.
func (c *Console) chainIn(ix *decision.Index, r *decision.Rule) ([]string, string) {
	needle := r.Path
	switch r.Match {
	case decision.MatchRegex:
		return nil, "Not searched: a regex rule has no literal path to look for in other rules' targets."
	case decision.MatchPattern:
		if i := strings.IndexAny(needle, ":*"); i >= 0 {
			needle = needle[:i]
		}
	}
	start := time.Now()
	var in []string
	scanned, checked := 0, 0
	for t := range ix.All() {
		scanned++
		if t.ID == r.ID || !strings.Contains(t.To, needle) {
			continue
		}
		checked++
		if out, _ := c.chainOut(ix, t); out == r.ID {
			in = append(in, t.ID)
			if len(in) == mostChainIn {
				break
			}
		}
	}
	return in, fmt.Sprintf("Scanned %d rules for targets containing %q and decided %d of them, in %v.", scanned, needle, checked, time.Since(start).Round(time.Millisecond))
}
