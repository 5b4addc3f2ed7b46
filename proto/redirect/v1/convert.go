package redirectv1

// This file is the one place where the API's messages and the decision
// package's types cross (README "Layout and development"). The daemon's
// DecisionService and RuleService and redirectctl, online and offline, all
// convert here, so the CLI and the server can never disagree on a word, a
// field or a status code. The decision package never imports this one.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/redirectd/redirectd/decision"
)

// MaxBatch is the most requests one DecideBatch call may carry. It bounds
// the work and the response size of a single call.
const MaxBatch = 10_000

// DecisionService is redirect.v1.DecisionService over a decision function.
// It only translates: proto to decision types and back, decision errors to
// gRPC codes; matching is decide's. The daemon serves it over its engine,
// redirectctl --rules runs it in process over a *decision.Index, so both
// reject the same inputs with the same words.
type DecisionService struct {
	UnimplementedDecisionServiceServer
	decide func(req *decision.Request) (decision.Decision, error)
}

var _ DecisionServiceServer = (*DecisionService)(nil)

// NewDecisionService returns the DecisionService answering with decide,
// for example func(r *decision.Request) (decision.Decision, error) {
// return ix.Decide(r, time.Now()) }.
func NewDecisionService(decide func(req *decision.Request) (decision.Decision, error)) *DecisionService {
	return &DecisionService{decide: decide}
}

// Decide answers one request.
func (s *DecisionService) Decide(_ context.Context, in *DecideRequest) (*DecideResponse, error) {
	resp, err := s.decideOne(in)
	if err != nil {
		return nil, statusError(err)
	}
	return resp, nil
}

// DecideBatch answers each request independently: a bad request yields an
// error string in its slot and does not fail the others.
func (s *DecisionService) DecideBatch(_ context.Context, in *DecideBatchRequest) (*DecideBatchResponse, error) {
	if n := len(in.GetRequests()); n > MaxBatch {
		return nil, statusError(&decision.RequestError{
			Field:   "requests",
			Message: fmt.Sprintf("%d requests in one batch; accepted: at most %d", n, MaxBatch),
		})
	}
	out := &DecideBatchResponse{
		Results: make([]*DecideResult, len(in.GetRequests())),
	}
	for i, req := range in.GetRequests() {
		resp, err := s.decideOne(req)
		var reqErr *decision.RequestError
		switch {
		case err == nil:
			out.Results[i] = &DecideResult{Outcome: &DecideResult_Response{Response: resp}}
		case errors.As(err, &reqErr):
			out.Results[i] = &DecideResult{Outcome: &DecideResult_Error{
				Error: fmt.Sprintf("requests[%d].%s", i, err.Error()),
			}}
		default:
			// Not the caller's fault: fail the call rather than hide a
			// server problem inside one slot.
			return nil, statusError(err)
		}
	}
	return out, nil
}

func (s *DecisionService) decideOne(in *DecideRequest) (*DecideResponse, error) {
	req, err := requestFromProto(in)
	if err != nil {
		return nil, err
	}
	d, err := s.decide(&req)
	if err != nil {
		return nil, err
	}
	return decisionToProto(&d), nil
}

// requestFromProto maps the wire request. Field checks (method token, path
// shape and size, control characters) are the decision package's, so
// Decide, Envoy Check and forward-auth reject the same inputs with the same
// words.
func requestFromProto(in *DecideRequest) (decision.Request, error) {
	intent, err := intentFromProto(in.GetIntent())
	if err != nil {
		return decision.Request{}, err
	}
	return decision.Request{
		Method:   in.GetMethod(),
		Scheme:   in.GetScheme(),
		Host:     in.GetHost(),
		Target:   in.GetPath(),
		Intent:   intent,
		Protocol: in.GetProtocol(),
		Headers:  lowerCaseNames(in.GetHeaders()),
		Explain:  in.GetExplain(),
	}, nil
}

// intents maps each wire Intent, by number, to the decision package's.
var intents = [...]decision.Intent{
	Intent_INTENT_UNSPECIFIED: decision.IntentUnspecified,
	Intent_INTENT_PERMANENT:   decision.IntentPermanent,
	Intent_INTENT_TEMPORARY:   decision.IntentTemporary,
	Intent_INTENT_SEE_OTHER:   decision.IntentSeeOther,
}

func intentFromProto(i Intent) (decision.Intent, error) {
	if i >= 0 && int(i) < len(intents) {
		return intents[i], nil
	}
	return decision.IntentUnspecified, &decision.RequestError{
		Field:   "intent",
		Message: fmt.Sprintf("unknown value %d; accepted: INTENT_UNSPECIFIED, INTENT_PERMANENT, INTENT_TEMPORARY, INTENT_SEE_OTHER", int32(i)),
	}
}

// IntentToProto returns the wire Intent of i (the rules-file words read by
// decision.ParseIntent); INTENT_UNSPECIFIED for an intent the API lacks.
func IntentToProto(i decision.Intent) Intent {
	for pb, d := range intents {
		if d == i {
			return Intent(pb)
		}
	}
	return Intent_INTENT_UNSPECIFIED
}

// lowerCaseNames returns h with lower-case names. Header names are
// case-insensitive (RFC 9110 section 5.1) and the decision package compares
// them lower-cased; h is copied only when a name needs it.
func lowerCaseNames(h map[string]string) map[string]string {
	for name := range h {
		if hasUpper(name) {
			lower := make(map[string]string, len(h))
			for n, v := range h {
				lower[strings.ToLower(n)] = v
			}
			return lower
		}
	}
	return h
}

func hasUpper(s string) bool {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			return true
		}
	}
	return false
}

func decisionToProto(d *decision.Decision) *DecideResponse {
	resp := &DecideResponse{
		Redirect:          d.Redirect,
		StatusCode:        int32(d.Status),
		Location:          d.Location,
		FollowUpMethod:    d.FollowUpMethod,
		FollowUpKeepsBody: d.FollowUpKeepsBody,
		RuleId:            d.RuleID,
	}
	if d.Redirect {
		resp.Cache = &CacheAdvice{
			Cacheable:    d.Cache.Cacheable,
			CacheControl: d.Cache.CacheControl,
		}
		if d.Cache.Cacheable {
			resp.Cache.MaxAge = durationpb.New(d.Cache.MaxAge)
		}
	}
	if len(d.Headers) > 0 {
		resp.Headers = make([]*Header, len(d.Headers))
		for i, h := range d.Headers {
			resp.Headers[i] = &Header{Name: h.Name, Value: h.Value}
		}
	}
	if d.Explanation != nil {
		resp.Explanation = explanationToProto(d.Explanation)
	}
	return resp
}

func explanationToProto(x *decision.Explanation) *Explanation {
	out := &Explanation{
		Host:       x.Host,
		Path:       x.Path,
		Candidates: make([]*Candidate, len(x.Candidates)),
	}
	for i, c := range x.Candidates {
		out.Candidates[i] = &Candidate{
			RuleId:  c.RuleID,
			Scope:   c.Scope,
			Match:   c.Match.String(),
			Applied: c.Applied,
			Reason:  c.Reason,
		}
	}
	return out
}

// statusError is the one place where the DecisionService's errors become
// gRPC statuses. Errors that describe the caller's input keep their text
// (it names the field and what is accepted); anything else becomes
// INTERNAL with a fixed message, so server internals never reach a caller.
// The original error stays available to a logging interceptor through
// Unwrap.
func statusError(err error) error {
	if err == nil {
		return nil
	}
	var (
		reqErr   *decision.RequestError
		rulesErr *decision.RulesError
	)
	switch {
	case errors.As(err, &reqErr):
		return status.Error(codes.InvalidArgument, reqErr.Error())
	case errors.As(err, &rulesErr):
		return status.Error(codes.InvalidArgument, rulesErr.Error())
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, "request canceled")
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, "deadline exceeded")
	}
	if _, ok := err.(interface{ GRPCStatus() *status.Status }); ok {
		return err // already a deliberate status, not a wrapped one
	}
	return &internalError{err: err}
}

// internalError carries a server-side failure: the caller sees only
// INTERNAL, the log sees the cause.
type internalError struct{ err error }

func (e *internalError) Error() string { return "internal error: " + e.err.Error() }
func (e *internalError) Unwrap() error { return e.err }

// GRPCStatus is what grpc-go sends on the wire for this error.
func (e *internalError) GRPCStatus() *status.Status {
	return status.New(codes.Internal, "internal error; the server log has the details")
}

var (
	queryWords         = map[string]decision.QueryPolicy{"": decision.QueryKeep, "keep": decision.QueryKeep, "drop": decision.QueryDrop}
	trailingSlashWords = map[string]decision.TrailingSlash{"": decision.TrailingSlashIgnore, "ignore": decision.TrailingSlashIgnore, "strict": decision.TrailingSlashStrict}
)

// RulesFromProto converts API rules, whose fields carry the rules-file
// words; every word that is not a rules-file word is reported, with the
// rule's position and id, in one *decision.RulesError. Values the words
// allow are checked later by decision.Build, like a rules file's.
func RulesFromProto(pbs []*Rule) ([]decision.Rule, error) {
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
func RuleFromProto(pb *Rule) (decision.Rule, error) {
	r, ps := ruleFromProto(pb)
	if len(ps) > 0 {
		return decision.Rule{}, &decision.RulesError{Problems: ps}
	}
	return r, nil
}

func ruleFromProto(pb *Rule) (decision.Rule, []decision.Problem) {
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
		Has:             conditionsFromProto(pb.GetHas()),
		Missing:         conditionsFromProto(pb.GetMissing()),
		Languages:       pb.GetLanguages(),
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
		r.CacheMaxAge = new(d.AsDuration())
	}
	for _, t := range []struct {
		field string
		ts    *timestamppb.Timestamp
		to    *time.Time
	}{{"since", pb.GetSince(), &r.Since}, {"active_from", pb.GetActiveFrom(), &r.ActiveFrom}, {"active_until", pb.GetActiveUntil(), &r.ActiveUntil}} {
		if t.ts != nil {
			if err := t.ts.CheckValid(); err != nil {
				bad(t.field, err.Error())
			}
			*t.to = t.ts.AsTime()
		}
	}
	if w := pb.GetMode(); w != "" {
		m, err := decision.ParseMode(w)
		if err != nil {
			bad("mode", err.Error())
		}
		r.Mode = m
	}
	if d := pb.GetPromoteAfter(); d != nil {
		if err := d.CheckValid(); err != nil {
			bad("promote_after", fmt.Sprintf("%v is not a duration", d))
		}
		r.PromoteAfter = d.AsDuration()
	}
	return r, ps
}

// RuleToProto converts a rule for the admin API. Defaults are left empty,
// as a person would leave them out of a rules file; match is always given.
func RuleToProto(r decision.Rule) *Rule {
	pb := &Rule{
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
		Has:             conditionsToProto(r.Has),
		Missing:         conditionsToProto(r.Missing),
		Languages:       r.Languages,
	}
	if r.Query == decision.QueryDrop {
		pb.Query = "drop"
	}
	if r.TrailingSlash == decision.TrailingSlashStrict {
		pb.TrailingSlash = "strict"
	}
	if r.CacheMaxAge != nil {
		pb.CacheMaxAge = durationpb.New(*r.CacheMaxAge)
	}
	pb.Since, pb.ActiveFrom, pb.ActiveUntil = timestampOf(r.Since), timestampOf(r.ActiveFrom), timestampOf(r.ActiveUntil)
	if r.Mode != decision.ModeEnforce {
		pb.Mode = r.Mode.String()
	}
	if r.PromoteAfter != 0 {
		pb.PromoteAfter = durationpb.New(r.PromoteAfter)
	}
	return pb
}

// timestampOf is t for the API, nil (unset) for the zero time.
func timestampOf(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

// conditionsFromProto converts has or missing; the value's presence is
// kept, since it is what "key present" and "key matches" differ in.
func conditionsFromProto(list []*Condition) []decision.Condition {
	if len(list) == 0 {
		return nil
	}
	out := make([]decision.Condition, len(list))
	for i, c := range list {
		out[i] = decision.Condition{Type: c.GetType(), Key: c.GetKey()}
		if c.Value != nil {
			v := c.GetValue()
			out[i].Value = &v
		}
	}
	return out
}

func conditionsToProto(list []decision.Condition) []*Condition {
	if len(list) == 0 {
		return nil
	}
	out := make([]*Condition, len(list))
	for i, c := range list {
		out[i] = &Condition{Type: c.Type, Key: c.Key}
		if c.Value != nil {
			v := *c.Value
			out[i].Value = &v
		}
	}
	return out
}

// RulesToProto converts rules for the admin API, in the given order.
func RulesToProto(rules []decision.Rule) []*Rule {
	out := make([]*Rule, len(rules))
	for i, r := range rules {
		out[i] = RuleToProto(r)
	}
	return out
}

// ProblemsToProto converts load and lint problems for the admin API.
func ProblemsToProto(ps []decision.Problem) []*Problem {
	out := make([]*Problem, len(ps))
	for i, p := range ps {
		out[i] = &Problem{
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

// ProblemFromProto converts a problem the admin API answered, so that it
// prints as decision.Problem.String does; a severity other than "warning"
// is an error.
func ProblemFromProto(p *Problem) decision.Problem {
	sev := decision.SeverityError
	if p.GetSeverity() == decision.SeverityWarning.String() {
		sev = decision.SeverityWarning
	}
	return decision.Problem{Severity: sev, File: p.GetFile(), Line: int(p.GetLine()), RuleID: p.GetRuleId(), Field: p.GetField(), Message: p.GetMessage()}
}
