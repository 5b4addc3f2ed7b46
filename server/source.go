package server

import (
	"context"
	"errors"
	"time"

	"github.com/redirectd/redirectd/decision"
)

// ErrStoreUnavailable: the store behind the rule set (etcd) cannot be
// reached, so a change cannot be made; the serving set is unchanged.
var ErrStoreUnavailable = errors.New("rule store unavailable")

// RuleSource is where the rule set behind the admin API lives (README
// "Where rules live"): the rules file (RuleStore), a URL (URLRules) or
// etcd (EtcdStore), chosen by --rules and --store. Reads are answered from the serving set; changes go
// through Update, which answers once this replica serves them.
type RuleSource interface {
	// Rules is the RuleStore that publishes every applied set: its Engine
	// serves it, its Hits count hits, its Log and Now are the daemon's.
	Rules() *RuleStore
	// Update makes e durable in the source, checked against the serving
	// set first, and returns the set serving it. expected, when non-zero,
	// must be the set's current version (ErrVersionMismatch otherwise).
	Update(ctx context.Context, expected uint64, e Edit) (*Snapshot, []decision.Problem, error)
}

var (
	_ RuleSource = (*RuleStore)(nil)
	_ RuleSource = (*EtcdStore)(nil)
	_ RuleSource = (*URLRules)(nil)
)

// Edit is one admin change of the rule set: Puts (rules created or
// replaced) and Deletes (ids), or, when Whole, Puts is the whole new set.
type Edit struct {
	Puts    []decision.Rule
	Deletes []string
	Whole   bool
}

// prepare checks e against st and returns the change it makes. Puts
// without since get one first (sinceFor): the since of the rule they
// replace, or now, so the rules written are the rules served.
func (e *Edit) prepare(st *decision.Store, now time.Time) (*decision.Change, error) {
	cur := st.Index()
	for i := range e.Puts {
		var old decision.Rule
		ok := false
		if cur != nil {
			old, ok = cur.Rule(e.Puts[i].ID)
		}
		sinceFor(&e.Puts[i], old, ok, now)
	}
	if e.Whole {
		return st.Replace(e.Puts)
	}
	return st.Apply(e.Puts, e.Deletes)
}
