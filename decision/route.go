package decision

import (
	"fmt"
	"regexp"
	"regexp/syntax"
	"strings"
	"time"
)

// route is a rule compiled for matching: everything that does not depend
// on the request is computed once. The Index keeps most routes in compact
// form (see base) and turns one back into a route only when a lookup
// reaches it; routes changed since the base was built live whole in the
// memdb overlay.
type route struct {
	id      string
	cleanTo string // To with an empty query or empty parameters removed
	path    string // normalised path without trailing '/' ("" for prefix "/")
	scope   string // "example.com", "*.example.com" or "*"
	cc      *cacheStrings
	ext     *routeExtra // nil for plain rules (the common case)
	// order is the rule's place in file order: rules that compete for a
	// request are tried in it. Base rules have baseOrder(position);
	// rules added since take free numbers between (see Store).
	order   uint64
	line    int32
	pathEnd int32 // where cleanTo's path ends: a prefix rest goes there
	status  int16
	intent  Intent
	kind    MatchKind
	// trailing: the rule's path ends in '/'; strict: trailing_slash:
	// strict; fold: case_insensitive; lower: the path has no upper-case
	// letter, so equal keys mean equal paths; drop: query: drop.
	trailing, strict, fold, lower, drop bool
}

// routeExtra holds what only some rules use, keeping route small. It is
// built once per rule and shared, never modified, by every Index that
// holds the rule.
type routeExtra struct {
	methods    []string
	conds      *ruleConds // nil without headers, has, missing and languages
	vary       string     // canonical names of the headers conds consult, ", "-separated
	vars       toVars     // the names To uses besides captures
	pattern    []patSeg
	re         *regexp.Regexp
	to         *template // pattern and regex rules: To split at its captures
	keyPath    string    // pattern and regex rules: their slot's path key
	queryStrip []string
	since      time.Time
	// The rule's lifecycle (README "Time windows", "Shadow rules",
	// "Staged permanence"): zero values are no window, enforce, not
	// staged.
	activeFrom, activeUntil time.Time
	promoteAfter            time.Duration
	// notYetWhy and endedWhy explain a request outside the window; made
	// once here, so a decision never formats them.
	notYetWhy, endedWhy string
	shadow              bool
}

// ruleConds are a rule's request conditions (README "Conditions",
// "Language negotiation"), compiled, and as written for Rule.
type ruleConds struct {
	list  []cond   // headers, has and missing
	langs []string // languages as written
	// langWhy explains a request whose Accept-Language selects none.
	langWhy string

	headers      map[string]string
	has, missing []Condition
}

// toVars flags the names a To may use besides captures (README "Language
// negotiation", "Host captures").
type toVars uint8

const (
	varLang      toVars = 1 << iota // ":lang", the tag negotiated
	varSubdomain                    // ":subdomain", the labels a wildcard host scope matched
)

// vars are the values of the toVars for one request.
type vars struct {
	lang, subdomain string
}

// patSeg is one segment of a pattern: a literal, a ":name" parameter or
// the trailing "*".
type patSeg struct {
	lit          string
	group        int
	param, splat bool
}

// cacheStrings are the Cache-Control values of the rules that share a
// cache_max_age, built once per distinct value.
type cacheStrings struct {
	// rule is the rules' cache_max_age, notSet when they set none.
	rule time.Duration
	// The max-age of permanent and temporary answers; 0 is no-store.
	permMaxAge, tempMaxAge  time.Duration
	permPublic, permPrivate string
	tempPublic, tempPrivate string
}

// notSet stands for an absent cache_max_age in cacheStrings.rule.
const notSet time.Duration = -1

// ruleMaxAge is the cache_max_age the rules of cc were written with.
func (cc *cacheStrings) ruleMaxAge() *time.Duration {
	if cc.rule == notSet {
		return nil
	}
	return new(cc.rule)
}

// maxAgeKey is a cache_max_age as cacheStrings.rule holds it.
func maxAgeKey(d *time.Duration) time.Duration {
	if d == nil {
		return notSet
	}
	return *d
}

// cacheTable interns cacheStrings by cache_max_age: a million rules share
// a handful of values.
type cacheTable struct {
	permMaxAge time.Duration // the server's, for rules that set none
	maxAge     time.Duration // Options.MaxCacheAge; 0 = no limit
	index      map[time.Duration]uint32
	list       []*cacheStrings
}

func newCacheTable(opts Options) *cacheTable {
	return &cacheTable{permMaxAge: opts.PermanentMaxAge, maxAge: opts.MaxCacheAge, index: map[time.Duration]uint32{}}
}

// get returns the strings for a rule's cache_max_age (maxAgeKey), and
// their number in the table.
func (t *cacheTable) get(key time.Duration) (uint32, *cacheStrings) {
	if i, ok := t.index[key]; ok {
		return i, t.list[i]
	}
	i := uint32(len(t.list))
	t.index[key] = i
	t.list = append(t.list, t.newCacheStrings(key))
	return i, t.list[i]
}

// newCacheStrings: a rule without cache_max_age has the server's
// permanent max-age and no-store temporary answers; cache_max_age: 0
// makes every answer no-store (README "Rules", cache_max_age).
func (t *cacheTable) newCacheStrings(rule time.Duration) *cacheStrings {
	perm, temp := t.permMaxAge, time.Duration(0)
	if rule != notSet {
		perm, temp = rule, rule
	}
	cc := &cacheStrings{rule: rule, permMaxAge: perm, tempMaxAge: temp}
	if perm > 0 {
		cc.permPublic, cc.permPrivate = cacheControlFor(true, false, perm), cacheControlFor(true, true, perm)
	}
	if temp > 0 {
		cc.tempPublic, cc.tempPrivate = cacheControlFor(false, false, temp), cacheControlFor(false, true, temp)
	}
	return cc
}

func (rt *route) queryStrip() []string {
	if rt.ext == nil {
		return nil
	}
	return rt.ext.queryStrip
}

func (rt *route) template() *template {
	if rt.ext == nil {
		return nil
	}
	return rt.ext.to
}

// compile turns a rule that checkRule accepted into a route, its cache
// strings from caches. A problem here is a rule over a limit of the
// Store's Options (MaxCacheAge), or means a check in checkRule let
// something through that matching cannot use; it is reported, not hidden.
func compile(r *Rule, caches *cacheTable) (route, *Problem) {
	fail := func(field, msg string) (route, *Problem) {
		return route{}, &Problem{Severity: SeverityError, Line: r.Line, RuleID: r.ID, Field: field, Message: msg}
	}
	rt := route{
		id: r.ID, status: int16(r.Status), intent: r.Intent, drop: r.Query == QueryDrop,
		kind: r.Match, strict: r.TrailingSlash == TrailingSlashStrict, fold: r.CaseInsensitive,
		line: int32(r.Line),
	}
	if m := r.CacheMaxAge; m != nil && caches.maxAge > 0 && *m > caches.maxAge {
		return fail("cache_max_age", fmt.Sprintf("%s is more than this server accepts: at most %s, set by redirectd --max-cache-age; a cached redirect cannot be taken back before it expires",
			secondsText(*m), secondsText(caches.maxAge)))
	}
	host := strings.ToLower(strings.TrimSuffix(r.Host, "."))
	switch {
	case host == "" || host == "*":
		rt.scope = "*"
	default:
		rt.scope = host
	}

	var ext routeExtra
	needExt := false
	if len(r.Methods) > 0 {
		ext.methods, needExt = r.Methods, true
	}
	if len(r.Headers)+len(r.Has)+len(r.Missing)+len(r.Languages) > 0 {
		rc := &ruleConds{headers: r.Headers, has: r.Has, missing: r.Missing, list: compileConditions(r)}
		ext.conds = rc
		if len(r.Languages) > 0 {
			rc.langs, rc.langWhy = r.Languages, "Accept-Language selects none of languages "+strings.Join(r.Languages, ", ")
			if hasVar(r.To, "lang") {
				ext.vars |= varLang
			}
		}
		ext.vary, needExt = strings.Join(consultedHeaders(r), ", "), true
	}
	if strings.HasPrefix(r.Host, "*.") && hasVar(r.To, "subdomain") {
		ext.vars, needExt = ext.vars|varSubdomain, true
	}
	if len(r.QueryStrip) > 0 {
		ext.queryStrip, needExt = r.QueryStrip, true
	}
	if !r.Since.IsZero() {
		ext.since, needExt = r.Since, true
	}
	if !r.ActiveFrom.IsZero() || !r.ActiveUntil.IsZero() || r.PromoteAfter != 0 || r.Mode == ModeShadow {
		ext.activeFrom, ext.activeUntil, ext.promoteAfter = r.ActiveFrom, r.ActiveUntil, r.PromoteAfter
		ext.notYetWhy = "not active yet: active_from is " + formatTime(r.ActiveFrom)
		ext.endedWhy = "ended: active_until was " + formatTime(r.ActiveUntil)
		ext.shadow, needExt = r.Mode == ModeShadow, true
	}

	if !strings.HasPrefix(r.Path, "/") {
		return fail("path", "must start with '/'")
	}
	p := normalizePath(r.Path)
	rt.trailing = len(p) > 1 && strings.HasSuffix(p, "/")
	trim := trimSlash(p)

	rt.cleanTo = r.To
	if (r.Match == MatchExact || r.Match == MatchPrefix) && strings.ContainsAny(r.To, "?#") {
		rt.cleanTo = mergeQuery(r.To, "", nil)
	}
	rt.pathEnd = int32(pathEnd(rt.cleanTo))
	rt.lower = lowerASCII(trim) == trim
	switch r.Match {
	case MatchExact, MatchPrefix:
		rt.path = trim
		if r.Match == MatchPrefix && trim == "/" {
			rt.path = ""
		}
	case MatchPattern:
		pp := p
		if !rt.strict {
			pp = trim
		}
		segs, names, err := parsePattern(pp)
		if err != "" {
			return fail("path", err)
		}
		ext.pattern, needExt = segs, true
		ext.keyPath = patternDir(segs)
		rt.path = ext.keyPath
		ext.to = newTemplate(rt.cleanTo, func(s string, i int) (tplPart, int, bool) {
			if s[i] != ':' {
				return tplPart{}, 0, false
			}
			n := 1
			for i+n < len(s) && isNameByte(s[i+n]) {
				n++
			}
			g, ok := names[s[i+1:i+n]]
			return tplPart{group: g}, n, ok
		})
	case MatchRegex:
		expr := r.Path
		if r.CaseInsensitive {
			expr = "(?i)" + expr
		}
		re, err := regexp.Compile("^(?:" + expr + ")$")
		if err != nil {
			return fail("path", "invalid regular expression: "+err.Error())
		}
		if re.NumSubexp() >= maxCaptures {
			return fail("path", fmt.Sprintf("%d capture groups; at most %d", re.NumSubexp(), maxCaptures-1))
		}
		ext.re, needExt = re, true
		ext.keyPath = regexDir(r.Path)
		rt.path = ext.keyPath
		var bad string
		ext.to = newTemplate(rt.cleanTo, func(s string, i int) (tplPart, int, bool) {
			part, n, ok, msg := regexRef(re, s, i)
			if msg != "" && bad == "" {
				bad = msg
			}
			return part, n, ok
		})
		if bad != "" {
			return fail("to", bad)
		}
	default:
		return fail("match", "unknown match kind")
	}
	if needExt {
		// A copy, so that ext itself stays on the stack for the rules
		// (most of them) that need none.
		e := new(routeExtra)
		*e = ext
		rt.ext = e
	}
	_, rt.cc = caches.get(maxAgeKey(r.CacheMaxAge))
	return rt, nil
}

// kindClass orders the rules of one slot: exact, then pattern and regex,
// then prefix (README "Precedence").
func kindClass(k MatchKind) int {
	switch k {
	case MatchExact:
		return 0
	case MatchPrefix:
		return 2
	default:
		return 1
	}
}

// appendKey appends the key of the rule's slot: scope, NUL, and the
// lower-cased path key, which ends in '/'.
func (rt *route) appendKey(b []byte) []byte {
	b = append(b, rt.scope...)
	b = append(b, 0)
	switch rt.kind {
	case MatchExact, MatchPrefix:
		if rt.path == "" || rt.path == "/" {
			return append(b, '/')
		}
		for i := 0; i < len(rt.path); i++ {
			c := rt.path[i]
			if c >= 'A' && c <= 'Z' {
				c += 'a' - 'A'
			}
			b = append(b, c)
		}
		return append(b, '/')
	default:
		return append(b, rt.ext.keyPath...) // patternDir / regexDir already end in '/'
	}
}

// trimSlash drops one trailing '/' unless the path is "/".
func trimSlash(p string) string {
	if len(p) > 1 && p[len(p)-1] == '/' {
		return p[:len(p)-1]
	}
	return p
}

// parsePattern splits a normalised pattern into segments and names its
// parameters (group numbers from 1; "splat" is the trailing '*').
func parsePattern(p string) ([]patSeg, map[string]int, string) {
	names := map[string]int{}
	var segs []patSeg
	if p == "/" {
		return nil, names, ""
	}
	parts := strings.Split(p[1:], "/")
	for i, s := range parts {
		switch {
		case s == "*" && i == len(parts)-1:
			names["splat"] = len(names) + 1
			segs = append(segs, patSeg{splat: true, group: names["splat"]})
		case strings.HasPrefix(s, ":") && len(s) > 1:
			name := s[1:]
			for j := 0; j < len(name); j++ {
				if !isNameByte(name[j]) {
					return nil, nil, fmt.Sprintf("parameter %q: names are letters, digits and '_'", s)
				}
			}
			if _, dup := names[name]; dup {
				return nil, nil, fmt.Sprintf("parameter %q appears twice", s)
			}
			names[name] = len(names) + 1
			segs = append(segs, patSeg{param: true, group: names[name]})
		default:
			segs = append(segs, patSeg{lit: s})
		}
	}
	if len(names) >= maxCaptures {
		return nil, nil, fmt.Sprintf("%d parameters; at most %d", len(names), maxCaptures-1)
	}
	return segs, names, ""
}

// patternDir is the key of a pattern's literal leading segments.
func patternDir(segs []patSeg) string {
	var b strings.Builder
	b.WriteByte('/')
	for _, s := range segs {
		if s.param || s.splat || s.lit == "" {
			break
		}
		b.WriteString(lowerASCII(s.lit))
		b.WriteByte('/')
	}
	return b.String()
}

// regexDir is the key of the whole segments a regex's literal prefix
// spells out ("^/old/(\d+)$" → "/old/"), or "/" when it has none that is
// safely comparable with a normalised path.
func regexDir(expr string) string {
	re, err := syntax.Parse(expr, syntax.Perl)
	if err != nil {
		return "/"
	}
	re = re.Simplify()
	var lit []rune
	subs := []*syntax.Regexp{re}
	if re.Op == syntax.OpConcat {
		subs = re.Sub
	}
	for _, s := range subs {
		if s.Op == syntax.OpBeginText || s.Op == syntax.OpBeginLine {
			continue
		}
		if s.Op == syntax.OpLiteral {
			lit = s.Rune
		}
		break
	}
	prefix := string(lit)
	j := strings.LastIndexByte(prefix, '/')
	if j <= 0 {
		return "/"
	}
	prefix = prefix[:j+1]
	if normalizePath(prefix) != prefix {
		return "/"
	}
	return lowerASCII(prefix)
}

// regexRef reads a regexp.Expand-style reference at s[i]: $1, ${1},
// $name, ${name}, or $$ for a literal '$'.
func regexRef(re *regexp.Regexp, s string, i int) (tplPart, int, bool, string) {
	if s[i] != '$' || i+1 >= len(s) {
		return tplPart{}, 0, false, ""
	}
	if s[i+1] == '$' {
		return tplPart{text: "$", group: -1}, 2, true, ""
	}
	name, n := "", 0
	if s[i+1] == '{' {
		end := strings.IndexByte(s[i:], '}')
		if end < 0 {
			return tplPart{}, 0, false, ""
		}
		name, n = s[i+2:i+end], end+1
	} else {
		n = 1
		for i+n < len(s) && isNameByte(s[i+n]) {
			n++
		}
		name = s[i+1 : i+n]
	}
	if name == "" {
		return tplPart{}, 0, false, ""
	}
	g := -1
	if isDigits(name) {
		fmt.Sscan(name, &g)
	} else {
		g = re.SubexpIndex(name)
	}
	if g < 0 || g > re.NumSubexp() {
		return tplPart{}, 0, false, fmt.Sprintf("%q names no capture group of the path expression", s[i:i+n])
	}
	return tplPart{group: g}, n, true, ""
}

func (rt *route) methods() []string {
	if rt.ext == nil {
		return nil
	}
	return rt.ext.methods
}
