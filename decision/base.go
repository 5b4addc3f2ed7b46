package decision

import (
	"hash/maphash"
	"maps"
	"math/bits"
	"slices"
	"strings"
	"sync"
	"unsafe"
)

// base is the bulk of a rule set in compact form, built once when a set is
// loaded and never changed: what changes afterwards lives in the memdb
// overlay (see Store). A million rules are one slice of pointer-free
// records, one byte arena holding their strings and three hash tables of
// integers, so the garbage collector has almost nothing to scan and a rule
// costs about a hundred bytes. Rules are turned back into routes one at a
// time, when a lookup reaches them.
type base struct {
	arena []byte
	rules []crule // file order: see baseOrder
	// exts[0] is nil; rules that need a routeExtra (methods, conditions
	// or languages, patterns, regexes, variables in To, query_strip,
	// since, a lifecycle) point to theirs.
	exts   []*routeExtra
	scopes []string
	caches []*cacheStrings

	seed maphash.Seed
	// slots finds the first rule of a slot, the rules sharing a scope and
	// path key (see route.appendKey), by the key's hash; next chains the
	// slot's other rules in file order.
	slots table
	next  []uint32
	ids   table // rule position by id
	// gates holds the hashes of "scope NUL /first-segment/" of every slot
	// with a prefix, pattern or regex rule, and rootWalk the scopes with
	// one at "/": a request whose first segment passes neither has no such
	// candidate, so a miss costs one hash lookup, not a walk up the path.
	gates    map[uint64]struct{}
	rootWalk map[string]struct{}

	byIDOnce sync.Once
	byID     []uint32 // positions sorted by id, made for the first listing
}

// baseOrder is the order of the base rule at pos: (pos+1) << 32, which
// leaves room for 2^32 rules added between two base rules, or before the
// first, without building a new base.
func baseOrder(pos uint32) uint64 { return uint64(pos+1) << 32 }

// crule is one rule in compact form: its strings are spans of the arena
// and what only some rules have sits in exts.
type crule struct {
	off               [nSpans]uint32
	n                 [nSpans]uint16
	scope, cache, ext uint32
	line, pathEnd     int32
	status            int16
	intent            Intent
	kind              MatchKind
	flags             uint8
}

// The strings of a crule. norm and cleanTo are route.path and
// route.cleanTo; they share path's and to's bytes when equal, as they
// almost always are.
const (
	sID = iota
	sHost
	sPath
	sTo
	sNorm
	sCleanTo
	nSpans
)

// crule.flags
const (
	fTrailing = 1 << iota
	fStrict
	fFold
	fLower
	fDrop
	fRawHost // the host as written differs from its scope; sHost holds it
)

// table is an open-addressing hash table of positions, probed linearly.
// An entry is the key hash's top 8 bits over position+1 in 24 bits (0 is
// empty; MaxRules fits): a probe reads the rule of an entry only when its
// tag matches, so a lookup at a million rules costs one cache miss in the
// table, not one per entry passed. Keys are not stored: the caller
// compares the rule at a position with the key it looks for.
type table struct {
	slots []uint32
	mask  uint64
}

const (
	tagShift = 24
	posMask  = 1<<tagShift - 1
)

func newTable(n int) table {
	size := uint64(1) << bits.Len(uint(max(2*n, 8)-1))
	return table{slots: make([]uint32, size), mask: size - 1}
}

func tagOf(h uint64) uint32 { return uint32(h>>56) << tagShift }

// find returns the first position at h for which eq holds, or false.
func (t *table) find(h uint64, eq func(pos uint32) bool) (uint32, bool) {
	if t.slots == nil {
		return 0, false
	}
	tag := tagOf(h)
	for i := h & t.mask; ; i = (i + 1) & t.mask {
		v := t.slots[i]
		if v == 0 {
			return 0, false
		}
		if v&^posMask == tag && eq(v&posMask-1) {
			return v&posMask - 1, true
		}
	}
}

// insert puts pos at h unless a position for which eq holds is there:
// then it returns that one and false.
func (t *table) insert(h uint64, pos uint32, eq func(pos uint32) bool) (uint32, bool) {
	tag := tagOf(h)
	for i := h & t.mask; ; i = (i + 1) & t.mask {
		v := t.slots[i]
		if v == 0 {
			t.slots[i] = tag | (pos + 1)
			return pos, true
		}
		if v&^posMask == tag && eq(v&posMask-1) {
			return v&posMask - 1, false
		}
	}
}

func (b *base) str(c *crule, s int) string {
	if c.n[s] == 0 {
		return ""
	}
	return unsafe.String(&b.arena[c.off[s]], int(c.n[s]))
}

// route fills rt with the rule at pos.
func (b *base) route(pos uint32, rt *route) {
	c := &b.rules[pos]
	*rt = route{
		id:       b.str(c, sID),
		cleanTo:  b.str(c, sCleanTo),
		path:     b.str(c, sNorm),
		scope:    b.scopes[c.scope],
		cc:       b.caches[c.cache],
		ext:      b.exts[c.ext],
		order:    baseOrder(pos),
		line:     c.line,
		pathEnd:  c.pathEnd,
		status:   c.status,
		intent:   c.intent,
		kind:     c.kind,
		trailing: c.flags&fTrailing != 0,
		strict:   c.flags&fStrict != 0,
		fold:     c.flags&fFold != 0,
		lower:    c.flags&fLower != 0,
		drop:     c.flags&fDrop != 0,
	}
}

// rule gives back the rule at pos as it was written. Its strings share
// the arena; its lists are copies, so a caller may change them.
func (b *base) rule(pos uint32) Rule {
	c := &b.rules[pos]
	r := Rule{
		ID:              b.str(c, sID),
		Path:            b.str(c, sPath),
		To:              b.str(c, sTo),
		Match:           c.kind,
		Intent:          c.intent,
		Status:          int(c.status),
		CaseInsensitive: c.flags&fFold != 0,
		CacheMaxAge:     b.caches[c.cache].ruleMaxAge(),
		Line:            int(c.line),
	}
	r.Host = b.host(c)
	if c.flags&fDrop != 0 {
		r.Query = QueryDrop
	}
	if c.flags&fStrict != 0 {
		r.TrailingSlash = TrailingSlashStrict
	}
	if e := b.exts[c.ext]; e != nil {
		r.Methods = append([]string(nil), e.methods...)
		r.QueryStrip = append([]string(nil), e.queryStrip...)
		r.Since = e.since
		r.ActiveFrom, r.ActiveUntil, r.PromoteAfter = e.activeFrom, e.activeUntil, e.promoteAfter
		if e.shadow {
			r.Mode = ModeShadow
		}
		if rc := e.conds; rc != nil {
			r.Languages = slices.Clone(rc.langs)
			r.Headers = maps.Clone(rc.headers)
			r.Has, r.Missing = cloneConditions(rc.has), cloneConditions(rc.missing)
		}
	}
	return r
}

// hostOfScope is the host a rule of scope is written with, unless its
// host was written otherwise (fRawHost).
func hostOfScope(scope string) string {
	if scope == "*" {
		return ""
	}
	return scope
}

func (b *base) host(c *crule) string {
	if c.flags&fRawHost != 0 {
		return b.str(c, sHost)
	}
	return hostOfScope(b.scopes[c.scope])
}

// sameAs reports whether the rule at pos is r (sameRule), without making
// a Rule of it: a reload compares a million rules this way.
func (b *base) sameAs(pos uint32, r *Rule) bool {
	c := &b.rules[pos]
	if b.str(c, sID) != r.ID || b.str(c, sPath) != r.Path || b.str(c, sTo) != r.To || b.host(c) != r.Host ||
		c.kind != r.Match || c.intent != r.Intent || int(c.status) != r.Status ||
		(c.flags&fDrop != 0) != (r.Query == QueryDrop) || (c.flags&fFold != 0) != r.CaseInsensitive ||
		(c.flags&fStrict != 0) != (r.TrailingSlash == TrailingSlashStrict) ||
		b.caches[c.cache].rule != maxAgeKey(r.CacheMaxAge) {
		return false
	}
	// A rule without an extra, or without conditions, compares as one
	// whose extra or conditions are all zero.
	e := b.exts[c.ext]
	if e == nil {
		e = &noExtra
	}
	rc := e.conds
	if rc == nil {
		rc = &noConds
	}
	return slices.Equal(e.methods, r.Methods) && slices.Equal(e.queryStrip, r.QueryStrip) &&
		e.since.Equal(r.Since) && e.activeFrom.Equal(r.ActiveFrom) && e.activeUntil.Equal(r.ActiveUntil) &&
		e.promoteAfter == r.PromoteAfter && e.shadow == (r.Mode == ModeShadow) &&
		maps.Equal(rc.headers, r.Headers) && conditionsEqual(rc.has, r.Has) && conditionsEqual(rc.missing, r.Missing) &&
		slices.Equal(rc.langs, r.Languages)
}

// noExtra and noConds are what sameAs compares a plain rule with.
var (
	noExtra routeExtra
	noConds ruleConds
)

// keyEquals reports whether the slot key of the rule at pos is key (see
// route.appendKey), without building it.
func (b *base) keyEquals(pos uint32, key []byte) bool {
	c := &b.rules[pos]
	sc := b.scopes[c.scope]
	if len(key) <= len(sc) || string(key[:len(sc)]) != sc || key[len(sc)] != 0 {
		return false
	}
	rest := key[len(sc)+1:]
	if c.kind != MatchExact && c.kind != MatchPrefix {
		return string(rest) == b.exts[c.ext].keyPath
	}
	norm := b.str(c, sNorm)
	if norm == "" || norm == "/" {
		return string(rest) == "/"
	}
	if len(rest) != len(norm)+1 || rest[len(norm)] != '/' {
		return false
	}
	for i := 0; i < len(norm); i++ {
		ch := norm[i]
		if ch >= 'A' && ch <= 'Z' {
			ch += 'a' - 'A'
		}
		if rest[i] != ch {
			return false
		}
	}
	return true
}

// slot returns the first rule of the slot with the given key.
func (b *base) slot(key []byte) (uint32, bool) {
	return b.slots.find(maphash.Bytes(b.seed, key), func(pos uint32) bool { return b.keyEquals(pos, key) })
}

// position returns the position of the rule with the given id.
func (b *base) position(id string) (uint32, bool) {
	return b.ids.find(maphash.String(b.seed, id), func(pos uint32) bool { return b.str(&b.rules[pos], sID) == id })
}

// sortedIDs returns the positions in id order, sorted on first use: only
// listings need it, and sorting a million ids costs more than the rest of
// a load.
func (b *base) sortedIDs() []uint32 {
	b.byIDOnce.Do(func() {
		b.byID = make([]uint32, len(b.rules))
		for i := range b.byID {
			b.byID[i] = uint32(i)
		}
		slices.SortFunc(b.byID, func(i, j uint32) int {
			return strings.Compare(b.str(&b.rules[i], sID), b.str(&b.rules[j], sID))
		})
	})
	return b.byID
}

// baseBuilder collects compiled rules into a base, in file order.
type baseBuilder struct {
	b        *base
	caches   *cacheTable
	scopeIdx map[string]uint32
}

// newBaseBuilder returns a builder for about n rules whose strings take
// about textBytes.
func newBaseBuilder(caches *cacheTable, n, textBytes int) *baseBuilder {
	return &baseBuilder{
		b: &base{
			arena: make([]byte, 0, textBytes+textBytes/16),
			rules: make([]crule, 0, n),
			exts:  []*routeExtra{nil},
			seed:  maphash.MakeSeed(),
		},
		caches:   caches,
		scopeIdx: map[string]uint32{},
	}
}

// scope returns the number of a host scope in the base, adding it.
func (bb *baseBuilder) scope(scope string) uint32 {
	b := bb.b
	sc, ok := bb.scopeIdx[scope]
	if !ok {
		sc = uint32(len(b.scopes))
		b.scopes = append(b.scopes, strings.Clone(scope))
		bb.scopeIdx[b.scopes[sc]] = sc
	}
	return sc
}

// add appends the compiled rt of r.
func (bb *baseBuilder) add(r *Rule, rt *route) {
	b := bb.b
	var c crule
	put := func(s int, v string) {
		c.off[s], c.n[s] = uint32(len(b.arena)), uint16(len(v))
		b.arena = append(b.arena, v...)
	}
	put(sID, r.ID)
	put(sPath, r.Path)
	put(sTo, r.To)
	if rt.path == r.Path {
		c.off[sNorm], c.n[sNorm] = c.off[sPath], c.n[sPath]
	} else if i := strings.Index(r.Path, rt.path); i >= 0 {
		c.off[sNorm], c.n[sNorm] = c.off[sPath]+uint32(i), uint16(len(rt.path))
	} else {
		put(sNorm, rt.path)
	}
	if rt.cleanTo == r.To {
		c.off[sCleanTo], c.n[sCleanTo] = c.off[sTo], c.n[sTo]
	} else {
		put(sCleanTo, rt.cleanTo)
	}
	c.scope = bb.scope(rt.scope)
	if r.Host != hostOfScope(rt.scope) {
		c.flags |= fRawHost
		put(sHost, r.Host)
	}
	c.cache, _ = bb.caches.get(maxAgeKey(r.CacheMaxAge))
	if rt.ext != nil {
		c.ext = uint32(len(b.exts))
		b.exts = append(b.exts, rt.ext)
	}
	c.line, c.pathEnd, c.status = rt.line, rt.pathEnd, rt.status
	c.intent, c.kind = rt.intent, rt.kind
	for _, f := range []struct {
		on  bool
		bit uint8
	}{{rt.trailing, fTrailing}, {rt.strict, fStrict}, {rt.fold, fFold}, {rt.lower, fLower}, {rt.drop, fDrop}} {
		if f.on {
			c.flags |= f.bit
		}
	}
	b.rules = append(b.rules, c)
}

// finish builds the lookup tables. Rules with the same id are reported
// (the first keeps it); Build never gets there with duplicates checked.
// The id table is independent of the others: with workers > 1 it is
// built on a goroutine of its own beside them (serially, the two took a
// fifth of a million-rule start).
func (bb *baseBuilder) finish(workers int) (*base, []uint32) {
	b := bb.b
	b.caches = bb.caches.list
	b.arena = b.arena[:len(b.arena):len(b.arena)]
	n := len(b.rules)
	b.slots, b.ids = newTable(n), newTable(n)
	b.next = make([]uint32, n)
	b.gates, b.rootWalk = map[uint64]struct{}{}, map[string]struct{}{}
	tails := make([]uint32, n)
	var dups []uint32
	indexIDs := func() {
		for pos := range uint32(n) {
			id := b.str(&b.rules[pos], sID)
			if _, isNew := b.ids.insert(maphash.String(b.seed, id), pos, func(p uint32) bool { return b.str(&b.rules[p], sID) == id }); !isNew {
				dups = append(dups, pos)
			}
		}
	}
	var ids sync.WaitGroup
	if workers > 1 {
		ids.Go(indexIDs)
	} else {
		indexIDs()
	}
	var key []byte
	var rt route
	for pos := range uint32(n) {
		b.route(pos, &rt)
		key = rt.appendKey(key[:0])
		head, isNew := b.slots.insert(maphash.Bytes(b.seed, key), pos, func(p uint32) bool { return b.keyEquals(p, key) })
		if isNew {
			tails[pos] = pos
		} else {
			b.next[tails[head]] = pos + 1
			tails[head] = pos
		}
		if rt.kind != MatchExact {
			if g := gateLen(key); g == len(key) && key[g-1] == '/' && key[g-2] == 0 {
				b.rootWalk[rt.scope] = struct{}{}
			} else {
				b.gates[maphash.Bytes(b.seed, key[:g])] = struct{}{}
			}
		}
	}
	ids.Wait()
	return b, dups
}

// gateLen is the length of key's scope, NUL and first path segment with
// its '/': "h\x00/a/b/" → len("h\x00/a/"), "h\x00/" → len("h\x00/").
func gateLen(key []byte) int {
	i := 0
	for i < len(key) && key[i] != 0 {
		i++
	}
	i += 2 // past NUL and the leading '/'
	if i > len(key) {
		return len(key)
	}
	for j := i; j < len(key); j++ {
		if key[j] == '/' {
			return j + 1
		}
	}
	return len(key)
}
