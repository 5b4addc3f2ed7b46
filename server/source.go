package server

import (
	"context"
	"errors"
	"fmt"
	"strings"
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
	// set first, and returns the set serving it, if the set is still the
	// one pre names (ErrVersionMismatch otherwise), atomically with the
	// write.
	Update(ctx context.Context, pre Precondition, e Edit) (*Snapshot, []decision.Problem, error)
	// Writable is nil when Update can change the rules, else why it
	// cannot, wrapping ErrNotPersistable.
	Writable() error
}

var (
	_ RuleSource = (*RuleStore)(nil)
	_ RuleSource = (*EtcdStore)(nil)
	_ RuleSource = (*URLRules)(nil)
)

// Precondition is the set a change was prepared against (README "Admin
// API"): expected_version and expected_hash, each checked when set. The
// file store's number restarts at 1 with the process; its hash, the rules
// file's SHA-256, does not.
type Precondition struct {
	Version uint64
	Hash    string
}

// check refuses a change when v is not the set pre names; of says whose
// version v is ("serving", "the etcd set's").
func (pre Precondition) check(v Version, of string) error {
	if pre.Version != 0 && pre.Version != v.Number {
		return fmt.Errorf("%w: expected version %d, %s version %d", ErrVersionMismatch, pre.Version, of, v.Number)
	}
	if pre.Hash != "" && !strings.EqualFold(pre.Hash, v.Hash) {
		return fmt.Errorf("%w: expected hash %s, %s hash %s", ErrVersionMismatch, pre.Hash, of, v.Hash)
	}
	return nil
}

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
