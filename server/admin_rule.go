package server

import (
	"time"

	"github.com/redirectd/redirectd/decision"
	redirectv1 "github.com/redirectd/redirectd/proto/redirect/v1"
)

// What the admin API adds to a rule on its way in and out; the conversion
// of rules and problems is redirectv1's (proto/redirect/v1/convert.go).

func versionToProto(v Version) *redirectv1.Version {
	return &redirectv1.Version{Number: v.Number, Hash: v.Hash}
}

// sinceFor fills an unset since (README "Admin API": set automatically
// when a rule is created through the admin API). A rule that already
// exists (old) keeps its own since, set or not: replacing or re-applying a
// rule does not restart its cache ramp. A new rule was created now, and so
// was the staging of an old rule without since that gets promote_after
// (README "Staged permanence"), which needs one.
func sinceFor(r *decision.Rule, old decision.Rule, exists bool, now time.Time) {
	switch {
	case !r.Since.IsZero():
	case exists && (!old.Since.IsZero() || r.PromoteAfter == 0):
		r.Since = old.Since
	default:
		r.Since = now.UTC().Truncate(time.Second)
	}
}

// LintFile parses a rules file and checks it exactly as a load or an apply
// would, without applying it: the rules, their warnings, or the
// *decision.RulesError that would reject them.
func (s *RuleStore) LintFile(name string, data []byte) ([]decision.Rule, []decision.Problem, error) {
	rules, err := decision.ParseRules(name, data)
	if err != nil {
		return nil, nil, err
	}
	warnings, err := s.lint(rules)
	return rules, warnings, err
}

func (s *RuleStore) lint(rules []decision.Rule) ([]decision.Problem, error) {
	_, warnings, err := decision.Build(rules, s.Engine.Store().Options())
	return warnings, err
}
