package decision

import (
	"encoding/binary"
	"fmt"
	"iter"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	memdb "github.com/hashicorp/go-memdb"
)

// The overlay is a go-memdb database of the rules changed since the base
// was built: one row per rule id, holding the rule as it now is, or
// nothing when it was deleted. Rows are inserted whole and never modified;
// readers hold a memdb snapshot that no write disturbs.
const (
	rulesTable = "rules"
	// idIndex is memdb's required unique index: the rule id.
	idIndex = "id"
	// slotIndex finds the rules of a slot (route.appendKey); deletions
	// have no slot.
	slotIndex = "slot"
	// orderIndex walks the rules in file order, for writing a rules file.
	orderIndex = "order"
)

// change is one row of the overlay.
type change struct {
	ID    string
	Key   string // slot key; "" for a deletion
	Order uint64
	Rule  *Rule  // nil: deleted
	rt    *route // Rule compiled
}

// rulesTableSchema is the overlay's only table.
func rulesTableSchema() *memdb.TableSchema {
	return &memdb.TableSchema{
		Name: rulesTable,
		Indexes: map[string]*memdb.IndexSchema{
			idIndex:   {Name: idIndex, Unique: true, Indexer: &memdb.StringFieldIndex{Field: "ID"}},
			slotIndex: {Name: slotIndex, AllowMissing: true, Indexer: &memdb.StringFieldIndex{Field: "Key"}},
			// Not unique: while a change moves rules, two rows may briefly
			// share an order.
			orderIndex: {Name: orderIndex, AllowMissing: true, Indexer: orderIndexer{}},
		},
	}
}

func overlaySchema() *memdb.DBSchema {
	return &memdb.DBSchema{Tables: map[string]*memdb.TableSchema{rulesTable: rulesTableSchema()}}
}

// orderIndexer indexes the rows that hold a rule by Order, big-endian so
// the radix tree's order is file order.
type orderIndexer struct{}

func (orderIndexer) FromObject(obj any) (bool, []byte, error) {
	c, ok := obj.(*change)
	if !ok {
		return false, nil, fmt.Errorf("rules table holds *change, got %T", obj)
	}
	if c.Rule == nil {
		return false, nil, nil
	}
	return true, binary.BigEndian.AppendUint64(nil, c.Order), nil
}

func (orderIndexer) FromArgs(args ...any) ([]byte, error) {
	switch len(args) {
	case 0:
		return nil, nil
	case 1:
		if o, ok := args[0].(uint64); ok {
			return binary.BigEndian.AppendUint64(nil, o), nil
		}
		return nil, fmt.Errorf("order lookup takes a uint64, got %T", args[0])
	}
	return nil, fmt.Errorf("order lookup takes one argument, got %d", len(args))
}

// Index is one consistent, immutable view of a rule set: the base plus a
// snapshot of the overlay. It is safe for concurrent use; a change makes a
// new Index (see Store) and never disturbs readers of this one.
type Index struct {
	base *base
	txn  *memdb.Txn // the overlay; read-only once the Index is published
	// changes is the number of overlay rows; while it is 0 nothing in the
	// base can have been replaced or deleted. dynamic counts the rows with
	// a prefix, pattern or regex rule, which lookups walk up the path for.
	changes, dynamic int
	// filter says which ids and slot keys the overlay may hold, so most
	// lookups skip memdb (filter.go); nil while the overlay is empty.
	filter *overlayFilter

	n      int    // rules
	counts [4]int // rules per MatchKind

	hosts     map[string]struct{} // exact hosts that have rules
	wildcards map[string]struct{} // suffixes of "*.suffix" scopes that have rules
	anyHost   bool                // rules without a host exist

	opts     Options
	info     Info
	warnings []Problem
	keys     *sync.Pool // *lookupKey buffers, shared by the Indexes of a Store
}

// Info says what an Index serves, as its Store's caller saw it.
type Info struct {
	// Version identifies the set: it grows with every applied change.
	Version uint64
	// Hash identifies the set for whoever published it, hex: the SHA-256
	// of the rules file it was read from or written to, for example.
	Hash     string
	Source   string
	LoadedAt time.Time
}

// lookupKey is a reusable lookup buffer: the key being looked up and the
// candidates found for it, so a decision allocates neither.
type lookupKey struct {
	buf   []byte
	cands []candidate
}

// candidate is a rule a lookup found, with how far up the request path
// its slot is (0: the whole path).
type candidate struct {
	rt    route
	level int
}

func newKeyPool() *sync.Pool {
	return &sync.Pool{New: func() any { return &lookupKey{buf: make([]byte, 0, 256)} }}
}

// newIndex is the Index of b with an empty overlay db.
func newIndex(b *base, db *memdb.MemDB, opts Options, keys *sync.Pool) *Index {
	ix := &Index{base: b, txn: db.Txn(false), n: len(b.rules), opts: opts, keys: keys,
		hosts: map[string]struct{}{}, wildcards: map[string]struct{}{}}
	for i := range b.rules {
		ix.counts[b.rules[i].kind]++
	}
	for _, sc := range b.scopes {
		ix.addScope(sc)
	}
	return ix
}

func (ix *Index) addScope(scope string) {
	switch {
	case scope == "*":
		ix.anyHost = true
	case strings.HasPrefix(scope, "*."):
		ix.wildcards[scope[2:]] = struct{}{}
	default:
		ix.hosts[scope] = struct{}{}
	}
}

// hasScope reports whether lookups already visit scope.
func (ix *Index) hasScope(scope string) bool {
	switch {
	case scope == "*":
		return ix.anyHost
	case strings.HasPrefix(scope, "*."):
		_, ok := ix.wildcards[scope[2:]]
		return ok
	}
	_, ok := ix.hosts[scope]
	return ok
}

// withScope returns ix's scope sets with scope added, copied when it is new.
func (ix *Index) withScope(scope string) {
	if ix.hasScope(scope) {
		return
	}
	ix.hosts, ix.wildcards = maps.Clone(ix.hosts), maps.Clone(ix.wildcards)
	ix.addScope(scope)
}

// row returns the overlay row of id, if any.
func (ix *Index) row(id string) *change {
	if ix.changes == 0 || !ix.filter.mayHold(ix.base.seed, id) {
		return nil
	}
	raw, err := ix.txn.First(rulesTable, idIndex, id)
	if err != nil || raw == nil {
		return nil
	}
	return raw.(*change)
}

// live reports whether the base rule with this id still serves: no
// overlay row replaced or deleted it.
func (ix *Index) live(id string) bool {
	return ix.changes == 0 || ix.row(id) == nil
}

// overlayIDs are the ids of the overlay's rows: the base rules they
// replaced or deleted. A walk over the whole base asks this set, not
// memdb once per rule (a tree walk each: 150 ms at a million rules).
func (ix *Index) overlayIDs() map[string]struct{} {
	if ix.changes == 0 {
		return nil
	}
	ids := make(map[string]struct{}, ix.changes)
	rows, _ := ix.txn.Get(rulesTable, idIndex)
	for raw := rows.Next(); raw != nil; raw = rows.Next() {
		ids[raw.(*change).ID] = struct{}{}
	}
	return ids
}

// Len is the number of rules.
func (ix *Index) Len() int { return ix.n }

// Count is the number of rules of a match kind (for metrics).
func (ix *Index) Count(kind MatchKind) int {
	if int(kind) >= len(ix.counts) {
		return 0
	}
	return ix.counts[kind]
}

// Info is what the Store's caller said of this set.
func (ix *Index) Info() Info { return ix.info }

// Warnings are the problems found in the set that do not reject it:
// those of its last full load, and of each change since.
func (ix *Index) Warnings() []Problem { return ix.warnings }

// Rule returns the rule with the given id.
func (ix *Index) Rule(id string) (Rule, bool) {
	if c := ix.row(id); c != nil {
		if c.Rule == nil {
			return Rule{}, false
		}
		return *c.Rule, true
	}
	if pos, ok := ix.base.position(id); ok {
		return ix.base.rule(pos), true
	}
	return Rule{}, false
}

// Has reports whether a rule has the id, without making a Rule of it.
func (ix *Index) Has(id string) bool {
	if c := ix.row(id); c != nil {
		return c.Rule != nil
	}
	_, ok := ix.base.position(id)
	return ok
}

// Rules returns up to limit rules (all when limit <= 0) whose ids sort
// after after, in id order: a page of an admin listing.
func (ix *Index) Rules(after string, limit int) []Rule {
	var out []Rule
	for id := range ix.IDs(after) {
		if limit > 0 && len(out) == limit {
			break
		}
		r, _ := ix.Rule(id)
		out = append(out, r)
	}
	return out
}

// IDs yields the ids that sort after after, in order.
func (ix *Index) IDs(after string) iter.Seq[string] {
	return func(yield func(string) bool) {
		b := ix.base
		byID := b.sortedIDs()
		at, _ := slices.BinarySearchFunc(byID, after, func(pos uint32, id string) int {
			if b.str(&b.rules[pos], sID) <= id {
				return -1
			}
			return 1
		})
		var rows memdb.ResultIterator
		if ix.changes > 0 {
			rows, _ = ix.txn.LowerBound(rulesTable, idIndex, after)
		}
		// The next overlay row after after that holds a rule.
		nextRow := func() string {
			for rows != nil {
				raw := rows.Next()
				if raw == nil {
					rows = nil
					break
				}
				if c := raw.(*change); c.ID > after && c.Rule != nil {
					return c.ID
				}
			}
			return ""
		}
		// The next base id whose rule still serves.
		nextBase := func() string {
			for ; at < len(byID); at++ {
				if id := b.str(&b.rules[byID[at]], sID); ix.live(id) {
					at++
					return id
				}
			}
			return ""
		}
		row, bid := nextRow(), nextBase()
		for row != "" || bid != "" {
			var id string
			if bid == "" || row != "" && row < bid {
				id, row = row, nextRow()
			} else {
				id, bid = bid, nextBase()
			}
			if !yield(id) {
				return
			}
		}
	}
}

// All yields every rule in file order (the rules it yields are reused:
// copy one to keep it). A rules file written from it reads back to this
// set.
func (ix *Index) All() iter.Seq[*Rule] {
	return func(yield func(*Rule) bool) {
		var rows memdb.ResultIterator
		if ix.changes > 0 {
			rows, _ = ix.txn.Get(rulesTable, orderIndex)
		}
		next := func() *change {
			if rows == nil {
				return nil
			}
			if raw := rows.Next(); raw != nil {
				return raw.(*change)
			}
			return nil
		}
		row := next()
		replaced := ix.overlayIDs()
		var r Rule
		for pos := range uint32(len(ix.base.rules)) {
			for row != nil && row.Order < baseOrder(pos) {
				if !yield(row.Rule) {
					return
				}
				row = next()
			}
			if _, ok := replaced[ix.base.str(&ix.base.rules[pos], sID)]; ok {
				continue
			}
			r = ix.base.rule(pos)
			if !yield(&r) {
				return
			}
		}
		for ; row != nil; row = next() {
			if !yield(row.Rule) {
				return
			}
		}
	}
}

// Build checks rules and builds an Index of them, in a Store of its own.
// Errors (*RulesError, listing every problem) reject the set; warnings
// are returned with the index.
func Build(rules []Rule, opts Options) (*Index, []Problem, error) {
	c, err := NewStore(opts).Replace(rules)
	if err != nil {
		return nil, nil, err
	}
	return c.Commit(Info{Version: 1}), c.Warnings(), nil
}

// LoadRules parses a rules file and builds its Index (ParseRules, then
// Build, each rule checked once). Every problem and warning names file and
// line, warnings the line of the field they are about.
func LoadRules(file string, data []byte, opts Options) (*Index, []Problem, error) {
	c, err := NewStore(opts).ReplaceFile(file, data)
	if err != nil {
		return nil, nil, err
	}
	return c.Commit(Info{Version: 1, Source: file}), c.Warnings(), nil
}

// locate names file in the problems of a *RulesError that have a line
// but no file (Build sees rules, not files).
func locate(err error, file string) error {
	if re, ok := err.(*RulesError); ok {
		return &RulesError{Problems: locateProblems(re.Problems, file), Warnings: locateProblems(re.Warnings, file)}
	}
	return err
}

func locateProblems(ps []Problem, file string) []Problem {
	out := make([]Problem, len(ps))
	for i, p := range ps {
		if p.File == "" && p.Line > 0 {
			p.File = file
		}
		out[i] = p
	}
	return out
}
