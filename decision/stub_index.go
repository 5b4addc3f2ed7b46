package decision

// TEMPORARY: signatures of the engine, so other packages compile while the
// engine is written. The engine's author deletes this file.

import (
	"errors"
	"time"
)

var errNotYet = errors.New("decision engine not built yet")

// Index is an immutable, searchable rule set.
type Index struct{}

// Build checks rules and builds an Index. Errors (*RulesError) reject the
// set; warnings are returned with the index.
func Build(rules []Rule, opts Options) (*Index, []Problem, error) {
	return nil, nil, errNotYet
}

// Decide answers one request; the error is a *RequestError.
func (ix *Index) Decide(req *Request, now time.Time) (Decision, error) {
	return Decision{}, errNotYet
}

// Len is the number of rules.
func (ix *Index) Len() int { return 0 }

// Rule returns the rule with the given id.
func (ix *Index) Rule(id string) (Rule, bool) { return Rule{}, false }

// Rules returns up to limit rules with ids greater than after, in id order.
func (ix *Index) Rules(after string, limit int) []Rule { return nil }

// Count is the number of rules of a match kind (for metrics).
func (ix *Index) Count(kind MatchKind) int { return 0 }
