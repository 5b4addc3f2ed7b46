package server

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/prototext"

	"github.com/redirectd/redirectd/decision"
	"github.com/redirectd/redirectd/decision/rulegen"
	redirectv1 "github.com/redirectd/redirectd/proto/redirect/v1"
)

func TestMetricsExposition(t *testing.T) {
	clock := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	st := loadedStore(t, func() time.Time { return clock })

	for _, req := range []decision.Request{
		{Method: "GET", Target: "/old"},                                     // temporary: 307
		{Method: "GET", Target: "/old", Intent: decision.IntentPermanent},   // 301
		{Method: "POST", Target: "/old", Intent: decision.IntentPermanent},  // 308
		{Method: "GET", Target: "/docs/a", Intent: decision.IntentSeeOther}, // 303
		{Method: "GET", Target: "/nothing"},                                 // pass
		{Method: "GET", Target: "no-slash"},                                 // error
	} {
		st.Engine.Decide(&req)
	}
	// A failed reload keeps version 1 serving and is counted.
	if err := os.WriteFile(st.Path, []byte("rules: [\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Reload(); err == nil {
		t.Fatal("Reload of a corrupt file: want an error")
	}

	rec := httptest.NewRecorder()
	st.Metrics.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	exposition := string(body)
	for _, line := range []string{
		`redirectd_decisions_total{result="redirect",status="307"} 1`,
		`redirectd_decisions_total{result="redirect",status="301"} 1`,
		`redirectd_decisions_total{result="redirect",status="308"} 1`,
		`redirectd_decisions_total{result="redirect",status="303"} 1`,
		`redirectd_decisions_total{result="redirect",status="302"} 0`,
		`redirectd_decisions_total{result="pass",status="none"} 1`,
		`redirectd_decisions_total{result="error",status="none"} 1`,
		`redirectd_decision_duration_seconds_count 6`,
		`redirectd_decision_duration_seconds_bucket{le="1e-06"}`,
		`redirectd_decision_duration_seconds_bucket{le="+Inf"} 6`,
		`redirectd_rules_loaded{kind="exact"} 2`,
		`redirectd_rules_loaded{kind="prefix"} 1`,
		`redirectd_rules_loaded{kind="pattern"} 0`,
		`redirectd_rules_loaded{kind="regex"} 0`,
		`redirectd_reloads_total{result="ok"} 1`,
		`redirectd_reloads_total{result="error"} 1`,
		`redirectd_rules_version 1`,
		fmt.Sprintf(`redirectd_last_reload_timestamp_seconds %g`, float64(clock.Unix())),
		`redirectd_rules_warnings 0`,
		`# TYPE redirectd_decision_duration_seconds histogram`,
		`go_goroutines`,
	} {
		if !hasLine(exposition, line) {
			t.Errorf("/metrics lacks %q", line)
		}
	}
	if t.Failed() {
		t.Logf("exposition:\n%s", exposition)
	}

	st.Metrics.PassedUnparsable("envoy")
	rec = httptest.NewRecorder()
	st.Metrics.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if !hasLine(rec.Body.String(), `redirectd_unparsable_requests_total{adapter="envoy"} 1`) {
		t.Error("/metrics lacks the unparsable request counter")
	}
}

// hasLine reports whether the exposition has the line want, or a line
// that continues want with a space (its value) or labels.
func hasLine(exposition, want string) bool {
	for _, l := range strings.Split(exposition, "\n") {
		if rest, ok := strings.CutPrefix(l, want); ok && (rest == "" || rest[0] == ' ' || rest[0] == '{') {
			return true
		}
	}
	return false
}

// BenchmarkDecisionObserver is the cost metrics and hit counts add to a
// decision: Engine.Decide over 100k generated rules on all cores, without
// an observer (the baseline) and with the daemon's (histogram, counter,
// hit count), in the same run:
//
//	go test -run '^$' -bench DecisionObserver -count 5 ./server/
func BenchmarkDecisionObserver(b *testing.B) {
	rules := rulegen.Rules(rulegen.Config{N: 100_000, Hosts: 20, Seed: 1})
	reqs := rulegen.Requests(rules, rulegen.RequestConfig{N: 1 << 16, Hit: 0.8, Seed: 2})
	st := &RuleStore{Engine: NewEngine(decision.NewStore(decision.Options{}), time.Now), Log: testLogger(), Now: time.Now}
	if err := st.LoadBytes("bench.yaml", decision.MarshalRules(rules)); err != nil {
		b.Fatal(err)
	}
	hits := NewHits()
	hits.track(st.Engine.Current().Index)
	for _, tc := range []struct {
		name string
		o    *DecisionObserver
	}{
		{"none", nil},
		{"metrics+hits", &DecisionObserver{Metrics: NewMetrics(), Hits: hits}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			e := NewEngine(st.Engine.Store(), time.Now)
			if tc.o != nil {
				e.SetObserver(tc.o.Observe)
			}
			var next atomic.Uint64
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				i := next.Add(1 << 12)
				for pb.Next() {
					req := reqs[i%uint64(len(reqs))]
					i++
					e.Decide(&req)
				}
			})
		})
	}
}

func TestDecisionLogSample(t *testing.T) {
	for _, tc := range []struct {
		sample float64
		lines  int
	}{
		{0, 0},
		{1, 2},
	} {
		var buf logBuffer
		o := &DecisionObserver{Log: slog.New(slog.NewJSONHandler(&buf, nil)), LogSample: tc.sample}
		at := time.Now()
		o.Observe(&decision.Request{Method: "GET", Host: "example.com", Target: "/old"}, &decision.Decision{Redirect: true, Status: 308, RuleID: "moved", Location: "/new"}, nil, at, time.Microsecond)
		o.Observe(&decision.Request{Method: "GET", Target: "/x"}, &decision.Decision{}, nil, at, time.Microsecond)
		got := strings.Count(buf.String(), `"msg":"decision"`)
		if got != tc.lines {
			t.Errorf("sample %v: %d decision lines, want %d:\n%s", tc.sample, got, tc.lines, buf.String())
		}
		if tc.lines > 0 && !strings.Contains(buf.String(), `"rule":"moved","status":308,"location":"/new"`) {
			t.Errorf("sample %v: the redirect's line lacks rule, status and location:\n%s", tc.sample, buf.String())
		}
	}
}

// TestSelfRedirectMetric: a decision whose rule would have sent the
// request to its own URL passes and is counted, so a loop the load check
// could not see (here: behind a header condition) shows on a dashboard.
func TestSelfRedirectMetric(t *testing.T) {
	const rules = `rules:
  - {id: loop, path: "/h/:x", match: pattern, to: "/h/:x", headers: {x-a: "1"}}
`
	st := newTestStore(t, writeRules(t, t.TempDir(), "rules.yaml", rules), time.Now)
	if err := st.Load(); err != nil {
		t.Fatal(err)
	}
	for _, req := range []decision.Request{
		{Method: "GET", Target: "/h/a", Headers: map[string]string{"x-a": "1"}}, // the loop: passed, counted
		{Method: "GET", Target: "/h/a"},                                         // the rule does not apply
	} {
		if d, err := st.Engine.Decide(&req); err != nil || d.Redirect {
			t.Fatalf("%s: redirect %v, error %v; want a pass", req.Target, d.Redirect, err)
		}
	}
	rec := httptest.NewRecorder()
	st.Metrics.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	for _, line := range []string{`redirectd_self_redirects_total 1`, `redirectd_decisions_total{result="pass",status="none"} 2`} {
		if !hasLine(rec.Body.String(), line) {
			t.Errorf("/metrics lacks %q", line)
		}
	}
}

// TestShadowDecisions: a shadow rule that would have answered is counted
// (metric and hit statistics) and logged with its answer in every adapter
// (gRPC Decide, Envoy Check, forward-auth), while the request is decided
// as if the rule were absent; explain shows it (README "Shadow rules").
func TestShadowDecisions(t *testing.T) {
	const rules = `rules:
  - {id: try-v2, path: /docs/v2, to: /v2, intent: permanent, mode: shadow}
  - {id: docs, path: /docs, match: prefix, to: https://docs.example.com}
`
	var logs logBuffer
	e := NewEngine(decision.NewStore(decision.Options{}), time.Now)
	m, h := NewMetrics(), NewHits()
	e.SetObserver((&DecisionObserver{Metrics: m, Hits: h, Log: slog.New(slog.NewJSONHandler(&logs, nil))}).Observe)
	st := &RuleStore{Engine: e, Log: testLogger(), Metrics: m, Hits: h, Now: time.Now}
	if err := st.LoadBytes("rules.yaml", []byte(rules)); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	resp, err := NewDecisionService(e).Decide(ctx, &redirectv1.DecideRequest{Method: "GET", Host: "example.com", Path: "/docs/v2", Explain: true})
	if err != nil || resp.GetRuleId() != "docs" || resp.GetLocation() != "https://docs.example.com/v2" {
		t.Fatalf("Decide = %v, %v; want docs' redirect to https://docs.example.com/v2", resp, err)
	}
	if !strings.Contains(prototext.Format(resp.GetExplanation()), "mode: shadow: would have redirected to /v2") {
		t.Errorf("explanation does not show the shadow rule:\n%s", prototext.Format(resp.GetExplanation()))
	}
	check, err := NewAuthorizationService(e, testLogger(), &passCount{}).Check(ctx, envoyCheck("GET", "example.com", "/docs/v2"))
	if err != nil || readAnswer(t, check).Status != 307 {
		t.Fatalf("Envoy Check = %v, %v; want docs' 307", check, err)
	}
	fa := serveForwardAuth(t, NewForwardAuthHandler(e, testLogger(), nil), caddyRequest("GET", "example.com", "/docs/v2"))
	if fa.Status != 307 || fa.Headers["Location"] != "https://docs.example.com/v2" {
		t.Fatalf("forward-auth = %+v; want docs' 307", fa)
	}
	// A request the shadow rule does not match counts nothing for it.
	if _, err := e.Decide(&decision.Request{Method: "GET", Target: "/docs/v1"}); err != nil {
		t.Fatal(err)
	}

	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	for _, line := range []string{
		`redirectd_shadow_decisions_total{rule_id="try-v2"} 3`,
		`redirectd_decisions_total{result="redirect",status="307"} 4`,
		`redirectd_decisions_total{result="redirect",status="301"} 0`,
	} {
		if !hasLine(rec.Body.String(), line) {
			t.Errorf("/metrics lacks %q", line)
		}
	}
	if s := h.Stats("try-v2"); s.Hits != 3 {
		t.Errorf("hit statistics of try-v2: %d hits, want 3", s.Hits)
	}
	if s := h.Stats("docs"); s.Hits != 4 {
		t.Errorf("hit statistics of docs: %d hits, want 4", s.Hits)
	}
	want := `"msg":"shadow decision","rule":"try-v2","method":"GET","host":"example.com","target":"/docs/v2","status":301,"location":"/v2","cache_control":"public, max-age=86400","decided":"307 https://docs.example.com/v2 by docs"`
	if n := strings.Count(logs.String(), want); n != 3 {
		t.Errorf("%d shadow decision lines with the answer, want 3:\n%s", n, logs.String())
	}
}

// TestShadowSeriesBounded: redirectd_shadow_decisions_total has at most
// maxShadowSeries rule_id values, the rest counted as "_other"; a series
// is deleted once its rule is no longer a shadow rule of the serving set,
// which frees its place.
func TestShadowSeriesBounded(t *testing.T) {
	m := NewMetrics()
	var rules []decision.Rule
	for i := range maxShadowSeries + 50 {
		id := fmt.Sprintf("s%d", i)
		m.shadows.inc(id)
		rules = append(rules, decision.Rule{ID: id, Path: "/" + id, To: "/x", Mode: decision.ModeShadow})
	}
	series := func() (n int, other string) {
		rec := httptest.NewRecorder()
		m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		for _, l := range strings.Split(rec.Body.String(), "\n") {
			if strings.HasPrefix(l, "redirectd_shadow_decisions_total{") {
				n++
				if strings.HasPrefix(l, `redirectd_shadow_decisions_total{rule_id="_other"}`) {
					other = l
				}
			}
		}
		return n, other
	}
	if n, other := series(); n != maxShadowSeries+1 || other != `redirectd_shadow_decisions_total{rule_id="_other"} 50` {
		t.Errorf("%d series, _other %q; want %d and 50 in _other", n, other, maxShadowSeries+1)
	}
	// s0 stays a shadow rule, s1 is enforced now, the others are gone.
	rules[1].Mode = decision.ModeEnforce
	ix, _, err := decision.Build(rules[:2], decision.Options{})
	if err != nil {
		t.Fatal(err)
	}
	m.shadows.prune(ix)
	m.shadows.inc("new")
	if n, _ := series(); n != 3 {
		t.Errorf("%d series after the set changed, want 3 (s0, _other, new)", n)
	}
	if len(m.shadows.byID) != 2 {
		t.Errorf("own series for %d rules, want 2 (s0, new)", len(m.shadows.byID))
	}
}

// TestShadowLogBudget: at most shadowLogPerSecond shadow decision lines a
// second, and a new second starts afresh.
func TestShadowLogBudget(t *testing.T) {
	var b logBudget
	at := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	taken := 0
	for i := range 3 * shadowLogPerSecond {
		if b.take(at.Add(time.Duration(i) * time.Millisecond)) {
			taken++
		}
	}
	if taken != shadowLogPerSecond {
		t.Errorf("%d lines in one second, want %d", taken, shadowLogPerSecond)
	}
	if !b.take(at.Add(time.Second)) {
		t.Error("the next second has no budget")
	}
}
