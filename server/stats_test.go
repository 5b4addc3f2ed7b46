package server

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/google/go-cmp/cmp"

	"github.com/redirectd/redirectd/decision"
	"github.com/redirectd/redirectd/decision/rulegen"
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
	e := NewEngine(decision.NewStore(decision.Options{}), now)
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

// buildIndex builds an index of exact rules /<id> -> /to/<id>, in the
// given order.
func buildIndex(t testing.TB, ids ...string) *decision.Index {
	t.Helper()
	rules := make([]decision.Rule, len(ids))
	for i, id := range ids {
		rules[i] = decision.Rule{ID: id, Path: "/" + id, To: "/to/" + id}
	}
	ix, _, err := decision.Build(rules, decision.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return ix
}

// decide returns the decision ix makes for /<id>, as the observer sees it.
func decide(t *testing.T, ix *decision.Index, id string) *decision.Decision {
	t.Helper()
	d, err := ix.Decide(&decision.Request{Method: "GET", Host: "example.com", Target: "/" + id}, time.Unix(0, 0))
	if err != nil || !d.Redirect || d.RuleID != id {
		t.Fatalf("Decide(/%s) = rule %q, redirect %v, %v; want rule %s", id, d.RuleID, d.Redirect, err, id)
	}
	return &d
}

func TestHitsAcrossReload(t *testing.T) {
	at := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	before := buildIndex(t, "a", "b", "c", "d")
	// a moves from 0 to 3, c from 2 to 1, b is removed, e is new; d's old
	// position 3 now holds a, and b's old position 1 holds c.
	after := buildIndex(t, "d", "c", "e", "a")

	for _, tc := range []struct {
		name string
		// stale are decisions made by the old index and counted after
		// the reload (they raced with it).
		stale []string
		want  []RuleHits
	}{
		{"carried by id", nil, []RuleHits{
			{RuleID: "a", Hits: 2, LastHit: at},
			{RuleID: "c", Hits: 1, LastHit: at},
			{RuleID: "d", Hits: 0},
			{RuleID: "e", Hits: 0},
		}},
		{"stale decisions find their rule", []string{"a", "c"}, []RuleHits{
			{RuleID: "a", Hits: 3, LastHit: at},
			{RuleID: "c", Hits: 2, LastHit: at},
			{RuleID: "d", Hits: 0},
			{RuleID: "e", Hits: 0},
		}},
		{"stale decision of a removed rule dropped", []string{"b"}, []RuleHits{
			{RuleID: "a", Hits: 2, LastHit: at},
			{RuleID: "c", Hits: 1, LastHit: at}, // b's old position: not credited
			{RuleID: "d", Hits: 0},
			{RuleID: "e", Hits: 0},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := NewHits()
			h.track(before)
			var stale []*decision.Decision
			for _, id := range tc.stale {
				stale = append(stale, decide(t, before, id))
			}
			for _, id := range []string{"a", "a", "b", "c"} {
				d := decide(t, before, id)
				h.hit(d.RuleID, at)
			}
			h.track(after)
			for _, d := range stale {
				h.hit(d.RuleID, at)
			}
			got, err := h.Get(nil)
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("hits (-want +got):\n%s", d)
			}
			_, err = h.Get([]string{"a", "b"})
			if !errors.Is(err, ErrRuleNotFound) || !strings.Contains(err.Error(), `"b"`) {
				t.Errorf(`Get(a, b) after b was removed: error %v, want one naming "b"`, err)
			}
		})
	}
}

// TestHitsOwnTheirIDs: a decision's rule id points into its rule set's
// string arena; the counters and the per-minute series keep copies, so a
// set that has been replaced is not kept alive by the rules hit in it.
func TestHitsOwnTheirIDs(t *testing.T) {
	now := func() time.Time { return time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC) }
	st := newTestStore(t, "", now)
	if err := st.LoadBytes("stats.yaml", []byte(statsRules)); err != nil {
		t.Fatal(err)
	}
	d, err := st.Engine.Decide(&decision.Request{Method: "GET", Host: "example.com", Target: "/old"})
	if err != nil || !d.Redirect {
		t.Fatalf("Decide(/old) = %+v, %v; want a redirect", d, err)
	}
	shares := func(key string) bool { return unsafe.StringData(key) == unsafe.StringData(d.RuleID) }
	for i := range st.Hits.shards {
		for key := range st.Hits.shards[i].rules {
			if key == d.RuleID && shares(key) {
				t.Errorf("the hit counter of %q is keyed by the rule set's own string", key)
			}
		}
	}
	for i := range st.Hits.recent.shards {
		s := &st.Hits.recent.shards[i]
		for j, key := range s.ids {
			if s.last[j] != 0 && key == d.RuleID && shares(key) {
				t.Errorf("the per-minute series of %q is keyed by the rule set's own string", key)
			}
		}
	}
}

func TestHitsBeforeFirstSet(t *testing.T) {
	h := NewHits()
	h.hit("a", time.Now()) // must not panic
	got, err := h.Get(nil)
	if err != nil || len(got) != 0 {
		t.Errorf("Get(nil) = %v, %v; want none", got, err)
	}
	if _, err := h.Get([]string{"a"}); !errors.Is(err, ErrRuleNotFound) {
		t.Errorf("Get(a) = %v, want ErrRuleNotFound", err)
	}
}

// TestHitsDuringTrack races decisions from both indexes with reloads that
// swap between them (run it under -race). Hits racing with a reload may
// be lost, but none may land on a rule that made no decision.
func TestHitsDuringTrack(t *testing.T) {
	at := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	one := buildIndex(t, "a", "b", "c", "d")
	two := buildIndex(t, "d", "c", "e", "a", "b")
	decisions := []*decision.Decision{decide(t, one, "a"), decide(t, one, "c"), decide(t, two, "a"), decide(t, two, "c")}
	h := NewHits()
	h.track(one)
	const workers, perWorker = 2, 2000
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWorker {
				d := decisions[(w+i)%len(decisions)]
				h.hit(d.RuleID, at)
			}
		}()
	}
	for i := range 200 {
		if i%2 == 0 {
			h.track(two)
		} else {
			h.track(one)
		}
	}
	wg.Wait()
	h.track(two)
	// One hit each after the race, so each is known to count at least 1.
	h.hit("a", at)
	h.hit("c", at)
	got, err := h.Get(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, rh := range got {
		switch rh.RuleID {
		case "a", "c":
			if rh.Hits < 1 || rh.Hits > workers*perWorker/2+1 {
				t.Errorf("%s: %d hits, want 1 to %d", rh.RuleID, rh.Hits, workers*perWorker/2+1)
			}
		default:
			if rh.Hits != 0 {
				t.Errorf("%s: %d hits, want 0: it made no decision", rh.RuleID, rh.Hits)
			}
		}
	}
}

// BenchmarkHitsTrack measures applying a rule set's counters at 100k and
// 1M generated rules: the first set, and reloads after which every rule
// or one in a thousand was hit, with positions kept (same file) or all
// moved by one (a rule inserted at the top): the worst case.
//
//	go test -run '^$' -bench HitsTrack -benchtime 1x -count 3 ./server/
func BenchmarkHitsTrack(b *testing.B) {
	at := time.Now()
	for _, n := range []int{100_000, 1_000_000} {
		rules := rulegen.Rules(rulegen.Config{N: n, Hosts: 20, Seed: 1})
		kept, _, err := decision.Build(rules, decision.Options{})
		if err != nil {
			b.Fatal(err)
		}
		// One fresh rule first moves every other rule by one position.
		moved, _, err := decision.Build(append([]decision.Rule{{ID: "inserted", Path: "/inserted", To: "/x"}}, rules...), decision.Options{})
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("first/%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for range b.N {
				NewHits().track(kept)
			}
		})
		for _, tc := range []struct {
			name  string
			every int // hit one rule in every
			next  *decision.Index
		}{
			{"all-hit-kept", 1, kept},
			{"all-hit-moved", 1, moved},
			{"0.1%-hit-moved", 1000, moved},
		} {
			b.Run(fmt.Sprintf("reload-%s/%d", tc.name, n), func(b *testing.B) {
				b.ReportAllocs()
				for range b.N {
					b.StopTimer()
					h := NewHits()
					h.track(kept)
					for pos := 0; pos < n; pos += tc.every {
						h.hit(rules[pos].ID, at)
					}
					b.StartTimer()
					h.track(tc.next)
				}
			})
		}
	}
}
