package server

import (
	redirectv1 "github.com/redirectd/redirectd/proto/redirect/v1"
)

// MaxBatch is the most requests one DecideBatch call may carry (the API's
// limit, redirectv1.MaxBatch).
const MaxBatch = redirectv1.MaxBatch

// NewDecisionService returns redirect.v1.DecisionService answering from e.
// The translation (proto to decision types and back, decision errors to
// gRPC codes) is redirectv1's, shared with redirectctl --rules; matching,
// metrics and hit statistics are the engine's.
func NewDecisionService(e *Engine) *redirectv1.DecisionService {
	return redirectv1.NewDecisionService(e.Decide)
}
