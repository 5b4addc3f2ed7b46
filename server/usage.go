package server

import (
	"hash/maphash"
	"strings"
	"sync"
	"time"
)

// recentHits keeps per-minute hit counts for the last 24 hours, for the
// console's usage charts (README "Web console"), for the rules hit most
// recently only: recentShards shards of recentPerShard rules, each shard
// giving the slot of its least recently hit rule to a new one. Memory is
// bounded at about recentShards × recentPerShard × 11.3 KiB (5.6 MiB),
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

// recentShard is a shard's slots. One scan of ids finds a rule's slot and
// the least recently hit one together: with more rules hit than the shard
// keeps, nearly every hit takes a slot over, and finding the least recent
// in a map (iterating it) cost a microsecond a decision at 1M rules.
type recentShard struct {
	mu     sync.Mutex
	ids    [recentPerShard]string
	last   [recentPerShard]int64 // Unix nanoseconds of the slot's last hit; 0: free
	series [recentPerShard]*minuteSeries
}

// minuteSeries is one rule's ring of per-minute counts. Each bucket
// carries the Unix minute it counts, so a bucket more than a day old reads
// as zero and nothing is ever cleared; buckets from before since counted
// the slot's previous rule and read as zero too.
type minuteSeries struct {
	since   uint32
	buckets [RecentMinutes]struct{ minute, count uint32 }
}

func newRecentHits() *recentHits {
	return &recentHits{seed: maphash.MakeSeed()}
}

func (r *recentHits) hit(id string, at time.Time) {
	minute := uint32(at.Unix() / 60)
	s := &r.shards[maphash.String(r.seed, id)%recentShards]
	s.mu.Lock()
	defer s.mu.Unlock()
	i, found := s.slot(id)
	ms := s.series[i]
	if !found {
		if ms == nil {
			ms = &minuteSeries{}
			s.series[i] = ms
		}
		// A copy: id may point into a rule set's string arena, which a
		// slot would keep alive after the set is replaced.
		s.ids[i] = strings.Clone(id)
		ms.since = minute
		ms.buckets[minute%RecentMinutes].minute = 0
	}
	s.last[i] = at.UnixNano()
	b := &ms.buckets[minute%RecentMinutes]
	if b.minute != minute {
		b.minute, b.count = minute, 0
	}
	b.count++
}

// slot returns the slot of id and true, or the slot to give it (a free one
// or the least recently hit) and false. The caller holds s.mu.
func (s *recentShard) slot(id string) (int, bool) {
	lru := 0
	for i := range s.ids {
		if s.last[i] != 0 && s.ids[i] == id {
			return i, true
		}
		if s.last[i] < s.last[lru] {
			lru = i
		}
	}
	return lru, false
}

// perMinute returns the rule's counts for the RecentMinutes minutes up to
// and including the one of now, oldest first, or nil when the rule is not
// among those tracked.
func (r *recentHits) perMinute(id string, now time.Time) []uint32 {
	s := &r.shards[maphash.String(r.seed, id)%recentShards]
	s.mu.Lock()
	defer s.mu.Unlock()
	i, found := s.slot(id)
	if !found {
		return nil
	}
	ms := s.series[i]
	out := make([]uint32, RecentMinutes)
	end := uint32(now.Unix() / 60)
	for i := range out {
		m := end - RecentMinutes + 1 + uint32(i)
		if b := &ms.buckets[m%RecentMinutes]; b.minute == m && m >= ms.since {
			out[i] = b.count
		}
	}
	return out
}
