package decision

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"gopkg.in/yaml.v3"
)

// caseFile is one decision/testdata/cases/*.yaml file: a rule set, options
// and requests with the answers they must get.
type caseFile struct {
	Rules   []caseRule `yaml:"rules"`
	Options struct {
		PermanentMaxAge int  `yaml:"permanent_max_age"` // seconds
		FlattenChains   bool `yaml:"flatten_chains"`
	} `yaml:"options"`
	Now   time.Time `yaml:"now"`
	Cases []deCase  `yaml:"cases"`
}

// caseRule is the rules-file shape, decoded here so these cases do not
// depend on the rules-file parser.
type caseRule struct {
	ID              string            `yaml:"id"`
	Host            string            `yaml:"host"`
	Path            string            `yaml:"path"`
	Match           string            `yaml:"match"`
	To              string            `yaml:"to"`
	Intent          string            `yaml:"intent"`
	Status          int               `yaml:"status"`
	Methods         []string          `yaml:"methods"`
	Query           string            `yaml:"query"`
	QueryStrip      []string          `yaml:"query_strip"`
	CaseInsensitive bool              `yaml:"case_insensitive"`
	TrailingSlash   string            `yaml:"trailing_slash"`
	Headers         map[string]string `yaml:"headers"`
	Has             []Condition       `yaml:"has"`
	Missing         []Condition       `yaml:"missing"`
	Languages       []string          `yaml:"languages"`
	CacheMaxAge     *int              `yaml:"cache_max_age"`
	Since           time.Time         `yaml:"since"`
	ActiveFrom      time.Time         `yaml:"active_from"`
	ActiveUntil     time.Time         `yaml:"active_until"`
	Mode            string            `yaml:"mode"`
	PromoteAfter    string            `yaml:"promote_after"`
}

type deCase struct {
	Name    string `yaml:"name"`
	Request struct {
		Method   string            `yaml:"method"`
		Scheme   string            `yaml:"scheme"`
		Host     string            `yaml:"host"`
		Path     string            `yaml:"path"`
		Intent   string            `yaml:"intent"`
		Protocol string            `yaml:"protocol"`
		Headers  map[string]string `yaml:"headers"`
	} `yaml:"request"`
	Now  time.Time `yaml:"now"`
	Want struct {
		Pass           bool   `yaml:"pass"` // no rule matched
		Status         int    `yaml:"status"`
		Location       string `yaml:"location"`
		FollowUpMethod string `yaml:"follow_up_method"`
		KeepsBody      *bool  `yaml:"keeps_body"`
		CacheControl   string `yaml:"cache_control"`
		Vary           string `yaml:"vary"`
		Rule           string `yaml:"rule"`
		ErrorField     string `yaml:"error_field"` // a *RequestError naming this field
		// SelfRedirect: a rule's Location was the request's own URL and
		// was not answered (README "Redirect loops").
		SelfRedirect bool `yaml:"self_redirect"`
		// Explain is a text some candidate's reason contains.
		Explain string `yaml:"explain"`
		// Shadows are the answers shadow rules would have given
		// (README "Shadow rules"), in order.
		Shadows []struct {
			Rule         string `yaml:"rule"`
			Status       int    `yaml:"status"`
			Location     string `yaml:"location"`
			CacheControl string `yaml:"cache_control"`
		} `yaml:"shadows"`
	} `yaml:"want"`
}

func (c caseRule) rule(t *testing.T) Rule {
	t.Helper()
	r := Rule{
		ID: c.ID, Host: c.Host, Path: c.Path, To: c.To, Status: c.Status,
		Methods: c.Methods, QueryStrip: c.QueryStrip, CaseInsensitive: c.CaseInsensitive,
		Headers: c.Headers, Has: c.Has, Missing: c.Missing, Languages: c.Languages,
		Since: c.Since, ActiveFrom: c.ActiveFrom, ActiveUntil: c.ActiveUntil,
	}
	if c.CacheMaxAge != nil {
		r.CacheMaxAge = new(time.Duration(*c.CacheMaxAge) * time.Second)
	}
	var err error
	if c.Mode != "" {
		if r.Mode, err = ParseMode(c.Mode); err != nil {
			t.Fatal(err)
		}
	}
	if c.PromoteAfter != "" {
		if r.PromoteAfter, err = parseDuration(c.PromoteAfter); err != nil {
			t.Fatal(err)
		}
	}
	if c.Match != "" {
		if r.Match, err = ParseMatchKind(c.Match); err != nil {
			t.Fatal(err)
		}
	}
	if c.Intent != "" {
		if r.Intent, err = ParseIntent(c.Intent); err != nil {
			t.Fatal(err)
		}
	}
	switch c.Query {
	case "", "keep":
	case "drop":
		r.Query = QueryDrop
	default:
		t.Fatalf("rule %s: query %q", c.ID, c.Query)
	}
	switch c.TrailingSlash {
	case "", "ignore":
	case "strict":
		r.TrailingSlash = TrailingSlashStrict
	default:
		t.Fatalf("rule %s: trailing_slash %q", c.ID, c.TrailingSlash)
	}
	return r
}

func loadCaseFile(t *testing.T, path string) caseFile {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var f caseFile
	if err := dec.Decode(&f); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return f
}

// TestDecideCases runs every testdata/cases/*.yaml file: request → answer.
func TestDecideCases(t *testing.T) {
	files, err := filepath.Glob("testdata/cases/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no case files: %v", err)
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".yaml"), func(t *testing.T) {
			f := loadCaseFile(t, file)
			rules := make([]Rule, len(f.Rules))
			for i, cr := range f.Rules {
				rules[i] = cr.rule(t)
				rules[i].Line = i + 1
			}
			opts := Options{
				PermanentMaxAge: time.Duration(f.Options.PermanentMaxAge) * time.Second,
				FlattenChains:   f.Options.FlattenChains,
			}
			ix, _, err := Build(rules, opts)
			if err != nil {
				t.Fatalf("Build: %v", err)
			}
			for _, c := range f.Cases {
				t.Run(c.Name, func(t *testing.T) { runCase(t, ix, f, c) })
			}
		})
	}
}

func runCase(t *testing.T, ix *Index, f caseFile, c deCase) {
	req := &Request{
		Method: c.Request.Method, Scheme: c.Request.Scheme, Host: c.Request.Host,
		Target: c.Request.Path, Protocol: c.Request.Protocol, Headers: c.Request.Headers,
		Explain: true,
	}
	if req.Method == "" && c.Want.ErrorField != "method" {
		req.Method = "GET"
	}
	if c.Request.Intent != "" {
		var err error
		if req.Intent, err = ParseIntent(c.Request.Intent); err != nil {
			t.Fatal(err)
		}
	}
	now := f.Now
	if !c.Now.IsZero() {
		now = c.Now
	}
	d, err := ix.Decide(req, now)
	if c.Want.ErrorField != "" {
		var re *RequestError
		if !errors.As(err, &re) || re.Field != c.Want.ErrorField {
			t.Fatalf("error = %v, want a RequestError on %q", err, c.Want.ErrorField)
		}
		return
	}
	if err != nil {
		t.Fatalf("Decide: %v", err)
	}
	var shadows []string
	for _, s := range d.Shadows {
		shadows = append(shadows, fmt.Sprintf("%s %d %s %s", s.RuleID, s.Status, s.Location, s.Cache.CacheControl))
	}
	var wantShadows []string
	for _, s := range c.Want.Shadows {
		wantShadows = append(wantShadows, fmt.Sprintf("%s %d %s %s", s.Rule, s.Status, s.Location, s.CacheControl))
	}
	if diff := cmp.Diff(wantShadows, shadows); diff != "" {
		t.Errorf("shadow answers (-want +got):\n%s\n%s", diff, explained(d))
	}
	if d.SelfRedirect != c.Want.SelfRedirect {
		t.Errorf("SelfRedirect = %v, want %v\n%s", d.SelfRedirect, c.Want.SelfRedirect, explained(d))
	}
	if c.Want.Explain != "" && !strings.Contains(explained(d), c.Want.Explain) {
		t.Errorf("explanation does not say %q:\n%s", c.Want.Explain, explained(d))
	}
	if c.Want.Pass {
		if d.Redirect {
			t.Fatalf("redirect by %s to %s, want pass\n%s", d.RuleID, d.Location, explained(d))
		}
		// A pass carries only Vary, when the decision consulted headers
		// (README "Rules", headers).
		var want []Header
		if c.Want.Vary != "" {
			want = []Header{{"Vary", c.Want.Vary}}
		}
		if diff := cmp.Diff(want, d.Headers); diff != "" {
			t.Errorf("pass headers (-want +got):\n%s\n%s", diff, explained(d))
		}
		return
	}
	if !d.Redirect {
		t.Fatalf("pass, want a redirect by %s\n%s", c.Want.Rule, explained(d))
	}
	type answer struct {
		Status                 int
		Location, Method, Rule string
		KeepsBody              bool
		CacheControl, Vary     string
	}
	got := answer{d.Status, d.Location, d.FollowUpMethod, d.RuleID, d.FollowUpKeepsBody, d.Cache.CacheControl, header(d, "Vary")}
	// By default a body is re-sent when the method is kept and has one.
	keeps := got.Method == req.Method && req.Method != "GET" && req.Method != "HEAD"
	want := answer{c.Want.Status, c.Want.Location, c.Want.FollowUpMethod, c.Want.Rule, keeps, c.Want.CacheControl, c.Want.Vary}
	if c.Want.KeepsBody != nil {
		want.KeepsBody = *c.Want.KeepsBody
	}
	if want.Method == "" {
		want.Method = req.Method
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("answer (-want +got):\n%s\n%s", diff, explained(d))
	}
	// The headers are exactly Location, Cache-Control and, when needed, Vary.
	wantHeaders := []Header{{"Location", d.Location}, {"Cache-Control", d.Cache.CacheControl}}
	if c.Want.Vary != "" {
		wantHeaders = append(wantHeaders, Header{"Vary", c.Want.Vary})
	}
	if diff := cmp.Diff(wantHeaders, d.Headers); diff != "" {
		t.Errorf("headers (-want +got):\n%s", diff)
	}
	if d.Explanation == nil || !appliedOnce(d.Explanation, d.RuleID) {
		t.Errorf("explanation does not show %s applied once:\n%s", d.RuleID, explained(d))
	}
}

func header(d Decision, name string) string {
	for _, h := range d.Headers {
		if h.Name == name {
			return h.Value
		}
	}
	return ""
}

func appliedOnce(ex *Explanation, id string) bool {
	n := 0
	for _, c := range ex.Candidates {
		if c.Applied {
			if c.RuleID != id {
				return false
			}
			n++
		}
	}
	return n == 1
}

func explained(d Decision) string {
	if d.Explanation == nil {
		return ""
	}
	var b strings.Builder
	b.WriteString("host=" + d.Explanation.Host + " path=" + d.Explanation.Path + "\n")
	for _, c := range d.Explanation.Candidates {
		b.WriteString("  " + c.Scope + " " + c.RuleID + " " + c.Match.String() + ": " + c.Reason)
		if c.Applied {
			b.WriteString(" (applied)")
		}
		b.WriteByte('\n')
	}
	return b.String()
}
