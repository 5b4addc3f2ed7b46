package convert

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/redirectd/redirectd/decision"
)

// netlifyDefaultStatus is the status of a _redirects line that gives none.
const netlifyDefaultStatus = 301

// ImportNetlify converts a Netlify _redirects file: one rule per line,
// "from to [status][!] [conditions]", '#' comments and blank lines.
//
//   - from is a path or an absolute URL (its host scopes the rule; its
//     scheme is not kept, because redirectd rules match any scheme). ":name"
//     segments and a trailing "*" make a pattern rule (":splat" in to), as
//     in redirectd; other paths make exact rules. Both match with and
//     without a trailing slash, as Netlify does.
//   - status 301, 302, 303, 307 or 308 is pinned on the rule (default 301);
//     "!" (force) is accepted: redirectd never looks for a file at the
//     path, so every rule behaves as forced.
//
// Conditions: Language= becomes languages and Cookie= a has cookie
// condition (see netlifyCondition).
//
// Reported, not converted: rewrites and proxies (200), other statuses (404,
// 410, ...), query-parameter matching (from id=:id to), the conditions
// Country= and Role=, rules that redirect to themselves,
// and rules Netlify never reaches because an earlier line matches first
// (Netlify applies the first matching line; redirectd prefers exact paths,
// so converting them would change behaviour).
//
// name is the file name used in the problems. err is only a read error.
func ImportNetlify(name string, r io.Reader) (rules []decision.Rule, skipped []decision.Problem, err error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var earlier netlifySources
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if n == 1 {
			line = strings.TrimPrefix(line, "\ufeff")
		}
		if line == "" || line[0] == '#' {
			continue
		}
		rule, msg := parseNetlifyLine(line)
		if msg == "" {
			msg = earlier.shadow(&rule)
		}
		if msg != "" {
			skipped = append(skipped, lineProblem(name, n, "%s", msg))
			continue
		}
		rule.ID = "netlify-L" + strconv.Itoa(n)
		rule.Line = n
		earlier.add(&rule, n)
		rules = append(rules, rule)
	}
	if err := sc.Err(); err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", name, err)
	}
	return rules, skipped, nil
}

// parseNetlifyLine converts one rule line, or says why it cannot.
func parseNetlifyLine(line string) (decision.Rule, string) {
	var r decision.Rule
	fields := strings.Fields(line)
	for i, f := range fields {
		if i >= 2 && f[0] == '#' { // a trailing comment
			fields = fields[:i]
			break
		}
	}
	const want = "want \"from to [status][!] [conditions]\""
	if len(fields) < 2 {
		return r, "a rule needs a from and a to; " + want
	}
	from, rest := fields[0], fields[1:]

	// Between from and to, Netlify matches query parameters ("id=:id").
	var query []string
	for len(rest) > 0 && !isNetlifyTarget(rest[0]) && !isNetlifyStatus(rest[0]) {
		query, rest = append(query, rest[0]), rest[1:]
	}
	if len(rest) == 0 || !isNetlifyTarget(rest[0]) {
		if len(query) > 0 {
			return r, fmt.Sprintf("no target: %q is not a path or an http(s) URL; %s", query[len(query)-1], want)
		}
		return r, "no target after " + strconv.Quote(from) + "; " + want
	}
	if len(query) > 0 {
		return r, fmt.Sprintf("query-parameter matching (%s) cannot be converted: redirectd rules match on the path only", strings.Join(query, " "))
	}
	r.To, rest = rest[0], rest[1:]

	status := netlifyDefaultStatus
	if len(rest) > 0 && isNetlifyStatus(rest[0]) {
		status, _ = strconv.Atoi(strings.TrimSuffix(rest[0], "!"))
		rest = rest[1:]
	}
	if len(rest) > 0 {
		if !strings.Contains(rest[0], "=") {
			return r, fmt.Sprintf("%q after the target is neither a status (301, 302, 303, 307, 308, optionally with !) nor a condition (Language=...); %s", rest[0], want)
		}
		var why []string
		for _, cond := range rest {
			if msg := netlifyCondition(&r, cond); msg != "" {
				why = append(why, "condition "+cond+" cannot be converted: "+msg)
			}
		}
		if len(why) > 0 {
			return r, strings.Join(why, "; ")
		}
	}
	intent, ok := intentOf(status)
	switch {
	case ok:
	case status == 200 && strings.Contains(r.To, "://"):
		return r, "status 200 with an absolute URL is a proxy, not a redirect: redirectd only decides redirects"
	case status == 200:
		return r, "status 200 is a rewrite (the URL stays, other content is served), not a redirect: redirectd only decides redirects"
	case status >= 300 && status < 400:
		return r, fmt.Sprintf("status %d is not a redirect redirectd sends; accepted: 301, 302, 303, 307, 308", status)
	default:
		return r, fmt.Sprintf("status %d serves a page, not a redirect: redirectd only decides redirects", status)
	}
	r.Intent, r.Status = intent, status

	path, loopNote := from, ""
	if strings.Contains(from, "://") {
		loopNote = "; redirectd rules match http and https alike"
		_, host, p, ok := splitURL(from)
		if !ok {
			return r, fmt.Sprintf("from %q: want a path starting with / or an http(s) URL", from)
		}
		if msg := checkHost(host); msg != "" {
			return r, "from " + strconv.Quote(from) + ": " + msg
		}
		r.Host, path = strings.ToLower(host), p
	}
	if !strings.HasPrefix(path, "/") {
		return r, fmt.Sprintf("from %q: want a path starting with / or an http(s) URL", from)
	}
	if strings.ContainsAny(path, "?#") {
		return r, fmt.Sprintf("from %q: a query or fragment in from is not a Netlify path; query parameters go between from and to (and cannot be converted)", from)
	}
	match, msg := netlifyMatchKind(path)
	if msg != "" {
		return r, "from " + strconv.Quote(from) + ": " + msg
	}
	r.Path, r.Match = path, match
	if redirectsToItself(r.Host, r.Path, r.Match, r.To) {
		return r, fmt.Sprintf("%s redirects to itself (%s): a client would loop%s", from, r.To, loopNote)
	}
	return r, ""
}

// isNetlifyTarget reports whether f can be a rule's to: a path or an
// absolute URL.
func isNetlifyTarget(f string) bool {
	return strings.HasPrefix(f, "/") || strings.HasPrefix(f, "http://") || strings.HasPrefix(f, "https://")
}

// isNetlifyStatus reports whether f is a status field: three digits and an
// optional "!" (force).
func isNetlifyStatus(f string) bool {
	f = strings.TrimSuffix(f, "!")
	if len(f) != 3 {
		return false
	}
	_, err := strconv.Atoi(f)
	return err == nil
}

// netlifyMatchKind is pattern for a path with ":name" segments or a
// trailing "*" segment, exact otherwise; msg says why a path has no
// redirectd equivalent.
func netlifyMatchKind(path string) (decision.MatchKind, string) {
	kind := decision.MatchExact
	segs := strings.Split(path[1:], "/")
	for i, s := range segs {
		switch {
		case s == "*":
			if i != len(segs)-1 {
				return kind, "a splat * must be the last segment (/path/*)"
			}
			kind = decision.MatchPattern
		case strings.Contains(s, "*"):
			return kind, "a splat * must be a whole segment (/path/*)"
		case strings.HasPrefix(s, ":"):
			if len(s) == 1 {
				return kind, "a placeholder needs a name (/:name)"
			}
			kind = decision.MatchPattern
		case strings.Contains(s, ":"):
			return kind, fmt.Sprintf("placeholder inside segment %q: redirectd placeholders are whole segments (/:name)", s)
		}
	}
	return kind, ""
}

// netlifySources are the imported lines' froms, for the first-match check.
type netlifySources struct {
	same     map[string]netlifySource // by sourceKey
	patterns []netlifySource
}

type netlifySource struct {
	host, path string
	line       int
}

func sourceKey(host string, kind decision.MatchKind, path string) string {
	return host + " " + kind.String() + " " + trimSlash(path)
}

// add records r's from. A line with conditions answers only some of its
// requests, so it hides no later line.
func (s *netlifySources) add(r *decision.Rule, line int) {
	if len(r.Has) > 0 || len(r.Languages) > 0 {
		return
	}
	if s.same == nil {
		s.same = map[string]netlifySource{}
	}
	src := netlifySource{host: r.Host, path: r.Path, line: line}
	s.same[sourceKey(r.Host, r.Match, r.Path)] = src
	if r.Match == decision.MatchPattern {
		s.patterns = append(s.patterns, src)
	}
}

// shadow says which earlier line Netlify would apply instead of r, for
// every request r matches, or "" when r is reachable. Netlify applies the
// first matching line in the file; redirectd tries an exact path before a
// pattern and a host before any host, so such a rule would start to apply
// after conversion. Only whole shadowing is detected: a pattern that
// partly overlaps an earlier one keeps redirectd's order.
func (s *netlifySources) shadow(r *decision.Rule) string {
	var first netlifySource
	for _, host := range []string{r.Host, ""} {
		if e, ok := s.same[sourceKey(host, r.Match, r.Path)]; ok && (first.line == 0 || e.line < first.line) {
			first = e
		}
	}
	if r.Match == decision.MatchExact {
		for _, e := range s.patterns {
			if first.line != 0 && e.line > first.line {
				break // patterns are in line order
			}
			if (e.host == "" || e.host == r.Host) && patternMatches(e.path, r.Path) {
				first = e
				break
			}
		}
	}
	if first.line == 0 {
		return ""
	}
	return fmt.Sprintf("never applied by Netlify: line %d (%s) matches the same requests first; not converted, because redirectd would apply it", first.line, first.path)
}

// patternMatches reports whether the Netlify pattern matches path, as
// Netlify and redirectd both do: ":name" is one non-empty segment, a
// trailing "*" any rest, possibly empty; trailing slashes do not count.
func patternMatches(pattern, path string) bool {
	ps := strings.Split(trimSlash(pattern)[1:], "/")
	ss := strings.Split(trimSlash(path)[1:], "/")
	for i, p := range ps {
		if p == "*" {
			return true
		}
		if i >= len(ss) || (p != ss[i] && !(strings.HasPrefix(p, ":") && ss[i] != "")) {
			return false
		}
	}
	return len(ps) == len(ss)
}

// ExportNetlify writes rules as a _redirects file, in rule order:
// "from to status!". Rules scoped to a host are written with "https://host"
// in from. A prefix rule becomes two lines: "/path" to the target, then
// "/path/*" to the target with "/:splat" (one line would send "/path" to
// "target/"). "!" keeps redirectd's behaviour of redirecting even where a
// file exists at the path. Rules Netlify cannot express are
// left out and reported (errors); dropped details are warnings. Problems
// carry the rule's id and line, not a file name.
func ExportNetlify(w io.Writer, rules []decision.Rule) (skipped []decision.Problem, err error) {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	for i := range rules {
		r := &rules[i]
		lines, ps, ok := netlifyLines(r)
		skipped = append(skipped, ps...)
		if !ok {
			continue
		}
		status, warning := exportStatus(r, 302)
		if warning != "" {
			skipped = append(skipped, ruleWarning(r, "status", warning))
		}
		conds := netlifyConditions(r)
		for _, l := range lines {
			if _, err := fmt.Fprintf(tw, "%s\t%s\t%d!%s\n", l.from, l.to, status, conds); err != nil {
				return skipped, err
			}
		}
	}
	return skipped, tw.Flush()
}

// netlifyLine is one from and to.
type netlifyLine struct{ from, to string }

// netlifyLines are the lines that express r, or ok false with the reason.
func netlifyLines(r *decision.Rule) (lines []netlifyLine, ps []decision.Problem, ok bool) {
	fail := func(field, msg string) ([]netlifyLine, []decision.Problem, bool) {
		return nil, []decision.Problem{ruleError(r, field, msg)}, false
	}
	if field, msg, bad := unexpressible(r, "Netlify"); bad {
		return fail(field, msg)
	}
	if len(r.Has) > 1 || len(r.Has) == 1 && (r.Has[0].Type != decision.ConditionCookie || r.Has[0].Value != nil) {
		return fail("has", "Netlify's only request condition is one Cookie=name, a cookie's presence")
	}
	switch {
	case strings.HasPrefix(r.Host, "*."):
		return fail("host", "Netlify's from names one host, not a *.suffix wildcard")
	case len(r.Languages) > 0 && strings.Contains(r.To, ":lang"):
		return fail("to", "Netlify has no placeholder for the language chosen (:lang); write one line per language")
	case r.Query == decision.QueryDrop:
		return fail("query", "a _redirects line has no way to drop the request's query string")
	case r.TrailingSlash == decision.TrailingSlashStrict:
		return fail("trailing_slash", "Netlify matches /a and /a/ alike; strict has no equivalent")
	case strings.ContainsAny(r.Path+r.To, " \t"):
		return fail("path", "whitespace separates fields in _redirects")
	}
	if r.Match != decision.MatchPattern && strings.ContainsAny(r.Path, ":*") {
		return fail("path", "a literal : or * in the path would read as a Netlify placeholder or splat")
	}
	origin := ""
	if r.Host != "" {
		origin = "https://" + r.Host
	}
	lines = []netlifyLine{{origin + r.Path, r.To}}
	if r.Match == decision.MatchPrefix {
		lines = append(lines, netlifyLine{origin + strings.TrimSuffix(r.Path, "/") + "/*", withSplat(r.To)})
	}
	return lines, droppedCaching(r, "Netlify"), true
}

// netlifyConditions is r's Language= and Cookie= conditions, after a tab,
// or "" (netlifyLines let at most one cookie through).
func netlifyConditions(r *decision.Rule) string {
	var b strings.Builder
	if len(r.Languages) > 0 {
		b.WriteString("\tLanguage=" + strings.Join(r.Languages, ","))
	}
	for _, c := range r.Has {
		b.WriteString("\tCookie=" + c.Key)
	}
	return b.String()
}

// withSplat inserts "/:splat" at the end of to's path, before its query.
func withSplat(to string) string {
	end := pathEnd(to)
	path := to[:end]
	if !strings.HasSuffix(path, "/") {
		path += "/"
	}
	return path + ":splat" + to[end:]
}

func pathEnd(to string) int {
	if i := strings.IndexAny(to, "?#"); i >= 0 {
		return i
	}
	return len(to)
}

// netlifyCondition converts a Netlify condition onto r (README
// "Importing from Netlify and Cloudflare"), or says why it cannot:
//
//   - Language=en,es becomes languages: [en, es]. redirectd negotiates
//     them from the whole Accept-Language by RFC 4647 lookup, where
//     Netlify compares the first two letters of its first language.
//   - Cookie=name becomes has: [{type: cookie, key: name}]: the cookie is
//     present. Several names are not converted: Netlify reads them as
//     alternatives, and has conditions must all hold.
//   - Country= and Role= stay out: redirectd is sent neither the client's
//     address nor a verified identity.
func netlifyCondition(r *decision.Rule, cond string) string {
	name, value, _ := strings.Cut(cond, "=")
	var values []string
	for v := range strings.SplitSeq(value, ",") {
		if v = strings.TrimSpace(v); v != "" {
			values = append(values, v)
		}
	}
	switch strings.ToLower(name) {
	case "language":
		if len(r.Languages) > 0 {
			return "Language= given twice; list the languages in one, separated by commas"
		}
		if len(values) == 0 {
			return "no language after Language="
		}
		r.Languages = append(r.Languages, values...)
		return ""
	case "cookie":
		switch len(values) {
		case 0:
			return "no cookie name after Cookie="
		case 1:
			if len(r.Has) > 0 {
				return "Cookie= given twice; Netlify keeps one cookie condition per line"
			}
			r.Has = append(r.Has, decision.Condition{Type: decision.ConditionCookie, Key: values[0]})
			return ""
		}
		return "Netlify applies the line when any of the cookies is present, and a rule's has conditions must all hold; write one line per cookie"
	case "country":
		return "Netlify finds the country from the client's IP address, which redirectd is never sent; have the proxy put the country in a header (CloudFront-Viewer-Country, CF-IPCountry) and write a has condition on that header by hand"
	case "role":
		return "Netlify reads roles from the Identity token it verifies; redirectd verifies no tokens"
	}
	return "not a Netlify condition redirectd knows (Language, Cookie, Country, Role)"
}
