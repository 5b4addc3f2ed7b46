package server

import (
	"hash/maphash"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redirectd/redirectd/decision"
)

// Hits counts, per rule, the decisions it made and when it last made one,
// so operators can find dead rules. A rule keeps its counter across
// changes as long as its id stays. Counters exist only for rules that
// made a decision; they live in shards so decisions on both cores rarely
// meet on one lock.
type Hits struct {
	seed   maphash.Seed
	shards [hitShards]hitShard
	// ix is the serving set: what Get lists and what outlives a prune.
	ix atomic.Pointer[decision.Index]
	// recent is the per-minute counts of the rules hit last (usage.go).
	recent *recentHits
}

const hitShards = 64

type hitShard struct {
	mu    sync.RWMutex
	rules map[string]*ruleHits
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
	h := &Hits{seed: maphash.MakeSeed(), recent: newRecentHits()}
	for i := range h.shards {
		h.shards[i].rules = map[string]*ruleHits{}
	}
	return h
}

func (h *Hits) shard(id string) *hitShard {
	return &h.shards[maphash.String(h.seed, id)%hitShards]
}

// track makes ix the set whose rules Get lists. Counters of rules that
// left the set are dropped once there are more than a few of them, so the
// counters never outgrow the rules hit in the current set by much.
func (h *Hits) track(ix *decision.Index) {
	h.ix.Store(ix)
	total := 0
	for i := range h.shards {
		s := &h.shards[i]
		s.mu.RLock()
		total += len(s.rules)
		s.mu.RUnlock()
	}
	if total <= ix.Len()+1024 {
		return
	}
	for i := range h.shards {
		s := &h.shards[i]
		s.mu.Lock()
		for id := range s.rules {
			if _, ok := ix.Rule(id); !ok {
				delete(s.rules, id)
			}
		}
		s.mu.Unlock()
	}
}

// hit records a decision made at the given time by the rule with the
// given id.
func (h *Hits) hit(ruleID string, at time.Time) {
	s := h.shard(ruleID)
	s.mu.RLock()
	c := s.rules[ruleID]
	s.mu.RUnlock()
	if c == nil {
		s.mu.Lock()
		if c = s.rules[ruleID]; c == nil {
			c = &ruleHits{}
			// A copy: ruleID points into the rule set's string arena,
			// which the key would keep alive after a full replace.
			s.rules[strings.Clone(ruleID)] = c
		}
		s.mu.Unlock()
	}
	c.hits.Add(1)
	c.lastHit.Store(at.UnixNano())
	h.recent.hit(ruleID, at)
}

// PerMinute returns the rule's hits per minute over the last day up to
// now, oldest first, or nil when it is not among the rules hit most
// recently, the only ones whose minutes are kept (usage.go).
func (h *Hits) PerMinute(id string, now time.Time) []uint32 {
	return h.recent.perMinute(id, now)
}

// Each calls fn for every rule that has a counter (hit since start, and
// still in the set or not yet pruned), in no order, until fn returns
// false.
func (h *Hits) Each(fn func(RuleHits) bool) {
	for i := range h.shards {
		s := &h.shards[i]
		s.mu.RLock()
		ids := make([]string, 0, len(s.rules))
		for id := range s.rules {
			ids = append(ids, id)
		}
		s.mu.RUnlock()
		for _, id := range ids {
			if !fn(h.stats(id)) {
				return
			}
		}
	}
}

// Stats returns one rule's statistics, zero when it was never hit.
func (h *Hits) Stats(id string) RuleHits { return h.stats(id) }

// Get returns statistics in id order: for the given ids, or for every rule
// of the serving set when ids is empty. An id the serving set does not
// have is an error naming it.
func (h *Hits) Get(ids []string) ([]RuleHits, error) {
	ix := h.ix.Load()
	if ix == nil {
		if len(ids) > 0 {
			return nil, notFound(ids[0])
		}
		return nil, nil
	}
	var out []RuleHits
	if len(ids) == 0 {
		out = make([]RuleHits, 0, ix.Len())
		for id := range ix.IDs("") {
			out = append(out, h.stats(id))
		}
		return out, nil
	}
	for _, id := range ids {
		if _, ok := ix.Rule(id); !ok {
			return nil, notFound(id)
		}
		out = append(out, h.stats(id))
	}
	slices.SortFunc(out, func(a, b RuleHits) int { return strings.Compare(a.RuleID, b.RuleID) })
	return out, nil
}

func (h *Hits) stats(id string) RuleHits {
	rh := RuleHits{RuleID: id}
	s := h.shard(id)
	s.mu.RLock()
	c := s.rules[id]
	s.mu.RUnlock()
	if c != nil {
		rh.Hits = c.hits.Load()
		if ns := c.lastHit.Load(); ns != 0 {
			rh.LastHit = time.Unix(0, ns).UTC()
		}
	}
	return rh
}
