package server

import (
	"fmt"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/redirectd/redirectd/decision"
	redirectv1 "github.com/redirectd/redirectd/proto/redirect/v1"
)

// This file is the one place where rules cross between the admin API
// (redirectv1.Rule, whose fields carry the rules-file words) and the
// decision package. redirectctl uses it too, so the CLI and the server
// can never disagree on a word.

var (
	queryWords         = map[string]decision.QueryPolicy{"": decision.QueryKeep, "keep": decision.QueryKeep, "drop": decision.QueryDrop}
	trailingSlashWords = map[string]decision.TrailingSlash{"": decision.TrailingSlashIgnore, "ignore": decision.TrailingSlashIgnore, "strict": decision.TrailingSlashStrict}
)

// RulesFromProto converts API rules; every word that is not a rules-file
// word is reported, with the rule's position and id, in one
// *decision.RulesError. Values the words allow are checked later by
// decision.Build, like a rules file's.
func RulesFromProto(pbs []*redirectv1.Rule) ([]decision.Rule, error) {
	rules := make([]decision.Rule, 0, len(pbs))
	var problems []decision.Problem
	for i, pb := range pbs {
		r, ps := ruleFromProto(pb)
		for _, p := range ps {
			p.Field = fmt.Sprintf("rules[%d].%s", i, p.Field)
			problems = append(problems, p)
		}
		rules = append(rules, r)
	}
	if len(problems) > 0 {
		return nil, &decision.RulesError{Problems: problems}
	}
	return rules, nil
}

// RuleFromProto converts one API rule (see RulesFromProto).
func RuleFromProto(pb *redirectv1.Rule) (decision.Rule, error) {
	r, ps := ruleFromProto(pb)
	if len(ps) > 0 {
		return decision.Rule{}, &decision.RulesError{Problems: ps}
	}
	return r, nil
}

func ruleFromProto(pb *redirectv1.Rule) (decision.Rule, []decision.Problem) {
	var ps []decision.Problem
	bad := func(field, msg string) {
		ps = append(ps, decision.Problem{RuleID: pb.GetId(), Field: field, Message: msg})
	}
	r := decision.Rule{
		ID:              pb.GetId(),
		Host:            pb.GetHost(),
		Path:            pb.GetPath(),
		To:              pb.GetTo(),
		Status:          int(pb.GetStatus()),
		Methods:         pb.GetMethods(),
		QueryStrip:      pb.GetQueryStrip(),
		CaseInsensitive: pb.GetCaseInsensitive(),
		Headers:         pb.GetHeaders(),
	}
	if w := pb.GetMatch(); w != "" {
		k, err := decision.ParseMatchKind(w)
		if err != nil {
			bad("match", err.Error())
		}
		r.Match = k
	}
	if w := pb.GetIntent(); w != "" {
		i, err := decision.ParseIntent(w)
		if err != nil {
			bad("intent", err.Error())
		}
		r.Intent = i
	}
	if q, ok := queryWords[pb.GetQuery()]; ok {
		r.Query = q
	} else {
		bad("query", fmt.Sprintf("unknown query policy %q; accepted: keep, drop", pb.GetQuery()))
	}
	if t, ok := trailingSlashWords[pb.GetTrailingSlash()]; ok {
		r.TrailingSlash = t
	} else {
		bad("trailing_slash", fmt.Sprintf("unknown trailing_slash %q; accepted: ignore, strict", pb.GetTrailingSlash()))
	}
	if d := pb.GetCacheMaxAge(); d != nil {
		if err := d.CheckValid(); err != nil || d.AsDuration() < 0 {
			bad("cache_max_age", fmt.Sprintf("%v is not a duration of zero or more seconds", d))
		}
		r.CacheMaxAge = d.AsDuration()
	}
	if ts := pb.GetSince(); ts != nil {
		if err := ts.CheckValid(); err != nil {
			bad("since", err.Error())
		}
		r.Since = ts.AsTime()
	}
	return r, ps
}

// RuleToProto converts a rule for the admin API. Defaults are left empty,
// as a person would leave them out of a rules file; match is always given.
func RuleToProto(r decision.Rule) *redirectv1.Rule {
	pb := &redirectv1.Rule{
		Id:              r.ID,
		Host:            r.Host,
		Path:            r.Path,
		Match:           r.Match.String(),
		To:              r.To,
		Intent:          r.Intent.String(),
		Status:          int32(r.Status),
		Methods:         r.Methods,
		QueryStrip:      r.QueryStrip,
		CaseInsensitive: r.CaseInsensitive,
		Headers:         r.Headers,
	}
	if r.Query == decision.QueryDrop {
		pb.Query = "drop"
	}
	if r.TrailingSlash == decision.TrailingSlashStrict {
		pb.TrailingSlash = "strict"
	}
	if r.CacheMaxAge != 0 {
		pb.CacheMaxAge = durationpb.New(r.CacheMaxAge)
	}
	if !r.Since.IsZero() {
		pb.Since = timestamppb.New(r.Since)
	}
	return pb
}

// RulesToProto converts rules for the admin API, in the given order.
func RulesToProto(rules []decision.Rule) []*redirectv1.Rule {
	out := make([]*redirectv1.Rule, len(rules))
	for i, r := range rules {
		out[i] = RuleToProto(r)
	}
	return out
}

func problemsToProto(ps []decision.Problem) []*redirectv1.Problem {
	out := make([]*redirectv1.Problem, len(ps))
	for i, p := range ps {
		out[i] = &redirectv1.Problem{
			Severity: p.Severity.String(),
			File:     p.File,
			Line:     int32(p.Line),
			RuleId:   p.RuleID,
			Field:    p.Field,
			Message:  p.Message,
		}
	}
	return out
}

func versionToProto(v Version) *redirectv1.Version {
	return &redirectv1.Version{Number: v.Number, Hash: v.Hash}
}

// sinceFor fills an unset since (DESIGN.md section 3: set automatically
// when a rule is created through the admin API). A rule that already
// exists (old) keeps its own since, set or not: replacing or re-applying a
// rule does not restart its cache ramp. A new rule was created now.
func sinceFor(r *decision.Rule, old decision.Rule, exists bool, now time.Time) {
	switch {
	case !r.Since.IsZero():
	case exists:
		r.Since = old.Since
	default:
		r.Since = now.UTC().Truncate(time.Second)
	}
}
