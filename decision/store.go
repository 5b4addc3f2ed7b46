package decision

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	memdb "github.com/hashicorp/go-memdb"
)

// ErrRuleNotFound: no rule has the id.
var ErrRuleNotFound = errors.New("no such rule")

// FoldAt is how many overlay rows a Store gathers before NeedsFold says a
// new base should be built: enough that folds are rare, few enough that
// the overlay (a kilobyte or so a row, with memdb's indexes) stays small.
const FoldAt = 16384

// Store holds the serving rule set and changes it in place (README "The
// rule store"): the set loaded last is a compact base; a change of k rules
// writes k rows to a go-memdb overlay in one write transaction and costs
// O(k) lookups, whatever the size of the set. Each change publishes a new
// Index; decisions read one Index from start to end, so they see a change
// whole or not at all.
//
// A change is made in two steps: Put, Delete or Replace check it and
// return a Change holding the set as it will be, which the caller may
// persist before it calls Commit (or Abort). One change is prepared at a
// time: the next waits until the last is committed or aborted.
type Store struct {
	mu     sync.Mutex
	opts   Options
	keys   *sync.Pool
	caches *cacheTable // for overlay rows; used under mu
	db     *memdb.MemDB
	cur    atomic.Pointer[Index]
	// nextOrder is the order of the next rule added at the end.
	nextOrder uint64
}

// NewStore returns a Store serving nothing: Index is nil until the first
// Commit.
func NewStore(opts Options) *Store {
	if opts.PermanentMaxAge <= 0 {
		opts.PermanentMaxAge = DefaultPermanentMaxAge
	}
	return &Store{opts: opts, keys: newKeyPool(), caches: newCacheTable(opts)}
}

// Options are the Store's decision options.
func (s *Store) Options() Options { return s.opts }

// Index returns the serving set, or nil before the first Commit.
func (s *Store) Index() *Index { return s.cur.Load() }

// NeedsFold reports whether the overlay has grown enough that Fold
// should build a new base.
func (s *Store) NeedsFold() bool {
	ix := s.cur.Load()
	return ix != nil && ix.changes >= FoldAt
}

// Change is a checked change to a Store, not yet serving.
type Change struct {
	s    *Store
	txn  *memdb.Txn   // the overlay write; nil when the change built a new base
	db   *memdb.MemDB // the db ix reads
	ix   *Index
	next uint64 // Store.nextOrder after Commit
	// changed and freed are what checkChanged looks at; touched, the ids
	// whose old warnings no longer hold.
	changed []*route
	freed   []*route
	touched map[string]bool
	warns   []Problem
	done    bool
	// ownFilter: ix.filter is this change's copy (mark).
	ownFilter bool

	Puts, Deletes int  // rules put (added or replaced) and deleted
	Rebuilt       bool // a new base was built: the change was not small
}

// Index is the set as it will serve after Commit. Until then it may be
// read only by the goroutine that holds the Change (to persist it).
func (c *Change) Index() *Index { return c.ix }

// Warnings are the problems of the changed rules that do not reject the
// change (all of the set's, after a rebuild).
func (c *Change) Warnings() []Problem { return c.warns }

// Commit publishes the change, labelled with info, and returns the Index
// now serving.
func (c *Change) Commit(info Info) *Index {
	if c.done {
		panic("decision: Change committed or aborted twice")
	}
	c.done = true
	s := c.s
	if c.txn != nil {
		c.txn.Commit()
	}
	s.db = c.db
	c.ix.txn = c.db.Txn(false)
	c.ix.info = info
	s.nextOrder = c.next
	s.cur.Store(c.ix)
	s.mu.Unlock()
	return c.ix
}

// Abort drops the change. It is a no-op after Commit, so `defer c.Abort()`
// is safe.
func (c *Change) Abort() {
	if c.done {
		return
	}
	c.done = true
	if c.txn != nil {
		c.txn.Abort()
	}
	c.s.mu.Unlock()
}

// begin starts an in-place change of the serving set. The caller holds mu.
func (s *Store) begin() *Change {
	cur := s.cur.Load()
	if cur == nil {
		// Nothing loaded yet: start from an empty base.
		b, _ := newBaseBuilder(s.caches, 0, 0).finish(1)
		s.db = mustDB()
		cur = newIndex(b, s.db, s.opts, s.keys)
		s.nextOrder = 0
	}
	ix := *cur
	txn := s.db.Txn(true)
	ix.txn = txn
	return &Change{s: s, txn: txn, db: s.db, ix: &ix, next: s.nextOrder, touched: map[string]bool{}}
}

func mustDB() *memdb.MemDB {
	db, err := memdb.NewMemDB(overlaySchema())
	if err != nil {
		panic(fmt.Sprintf("decision: overlay schema: %v", err)) // a bug in rulesTableSchema
	}
	return db
}

// current returns the serving rule with id, compiled, if any.
func (c *Change) current(id string) (*route, bool) {
	ix := c.ix
	if row := ix.row(id); row != nil {
		return row.rt, row.rt != nil
	}
	if pos, ok := ix.base.position(id); ok {
		rt := new(route)
		ix.base.route(pos, rt)
		return rt, true
	}
	return nil, false
}

// put writes r at order, replacing the rule with its id if there is one.
func (c *Change) put(r *Rule, order uint64) *Problem {
	rt, p := compile(r, c.s.caches)
	if p != nil {
		return p
	}
	rt.order = order
	ix := c.ix
	if old, ok := c.current(r.ID); ok {
		ix.counts[old.kind]--
		c.freed = append(c.freed, old)
	} else {
		ix.n++
	}
	c.forget(r.ID)
	ix.counts[rt.kind]++
	if rt.kind != MatchExact {
		ix.dynamic++
	}
	keep := *r
	row := &change{ID: r.ID, Key: string(rt.appendKey(nil)), Order: order, Rule: &keep, rt: &rt}
	c.mark(row.ID)
	c.mark(row.Key)
	if err := c.txn.Insert(rulesTable, row); err != nil {
		return &Problem{Severity: SeverityError, RuleID: r.ID, Line: r.Line, Message: "rule index: " + err.Error()}
	}
	ix.withScope(rt.scope)
	c.changed = append(c.changed, &rt)
	c.touched[r.ID] = true
	c.Puts++
	return nil
}

// forget settles the overlay counts for the row of id about to be
// replaced: one more row if there was none, one dynamic row fewer if it
// held a prefix, pattern or regex rule.
func (c *Change) forget(id string) {
	switch row := c.ix.row(id); {
	case row == nil:
		c.ix.changes++
	case row.rt != nil && row.rt.kind != MatchExact:
		c.ix.dynamic--
	}
}

// delete removes the rule with id; false when there is none.
func (c *Change) delete(id string) bool {
	old, ok := c.current(id)
	if !ok {
		return false
	}
	ix := c.ix
	c.forget(id)
	ix.n--
	ix.counts[old.kind]--
	c.mark(id)
	if err := c.txn.Insert(rulesTable, &change{ID: id}); err != nil {
		panic(fmt.Sprintf("decision: overlay insert: %v", err)) // the schema accepts every row
	}
	c.freed = append(c.freed, old)
	c.touched[id] = true
	c.Deletes++
	return true
}

// check runs the graph checks of an in-place change and settles its
// warnings: the serving set's, less those about touched rules, plus the
// new ones.
func (c *Change) check() error {
	errs, warns := c.ix.checkChanged(c.changed, c.freed)
	for _, w := range c.ix.warnings {
		if !c.touched[w.RuleID] {
			c.warns = append(c.warns, w)
		}
	}
	// A shadowing warning may be found from both rules of a pair.
	seen := map[Problem]bool{}
	for _, w := range c.warns {
		seen[w] = true
	}
	var fresh []Problem
	for _, w := range warns {
		if !seen[w] {
			seen[w] = true
			fresh = append(fresh, w)
		}
	}
	c.warns = append(c.warns, fresh...)
	if len(errs) > 0 {
		// Refused; the set's warnings are still the ones a person
		// fixing the file wants beside the errors.
		return &RulesError{Problems: errs, Warnings: c.warns}
	}
	c.ix.warnings = c.warns
	c.warns = fresh
	return nil
}

// Put prepares adding r, or replacing the rule with its id (which keeps
// its place in file order); a new rule goes at the end.
func (s *Store) Put(r Rule) (*Change, error) { return s.Apply([]Rule{r}, nil) }

// Delete prepares removing the rule with id: ErrRuleNotFound when there
// is none.
func (s *Store) Delete(id string) (*Change, error) { return s.Apply(nil, []string{id}) }

// Apply prepares one change of several rules: deletes first (each id must
// exist), then puts, each as Put does. It is checked as a whole, so rules
// that only make sense together (A→B with B new) go in one Apply.
func (s *Store) Apply(puts []Rule, deletes []string) (*Change, error) {
	var ps []Problem
	for i := range puts {
		if found := checkRule(&puts[i]); hasError(found) {
			ps = append(ps, found...)
		}
	}
	if len(ps) > 0 {
		return nil, &RulesError{Problems: ps}
	}
	s.mu.Lock()
	c := s.begin()
	for _, id := range deletes {
		if !c.delete(id) {
			c.Abort()
			return nil, fmt.Errorf("%w: %q", ErrRuleNotFound, id)
		}
	}
	for i := range puts {
		r := &puts[i]
		order := c.next
		if row := c.ix.row(r.ID); row != nil && row.Rule != nil {
			order = row.Order
		} else if pos, ok := c.ix.base.position(r.ID); ok && c.ix.live(r.ID) {
			order = baseOrder(pos)
		} else {
			c.next += 1 << 32
		}
		if p := c.put(r, order); p != nil {
			ps = append(ps, *p)
		}
	}
	if len(ps) > 0 {
		c.Abort()
		return nil, &RulesError{Problems: ps}
	}
	if c.ix.n > MaxRules {
		c.Abort()
		return nil, tooMany(c.ix.n)
	}
	if err := c.check(); err != nil {
		c.Abort()
		return nil, err
	}
	return c, nil
}

// tooMany refuses a set over MaxRules (which the base's tables rely on).
func tooMany(n int) error {
	return &RulesError{Problems: []Problem{{Severity: SeverityError,
		Message: fmt.Sprintf("the set would have %d rules; accepted: at most %d", n, MaxRules)}}}
}

// Replace prepares serving rules (a whole set, in file order) instead of
// the serving set: checked like Build. When the set differs from the
// serving one in at most FoldAt rules, only those are written (to the
// overlay); otherwise, or when the first set is loaded, a new base is
// built from rules.
func (s *Store) Replace(rules []Rule) (*Change, error) {
	if len(rules) > MaxRules {
		return nil, tooMany(len(rules))
	}
	errs, warns := checkRules(rules, s.loadWorkers())
	if len(errs) > 0 {
		return nil, &RulesError{Problems: errs, Warnings: warns}
	}
	return s.replace(rules, warns)
}

// ReplaceFile prepares serving the rules of a rules file's content.
// JSON and JSON Lines decode straight into a new base (replaceBase); YAML
// is parsed into Rules and replaces as Replace does, each rule checked
// once. Problems and warnings name file and line, warnings the line of the
// field they are about; the warnings include the parser's.
func (s *Store) ReplaceFile(file string, data []byte) (*Change, error) {
	switch FormatOf(file) {
	case FormatJSONL:
		return s.ReplaceFrom(file, bytes.NewReader(data), int64(len(data)))
	case FormatJSON:
		if len(data) > MaxRulesFileBytes {
			return nil, &RulesError{Problems: []Problem{tooBig(file, int64(len(data)), MaxRulesFileBytes)}}
		}
		return s.replaceJSON(file, data)
	}
	rules, warns, err := parseRules(file, data, MaxRulesFileBytes, MaxRules)
	if err != nil {
		return nil, err
	}
	c, err := s.replace(rules, locateProblems(warns, file))
	if err != nil {
		return nil, locate(err, file)
	}
	if c.Rebuilt {
		c.ix.warnings = locateProblems(c.ix.warnings, file)
		c.warns = c.ix.warnings
	} else {
		c.warns = locateProblems(c.warns, file)
	}
	return c, nil
}

// ReplaceFrom is ReplaceFile for a rules file read from r, of size bytes
// (0 when unknown). A JSON Lines file streams into a new base
// (replaceJSONL): it is never held whole, nor its rules as Rules (README
// "Rules files"). Other formats are read whole first.
func (s *Store) ReplaceFrom(file string, r io.Reader, size int64) (*Change, error) {
	if FormatOf(file) == FormatJSONL {
		return s.replaceJSONL(file, r, size)
	}
	data, err := readRules(file, r, size)
	if err != nil {
		return nil, err
	}
	return s.ReplaceFile(file, data)
}

// replace is Replace of rules already checked (by checkRules or the
// parse), with the warnings that found: a change in place keeps those of
// the rules it writes, a rebuild all of them, as replaceBase does.
func (s *Store) replace(rules []Rule, warns []Problem) (*Change, error) {
	s.mu.Lock()
	if cur := s.cur.Load(); cur != nil {
		if c, ok, err := s.replaceInPlace(cur, len(rules), func(i int, r *Rule) { *r = rules[i] }); ok || err != nil {
			if c != nil {
				c.addWarnings(warns)
			}
			return c, withWarnings(err, warns)
		}
	}
	c, err := s.rebuild(func(add func(*Rule) *Problem) []Problem {
		var ps []Problem
		for i := range rules {
			if p := add(&rules[i]); p != nil {
				ps = append(ps, *p)
			}
		}
		return ps
	}, len(rules), textBytes(rules))
	if err != nil {
		s.mu.Unlock()
		return nil, withWarnings(err, warns)
	}
	if len(warns) > 0 {
		c.ix.warnings = append(warns, c.ix.warnings...)
		c.warns = c.ix.warnings
	}
	if cur := s.cur.Load(); cur != nil {
		c.Deletes = dropped(cur, len(rules), func(i int) string { return rules[i].ID })
	}
	return c, nil
}

// dropped is how many rules of the serving set cur a new set of n rules,
// whose ids idAt gives, does not hold: for callers that refuse to lose
// most of a set at once (--reload-max-drop).
func dropped(cur *Index, n int, idAt func(i int) string) int {
	kept := 0
	for i := range n {
		if cur.Has(idAt(i)) {
			kept++
		}
	}
	return cur.n - kept
}

// addWarnings adds those of warns that are about rules the change writes
// to its warnings and its Index's: an in-place change keeps the set's
// other warnings as they were.
func (c *Change) addWarnings(warns []Problem) {
	for _, w := range warns {
		if c.touched[w.RuleID] {
			c.warns = append(c.warns, w)
			c.ix.warnings = append(c.ix.warnings, w)
		}
	}
}

// textBytes is about the size of the strings of rules in a base's arena:
// sized at once, the arena is not copied as it grows.
func textBytes(rules []Rule) int {
	n := 0
	for i := range rules {
		r := &rules[i]
		n += len(r.ID) + len(r.Path) + len(r.To)
	}
	return n
}

// checkRules runs checkRule on every rule (on workers goroutines, see
// loadWorkers) and finds duplicate ids: the errors and the warnings, each
// in file order.
func checkRules(rules []Rule, workers int) (errs, warns []Problem) {
	found, warned := newChunkProblems(len(rules)), newChunkProblems(len(rules))
	inChunks(len(rules), workers, func(_, lo, hi int) {
		for i := lo; i < hi; i++ {
			for _, p := range checkRule(&rules[i]) {
				if p.Severity == SeverityError {
					found.add(lo, p)
				} else {
					warned.add(lo, p)
				}
			}
		}
	})
	return append(found.all(), checkIDs(rules)...), warned.all()
}

func hasError(ps []Problem) bool {
	return slices.ContainsFunc(ps, func(p Problem) bool { return p.Severity == SeverityError })
}

// rebuild builds a new base from the rules fill adds, in file order, and
// checks the whole graph. The caller holds mu; on success the Change
// holds it until Commit or Abort.
func (s *Store) rebuild(fill func(add func(*Rule) *Problem) []Problem, n, textBytes int) (*Change, error) {
	caches := newCacheTable(s.opts)
	bb := newBaseBuilder(caches, n, textBytes)
	var rt route
	ps := fill(func(r *Rule) *Problem {
		var p *Problem
		if rt, p = compile(r, caches); p != nil {
			return p
		}
		bb.add(r, &rt)
		return nil
	})
	return s.finishBase(bb, ps)
}

// finishBase builds the lookup tables of bb's base, checks the ids and the
// whole graph, and prepares serving it. ps are the problems found while
// filling bb.
func (s *Store) finishBase(bb *baseBuilder, ps []Problem) (*Change, error) {
	b, err := finishTables(bb, ps, s.loadWorkers())
	if err != nil {
		return nil, err
	}
	return s.serveBase(b, bb.caches)
}

// finishTables builds the lookup tables of bb's base, with up to workers
// goroutines, and checks its ids; ps are the problems found while filling
// bb.
func finishTables(bb *baseBuilder, ps []Problem, workers int) (*base, error) {
	b, dups := bb.finish(workers)
	for _, pos := range dups {
		id := b.str(&b.rules[pos], sID)
		first, _ := b.position(id)
		ps = append(ps, Problem{Severity: SeverityError, Line: int(b.rules[pos].line), RuleID: id, Field: "id",
			Message: fmt.Sprintf("duplicate id, first used at line %d; every rule needs its own id", b.rules[first].line)})
	}
	if len(ps) > 0 {
		return nil, &RulesError{Problems: ps}
	}
	return b, nil
}

// serveBase checks the whole graph of the finished base b, whose cache
// strings are caches, and prepares serving it. The caller holds mu; on
// success the Change holds it until Commit or Abort.
func (s *Store) serveBase(b *base, caches *cacheTable) (*Change, error) {
	db := mustDB()
	ix := newIndex(b, db, s.opts, s.keys)
	errs, warns := ix.checkGraph(s.loadWorkers())
	if len(errs) > 0 {
		return nil, &RulesError{Problems: errs, Warnings: warns}
	}
	ix.warnings = warns
	// The new base's cache strings become the overlay's too.
	s.caches = caches
	return &Change{s: s, db: db, ix: ix, next: baseOrder(uint32(len(b.rules))), warns: warns,
		Puts: len(b.rules), Rebuilt: true}, nil
}

// Fold builds a new base from the serving set, base and overlay, so the
// overlay starts empty again: O(n), for a background goroutine when
// NeedsFold says so. Changes wait while it runs; decisions do not.
func (s *Store) Fold() {
	s.mu.Lock()
	cur := s.cur.Load()
	if cur == nil || cur.changes == 0 {
		s.mu.Unlock()
		return
	}
	c, err := s.rebuild(func(add func(*Rule) *Problem) []Problem {
		var ps []Problem
		for r := range cur.All() {
			if p := add(r); p != nil {
				ps = append(ps, *p)
			}
		}
		return ps
	}, cur.n, len(cur.base.arena)+cur.changes*64)
	if err != nil {
		// The serving set was checked when each change was made.
		s.mu.Unlock()
		panic(fmt.Sprintf("decision: folding a checked rule set failed: %v", err))
	}
	c.Commit(cur.info)
}

// replaceInPlace prepares the n rules that ruleAt gives, in file order, as
// a change of the serving set cur when
// it differs in at most FoldAt rules; ok false (and mu still held) when
// it does not. A rule counts as changed when its fields differ (its line
// does not count) or when it moved: rules kept in place must stay in file
// order, so of rules that swapped places one is written again. A rule
// written between two kept ones takes an order between theirs.
//
// This is one pass over the rules, which reads the base in step with the file
// (an unchanged file is compared rule by rule in base order, with no hash
// lookup), and one over the base's positions for the deletions.
func (s *Store) replaceInPlace(cur *Index, n int, ruleAt func(i int, r *Rule)) (*Change, bool, error) {
	b := cur.base
	rows := make(map[string]*change, cur.changes)
	if cur.changes > 0 {
		it, err := cur.txn.Get(rulesTable, idIndex)
		for raw := range memdbRows(it, err) {
			rows[raw.(*change).ID] = raw.(*change)
		}
	}
	type write struct {
		i     int
		order uint64
	}
	var writes []write
	pending := 0 // rules written since the last kept one: writes[len-pending:]
	var prev uint64
	// settle gives the pending writes orders spread between prev and next,
	// the orders of the kept rules around them; false when there is no
	// room between.
	settle := func(next uint64, tail bool) bool {
		run := writes[len(writes)-pending:]
		pending = 0
		if tail {
			lo := max(prev+1, s.nextOrder)
			for x := range run {
				run[x].order = lo + uint64(x)<<32
			}
			return true
		}
		step := (next - prev) / uint64(len(run)+1)
		if step == 0 {
			return false
		}
		for x := range run {
			run[x].order = prev + uint64(x+1)*step
		}
		return true
	}
	seen := make([]bool, len(b.rules))
	expect := uint32(0) // the base position the file is expected to hold next
	var rule Rule
	r := &rule
	for i := range n {
		ruleAt(i, r)
		kept, order := false, uint64(0)
		if row, ok := rows[r.ID]; ok {
			delete(rows, r.ID) // the rows left at the end are deleted
			if row.Rule != nil {
				kept, order = sameRule(row.Rule, r), row.Order
			}
		} else {
			pos, ok := expect, int(expect) < len(b.rules) && b.str(&b.rules[expect], sID) == r.ID
			if !ok {
				pos, ok = b.position(r.ID)
			}
			if ok {
				seen[pos] = true
				expect = pos + 1
				kept, order = b.sameAs(pos, r), baseOrder(pos)
			}
		}
		if kept && order > prev {
			if pending > 0 && !settle(order, false) {
				return nil, false, nil // no room between: build a new base
			}
			prev = order
			continue
		}
		writes = append(writes, write{i: i})
		pending++
		if len(writes) > FoldAt {
			return nil, false, nil
		}
	}
	if pending > 0 {
		settle(0, true)
	}
	// Rules of the serving set that rules does not hold are deleted.
	var deleted []string
	for pos, ok := range seen {
		if !ok {
			if id := b.str(&b.rules[pos], sID); cur.live(id) {
				deleted = append(deleted, id)
			}
		}
	}
	for id, row := range rows {
		if row.Rule != nil {
			deleted = append(deleted, id)
		}
	}
	if len(writes)+len(deleted) > FoldAt {
		return nil, false, nil
	}

	c := s.begin()
	for _, id := range deleted {
		c.delete(id)
	}
	var ps []Problem
	for _, w := range writes {
		// The row keeps its rule with strings of its own: a new base's
		// are views of its text, which would stay alive with them.
		ruleAt(w.i, r)
		r.ID, r.Host, r.Path, r.To = strings.Clone(r.ID), strings.Clone(r.Host), strings.Clone(r.Path), strings.Clone(r.To)
		if p := c.put(r, w.order); p != nil { // put keeps a copy
			ps = append(ps, *p)
		}
		c.next = max(c.next, w.order+1<<32)
	}
	if len(ps) > 0 {
		c.Abort()
		return nil, true, &RulesError{Problems: ps}
	}
	if err := c.check(); err != nil {
		c.Abort()
		return nil, true, err
	}
	return c, true, nil
}

// sameRule reports whether a and b are the same rule, wherever they stand
// in their files.
func sameRule(a, b *Rule) bool {
	return a.ID == b.ID && a.Host == b.Host && a.Path == b.Path && a.To == b.To &&
		a.Match == b.Match && a.Intent == b.Intent && a.Query == b.Query &&
		a.CaseInsensitive == b.CaseInsensitive && a.TrailingSlash == b.TrailingSlash &&
		a.Status == b.Status && slices.Equal(a.Methods, b.Methods) &&
		slices.Equal(a.QueryStrip, b.QueryStrip) && maps.Equal(a.Headers, b.Headers) &&
		conditionsEqual(a.Has, b.Has) && conditionsEqual(a.Missing, b.Missing) && slices.Equal(a.Languages, b.Languages) &&
		maxAgeKey(a.CacheMaxAge) == maxAgeKey(b.CacheMaxAge) && a.Since.Equal(b.Since) &&
		a.ActiveFrom.Equal(b.ActiveFrom) && a.ActiveUntil.Equal(b.ActiveUntil) &&
		a.Mode == b.Mode && a.PromoteAfter == b.PromoteAfter
}
