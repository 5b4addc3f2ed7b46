package server

import (
	"hash/maphash"
	"sync"
	"time"
)

// recentHits keeps per-minute hit counts for the last 24 hours, for the
// console's usage charts (README "Web console"), for the rules hit most
// recently only: recentShards shards of recentPerShard rules, each shard
// giving the slot of its least recently hit rule to a new one. Memory is
// bounded at about recentShards × recentPerShard × 11.5 KiB (5.9 MiB),
// whatever the number of rules or the traffic.
type recentHits struct {
	seed   maphash.Seed
	shards [recentShards]recentShard
}

const (
	recentShards   = 16
	recentPerShard = 32
	// RecentMinutes is how far back the per-minute counts go.
	RecentMinutes = 24 * 60
)

type recentShard struct {
	mu     sync.Mutex
	series map[string]*minuteSeries
}

// minuteSeries is one rule's ring of per-minute counts. Each bucket
// carries the minute it counts, so a stale bucket (a minute more than a
// day ago, or another rule's before this series was reused) reads as
// zero and nothing is ever cleared.
type minuteSeries struct {
	lastHit int64 // Unix minute of the last hit, for eviction
	buckets [RecentMinutes]struct {
		minute int64
		count  uint32
	}
}

func newRecentHits() *recentHits {
	r := &recentHits{seed: maphash.MakeSeed()}
	for i := range r.shards {
		r.shards[i].series = make(map[string]*minuteSeries, recentPerShard)
	}
	return r
}

func (r *recentHits) hit(id string, at time.Time) {
	minute := at.Unix() / 60
	s := &r.shards[maphash.String(r.seed, id)%recentShards]
	s.mu.Lock()
	defer s.mu.Unlock()
	ms := s.series[id]
	if ms == nil {
		ms = s.slot()
		s.series[id] = ms
	}
	ms.lastHit = minute
	b := &ms.buckets[minute%RecentMinutes]
	if b.minute != minute {
		b.minute, b.count = minute, 0
	}
	b.count++
}

// slot returns a free series, or takes the one of the rule hit least
// recently. The caller holds s.mu.
func (s *recentShard) slot() *minuteSeries {
	if len(s.series) < recentPerShard {
		return &minuteSeries{}
	}
	var oldID string
	var old *minuteSeries
	for id, ms := range s.series {
		if old == nil || ms.lastHit < old.lastHit {
			oldID, old = id, ms
		}
	}
	delete(s.series, oldID)
	return old
}

// perMinute returns the rule's counts for the RecentMinutes minutes up to
// and including the one of now, oldest first, or nil when the rule is not
// among those tracked.
func (r *recentHits) perMinute(id string, now time.Time) []uint32 {
	s := &r.shards[maphash.String(r.seed, id)%recentShards]
	s.mu.Lock()
	defer s.mu.Unlock()
	ms := s.series[id]
	if ms == nil {
		return nil
	}
	out := make([]uint32, RecentMinutes)
	end := now.Unix() / 60
	for i := range out {
		m := end - RecentMinutes + 1 + int64(i)
		if b := &ms.buckets[m%RecentMinutes]; b.minute == m {
			out[i] = b.count
		}
	}
	return out
}
