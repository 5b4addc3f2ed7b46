package server

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/redirectd/redirectd/decision"
)

// testLogger logs to stderr under -v, and nowhere otherwise.
func testLogger() *slog.Logger {
	var w io.Writer = io.Discard
	if testing.Verbose() {
		w = os.Stderr
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// newTestStore wires a RuleStore as the daemon does: engine, metrics, hit
// counts and the decision observer. path "" means built-in rules.
func newTestStore(t *testing.T, path string, now func() time.Time) *RuleStore {
	t.Helper()
	e := NewEngine(now)
	m := NewMetrics()
	h := NewHits()
	e.SetObserver((&DecisionObserver{Metrics: m, Hits: h}).Observe)
	return &RuleStore{Engine: e, Path: path, Log: testLogger(), Metrics: m, Hits: h, Now: now}
}

// writeRules writes a rules file into dir and returns its path.
func writeRules(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

const statsRules = `rules:
  - id: docs
    path: /docs
    match: prefix
    to: https://docs.example.com
  - id: old
    path: /old
    to: /new
  - id: never
    path: /never
    to: /gone
`

func TestHitsCountDecisions(t *testing.T) {
	clock := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	now := func() time.Time { return clock }
	st := newTestStore(t, "", now)
	if err := st.LoadBytes("stats.yaml", []byte(statsRules)); err != nil {
		t.Fatal(err)
	}
	for _, target := range []string{"/docs", "/docs/a", "/docs/b/c", "/old", "/nothing-here"} {
		if _, err := st.Engine.Decide(&decision.Request{Method: "GET", Host: "example.com", Target: target}); err != nil {
			t.Fatalf("Decide(%s): %v", target, err)
		}
	}
	got, err := st.Hits.Get(nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []RuleHits{
		{RuleID: "docs", Hits: 3, LastHit: clock},
		{RuleID: "never", Hits: 0},
		{RuleID: "old", Hits: 1, LastHit: clock},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("hits (-want +got):\n%s", d)
	}

	// A reload keeps the counters of rules that stay, drops removed ones
	// and starts new ones at zero.
	later := clock.Add(time.Hour)
	clock = later
	if err := st.LoadBytes("stats.yaml", []byte(`rules:
  - id: docs
    path: /docs
    match: prefix
    to: https://docs.example.com
  - id: fresh
    path: /fresh
    to: /new
`)); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Engine.Decide(&decision.Request{Method: "GET", Target: "/docs/x"}); err != nil {
		t.Fatal(err)
	}
	got, err = st.Hits.Get(nil)
	if err != nil {
		t.Fatal(err)
	}
	want = []RuleHits{
		{RuleID: "docs", Hits: 4, LastHit: later},
		{RuleID: "fresh", Hits: 0},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("hits after reload (-want +got):\n%s", d)
	}

	if _, err := st.Hits.Get([]string{"old"}); err == nil {
		t.Error(`Get("old") after the rule was removed: want an error, got none`)
	}
}
