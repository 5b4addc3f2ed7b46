package server

import (
	"sync/atomic"
	"time"

	"github.com/redirectd/redirectd/decision"
)

// Version identifies an applied rule set: a number that grows with every
// applied set and the SHA-256 of the rules file it came from (written in
// canonical form by admin writes).
type Version struct {
	Number uint64
	Hash   string
}

// Snapshot is one applied rule set. It is never modified once published:
// a reload or an admin write builds a new Snapshot and swaps it in.
type Snapshot struct {
	Index    *decision.Index
	Rules    []decision.Rule // as applied, in file order
	Warnings []decision.Problem
	Version  Version
	Source   string // the rules file, or "built-in example"
	LoadedAt time.Time
}

// Engine answers decisions from the current Snapshot. Every adapter (gRPC
// Decide, Envoy Check, HTTP forward-auth) goes through Engine.Decide, so
// matching, metrics and hit statistics live in one place.
type Engine struct {
	current atomic.Pointer[Snapshot]
	now     func() time.Time
	// observe, when set, is told of every decision (metrics, stats, logs):
	// when it was made and how long it took.
	observe func(req *decision.Request, d *decision.Decision, err error, at time.Time, took time.Duration)
}

// NewEngine returns an Engine with no rule set; Ready is false until Swap.
func NewEngine(now func() time.Time) *Engine {
	return &Engine{now: now}
}

// Decide answers req from the current rule set. Before the first Swap it
// answers "no redirect": an edge proxy must never be blocked by us.
func (e *Engine) Decide(req *decision.Request) (decision.Decision, error) {
	snap := e.current.Load()
	if snap == nil {
		return decision.Decision{}, nil
	}
	start := e.now()
	d, err := snap.Index.Decide(req, start)
	if e.observe != nil {
		e.observe(req, &d, err, start, e.now().Sub(start))
	}
	return d, err
}

// Current returns the serving Snapshot, or nil before the first load.
func (e *Engine) Current() *Snapshot { return e.current.Load() }

// Ready reports whether a rule set has been loaded.
func (e *Engine) Ready() bool { return e.current.Load() != nil }

// Swap publishes s; readers still holding the previous Snapshot finish on it.
func (e *Engine) Swap(s *Snapshot) { e.current.Store(s) }

// SetObserver installs fn, told of every decision (metrics, hit counts,
// the sampled decision log) with the time it was made (so the hot path
// reads the clock no more than the engine already does) and how long it
// took. Call it before the Engine serves.
func (e *Engine) SetObserver(fn func(req *decision.Request, d *decision.Decision, err error, at time.Time, took time.Duration)) {
	e.observe = fn
}
