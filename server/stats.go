package server

import (
	"sort"
	"sync/atomic"
	"time"

	"github.com/redirectd/redirectd/decision"
)

// Hits counts, per rule, the decisions it made and when it last made one,
// so operators can find dead rules. A rule keeps its counter across
// reloads as long as its id stays.
//
// The counters of a rule set are one slice indexed by rule position (a
// Decision's RulePos), not a map by id: at a million rules the map cost
// ~0.4 s per applied set, ~70 MB of heap and a million pointers for the GC
// to scan on every cycle; the slice is one pointer-free allocation.
type Hits struct {
	table atomic.Pointer[hitTable]
}

// hitTable is the counters of one applied rule set: counters[i] belongs to
// the rule at position i of ix. Swapped whole, never resized.
type hitTable struct {
	ix       *decision.Index // nil before the first rule set
	counters []ruleHits
	// hitRules counts the rules hit at least once, so a reload after which
	// nothing was hit skips the scan of the old counters.
	hitRules atomic.Int64
}

type ruleHits struct {
	hits    atomic.Uint64
	lastHit atomic.Int64 // Unix nanoseconds; 0 = never
}

// RuleHits is one rule's statistics since the daemon started.
type RuleHits struct {
	RuleID  string
	Hits    uint64
	LastHit time.Time // zero when never hit
}

// NewHits returns empty statistics.
func NewHits() *Hits {
	h := &Hits{}
	h.table.Store(&hitTable{})
	return h
}

// track starts counting for the rules of ix, carrying over by id the
// counters of the previous set's rules that were hit. Rules never hit need
// no carrying (a fresh counter is zero), so the first set, and a reload
// after which nothing was hit, cost one allocation; otherwise one pass over
// the old counters plus, per hit rule, a check that it kept its position
// or a binary search for its new one. Worst case, every rule hit and moved:
// O(n log n) string comparisons.
//
// A hit that lands on the old table after its counter was copied is lost:
// the window is one decision long, and these counts find dead rules, they
// do not bill anyone.
func (h *Hits) track(ix *decision.Index) {
	old := h.table.Load()
	next := &hitTable{ix: ix, counters: make([]ruleHits, ix.Len())}
	if old.hitRules.Load() > 0 {
		for pos := range old.counters {
			c := &old.counters[pos]
			n := c.hits.Load()
			if n == 0 {
				continue
			}
			to, ok := next.position(old.ix.RuleID(pos), pos)
			if !ok {
				continue // the rule was removed
			}
			next.counters[to].hits.Store(n)
			next.counters[to].lastHit.Store(c.lastHit.Load())
			next.hitRules.Add(1)
		}
	}
	h.table.Store(next)
}

// position returns the position in t of the rule with the given id, trying
// pos first: an unchanged or appended-to file keeps every position, and
// comparing one id is cheaper than a binary search.
func (t *hitTable) position(id string, pos int) (int, bool) {
	if uint(pos) < uint(len(t.counters)) && t.ix.RuleID(pos) == id {
		return pos, true
	}
	if t.ix == nil {
		return 0, false
	}
	return t.ix.Position(id)
}

// hit records a decision made at the given time by the rule with the given
// id at position pos of the index that decided. The id is checked at pos:
// a decision racing with a reload was made by another index, where pos may
// be another rule's, so it is counted on its rule's position in the
// current table or dropped if that set no longer has it.
func (h *Hits) hit(ruleID string, pos int, at time.Time) {
	t := h.table.Load()
	pos, ok := t.position(ruleID, pos)
	if !ok {
		return
	}
	c := &t.counters[pos]
	if c.hits.Add(1) == 1 {
		t.hitRules.Add(1)
	}
	c.lastHit.Store(at.UnixNano())
}

// Get returns statistics in id order: for the given ids, or for every rule
// when ids is empty. An unknown id is an error naming it.
func (h *Hits) Get(ids []string) ([]RuleHits, error) {
	t := h.table.Load()
	var out []RuleHits
	if len(ids) == 0 {
		out = make([]RuleHits, len(t.counters))
		for pos := range t.counters {
			out[pos] = t.stats(pos)
		}
	} else {
		out = make([]RuleHits, 0, len(ids))
		for _, id := range ids {
			pos, ok := t.position(id, -1)
			if !ok {
				return nil, notFound(id)
			}
			out = append(out, t.stats(pos))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].RuleID < out[j].RuleID })
	return out, nil
}

func (t *hitTable) stats(pos int) RuleHits {
	c := &t.counters[pos]
	rh := RuleHits{RuleID: t.ix.RuleID(pos), Hits: c.hits.Load()}
	if ns := c.lastHit.Load(); ns != 0 {
		rh.LastHit = time.Unix(0, ns).UTC()
	}
	return rh
}
