package server

import (
	"time"

	"github.com/redirectd/redirectd/decision"
)

// Version identifies an applied rule set: a number that grows with every
// applied change and a hash that, unlike the file store's number, survives
// a restart (README "Admin API"): the SHA-256 of the rules file it was read
// from or written to, or with etcd EtcdStore.versionHash.
type Version struct {
	Number uint64
	Hash   string
}

// Snapshot describes the serving rule set: its Index and what the store
// recorded when it was applied.
type Snapshot struct {
	Index    *decision.Index
	Warnings []decision.Problem
	Version  Version
	Source   string // the rules file, or "built-in example"
	LoadedAt time.Time
}

// Engine answers decisions from the serving set of a decision.Store, which
// holds the set and swaps it (README "The rule store"). Every adapter (gRPC
// Decide, Envoy Check, HTTP forward-auth) goes through Engine.Decide, so
// metrics and hit statistics live in one place.
type Engine struct {
	store *decision.Store
	now   func() time.Time
	// observe, when set, is told of every decision (metrics, stats, logs):
	// when it was made and how long it took.
	observe func(req *decision.Request, d *decision.Decision, err error, at time.Time, took time.Duration)
}

// NewEngine returns an Engine over store; Ready is false until the store
// serves a set.
func NewEngine(store *decision.Store, now func() time.Time) *Engine {
	return &Engine{store: store, now: now}
}

// Store is the rule store the Engine decides from.
func (e *Engine) Store() *decision.Store { return e.store }

// Decide answers req from the serving set. Before the first load it
// answers "no redirect": an edge proxy must never be blocked by us.
func (e *Engine) Decide(req *decision.Request) (decision.Decision, error) {
	ix := e.store.Index()
	if ix == nil {
		return decision.Decision{}, nil
	}
	start := e.now()
	d, err := ix.Decide(req, start)
	if e.observe != nil {
		e.observe(req, &d, err, start, e.now().Sub(start))
	}
	return d, err
}

// Current describes the serving set, or is nil before the first load.
func (e *Engine) Current() *Snapshot { return snapshotOf(e.store.Index()) }

func snapshotOf(ix *decision.Index) *Snapshot {
	if ix == nil {
		return nil
	}
	info := ix.Info()
	return &Snapshot{
		Index:    ix,
		Warnings: ix.Warnings(),
		Version:  Version{Number: info.Version, Hash: info.Hash},
		Source:   info.Source,
		LoadedAt: info.LoadedAt,
	}
}

// Ready reports whether a rule set has been loaded.
func (e *Engine) Ready() bool { return e.store.Index() != nil }

// SetObserver installs fn, told of every decision (metrics, hit counts,
// the sampled decision log) with the time it was made (so the hot path
// reads the clock no more than the engine already does) and how long it
// took. Call it before the Engine serves.
func (e *Engine) SetObserver(fn func(req *decision.Request, d *decision.Decision, err error, at time.Time, took time.Duration)) {
	e.observe = fn
}
