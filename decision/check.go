package decision

import (
	"fmt"
	"hash/maphash"
	"iter"
	"net/netip"
	"path"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/net/publicsuffix"
)

// Limits on rule fields. A request path over 8 KiB is refused
// (README "The gRPC API"), so a longer rule path could never match.
const (
	maxPathLen = 8 << 10
	maxIDLen   = 256
	maxToLen   = 8 << 10
	maxHostLen = 253 // RFC 1035 section 2.3.4, without the trailing dot
)

// redirectStatuses are the codes a rule may pin (RFC 9110 section 15.4).
// 300 (a choice for the user) and 305/306 (deprecated, unused) are not
// redirects a server can decide on its own.
var redirectStatuses = []int{301, 302, 303, 307, 308}

const statusAccepted = "accepted: 301, 302, 303, 307, 308 (or omit it to choose from the intent)"

// ruleProblems collects the problems of one rule, each located by the
// rule's line and id.
type ruleProblems struct {
	r    *Rule
	list []Problem
}

func (rp *ruleProblems) add(sev Severity, field, format string, args ...any) {
	rp.list = append(rp.list, Problem{
		Severity: sev,
		Line:     rp.r.Line,
		RuleID:   rp.r.ID,
		Field:    field,
		Message:  fmt.Sprintf(format, args...),
	})
}

func (rp *ruleProblems) errorf(field, format string, args ...any) {
	rp.add(SeverityError, field, format, args...)
}

func (rp *ruleProblems) warnf(field, format string, args ...any) {
	rp.add(SeverityWarning, field, format, args...)
}

// checkRule validates the fields of one rule on their own: it is used for
// rules from files and from the admin API alike, so it knows nothing of
// files. Problems across rules (duplicate ids, cycles, shadowing) are found
// elsewhere. A missing id is reported here, not by checkIDs.
func checkRule(r *Rule) []Problem {
	rp := &ruleProblems{r: r}
	checkID(rp)
	checkHost(rp)
	before := len(rp.list)
	params := checkPath(rp)
	// After a path problem the captures it defines are unknown: leave
	// them unchecked rather than report every use as undefined.
	pathOK := len(rp.list) == before || rp.list[len(rp.list)-1].Severity == SeverityWarning
	checkTo(rp, params, pathOK)
	checkEnums(rp)
	checkMethods(rp)
	for _, g := range r.QueryStrip {
		if g == "" {
			rp.errorf("query_strip", "empty entry; accepted: parameter names or globs such as utm_* or fbclid")
		} else if msg := checkText(g); msg != "" {
			rp.errorf("query_strip", "%q %s", g, msg)
		} else if _, err := path.Match(g, ""); err != nil {
			rp.errorf("query_strip", "%q is not a valid glob (* ? [a-z] \\x); accepted: parameter names or globs such as utm_*", g)
		}
	}
	checkHeaders(rp)
	checkConditions(rp, "has", r.Has)
	checkConditions(rp, "missing", r.Missing)
	checkLanguages(rp)
	checkCacheMaxAge(rp)
	checkLifecycle(rp)
	return rp.list
}

// checkCacheMaxAge: whole seconds, 0 (no-store) or more, and a warning
// above one year, the ceiling RFC 2616 section 14.21 advised for Expires:
// a cached redirect cannot be taken back before it expires, and the
// daemon refuses more than --max-cache-age (Options.MaxCacheAge, one year
// by default).
func checkCacheMaxAge(rp *ruleProblems) {
	if rp.r.CacheMaxAge == nil {
		return
	}
	switch d := *rp.r.CacheMaxAge; {
	case d < 0:
		rp.errorf("cache_max_age", "%d is negative; accepted: a number of seconds >= 0 (0: not cacheable)", int64(d/time.Second))
	case d%time.Second != 0:
		rp.errorf("cache_max_age", "%s is not a whole number of seconds; Cache-Control max-age counts seconds (RFC 9111 section 1.2.2)", d)
	case d > MaxAdvisedCacheAge:
		rp.warnf("cache_max_age", "%s is more than a year (RFC 2616 section 14.21's ceiling for Expires): clients keep the redirect that long and it cannot be taken back; redirectd refuses more than --max-cache-age (one year by default)", secondsText(d))
	}
}

// secondsText writes a max-age for a message: "31536000 seconds (365 days)".
func secondsText(d time.Duration) string {
	s := strconv.FormatInt(int64(d/time.Second), 10) + " seconds"
	if d >= day {
		s += " (" + formatDuration(d.Truncate(time.Second)) + ")"
	}
	return s
}

const timeAccepted = "accepted: an RFC 3339 time such as 2026-11-01T00:00:00Z"

// checkLifecycle checks since, the time window, mode and promote_after
// (README "Time windows", "Shadow rules", "Staged permanence").
func checkLifecycle(rp *ruleProblems) {
	r := rp.r
	for _, t := range []struct {
		field string
		at    time.Time
	}{{"since", r.Since}, {"active_from", r.ActiveFrom}, {"active_until", r.ActiveUntil}} {
		if !t.at.IsZero() && (t.at.Year() < 1 || t.at.Year() > 9999) {
			rp.errorf(t.field, "year %d is out of range; %s", t.at.Year(), timeAccepted)
		}
	}
	if !r.ActiveFrom.IsZero() && !r.ActiveUntil.IsZero() && !r.ActiveFrom.Before(r.ActiveUntil) {
		rp.errorf("active_until", "%s is not after active_from %s, so the rule would never match; accepted: a time after active_from",
			formatTime(r.ActiveUntil), formatTime(r.ActiveFrom))
	}
	if r.Mode > ModeShadow {
		rp.errorf("mode", "%s is not a mode; accepted: enforce, shadow", r.Mode)
	}
	if r.PromoteAfter == 0 {
		return
	}
	permanent := isPermanent(r.Status) || r.Status == 0 && r.Intent == IntentPermanent
	switch {
	case r.PromoteAfter < 0:
		rp.errorf("promote_after", "%s is negative; accepted: a duration such as 30d", r.PromoteAfter)
	case !permanent:
		rp.errorf("promote_after", "the rule is not permanent, so there is nothing to promote; accepted on rules with intent: permanent (or status 301 or 308)")
	case r.Since.IsZero():
		rp.errorf("promote_after", "needs since, the time its %s of temporary answers count from; add since with the rule's creation time, such as since: 2026-12-01T00:00:00Z (the admin API sets it when it creates a rule)",
			formatDuration(r.PromoteAfter))
	}
}

// Ended reports whether r's time window has closed by now, so it will
// never match again (README "Time windows").
func (r *Rule) Ended(now time.Time) bool {
	return !r.ActiveUntil.IsZero() && !now.Before(r.ActiveUntil)
}

// EndedWarnings warns about the rules that have ended by now, for lint:
// checkRule knows no clock, so these are not among a set's warnings.
func EndedWarnings(rules iter.Seq[*Rule], now time.Time) []Problem {
	var ps []Problem
	for r := range rules {
		if r.Ended(now) {
			ps = append(ps, Problem{Severity: SeverityWarning, Line: r.Line, RuleID: r.ID, Field: "active_until",
				Message: fmt.Sprintf("ended at %s and no longer matches; remove it (redirectctl stats --expired lists such rules)", formatTime(r.ActiveUntil))})
		}
	}
	return ps
}

// checkIDs reports ids used by more than one rule, in file order, naming
// where each id was first used. Missing ids are checkRule's to report.
func checkIDs(rules []Rule) []Problem {
	var list []Problem
	for at, first := range duplicateIDs(rules) {
		list = append(list, duplicateID(rules, at, first))
	}
	return list
}

// duplicateIDs yields, in file order, each rule whose id an earlier rule
// has, with that earlier rule's position. A million ids fill a map in a
// quarter of a second, so a large set is split by a hash of the id over
// runtime.GOMAXPROCS(0) maps filled at once: equal ids meet in one map.
func duplicateIDs(rules []Rule) iter.Seq2[int, int] {
	n := 1
	if len(rules) >= 64<<10 {
		n = runtime.GOMAXPROCS(0)
	}
	seed := maphash.MakeSeed()
	found := make([][][2]int32, n) // per map: (at, first) in file order
	inPieces(n, func(k int) {
		seen := make(map[string]int32, len(rules)/n+1)
		for i := range rules {
			id := rules[i].ID
			if id == "" || n > 1 && maphash.String(seed, id)%uint64(n) != uint64(k) {
				continue
			}
			if f, dup := seen[id]; dup {
				found[k] = append(found[k], [2]int32{int32(i), f})
				continue
			}
			seen[id] = int32(i)
		}
	})
	all := slices.Concat(found...)
	slices.SortFunc(all, func(a, b [2]int32) int { return int(a[0] - b[0]) })
	return func(yield func(at, first int) bool) {
		for _, d := range all {
			if !yield(int(d[0]), int(d[1])) {
				return
			}
		}
	}
}

// duplicateID is the problem of rules[at], whose id rules[first] has.
func duplicateID(rules []Rule, at, first int) Problem {
	where := fmt.Sprintf("rules[%d]", first)
	if rules[first].Line > 0 {
		where = fmt.Sprintf("line %d", rules[first].Line)
	}
	return Problem{
		Severity: SeverityError,
		Line:     rules[at].Line,
		RuleID:   rules[at].ID,
		Field:    "id",
		Message:  fmt.Sprintf("duplicate id, first used at %s; every rule needs its own id", where),
	}
}

// checkText says what is wrong with a string no rule field may carry:
// invalid UTF-8 cannot be written back to a YAML file, and control
// characters would end up in logs and headers.
func checkText(s string) string {
	if !utf8.ValidString(s) {
		return "is not valid UTF-8"
	}
	for _, c := range s {
		if c < 0x20 || c == 0x7f || (c >= 0x80 && c < 0xa0) {
			return fmt.Sprintf("contains the control character %U", c)
		}
	}
	return ""
}

func checkID(rp *ruleProblems) {
	id := rp.r.ID
	switch {
	case id == "":
		rp.errorf("id", "missing; every rule needs a unique id, such as docs-moved")
	case len(id) > maxIDLen:
		rp.errorf("id", "is %d bytes long; accepted: at most %d", len(id), maxIDLen)
	case checkText(id) != "":
		rp.errorf("id", "%s", checkText(id))
	case strings.ContainsAny(id, " \t"):
		rp.errorf("id", "%q contains a space; accepted: letters, digits and punctuation without spaces, such as docs-moved", id)
	}
}

// checkHost accepts what the index compares a normalised request host with
// (README "Rules"): lower case, no port, no trailing dot.
func checkHost(rp *ruleProblems) {
	h := rp.r.Host
	if h == "" {
		return
	}
	const accepted = "accepted: a lower-case host name such as www.example.com, a wildcard such as *.example.com, or no host for any host"
	if msg := checkText(h); msg != "" {
		rp.errorf("host", "%s; %s", msg, accepted)
		return
	}
	switch {
	case h == "*":
		rp.errorf("host", `"*" is not a host; omit host to match any host`)
		return
	case strings.Contains(h, "://"):
		rp.errorf("host", "%q has a scheme; write the host name only; %s", h, accepted)
		return
	case strings.ContainsAny(h, "/?#"):
		rp.errorf("host", "%q has a path; write the host name only; %s", h, accepted)
		return
	case strings.HasPrefix(h, "[") || strings.Count(h, ":") > 1:
		rp.errorf("host", "%q: IP literals are not supported; %s", h, accepted)
		return
	case strings.Contains(h, ":"):
		rp.errorf("host", "%q has a port; the port is dropped from request hosts before matching, so write the host name only", h)
		return
	case strings.HasSuffix(h, "."):
		rp.errorf("host", "%q ends with a dot; the trailing dot is dropped from request hosts before matching, so write %q", h, strings.TrimSuffix(h, "."))
		return
	case strings.ToLower(h) != h:
		rp.errorf("host", "%q has upper-case letters; host names are compared in lower case, so write %q", h, strings.ToLower(h))
		return
	}
	name := strings.TrimPrefix(h, "*.")
	if strings.Contains(name, "*") {
		rp.errorf("host", "%q: '*' is accepted only as the whole first label, as in *.example.com; %s", h, accepted)
		return
	}
	if msg := checkHostName(name); msg != "" {
		rp.errorf("host", "%q %s; %s", h, msg, accepted)
	}
}

// checkHostName checks DNS-style labels (RFC 1123 section 2.1), allowing
// '_' as real-world host names do. Non-ASCII names must be written in their
// A-label (punycode) form, as they arrive in a Host header.
func checkHostName(name string) string {
	if len(name) > maxHostLen {
		return fmt.Sprintf("is %d bytes long; a host name has at most %d", len(name), maxHostLen)
	}
	for rest := name; ; {
		label, after, more := strings.Cut(rest, ".")
		rest = after
		if label == "" {
			return "has an empty label"
		}
		if len(label) > 63 {
			return "has a label longer than 63 bytes"
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			switch {
			case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_':
			case c >= 0x80:
				return "has non-ASCII characters; write the punycode (xn--) form"
			default:
				return fmt.Sprintf("has the character %q, which a host name cannot contain", c)
			}
		}
		if !more {
			return ""
		}
	}
}

// checkPath validates the rule path for its match kind and returns the
// capture names it defines (pattern parameters, "splat" for a trailing '*',
// regex group names, or "1".."n" for regex groups).
func checkPath(rp *ruleProblems) []string {
	p, kind := rp.r.Path, rp.r.Match
	if p == "" {
		rp.errorf("path", "missing; accepted: an absolute path such as /docs (or a regex for match: regex)")
		return nil
	}
	if len(p) > maxPathLen {
		rp.errorf("path", "is %d bytes long; accepted: at most %d (longer request paths are refused)", len(p), maxPathLen)
		return nil
	}
	if msg := checkText(p); msg != "" {
		rp.errorf("path", "%s", msg)
		return nil
	}
	if kind == MatchRegex {
		return checkRegex(rp)
	}
	if kind > MatchRegex {
		return nil // checkEnums reports it
	}
	switch {
	case p[0] != '/':
		rp.errorf("path", "%q does not start with '/'; accepted: an absolute path such as /docs", p)
		return nil
	case strings.ContainsAny(p, "?#"):
		rp.errorf("path", "%q contains '?' or '#'; rules match the path only, without query or fragment", p)
		return nil
	}
	if !isNormalPath(p) { // the common case skips the split and join
		if clean := removeDotSegments(p); clean != p {
			rp.errorf("path", "%q has dot segments or '//'; request paths are normalised before matching, so it could never match; write %q", p, clean)
			return nil
		}
	}
	switch kind {
	case MatchPattern:
		return checkPattern(rp)
	case MatchPrefix:
		// A prefix matches on whole segments, so with trailing_slash
		// ignore "/docs/" means what "/docs" means. With strict it is a
		// real difference: "/docs/" does not match "/docs".
		if len(p) > 1 && strings.HasSuffix(p, "/") && rp.r.TrailingSlash == TrailingSlashIgnore {
			rp.warnf("path", "prefix %q ends with '/'; prefixes match whole segments and trailing_slash is ignore, so it means %q (matching it and everything under it); write that, or set trailing_slash: strict to leave out %q itself", p, strings.TrimSuffix(p, "/"), strings.TrimSuffix(p, "/"))
		}
	}
	return nil
}

var captureName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// checkPattern validates a pattern path: ":name" parameters are whole
// segments, '*' is only the whole last segment (captured as :splat), and
// names are unique.
func checkPattern(rp *ruleProblems) []string {
	p := rp.r.Path
	segs := strings.Split(p[1:], "/")
	var names []string
	for i, seg := range segs {
		switch {
		case seg == "*":
			if i != len(segs)-1 {
				rp.errorf("path", "pattern %q has '*' before the last segment; '*' is accepted only as the whole last segment (captured as :splat)", p)
				return nil
			}
			names = append(names, "splat")
			continue
		case strings.Contains(seg, "*"):
			rp.errorf("path", "pattern %q has '*' inside the segment %q; '*' is accepted only as the whole last segment (captured as :splat)", p, seg)
			return nil
		case strings.HasPrefix(seg, ":"):
			name := seg[1:]
			if !captureName.MatchString(name) {
				rp.errorf("path", "pattern %q has the parameter %q; accepted: ':' then a letter or '_' then letters, digits or '_', as the whole segment, such as /blog/:year/:slug", p, seg)
				return nil
			}
			if name == "splat" {
				rp.errorf("path", "pattern %q uses :splat as a parameter; that name is kept for what a trailing '*' captures", p)
				return nil
			}
			for _, n := range names {
				if n == name {
					rp.errorf("path", "pattern %q uses the parameter :%s twice; each name may appear once", p, name)
					return nil
				}
			}
			names = append(names, name)
		}
	}
	if len(names) >= maxCaptures {
		rp.errorf("path", "pattern %q has %d captures; accepted: at most %d", p, len(names), maxCaptures-1)
		return nil
	}
	return names
}

// checkRegex compiles the path as RE2 (the engine anchors it on the whole
// path, so it starts with '/' like the paths it matches) and returns the capture names "1".."n" and the group names.
func checkRegex(rp *ruleProblems) []string {
	re, err := regexp.Compile(rp.r.Path)
	if err != nil {
		rp.errorf("path", "is not a valid RE2 regular expression: %s", strings.TrimPrefix(err.Error(), "error parsing regexp: "))
		return nil
	}
	// The engine anchors the expression on the whole path, which starts
	// with '/': "^/a" or "(?i)/a" would never match.
	if p := rp.r.Path; p[0] != '/' {
		rp.errorf("path", "regex %q does not start with '/'; it is matched against the whole path (anchored for you), so write it from the leading '/' without ^ or $, and use case_insensitive: true rather than (?i)", p)
		return nil
	}
	if re.NumSubexp() >= maxCaptures {
		rp.errorf("path", "regex has %d capture groups; accepted: at most %d", re.NumSubexp(), maxCaptures-1)
		return nil
	}
	names := make([]string, 0, re.NumSubexp()*2)
	for i, name := range re.SubexpNames() {
		if i == 0 {
			continue
		}
		names = append(names, strconv.Itoa(i))
		if name != "" {
			names = append(names, name)
		}
	}
	return names
}

// capture is a reference to a captured value inside a target.
type capture struct {
	start, end int // byte offsets in the target
	name       string
}

// targetCaptures finds the capture references in a target for a rule's
// match kind: ":name" for patterns, "$n", "$name" and "${name}" for regex
// (the syntax of regexp.Expand, where "$$" is a literal '$'). Other kinds
// substitute nothing.
func targetCaptures(kind MatchKind, to string) []capture {
	var list []capture
	switch kind {
	case MatchPattern:
		for i := 0; i < len(to); i++ {
			if to[i] != ':' {
				continue
			}
			j := i + 1
			if j < len(to) && isNameStart(to[j]) {
				for j < len(to) && isNameByte(to[j]) {
					j++
				}
				list = append(list, capture{i, j, to[i+1 : j]})
				i = j - 1
			}
		}
	case MatchRegex:
		for i := 0; i < len(to); i++ {
			if to[i] != '$' || i+1 == len(to) {
				continue
			}
			switch c := to[i+1]; {
			case c == '$':
				i++
			case c == '{':
				end := strings.IndexByte(to[i:], '}')
				if end < 0 {
					list = append(list, capture{i, len(to), to[i+2:]})
					return list
				}
				list = append(list, capture{i, i + end + 1, to[i+2 : i+end]})
				i += end
			case isNameByte(c):
				j := i + 1
				for j < len(to) && isNameByte(to[j]) {
					j++
				}
				list = append(list, capture{i, j, to[i+1 : j]})
				i = j - 1
			}
		}
	}
	return list
}

func isNameStart(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

func isNameByte(c byte) bool {
	return isNameStart(c) || c >= '0' && c <= '9'
}

// authorityEnd is the end of the scheme and host part of a target: 0 for
// an absolute path, else the offset of the path, query or fragment after
// "scheme://authority".
func authorityEnd(to string) int {
	if strings.HasPrefix(to, "/") {
		return 0
	}
	i := strings.Index(to, "://")
	if i < 0 {
		return len(to)
	}
	i += len("://")
	if j := strings.IndexAny(to[i:], "/?#"); j >= 0 {
		return i + j
	}
	return len(to)
}

const toAccepted = "accepted: an absolute http or https URL such as https://example.com/new, or an absolute path such as /new"

// checkTo validates the target. Open-redirect guard (README "Rules"):
// a target never starts with "//" or "/\" (both are read by browsers as
// another host), and captured request text never forms its scheme or host.
func checkTo(rp *ruleProblems, params []string, pathOK bool) {
	r := rp.r
	to := r.To
	switch {
	case to == "":
		rp.errorf("to", "missing; %s", toAccepted)
		return
	case len(to) > maxToLen:
		rp.errorf("to", "is %d bytes long; accepted: at most %d", len(to), maxToLen)
		return
	case !utf8.ValidString(to):
		rp.errorf("to", "is not valid UTF-8")
		return
	}
	for i := 0; i < len(to); i++ {
		c := to[i]
		switch {
		case c == '\r' || c == '\n':
			rp.errorf("to", "contains CR or LF, which would split the Location header (response splitting); %s", toAccepted)
			return
		case c < 0x20 || c == 0x7f:
			rp.errorf("to", "contains the control character %U; %s", rune(c), toAccepted)
			return
		case c == ' ':
			rp.errorf("to", "%q contains a space; write it percent-encoded as %%20", to)
			return
		case c == '\\':
			rp.errorf("to", "%q contains a backslash, which browsers read as '/' (so /\\host is an open redirect); write '/' or %%5C", to)
			return
		case c >= 0x80:
			r, _ := utf8.DecodeRuneInString(to[i:])
			rp.errorf("to", "%q contains the non-ASCII character %q; a Location is ASCII (RFC 9110 section 10.2.2), so write it percent-encoded as %s", to, r, percentEncode(string(r)))
			return
		}
	}
	if !checkVars(rp, params) {
		return
	}
	// Checked by checkVars; the rest of To is checked as it would be
	// with the rule's first language and one ordinary label.
	if len(r.Languages) > 0 {
		to = expandVars(to, varLang, &vars{lang: r.Languages[0]})
	}
	if strings.HasPrefix(r.Host, "*.") {
		to = expandVars(to, varSubdomain, &vars{subdomain: "subdomain"})
	}
	caps := targetCaptures(r.Match, to)
	authEnd := authorityEnd(to)
	for _, c := range caps {
		if c.start < authEnd && (r.Match == MatchRegex || slices.Contains(params, c.name)) {
			rp.errorf("to", "the capture %s is in the scheme or host of %q; captures may appear only in the path, query or fragment (open-redirect guard)", to[c.start:c.end], to)
			return
		}
	}
	if strings.HasPrefix(to, "//") {
		rp.errorf("to", "%q starts with \"//\", which browsers read as another host (open redirect); %s", to, toAccepted)
		return
	}
	if !strings.HasPrefix(to, "/") {
		if msg := checkAbsoluteURL(to); msg != "" {
			rp.errorf("to", "%q %s; %s", to, msg, toAccepted)
			return
		}
	}
	for _, c := range caps {
		if c.start < authEnd || !pathOK {
			continue // a literal ":word" in an authority (a port is digits), or captures unknown
		}
		if !slices.Contains(params, c.name) {
			rp.errorf("to", "%s refers to a capture the path does not define; %s", to[c.start:c.end], capturesAccepted(r.Match, params))
			return
		}
	}
}

// checkVars checks the names a To may use besides captures: ":lang"
// needs languages (README "Language negotiation"); ":subdomain" needs a
// wildcard host and may stand in the host only as its leading labels,
// before a registrable domain, so that no request can make it name
// another site (README "Host captures"). It reports false after a
// problem.
func checkVars(rp *ruleProblems, params []string) bool {
	r := rp.r
	to := r.To
	if hasVar(to, "lang") {
		switch {
		case len(r.Languages) > 0 && slices.Contains(params, "lang"):
			rp.errorf("to", "%q: :lang is both a capture of the path and the language negotiated; rename the path's parameter", to)
			return false
		case len(r.Languages) == 0 && !slices.Contains(params, "lang"):
			rp.errorf("to", "%q uses :lang, the tag that languages selects, but the rule has no languages; add languages: [en, de, ...]", to)
			return false
		}
	}
	if !hasVar(to, "subdomain") {
		return true
	}
	wild := strings.HasPrefix(r.Host, "*.")
	switch {
	case wild && slices.Contains(params, "subdomain"):
		rp.errorf("to", "%q: :subdomain is both a capture of the path and the labels the host's * matched; rename the path's parameter", to)
		return false
	case !wild && !slices.Contains(params, "subdomain"):
		rp.errorf("to", "%q uses :subdomain, the labels a wildcard host's * matched, but host %q is not a wildcard such as *.example.com", to, r.Host)
		return false
	case !wild:
		return true
	}
	authStart, authEnd := strings.Index(to, "://")+len("://"), authorityEnd(to)
	if authEnd == 0 || authStart < len("://") {
		return true // a path: the labels are plain text there
	}
	auth := to[authStart:authEnd]
	rest, lead := strings.CutPrefix(auth, ":subdomain.")
	if !lead && hasVar(auth, "subdomain") || lead && hasVar(rest, "subdomain") {
		rp.errorf("to", "%q: :subdomain may stand in the host only once, as its leading labels followed by a domain, such as https://:subdomain.example.org/ (open-redirect guard)", to)
		return false
	}
	if !lead {
		return true
	}
	host, _, _ := strings.Cut(rest, ":")
	if msg := checkHostName(host); msg == "" {
		if _, err := publicsuffix.EffectiveTLDPlusOne(host); err != nil {
			rp.errorf("to", "%q: :subdomain is followed by %q, a public suffix, so the labels would choose whose site it is; put it before a registrable domain such as example.org (open-redirect guard)", to, host)
			return false
		}
	}
	return true
}

func capturesAccepted(kind MatchKind, params []string) string {
	if len(params) == 0 {
		return "the path defines none"
	}
	var b strings.Builder
	b.WriteString("accepted: ")
	for i, p := range params {
		if i > 0 {
			b.WriteString(", ")
		}
		if kind == MatchPattern {
			b.WriteString(":" + p)
		} else {
			b.WriteString("${" + p + "}")
		}
	}
	return b.String()
}

// checkAbsoluteURL checks "http(s)://host[:port][/path][?query][#fragment]".
func checkAbsoluteURL(to string) string {
	scheme, rest, ok := strings.Cut(to, "://")
	if !ok {
		return "is neither an absolute path nor an absolute URL"
	}
	if scheme != "http" && scheme != "https" {
		if l := strings.ToLower(scheme); l == "http" || l == "https" {
			return fmt.Sprintf("has the scheme %q; write it lower-case", scheme)
		}
		return fmt.Sprintf("has the scheme %q; only http and https are redirect targets", scheme)
	}
	auth := rest
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		auth = rest[:i]
	}
	if strings.Contains(auth, "@") {
		return "has user information (user@host), which hides the real host from a reader"
	}
	var port string
	if strings.HasPrefix(auth, "[") {
		end := strings.IndexByte(auth, ']')
		if end < 0 {
			return "has an unterminated IP literal"
		}
		if a, err := netip.ParseAddr(auth[1:end]); err != nil || !a.Is6() {
			return fmt.Sprintf("has the invalid IPv6 literal %s", auth[:end+1])
		}
		port = strings.TrimPrefix(auth[end+1:], ":")
		if port == "" && len(auth) > end+1 && auth[end+1:] != ":" {
			return "has text after the IP literal"
		}
	} else {
		host := auth
		if h, p, ok := strings.Cut(auth, ":"); ok {
			host, port = h, p
		}
		if host == "" {
			return "has no host"
		}
		if msg := checkHostName(host); msg != "" {
			return "has a host that " + msg
		}
	}
	if port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 || port[0] == '+' {
			return fmt.Sprintf("has the invalid port %q (ports are 1 to 65535)", port)
		}
	}
	return ""
}

func percentEncode(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		fmt.Fprintf(&b, "%%%02X", s[i])
	}
	return b.String()
}

// checkEnums rejects values outside the Go enums (possible for rules built
// in code or arriving over the admin API).
func checkEnums(rp *ruleProblems) {
	r := rp.r
	if r.Match > MatchRegex {
		rp.errorf("match", "%s is not a match kind; accepted: exact, prefix, pattern, regex", r.Match)
	}
	if r.Intent > IntentSeeOther {
		rp.errorf("intent", "%s is not an intent; accepted: permanent, temporary, see_other", r.Intent)
	}
	if r.Query > QueryDrop {
		rp.errorf("query", "QueryPolicy(%d) is not a query policy; accepted: keep, drop", r.Query)
	}
	if r.TrailingSlash > TrailingSlashStrict {
		rp.errorf("trailing_slash", "TrailingSlash(%d) is not a trailing-slash policy; accepted: ignore, strict", r.TrailingSlash)
	}
	if r.Status != 0 && !containsInt(redirectStatuses, r.Status) {
		rp.errorf("status", "%d is not a redirect status; %s", r.Status, statusAccepted)
	}
}

func containsInt(list []int, n int) bool {
	for _, x := range list {
		if x == n {
			return true
		}
	}
	return false
}

// checkMethods: method names are tokens and case-sensitive (RFC 9110
// section 9.1); the standard ones are upper-case, so a lower-case "get"
// would never match a real GET.
func checkMethods(rp *ruleProblems) {
	for i, m := range rp.r.Methods {
		switch {
		case !isToken(m):
			rp.errorf("methods", "%q is not a method name; accepted: HTTP method tokens such as GET, HEAD, POST (RFC 9110 section 9)", m)
		case strings.ToUpper(m) != m:
			rp.errorf("methods", "%q is not upper-case; method names are case-sensitive (RFC 9110 section 9.1), write %q", m, strings.ToUpper(m))
		case slices.Contains(rp.r.Methods[:i], m):
			rp.errorf("methods", "%q is listed twice", m)
		}
	}
}

// checkHeaders: request header names arrive lower-case (README "The gRPC
// API"), so a rule's names must be lower-case tokens to ever match.
func checkHeaders(rp *ruleProblems) {
	names := make([]string, 0, len(rp.r.Headers))
	for name := range rp.r.Headers {
		names = append(names, name)
	}
	sort.Strings(names) // problems in a stable order
	for _, name := range names {
		glob := rp.r.Headers[name]
		switch {
		case !isToken(name):
			rp.errorf("headers", "%q is not a header name; accepted: lower-case header names such as accept-language", name)
		case strings.ToLower(name) != name:
			rp.errorf("headers", "%q is not lower-case; request header names are compared lower-case, write %q", name, strings.ToLower(name))
		}
		if msg := checkGlob(glob); msg != "" {
			rp.errorf("headers", "%s: value %q %s; accepted: a glob such as de* where * is any text, ? one character and \\ quotes the next (empty = header absent or empty)", name, glob, msg)
		}
	}
}
