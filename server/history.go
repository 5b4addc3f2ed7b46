package server

import (
	"sync"
	"time"
)

// ReloadOutcome is one applied or refused rule-set change: a file load or
// reload, or an admin write.
type ReloadOutcome struct {
	At      time.Time
	Source  string
	Applied bool
	Version uint64 // the version applied; the serving one when refused
	Rules   int    // rules in the set applied
	Error   string // why it was refused; "" when applied
}

// reloadHistoryLen bounds the outcomes kept: enough to see a run of
// refused reloads and the last good one, a few kilobytes at most.
const reloadHistoryLen = 32

// ReloadHistory keeps the last reloadHistoryLen outcomes, for the web
// console's status page.
type ReloadHistory struct {
	mu   sync.Mutex
	ring [reloadHistoryLen]ReloadOutcome
	n    int // outcomes recorded in all
}

func (h *ReloadHistory) record(o ReloadOutcome) {
	if h == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ring[h.n%reloadHistoryLen] = o
	h.n++
}

// Last returns the outcomes kept, newest first.
func (h *ReloadHistory) Last() []ReloadOutcome {
	h.mu.Lock()
	defer h.mu.Unlock()
	k := min(h.n, reloadHistoryLen)
	out := make([]ReloadOutcome, 0, k)
	for i := 1; i <= k; i++ {
		out = append(out, h.ring[(h.n-i)%reloadHistoryLen])
	}
	return out
}
