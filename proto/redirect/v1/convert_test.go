package redirectv1

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/redirectd/redirectd/decision"
)

// testRules uses every field a rule has, so a conversion that forgets one
// fails the round trip.
const testRules = `
rules:
  - id: docs-moved
    host: example.com
    path: /docs
    match: prefix
    to: https://docs.example.com
    intent: permanent
    cache_max_age: 3600
  - id: every-field
    host: "*.example.org"
    path: /p/:name
    match: pattern
    to: /q/:name
    intent: see_other
    status: 302
    methods: [GET, POST]
    query: drop
    query_strip: [utm_*]
    case_insensitive: true
    trailing_slash: strict
    headers: {accept-language: "de*"}
    has: [{type: cookie, key: beta, value: "1"}, {type: header, key: x-env}, {type: query, key: q, value: ""}]
    missing: [{type: header, key: x-no}]
    languages: [en, fr-CH]
    cache_max_age: 0
    since: 2026-11-01T00:00:00Z
  - id: defaults
    path: /blog
    to: /news
  - id: lifecycle
    path: /launch
    to: /new
    intent: permanent
    since: 2026-11-01T00:00:00Z
    active_from: 2026-12-01T00:00:00Z
    active_until: 2027-01-01T00:00:00Z
    mode: shadow
    promote_after: 30d
`

func parseTestRules(t *testing.T) []decision.Rule {
	t.Helper()
	rules, err := decision.ParseRules("rules.yaml", []byte(testRules))
	if err != nil {
		t.Fatal(err)
	}
	return rules
}

func TestRulesRoundTrip(t *testing.T) {
	rules := parseTestRules(t)
	pbs := RulesToProto(rules)
	back, err := RulesFromProto(pbs)
	if err != nil {
		t.Fatal(err)
	}
	// Line is where a rule sat in its file; the API has no file.
	if diff := cmp.Diff(rules, back, cmpopts.IgnoreFields(decision.Rule{}, "Line")); diff != "" {
		t.Errorf("rules after RulesToProto and RulesFromProto (-before +after):\n%s", diff)
	}
	// Defaults stay empty, as a person leaves them out of a file; match is
	// always given.
	want := &Rule{Id: "defaults", Path: "/blog", Match: "exact", To: "/news"}
	if diff := cmp.Diff(want, pbs[2], protocmp.Transform()); diff != "" {
		t.Errorf("RuleToProto of a rule with defaults (-want +got):\n%s", diff)
	}
	if got := pbs[1]; got.GetQuery() != "drop" || got.GetTrailingSlash() != "strict" || got.GetIntent() != "see_other" ||
		!got.GetSince().AsTime().Equal(time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("RuleToProto(every-field) = %v", got)
	}
	if got := pbs[1].GetCacheMaxAge(); got == nil || got.AsDuration() != 0 {
		t.Errorf("RuleToProto(every-field).cache_max_age = %v, want 0s (no-store), not unset", got)
	}
	if got := pbs[3]; got.GetMode() != "shadow" || got.GetPromoteAfter().AsDuration() != 30*24*time.Hour ||
		!got.GetActiveFrom().AsTime().Equal(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)) ||
		!got.GetActiveUntil().AsTime().Equal(time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("RuleToProto(lifecycle) = %v", got)
	}
	// A value given, even empty, differs from no value.
	has := pbs[1].GetHas()
	if len(has) != 3 || has[1].Value != nil || has[2].Value == nil || has[2].GetValue() != "" {
		t.Errorf("RuleToProto(every-field).Has = %v", has)
	}
	one, err := RuleFromProto(pbs[0])
	if err != nil || one.ID != "docs-moved" || one.CacheMaxAge == nil || *one.CacheMaxAge != time.Hour || one.Match != decision.MatchPrefix {
		t.Errorf("RuleFromProto(docs-moved) = %+v, %v", one, err)
	}
}

func TestRulesFromProtoProblems(t *testing.T) {
	pbs := []*Rule{
		{Id: "fine", Path: "/a", To: "/b"},
		{
			Id: "words", Path: "/a", To: "/b",
			Match: "glob", Intent: "forever", Query: "strip", TrailingSlash: "maybe",
			CacheMaxAge: durationpb.New(-time.Second),
			Since:       &timestamppb.Timestamp{Seconds: 1 << 62},
		},
	}
	_, err := RulesFromProto(pbs)
	var rerr *decision.RulesError
	if !errors.As(err, &rerr) {
		t.Fatalf("RulesFromProto = %v; want a *decision.RulesError", err)
	}
	var got []string
	for _, p := range rerr.Problems {
		if p.RuleID != "words" {
			t.Errorf("problem %v names rule %q; want words", p, p.RuleID)
		}
		got = append(got, p.Field+": "+p.Message)
	}
	want := []string{
		`rules[1].match: unknown match "glob"; accepted: exact, prefix, pattern, regex`,
		`rules[1].intent: unknown intent "forever"; accepted: permanent, temporary, see_other`,
		`rules[1].query: unknown query policy "strip"; accepted: keep, drop`,
		`rules[1].trailing_slash: unknown trailing_slash "maybe"; accepted: ignore, strict`,
	}
	// The message shows the value in protobuf text form, whose spacing
	// protobuf-go varies on purpose: only its ends are fixed.
	if len(got) != len(want)+2 ||
		!strings.HasPrefix(got[len(want)], "rules[1].cache_max_age: ") || !strings.HasSuffix(got[len(want)], " is not a duration of zero or more seconds") ||
		!strings.HasPrefix(got[len(want)+1], "rules[1].since: ") {
		t.Fatalf("problems:\n%s\nwant:\n%s\nthen one for cache_max_age and one for since", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if diff := cmp.Diff(want, got[:len(want)]); diff != "" {
		t.Errorf("problems (-want +got):\n%s", diff)
	}

	// One rule alone: the same problems, without a position.
	_, err = RuleFromProto(pbs[1])
	if !errors.As(err, &rerr) || len(rerr.Problems) != len(want)+2 || rerr.Problems[0].Field != "match" {
		t.Errorf("RuleFromProto = %v; want %d problems, the first on match", err, len(want)+2)
	}
}

// TestLifecycleFromProto: the lifecycle fields say what is wrong with
// them, each by its rules-file name.
func TestLifecycleFromProto(t *testing.T) {
	_, err := RuleFromProto(&Rule{Id: "x", Path: "/a", To: "/b",
		ActiveFrom: &timestamppb.Timestamp{Nanos: -1}, ActiveUntil: &timestamppb.Timestamp{Seconds: 1 << 62},
		Mode: "dry-run", PromoteAfter: &durationpb.Duration{Seconds: 1, Nanos: -1}})
	var rerr *decision.RulesError
	if !errors.As(err, &rerr) {
		t.Fatalf("RuleFromProto = %v; want a *decision.RulesError", err)
	}
	var fields []string
	for _, p := range rerr.Problems {
		fields = append(fields, p.Field)
	}
	if diff := cmp.Diff([]string{"active_from", "active_until", "mode", "promote_after"}, fields); diff != "" {
		t.Errorf("fields of the problems (-want +got):\n%s\n%v", diff, err)
	}
	if !strings.Contains(err.Error(), `mode: unknown mode "dry-run"; accepted: enforce, shadow`) {
		t.Errorf("error %q does not say which modes are accepted", err)
	}
}

func TestProblemsRoundTrip(t *testing.T) {
	ps := []decision.Problem{
		{Severity: decision.SeverityError, File: "r.yaml", Line: 3, RuleID: "a", Field: "to", Message: "required"},
		{Severity: decision.SeverityWarning, RuleID: "b", Field: "path", Message: "shadowed by rule a"},
	}
	pbs := ProblemsToProto(ps)
	if pbs[1].GetSeverity() != "warning" || pbs[0].GetLine() != 3 {
		t.Errorf("ProblemsToProto = %v", pbs)
	}
	for i, pb := range pbs {
		if got := ProblemFromProto(pb); got != ps[i] {
			t.Errorf("ProblemFromProto(ProblemsToProto(%v)) = %v", ps[i], got)
		}
	}
}

func TestIntents(t *testing.T) {
	for _, word := range []string{"permanent", "temporary", "see_other"} {
		i, err := decision.ParseIntent(word)
		if err != nil {
			t.Fatal(err)
		}
		pb := IntentToProto(i)
		if want := "INTENT_" + strings.ToUpper(word); pb.String() != want {
			t.Errorf("IntentToProto(%s) = %v, want %s", word, pb, want)
		}
		if back, err := intentFromProto(pb); back != i || err != nil {
			t.Errorf("intentFromProto(%v) = %v, %v; want %v", pb, back, err, i)
		}
	}
	if pb := IntentToProto(decision.IntentUnspecified); pb != Intent_INTENT_UNSPECIFIED {
		t.Errorf("IntentToProto(unspecified) = %v", pb)
	}
	for _, bad := range []Intent{-1, 4} {
		_, err := intentFromProto(bad)
		want := fmt.Sprintf("intent: unknown value %d; accepted: INTENT_UNSPECIFIED, INTENT_PERMANENT, INTENT_TEMPORARY, INTENT_SEE_OTHER", bad)
		if err == nil || err.Error() != want {
			t.Errorf("intentFromProto(%d) = %v; want %q", bad, err, want)
		}
	}
}

// testService is the DecisionService over an Index of testRules at a fixed
// clock, as redirectctl --rules runs it.
func testService(t *testing.T) *DecisionService {
	t.Helper()
	ix, _, err := decision.Build(parseTestRules(t), decision.Options{PermanentMaxAge: 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	return NewDecisionService(func(req *decision.Request) (decision.Decision, error) {
		return ix.Decide(req, now)
	})
}

func TestDecide(t *testing.T) {
	svc := testService(t)
	for _, tt := range []struct {
		name string
		in   *DecideRequest
		want *DecideResponse
	}{
		{
			name: "permanent prefix",
			in:   &DecideRequest{Method: "GET", Scheme: "https", Host: "example.com", Path: "/docs/x?y=1"},
			want: &DecideResponse{
				Redirect: true, StatusCode: 301, Location: "https://docs.example.com/x?y=1",
				FollowUpMethod: "GET", RuleId: "docs-moved",
				Cache: &CacheAdvice{Cacheable: true, MaxAge: durationpb.New(time.Hour), CacheControl: "public, max-age=3600"},
				Headers: []*Header{
					{Name: "Location", Value: "https://docs.example.com/x?y=1"},
					{Name: "Cache-Control", Value: "public, max-age=3600"},
				},
			},
		},
		{
			name: "request intent wins, upper-case header names are lower-cased",
			in: &DecideRequest{
				Method: "POST", Host: "www.example.org", Path: "/p/shoes?q=",
				Intent:  Intent_INTENT_PERMANENT,
				Headers: map[string]string{"Accept-Language": "de-CH, fr-CH;q=0.5", "Cookie": "beta=1", "X-Env": "t"},
			},
			want: &DecideResponse{
				Redirect: true, StatusCode: 302, Location: "/q/shoes", FollowUpMethod: "GET", RuleId: "every-field",
				Cache: &CacheAdvice{CacheControl: "no-store"},
				Headers: []*Header{
					{Name: "Location", Value: "/q/shoes"},
					{Name: "Cache-Control", Value: "no-store"},
					{Name: "Vary", Value: "Accept-Language, Cookie, X-Env, X-No"},
				},
			},
		},
		{
			name: "no match: no cache advice",
			in:   &DecideRequest{Method: "GET", Path: "/elsewhere"},
			want: &DecideResponse{},
		},
		{
			name: "explain",
			in:   &DecideRequest{Method: "GET", Host: "Example.com.", Path: "/blog", Explain: true},
			want: &DecideResponse{
				Redirect: true, StatusCode: 307, Location: "/news", FollowUpMethod: "GET", RuleId: "defaults",
				Cache:   &CacheAdvice{CacheControl: "no-store"},
				Headers: []*Header{{Name: "Location", Value: "/news"}, {Name: "Cache-Control", Value: "no-store"}},
				Explanation: &Explanation{Host: "example.com", Path: "/blog", Candidates: []*Candidate{
					{RuleId: "defaults", Scope: "*", Match: "exact", Applied: true, Reason: "matched"},
				}},
			},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := svc.Decide(context.Background(), tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got, protocmp.Transform()); diff != "" {
				t.Errorf("Decide(%v) (-want +got):\n%s", tt.in, diff)
			}
		})
	}
}

func TestDecideBadInput(t *testing.T) {
	svc := testService(t)
	for _, tt := range []struct {
		in    *DecideRequest
		field string
	}{
		{&DecideRequest{Path: "/x"}, "method: "},
		{&DecideRequest{Method: "GET"}, "path: "},
		{&DecideRequest{Method: "G T", Path: "/x"}, "method: "},
		{&DecideRequest{Method: "GET", Path: "x"}, "path: "},
		{&DecideRequest{Method: "GET", Path: "/x", Intent: 9}, "intent: unknown value 9"},
	} {
		_, err := svc.Decide(context.Background(), tt.in)
		if st := status.Convert(err); st.Code() != codes.InvalidArgument || !strings.HasPrefix(st.Message(), tt.field) {
			t.Errorf("Decide(%v) = %v; want INVALID_ARGUMENT starting %q", tt.in, err, tt.field)
		}
	}
}

func TestDecideBatch(t *testing.T) {
	svc := testService(t)
	out, err := svc.DecideBatch(context.Background(), &DecideBatchRequest{Requests: []*DecideRequest{
		{Method: "GET", Path: "/blog"},
		{Method: "GET"},
		{Method: "GET", Path: "/nothing"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	res := out.GetResults()
	if len(res) != 3 || res[0].GetResponse().GetRuleId() != "defaults" || res[2].GetResponse() == nil || res[2].GetResponse().GetRedirect() {
		t.Fatalf("DecideBatch = %v; want defaults, an error, a pass", res)
	}
	if e := res[1].GetError(); !strings.HasPrefix(e, "requests[1].path: ") {
		t.Errorf("bad slot error = %q; want it to start with requests[1].path: ", e)
	}

	_, err = svc.DecideBatch(context.Background(), &DecideBatchRequest{Requests: make([]*DecideRequest, MaxBatch+1)})
	want := fmt.Sprintf("requests: %d requests in one batch; accepted: at most %d", MaxBatch+1, MaxBatch)
	if st := status.Convert(err); st.Code() != codes.InvalidArgument || st.Message() != want {
		t.Errorf("DecideBatch of %d = %v; want INVALID_ARGUMENT %q", MaxBatch+1, err, want)
	}
}

// A fault of the decision function is the server's, not the caller's: the
// call fails with INTERNAL and its text stays out of the answer.
func TestDecideInternalError(t *testing.T) {
	svc := NewDecisionService(func(*decision.Request) (decision.Decision, error) {
		return decision.Decision{}, errors.New("index /var/lib/secret corrupt")
	})
	ok := &DecideRequest{Method: "GET", Path: "/x"}
	_, err := svc.Decide(context.Background(), ok)
	_, batchErr := svc.DecideBatch(context.Background(), &DecideBatchRequest{Requests: []*DecideRequest{ok}})
	for _, err := range []error{err, batchErr} {
		if st := status.Convert(err); st.Code() != codes.Internal || strings.Contains(st.Message(), "secret") {
			t.Errorf("got %v; want INTERNAL without the cause", err)
		}
		if !strings.Contains(err.Error(), "secret") {
			t.Errorf("error %q lost its cause for the log", err)
		}
	}
}

func TestStatusError(t *testing.T) {
	secret := errors.New("open /etc/redirectd/secret: permission denied")
	for _, tt := range []struct {
		name     string
		err      error
		code     codes.Code
		message  string
		hideText string
	}{
		{"request error keeps its field", fmt.Errorf("decide: %w", &decision.RequestError{Field: "path", Message: "must start with /"}),
			codes.InvalidArgument, "path: must start with /", ""},
		{"rules error", &decision.RulesError{Problems: []decision.Problem{{File: "r.yaml", Line: 3, Field: "to", Message: "required"}}},
			codes.InvalidArgument, "r.yaml:3: to: required", ""},
		{"deliberate status passes", status.Error(codes.NotFound, "rule \"x\" not found"), codes.NotFound, "rule \"x\" not found", ""},
		{"cancelled", fmt.Errorf("decide: %w", context.Canceled), codes.Canceled, "request canceled", ""},
		{"anything else is internal, without its text", fmt.Errorf("load: %w", secret), codes.Internal, "internal error; the server log has the details", "secret"},
		{"a wrapped status is internal too", fmt.Errorf("via %s: %w", "/etc/secret", status.Error(codes.NotFound, "x")), codes.Internal, "internal error; the server log has the details", "secret"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := status.Convert(statusError(tt.err))
			if got.Code() != tt.code || got.Message() != tt.message {
				t.Errorf("statusError(%v) = %v %q, want %v %q", tt.err, got.Code(), got.Message(), tt.code, tt.message)
			}
			if tt.hideText != "" && strings.Contains(got.Message(), tt.hideText) {
				t.Errorf("internal text %q leaked: %q", tt.hideText, got.Message())
			}
		})
	}
}
