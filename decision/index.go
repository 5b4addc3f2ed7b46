package decision

import (
	"bytes"
	"fmt"
	"maps"
	"net/textproto"
	"regexp"
	"regexp/syntax"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
	"unsafe"

	memdb "github.com/hashicorp/go-memdb"
)

// The rule index is one go-memdb table of slots. A slot holds the rules
// that share a host scope and a (lower-cased) path key, so the index is
// unique and Txn.LongestPrefix finds, in one radix walk, the deepest slot
// whose path is a whole-segment prefix of the request path: keys end in '/'
// and the request is looked up as path+"/", so "/docs/" is a prefix of
// "/docs/x/" but never of "/docsearch/". Slots holding only exact rules can
// only be hit by their whole key; a hash map finds those (and every other
// slot by its whole key) and they stay out of the radix tree.
const (
	routesTable = "routes"
	// routeIndex is the table's only index. memdb requires every table to
	// have a unique index named "id"; our id is the route key.
	routeIndex = "id"
	// routePrefixIndex asks memdb for the prefix form of routeIndex.
	routePrefixIndex = routeIndex + "_prefix"
)

// Index is an immutable, searchable rule set. It is safe for concurrent
// use; a new Index is built aside and swapped in by the caller, so readers
// of the current one are never disturbed.
type Index struct {
	db *memdb.MemDB
	// read is one read-only transaction shared by every Decide. A memdb
	// read Txn is a frozen snapshot of immutable radix trees: its lookups
	// only read (readableIndex clones nothing and tracks nothing when the
	// Txn is not a write Txn), so sharing it across goroutines is safe and
	// saves two allocations per decision.
	read *memdb.Txn

	rules  []Rule  // file order
	routes []route // routes[i] is rules[i] compiled
	byID   []int32 // indexes into rules, sorted by rule id

	// slotsByKey finds any slot by its whole key with one hash lookup, the
	// path every exact hit takes; memdb, which holds the slots that have
	// pattern, regex or prefix rules, serves longest-prefix walks. Its keys
	// alias the slots' key bytes, which are never written after Build, so
	// they cost no copy.
	slotsByKey map[string]*slot

	// gates holds "scope NUL /first-segment/" for every slot in memdb, and
	// rootWalk the scopes with a prefix, pattern or regex rule at "/": a
	// request whose first segment passes neither has no prefix, pattern or
	// regex candidate, so a miss costs a hash lookup, not a radix walk.
	gates    map[string]struct{}
	rootWalk map[string]struct{}

	hosts     map[string]struct{} // exact hosts that have rules
	wildcards map[string]struct{} // suffixes of "*.suffix" scopes that have rules
	anyHost   bool                // rules without a host exist
	counts    [4]int              // rules per MatchKind

	opts Options
	keys sync.Pool // *lookupKey buffers, so a lookup allocates no key
}

// slot is one row of the routes table.
type slot struct {
	key   []byte // scope + "\x00" + lower-cased path key ending in '/'
	scope string // "example.com", "*.example.com" or "*"
	// rules are the exact rules whose path is this key, then the pattern
	// and regex rules whose literal leading segments are this key, then the
	// prefix rules whose prefix is this key; each group in file order.
	rules            []*route
	nExact, nDynamic uint32
	// parent is the slot of the longest proper whole-segment prefix of
	// this key in the same scope, so one LongestPrefix gives every slot on
	// the request path's way up.
	parent *slot
}

func (s *slot) exact() []*route   { return s.rules[:s.nExact] }
func (s *slot) dynamic() []*route { return s.rules[s.nExact : s.nExact+s.nDynamic] }
func (s *slot) prefix() []*route  { return s.rules[s.nExact+s.nDynamic:] }

// lookupKey is a reusable lookup buffer. args holds the key itself so a
// memdb call gets its variadic arguments without a new slice, and the
// indexer reads the buffer through a pointer without boxing a copy.
type lookupKey struct {
	buf  []byte
	args [1]any
}

// routeKeyIndexer indexes slots by key and reads lookups from *lookupKey.
type routeKeyIndexer struct{}

func (routeKeyIndexer) FromObject(obj any) (bool, []byte, error) {
	s, ok := obj.(*slot)
	if !ok {
		return false, nil, fmt.Errorf("routes table holds *slot, got %T", obj)
	}
	return true, s.key, nil
}

func (routeKeyIndexer) FromArgs(args ...any) ([]byte, error) {
	if len(args) != 1 {
		return nil, fmt.Errorf("route lookup takes one *lookupKey, got %d arguments", len(args))
	}
	k, ok := args[0].(*lookupKey)
	if !ok {
		return nil, fmt.Errorf("route lookup takes *lookupKey, got %T", args[0])
	}
	return k.buf, nil
}

func (ix routeKeyIndexer) PrefixFromArgs(args ...any) ([]byte, error) {
	return ix.FromArgs(args...)
}

// routesSchema is the index's memdb schema: one table, one unique index.
func routesSchema() *memdb.DBSchema {
	return &memdb.DBSchema{Tables: map[string]*memdb.TableSchema{
		routesTable: {
			Name: routesTable,
			Indexes: map[string]*memdb.IndexSchema{
				routeIndex: {Name: routeIndex, Unique: true, Indexer: routeKeyIndexer{}},
			},
		},
	}}
}

// route is a rule compiled for matching: everything that does not depend
// on the request is computed once here.
type route struct {
	rule    *Rule
	cleanTo string    // To with an empty query or empty parameters removed
	path    string    // normalised path without trailing '/' ("" for prefix "/")
	to      *template // nil: cleanTo is the Location (exact and prefix)
	cc      *cacheStrings
	ext     *routeExtra // nil for plain rules (the common case)
	// id, status, intent and drop copy the Rule fields every decision
	// reads, so a decision touches the route and not the Rule (one cache
	// miss fewer at a million rules).
	id      string
	order   int32
	pathEnd int32 // where cleanTo's path ends: a prefix rest goes there
	scope   string
	status  int16
	intent  Intent
	kind    MatchKind
	// trailing: the rule's path ends in '/'; strict: trailing_slash:
	// strict; fold: case_insensitive; lower: the path has no upper-case
	// letter, so equal keys mean equal paths; drop: query: drop.
	trailing, strict, fold, lower, drop bool
}

// routeExtra holds what only some rules use, keeping route small.
type routeExtra struct {
	methods    []string
	headers    []headerCond
	vary       string // canonical header names, ", "-separated
	pattern    []patSeg
	re         *regexp.Regexp
	queryStrip []string
	since      time.Time
	// selfScheme is set when To is this rule's own host and path on an
	// absolute URL (an http→https upgrade, say): a request already on that
	// scheme must not be redirected to itself.
	selfScheme string
}

type headerCond struct {
	name, glob string
}

// patSeg is one segment of a pattern: a literal, a ":name" parameter or
// the trailing "*".
type patSeg struct {
	lit          string
	group        int
	param, splat bool
}

// cacheStrings are the Cache-Control values of rules sharing max-ages,
// built once per distinct pair.
type cacheStrings struct {
	permMaxAge, tempMaxAge  time.Duration
	permPublic, permPrivate string
	tempPublic, tempPrivate string
}

func (rt *route) queryStrip() []string {
	if rt.ext == nil {
		return nil
	}
	return rt.ext.queryStrip
}

func (rt *route) methods() []string {
	if rt.ext == nil {
		return nil
	}
	return rt.ext.methods
}

// Build checks rules and builds an Index. Errors (*RulesError, listing every
// problem) reject the set; warnings are returned with the index.
//
// The Index keeps rules (a million rules would otherwise be held twice):
// the caller must not modify the slice or its rules afterwards. Build a
// changed set from a copy.
func Build(rules []Rule, opts Options) (*Index, []Problem, error) {
	return build(rules, opts, nil)
}

// build is Build. Given checkedByID, sortIDs of rules that parseRules has
// checked already, it skips the per-rule and id checks and the id sort.
func build(rules []Rule, opts Options, checkedByID []int32) (*Index, []Problem, error) {
	if opts.PermanentMaxAge <= 0 {
		opts.PermanentMaxAge = DefaultPermanentMaxAge
	}
	var errs, warns []Problem
	sortProblems := func(ps []Problem) {
		for _, p := range ps {
			if p.Severity == SeverityWarning {
				warns = append(warns, p)
			} else {
				errs = append(errs, p)
			}
		}
	}
	bad := make([]bool, len(rules)) // rules with errors are not compiled
	byID := checkedByID
	if byID == nil {
		byID = sortIDs(rules, opts.loadWorkers())
		sortProblems(checkIDs(rules))
		found := newChunkProblems(len(rules))
		inChunks(len(rules), opts.loadWorkers(), func(_, lo, hi int) {
			for i := lo; i < hi; i++ {
				ps := checkRule(&rules[i])
				for _, p := range ps {
					if p.Severity == SeverityError {
						bad[i] = true
					}
				}
				found.add(lo, ps...)
			}
		})
		sortProblems(found.all())
	}

	ix := &Index{
		rules:     rules,
		routes:    make([]route, len(rules)),
		hosts:     map[string]struct{}{},
		wildcards: map[string]struct{}{},
		opts:      opts,
	}
	ix.keys.New = func() any {
		k := &lookupKey{buf: make([]byte, 0, 256)}
		k.args[0] = k
		return k
	}
	hugePages(ix.routes)
	compilers := make([]compiler, opts.loadWorkers())
	for w := range compilers {
		compilers[w] = compiler{
			hosts: map[string]struct{}{}, wildcards: map[string]struct{}{},
			ccs: map[[2]time.Duration]*cacheStrings{}, hostNames: map[string]string{},
		}
	}
	compiled := newChunkProblems(len(rules))
	workers := inChunks(len(rules), len(compilers), func(w, lo, hi int) {
		c := &compilers[w]
		for i := lo; i < hi; i++ {
			if bad[i] {
				continue
			}
			if p := ix.compile(i, c); p != nil {
				compiled.add(lo, *p)
			}
		}
	})
	errs = append(errs, compiled.all()...)
	for _, c := range compilers[:workers] {
		for k, n := range c.counts {
			ix.counts[k] += n
		}
		ix.anyHost = ix.anyHost || c.anyHost
		maps.Copy(ix.hosts, c.hosts)
		maps.Copy(ix.wildcards, c.wildcards)
	}
	if len(errs) > 0 {
		return nil, warns, &RulesError{Problems: errs}
	}

	slots, err := ix.load()
	if err != nil {
		return nil, warns, err
	}
	ix.read = ix.db.Txn(false)

	ge, gw := ix.checkGraph(slots)
	warns = append(warns, gw...)
	if len(ge) > 0 {
		return nil, warns, &RulesError{Problems: ge}
	}

	ix.byID = byID
	return ix, warns, nil
}

// compiler is one Build worker's share of what compile learns about the
// whole set, merged into the Index when every rule is compiled, and its
// interning tables.
type compiler struct {
	counts           [4]int
	anyHost          bool
	hosts, wildcards map[string]struct{}
	ccs              map[[2]time.Duration]*cacheStrings
	hostNames        map[string]string // interned scopes
}

// compile fills ix.routes[i]. A problem here means a check in checkRule let
// something through that matching cannot use; it is reported, not hidden.
func (ix *Index) compile(i int, c *compiler) *Problem {
	r := &ix.rules[i]
	rt := &ix.routes[i]
	fail := func(field, msg string) *Problem {
		return &Problem{Severity: SeverityError, Line: r.Line, RuleID: r.ID, Field: field, Message: msg}
	}
	rt.rule = r
	rt.id, rt.status, rt.intent, rt.drop = r.ID, int16(r.Status), r.Intent, r.Query == QueryDrop
	rt.order = int32(i)
	rt.kind = r.Match
	rt.strict = r.TrailingSlash == TrailingSlashStrict
	rt.fold = r.CaseInsensitive
	c.counts[r.Match]++

	host := strings.ToLower(strings.TrimSuffix(r.Host, "."))
	switch {
	case host == "" || host == "*":
		rt.scope = "*"
		c.anyHost = true
	case strings.HasPrefix(host, "*."):
		c.wildcards[host[2:]] = struct{}{}
		rt.scope = host
	default:
		c.hosts[host] = struct{}{}
		rt.scope = host
	}
	if s, ok := c.hostNames[rt.scope]; ok {
		rt.scope = s
	} else {
		c.hostNames[rt.scope] = rt.scope
	}

	var ext routeExtra
	needExt := false
	if len(r.Methods) > 0 {
		ext.methods, needExt = r.Methods, true
	}
	if len(r.Headers) > 0 {
		names := make([]string, 0, len(r.Headers))
		for name, glob := range r.Headers {
			ext.headers = append(ext.headers, headerCond{name: strings.ToLower(name), glob: glob})
			names = append(names, textproto.CanonicalMIMEHeaderKey(name))
		}
		slices.SortFunc(ext.headers, func(a, b headerCond) int { return strings.Compare(a.name, b.name) })
		slices.Sort(names)
		ext.vary, needExt = strings.Join(names, ", "), true
	}
	if len(r.QueryStrip) > 0 {
		ext.queryStrip, needExt = r.QueryStrip, true
	}
	if !r.Since.IsZero() {
		ext.since, needExt = r.Since, true
	}

	p := normalizePath(r.Path)
	if !strings.HasPrefix(r.Path, "/") {
		return fail("path", "must start with '/'")
	}
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
		if scheme, ok := selfTarget(rt.cleanTo, host, trim, r.Match); ok {
			ext.selfScheme, needExt = scheme, true
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
		rt.path = patternDir(segs)
		rt.to = newTemplate(rt.cleanTo, func(s string, i int) (tplPart, int, bool) {
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
		rt.path = regexDir(r.Path)
		var bad string
		rt.to = newTemplate(rt.cleanTo, func(s string, i int) (tplPart, int, bool) {
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
		rt.ext = &ext
	}

	perm := ix.opts.PermanentMaxAge
	if r.CacheMaxAge > 0 {
		perm = r.CacheMaxAge
	}
	ck := [2]time.Duration{perm, max(r.CacheMaxAge, 0)}
	cc, ok := c.ccs[ck]
	if !ok {
		cc = &cacheStrings{
			permMaxAge: perm, tempMaxAge: ck[1],
			permPublic: cacheControl("public", perm), permPrivate: cacheControl("private", perm),
		}
		if ck[1] > 0 {
			secs := cacheControl("public", ck[1])
			cc.tempPublic = strings.TrimPrefix(secs, "public, ")
			cc.tempPrivate = cacheControl("private", ck[1])
		}
		c.ccs[ck] = cc
	}
	rt.cc = cc
	return nil
}

// load groups routes into slots and inserts them into a new memdb in key
// order, so iradix's writable-node cache is hit. Keys live in a few large
// arrays and slots in one, which keeps a million-rule build to a handful
// of allocations besides memdb's own.
func (ix *Index) load() ([]*slot, error) {
	type keyed struct {
		key []byte
		rt  *route
	}
	items := make([]keyed, 0, len(ix.routes))
	hugePages(items[:cap(items)])
	var arena []byte
	var y yielder
	for i := range ix.routes {
		y.step()
		rt := &ix.routes[i]
		if rt.rule == nil {
			continue
		}
		n := len(rt.scope) + 2 + len(rt.path)
		if cap(arena)-len(arena) < n {
			arena = make([]byte, 0, max(n, 1<<20))
		}
		start := len(arena)
		arena = append(arena, rt.scope...)
		arena = append(arena, 0)
		arena = rt.appendKeyPath(arena)
		items = append(items, keyed{arena[start:len(arena):len(arena)], rt})
	}
	items = sortInHalves(items, ix.opts.loadWorkers(), func(a, b keyed) int {
		if c := bytes.Compare(a.key, b.key); c != 0 {
			return c
		}
		return int(a.rt.order - b.rt.order)
	})

	n := 0
	for i := range items {
		if i == 0 || !bytes.Equal(items[i].key, items[i-1].key) {
			n++
		}
	}
	slotArray := make([]slot, n)
	hugePages(slotArray)
	slots := make([]*slot, 0, n)
	ruleArray := make([]*route, len(items))
	hugePages(ruleArray)
	// stack holds the slots whose keys are prefixes of the current key:
	// keys are sorted, so a slot's ancestors are on it when it is reached.
	var stack []*slot
	for i := 0; i < len(items); {
		y.step()
		j := i + 1
		for j < len(items) && bytes.Equal(items[j].key, items[i].key) {
			j++
		}
		s := &slotArray[len(slots)]
		s.key, s.scope = items[i].key, items[i].rt.scope
		s.rules = ruleArray[i:j:j]
		for k := i; k < j; k++ {
			s.rules[k-i] = items[k].rt
		}
		slices.SortStableFunc(s.rules, func(a, b *route) int { return kindClass(a.kind) - kindClass(b.kind) })
		for _, rt := range s.rules {
			switch kindClass(rt.kind) {
			case 0:
				s.nExact++
			case 1:
				s.nDynamic++
			}
		}
		for len(stack) > 0 && !bytes.HasPrefix(s.key, stack[len(stack)-1].key) {
			stack = stack[:len(stack)-1]
		}
		if len(stack) > 0 {
			s.parent = stack[len(stack)-1]
		}
		stack = append(stack, s)
		slots = append(slots, s)
		i = j
	}

	// The whole-key map and the radix tree are independent: given two
	// workers, the map is built on another goroutine while this one fills
	// memdb.
	keyMap := func() {
		var y yielder
		ix.slotsByKey = make(map[string]*slot, len(slots))
		for _, s := range slots {
			y.step()
			ix.slotsByKey[unsafe.String(&s.key[0], len(s.key))] = s
		}
	}
	if ix.opts.loadWorkers() < 2 {
		keyMap()
	} else {
		var byKey sync.WaitGroup
		byKey.Go(keyMap)
		defer byKey.Wait()
	}

	db, err := memdb.NewMemDB(routesSchema())
	if err != nil {
		return nil, fmt.Errorf("rule index schema: %w", err)
	}
	ix.gates, ix.rootWalk = map[string]struct{}{}, map[string]struct{}{}
	txn := db.Txn(true)
	defer txn.Abort()
	for _, s := range slots {
		y.step()
		if s.nExact == uint32(len(s.rules)) {
			// Only exact rules: reachable only by the whole key, which
			// slotsByKey answers. Leaving them out of the radix tree halves
			// build time and heap at a million rules (memdb spends ~400 B
			// and several allocations per key).
			continue
		}
		if err := txn.Insert(routesTable, s); err != nil {
			return nil, fmt.Errorf("rule index insert %q: %w", s.key, err)
		}
		if g := gateLen(s.key); g == len(s.key) && bytes.HasSuffix(s.key, []byte("\x00/")) {
			ix.rootWalk[s.scope] = struct{}{}
		} else {
			ix.gates[unsafe.String(&s.key[0], g)] = struct{}{}
		}
	}
	txn.Commit()
	ix.db = db
	return slots, nil
}

// gateLen is the length of key's scope, NUL and first path segment with
// its '/': "h\x00/a/b/" → len("h\x00/a/"), "h\x00/" → len("h\x00/").
func gateLen(key []byte) int {
	i := bytes.IndexByte(key, 0) + 2 // past NUL and the leading '/'
	if i > len(key) {
		return len(key)
	}
	if j := bytes.IndexByte(key[i:], '/'); j >= 0 {
		return i + j + 1
	}
	return len(key)
}

// kindClass orders a slot's rules: exact, then pattern and regex, then prefix.
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

// appendKeyPath appends the lower-cased path key of the rule's slot,
// which ends in '/'.
func (rt *route) appendKeyPath(b []byte) []byte {
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
		return append(b, rt.path...) // patternDir / regexDir already end in '/'
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

// selfTarget reports whether an exact or prefix rule's To is an absolute
// URL on the rule's own (exact) host with the rule's own path: valid only
// as a scheme change, so requests already on that scheme are passed.
func selfTarget(to, host, trim string, kind MatchKind) (string, bool) {
	scheme, authority, rest, ok := splitAbsolute(to)
	if !ok || host == "" || strings.HasPrefix(host, "*.") {
		return "", false
	}
	h, err := normalizeHost(authority)
	if err != nil || h != host {
		return "", false
	}
	if i := strings.IndexAny(rest, "?#"); i >= 0 {
		rest = rest[:i]
	}
	if trimSlash(normalizePath(rest)) != trim {
		return "", false
	}
	return scheme, true
}

// Len is the number of rules.
func (ix *Index) Len() int { return len(ix.rules) }

// Rule returns the rule with the given id.
func (ix *Index) Rule(id string) (Rule, bool) {
	if pos, ok := ix.Position(id); ok {
		return ix.rules[pos], true
	}
	return Rule{}, false
}

// Position returns the position (file order, 0-based) of the rule with the
// given id: the Decision.RulePos of the decisions it makes.
func (ix *Index) Position(id string) (int, bool) {
	i := sort.Search(len(ix.byID), func(i int) bool { return ix.rules[ix.byID[i]].ID >= id })
	if i < len(ix.byID) && ix.rules[ix.byID[i]].ID == id {
		return int(ix.byID[i]), true
	}
	return 0, false
}

// RuleID returns the id of the rule at position pos (0 ≤ pos < Len()),
// for bookkeeping by position such as hit counting.
func (ix *Index) RuleID(pos int) string { return ix.rules[pos].ID }

// Rules returns up to limit rules (all when limit <= 0) whose ids sort
// after after, in id order: a page of an admin listing.
func (ix *Index) Rules(after string, limit int) []Rule {
	i := sort.Search(len(ix.byID), func(i int) bool { return ix.rules[ix.byID[i]].ID > after })
	n := len(ix.byID) - i
	if limit > 0 && limit < n {
		n = limit
	}
	out := make([]Rule, n)
	for j := range out {
		out[j] = ix.rules[ix.byID[i+j]]
	}
	return out
}

// Count is the number of rules of a match kind (for metrics).
func (ix *Index) Count(kind MatchKind) int {
	if int(kind) >= len(ix.counts) {
		return 0
	}
	return ix.counts[kind]
}
