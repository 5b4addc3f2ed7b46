package server

import (
	"sort"
	"sync/atomic"
	"time"

	"github.com/redirectd/redirectd/decision"
)

// Hits counts, per rule, the decisions it made and when it last made one,
// so operators can find dead rules. The hot path is one map read and two
// atomic writes: the map is rebuilt (never modified) when a rule set is
// applied, and a rule keeps its counter across reloads as long as its id
// stays.
type Hits struct {
	byID atomic.Pointer[map[string]*ruleHits]
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
	h.byID.Store(&map[string]*ruleHits{})
	return h
}

// track starts counting for rules, carrying counters over by id from the
// previous set. A hit that races with track lands on the carried-over
// counter or on a dropped rule's counter, never on the wrong rule.
func (h *Hits) track(rules []decision.Rule) {
	old := *h.byID.Load()
	next := make(map[string]*ruleHits, len(rules))
	fresh := 0
	for _, r := range rules {
		if _, ok := old[r.ID]; !ok {
			fresh++
		}
	}
	// New counters come from one allocation, not one per rule: a million
	// rules would otherwise be a million small objects for the GC to scan.
	slab := make([]ruleHits, fresh)
	for _, r := range rules {
		if c, ok := old[r.ID]; ok {
			next[r.ID] = c
			continue
		}
		if _, dup := next[r.ID]; dup {
			continue // Build rejects duplicate ids; never count one twice
		}
		next[r.ID] = &slab[0]
		slab = slab[1:]
	}
	h.byID.Store(&next)
}

// hit records a decision made at the given time by the rule with the
// given id.
func (h *Hits) hit(ruleID string, at time.Time) {
	c, ok := (*h.byID.Load())[ruleID]
	if !ok {
		return // the rule was removed while the decision was being made
	}
	c.hits.Add(1)
	c.lastHit.Store(at.UnixNano())
}

// Get returns statistics in id order: for the given ids, or for every rule
// when ids is empty. An unknown id is an error naming it.
func (h *Hits) Get(ids []string) ([]RuleHits, error) {
	byID := *h.byID.Load()
	if len(ids) == 0 {
		ids = make([]string, 0, len(byID))
		for id := range byID {
			ids = append(ids, id)
		}
	}
	out := make([]RuleHits, 0, len(ids))
	for _, id := range ids {
		c, ok := byID[id]
		if !ok {
			return nil, notFound(id)
		}
		rh := RuleHits{RuleID: id, Hits: c.hits.Load()}
		if ns := c.lastHit.Load(); ns != 0 {
			rh.LastHit = time.Unix(0, ns).UTC()
		}
		out = append(out, rh)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].RuleID < out[j].RuleID })
	return out, nil
}
