package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/redirectd/redirectd/decision"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	redirectv1 "github.com/redirectd/redirectd/proto/redirect/v1"
)

// versionRules is a rules file whose one rule redirects /old to
// /new-<tag>, so the answer tells which file content is serving.
func versionRules(tag string) string {
	return fmt.Sprintf("rules:\n  - id: moved\n    path: /old\n    to: /new-%s\n", tag)
}

// prober calls Decide on /old in a loop, as traffic would during a
// reload, and counts every call that failed or did not redirect.
type prober struct {
	calls, failures atomic.Int64
	mu              sync.Mutex
	firstFailure    string
	stop            context.CancelFunc
	done            chan struct{}
}

func startProber(t *testing.T, c redirectv1.DecisionServiceClient) *prober {
	ctx, cancel := context.WithCancel(context.Background())
	p := &prober{stop: cancel, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		for ctx.Err() == nil {
			resp, err := c.Decide(ctx, &redirectv1.DecideRequest{Method: "GET", Host: "example.com", Path: "/old"})
			if ctx.Err() != nil {
				return
			}
			p.calls.Add(1)
			if err != nil || !resp.GetRedirect() || !strings.HasPrefix(resp.GetLocation(), "/new-") {
				p.failures.Add(1)
				p.mu.Lock()
				if p.firstFailure == "" {
					p.firstFailure = fmt.Sprintf("answer %v, error %v", resp, err)
				}
				p.mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() {
		p.stop()
		<-p.done
		if p.calls.Load() == 0 {
			t.Error("the prober made no call")
		}
		if f := p.failures.Load(); f > 0 {
			t.Errorf("%d of %d Decide calls failed during reloads; first: %s", f, p.calls.Load(), p.firstFailure)
		}
	})
	return p
}

// waitForLocation polls Decide until /old redirects to want.
func waitForLocation(t *testing.T, c redirectv1.DecisionServiceClient, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	last := ""
	for time.Now().Before(deadline) {
		resp, err := c.Decide(context.Background(), &redirectv1.DecideRequest{Method: "GET", Host: "example.com", Path: "/old"})
		if err == nil && resp.GetLocation() == want {
			return
		}
		last = fmt.Sprintf("%v %v", resp.GetLocation(), err)
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("/old never redirected to %s; last answer %s", want, last)
}

func counterValue(t *testing.T, c interface{ Write(*dto.Metric) error }) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// reloadErrors is redirectd_reloads_total{result="error"}.
func reloadErrors(t *testing.T, s *Server) float64 {
	return counterValue(t, s.store.Metrics.reloads.WithLabelValues("error"))
}

// TestReloadUnderTraffic changes the rules file of a running daemon the
// ways people and tools do, checking after each step what Decide answers,
// while another client keeps deciding: no call may fail.
func TestReloadUnderTraffic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "rules.yaml")
	if err := os.WriteFile(path, []byte(versionRules("v1")), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig()
	cfg.Rules = path
	cfg.ReloadDebounce = 100 * time.Millisecond
	r := start(t, cfg)
	c := redirectv1.NewDecisionServiceClient(dial(t, r.GRPCAddr()))
	waitForLocation(t, c, "/new-v1")
	startProber(t, c)

	steps := []struct {
		name   string
		change func(t *testing.T)
		want   string // what /old redirects to afterwards
		errors float64
	}{
		{"edit in place (truncate and write)", func(t *testing.T) {
			f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.WriteString(versionRules("v2")); err != nil {
				t.Fatal(err)
			}
			f.Close()
		}, "/new-v2", 0},
		{"rename a temp file over it (editors, atomic writers)", func(t *testing.T) {
			tmp := filepath.Join(dir, ".rules.yaml.swp")
			if err := os.WriteFile(tmp, []byte(versionRules("v3")), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(tmp, path); err != nil {
				t.Fatal(err)
			}
		}, "/new-v3", 0},
		{"corrupt it: the last good set keeps serving", func(t *testing.T) {
			if err := os.WriteFile(path, []byte("rules:\n  - id: moved\n    path: /old\n    to: [\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, "/new-v3", 1},
		{"an invalid rule: rejected whole", func(t *testing.T) {
			if err := os.WriteFile(path, []byte(versionRules("v4")+"    status: 404\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, "/new-v3", 2},
		{"empty it (a truncate caught mid-write): refused", func(t *testing.T) {
			if err := os.WriteFile(path, nil, 0o644); err != nil {
				t.Fatal(err)
			}
		}, "/new-v3", 3},
		{"fix it", func(t *testing.T) {
			if err := os.WriteFile(path, []byte(versionRules("v5")), 0o644); err != nil {
				t.Fatal(err)
			}
		}, "/new-v5", 3},
	}
	for _, step := range steps {
		t.Run(step.name, func(t *testing.T) {
			step.change(t)
			if step.errors > reloadErrors(t, r.Server) {
				deadline := time.Now().Add(10 * time.Second)
				for reloadErrors(t, r.Server) < step.errors && time.Now().Before(deadline) {
					time.Sleep(10 * time.Millisecond)
				}
			}
			waitForLocation(t, c, step.want)
			if got := reloadErrors(t, r.Server); got != step.errors {
				t.Errorf("reloads_total{result=\"error\"} = %v, want %v\nlog:\n%s", got, step.errors, r.logs)
			}
		})
	}
	// The same counts are served on the HTTP listener's /metrics.
	code, body := get(t, "http://"+r.HTTPAddr()+"/metrics")
	for _, want := range []string{`redirectd_reloads_total{result="error"} 3`, `redirectd_reloads_total{result="ok"} 4`, `redirectd_rules_version 4`} {
		if code != 200 || !hasLine(body, want) {
			t.Errorf("GET /metrics: %d, no line %s", code, want)
		}
	}
	// Each rejected file is logged with file:line and what was wrong.
	for _, want := range []string{`:\d+: `, `:\d+: rule \\"moved\\": status: 404 is not a redirect status`} {
		if !regexp.MustCompile(regexp.QuoteMeta(path) + want).MatchString(r.logs.String()) {
			t.Errorf("the log has no line matching %s%s:\n%s", path, want, r.logs)
		}
	}
}

// TestReloadKubernetesConfigMap swaps a ConfigMap volume as the kubelet
// does: the file is a symlink through "..data", itself a symlink to a
// timestamped directory; an update writes a new directory and renames a
// new "..data" link over the old one.
func TestReloadKubernetesConfigMap(t *testing.T) {
	dir := t.TempDir()
	publish := func(t *testing.T, stamp, content string) {
		t.Helper()
		if err := os.Mkdir(filepath.Join(dir, stamp), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, stamp, "rules.yaml"), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(stamp, filepath.Join(dir, "..data_tmp")); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
			t.Fatal(err)
		}
	}
	publish(t, "..2026_11_24_10_00_00.000000001", versionRules("v1"))
	path := filepath.Join(dir, "rules.yaml")
	if err := os.Symlink(filepath.Join("..data", "rules.yaml"), path); err != nil {
		t.Fatal(err)
	}

	cfg := testConfig()
	cfg.Rules = path
	cfg.ReloadDebounce = 20 * time.Millisecond
	r := start(t, cfg)
	c := redirectv1.NewDecisionServiceClient(dial(t, r.GRPCAddr()))
	waitForLocation(t, c, "/new-v1")
	startProber(t, c)

	for i, tag := range []string{"v2", "v3"} {
		old := ""
		if target, err := os.Readlink(filepath.Join(dir, "..data")); err == nil {
			old = target
		}
		publish(t, fmt.Sprintf("..2026_11_24_10_0%d_00.000000001", i+1), versionRules(tag))
		if err := os.RemoveAll(filepath.Join(dir, old)); err != nil {
			t.Fatal(err)
		}
		waitForLocation(t, c, "/new-"+tag)
	}
	if v := r.Engine().Current().Version.Number; v != 3 {
		t.Errorf("version after two ConfigMap updates = %d, want 3 (one per update)", v)
	}
}

// TestAdminWriteNotAppliedTwice: the watcher sees the rules file that an
// admin write has just replaced, and must recognise it as already
// serving rather than apply it again as a new version.
func TestAdminWriteNotAppliedTwice(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(path, []byte(versionRules("v1")), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig()
	cfg.Rules = path
	cfg.ReloadDebounce = 20 * time.Millisecond
	r := start(t, cfg)
	rs := redirectv1.NewRuleServiceClient(dial(t, r.AdminAddr()))
	resp, err := rs.PutRule(context.Background(), &redirectv1.PutRuleRequest{Rule: &redirectv1.Rule{Id: "moved", Path: "/old", To: "/new-v2"}})
	if err != nil {
		t.Fatal(err)
	}
	// Well past the debounce: the watcher has seen the write by now.
	time.Sleep(20 * cfg.ReloadDebounce)
	if got := r.Engine().Current().Version.Number; got != resp.GetVersion().GetNumber() {
		t.Errorf("serving version %d after the watcher saw the write, want %d (the write's own)", got, resp.GetVersion().GetNumber())
	}
	if got := counterValue(t, r.store.Metrics.reloads.WithLabelValues("ok")); got != 2 {
		t.Errorf(`reloads_total{result="ok"} = %v, want 2 (start-up load and the write)`, got)
	}
}

// TestReloadSkipsAStableFile checks when Reload trusts stat over content:
// a file left alone for stableAge is not read again while its file, size
// and mtime stay; a recently modified one is always read, because a
// second write within the file system's timestamp granularity can keep
// its mtime (here forced with Chtimes).
func TestReloadSkipsAStableFile(t *testing.T) {
	tests := []struct {
		name        string
		age         time.Duration // of the file's mtime when first loaded
		wantApplied bool          // the same-size, same-mtime rewrite
	}{
		{"stable file: stat stands for content", time.Hour, false},
		{"recent file: content is compared", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeRules(t, t.TempDir(), "rules.yaml", versionRules("v1"))
			mtime := time.Now().Add(-tt.age)
			if err := os.Chtimes(path, mtime, mtime); err != nil {
				t.Fatal(err)
			}
			st := newTestStore(t, path, time.Now)
			if err := st.Load(); err != nil {
				t.Fatal(err)
			}
			// Same size, other content, same mtime.
			if err := os.WriteFile(path, []byte(versionRules("v2")), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Chtimes(path, mtime, mtime); err != nil {
				t.Fatal(err)
			}
			applied, err := st.Reload()
			if err != nil || applied != tt.wantApplied {
				t.Fatalf("Reload = %v, %v; want %v", applied, err, tt.wantApplied)
			}
			// Any real change of mtime is always read.
			later := mtime.Add(time.Second)
			if err := os.Chtimes(path, later, later); err != nil {
				t.Fatal(err)
			}
			if _, err := st.Reload(); err != nil {
				t.Fatal(err)
			}
			if to, _ := st.Engine.Current().Index.Rule("moved"); to.To != "/new-v2" {
				t.Errorf("after the mtime moved, serving %q, want /new-v2", to.To)
			}
		})
	}
}

// nRules is a rules file of n rules /p/i → /q/i.
func nRules(n int) string {
	var b strings.Builder
	b.WriteString("rules:\n")
	for i := range n {
		fmt.Fprintf(&b, "  - {id: r%d, path: /p/%d, to: /q/%d}\n", i, i, i)
	}
	return b.String()
}

// TestReloadMaxDrop: a reload that would remove more than MaxDrop of the
// serving rules (a file caught half-written) is refused, counted and not
// retried until the file changes; the serving set stays.
func TestReloadMaxDrop(t *testing.T) {
	dir := t.TempDir()
	path := writeRules(t, dir, "rules.yaml", nRules(10))
	st := newTestStore(t, path, time.Now)
	st.MaxDrop = 0.5
	if err := st.Load(); err != nil {
		t.Fatal(err)
	}
	writeRules(t, dir, "rules.yaml", nRules(4)) // drops 6 of 10
	applied, err := st.Reload()
	if applied || err == nil || !strings.Contains(err.Error(), "would remove 6 of the 10 serving rules, more than --reload-max-drop 50%") {
		t.Fatalf("Reload of a file dropping 60%%: applied %v, error %v", applied, err)
	}
	if n := st.Engine.Current().Index.Len(); n != 10 {
		t.Errorf("serving %d rules after the refused reload, want 10", n)
	}
	if got := counterValue(t, st.Metrics.dropRefused); got != 1 {
		t.Errorf("redirectd_reload_max_drop_refusals_total = %v, want 1", got)
	}
	if applied, err := st.Reload(); applied || err != nil {
		t.Errorf("the same refused file again: applied %v, error %v; want it skipped", applied, err)
	}
	writeRules(t, dir, "rules.yaml", nRules(6)) // drops 4 of 10: within the limit
	if applied, err := st.Reload(); !applied || err != nil {
		t.Fatalf("Reload dropping 40%%: applied %v, error %v", applied, err)
	}
	st.MaxDrop = 1 // off
	writeRules(t, dir, "rules.yaml", nRules(1))
	if applied, err := st.Reload(); !applied || err != nil || st.Engine.Current().Index.Len() != 1 {
		t.Fatalf("with the check off: applied %v, error %v", applied, err)
	}
}

// TestLoadRemovesStaleTemps: the temp files an interrupted admin write
// left beside the rules file are removed at start; other files stay.
func TestLoadRemovesStaleTemps(t *testing.T) {
	dir := t.TempDir()
	path := writeRules(t, dir, "rules.yaml", nRules(2))
	stale := writeRules(t, dir, ".rules.yaml.tmp-4242", "rules: [half")
	other := writeRules(t, dir, ".other.yaml.tmp-1", "x")
	st := newTestStore(t, path, time.Now)
	if err := st.Load(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("%s is still there (%v)", stale, err)
	}
	if _, err := os.Stat(other); err != nil {
		t.Errorf("%s, not ours, was removed: %v", other, err)
	}
}

// TestReloadChangesInPlace: a reload of a file that differs from the
// serving set in one rule writes that rule alone; the others are the
// same base (an Index read before the reload still answers as before).
func TestReloadChangesInPlace(t *testing.T) {
	dir := t.TempDir()
	path := writeRules(t, dir, "rules.yaml", nRules(1000))
	st := newTestStore(t, path, time.Now)
	if err := st.Load(); err != nil {
		t.Fatal(err)
	}
	before := st.Engine.Current()
	writeRules(t, dir, "rules.yaml", strings.Replace(nRules(1000), "to: /q/7}", "to: /moved}", 1))
	if applied, err := st.Reload(); !applied || err != nil {
		t.Fatalf("Reload: applied %v, error %v", applied, err)
	}
	after := st.Engine.Current()
	if after.Version.Number != before.Version.Number+1 || after.Version.Hash == before.Version.Hash {
		t.Errorf("version %+v after %+v", after.Version, before.Version)
	}
	for _, tc := range []struct {
		ix   *Snapshot
		want string
	}{{before, "/q/7"}, {after, "/moved"}} {
		d, err := tc.ix.Index.Decide(&decision.Request{Method: "GET", Target: "/p/7"}, time.Now())
		if err != nil || d.Location != tc.want {
			t.Errorf("version %d: /p/7 → %q, %v; want %q", tc.ix.Version.Number, d.Location, err, tc.want)
		}
	}
}

// TestAdminWriteKeepsFormat: an admin write rewrites a JSON Lines file as
// JSON Lines (one object per line, as encoding/json reads it) and a YAML
// file as YAML.
func TestAdminWriteKeepsFormat(t *testing.T) {
	for _, name := range []string{"rules.jsonl", "rules.yaml"} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			content := nRules(3)
			if name == "rules.jsonl" {
				content = "{\"id\":\"r0\",\"path\":\"/p/0\",\"to\":\"/q/0\"}\n{\"id\":\"r1\",\"path\":\"/p/1\",\"to\":\"/q/1\"}\n"
			}
			path := writeRules(t, dir, name, content)
			st := newTestStore(t, path, time.Now)
			if err := st.Load(); err != nil {
				t.Fatal(err)
			}
			if _, _, err := st.Update(context.Background(), Precondition{}, Edit{Puts: []decision.Rule{{ID: "added", Path: "/added", To: "/x"}}}); err != nil {
				t.Fatal(err)
			}
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if name == "rules.jsonl" {
				lines := strings.Split(strings.TrimSpace(string(data)), "\n")
				for _, l := range lines {
					var obj map[string]any
					if err := json.Unmarshal([]byte(l), &obj); err != nil {
						t.Fatalf("line %q is not a JSON object: %v", l, err)
					}
				}
				if len(lines) != 3 || !strings.Contains(lines[2], `"added"`) {
					t.Errorf("file after the write:\n%s", data)
				}
				return
			}
			if !strings.HasPrefix(string(data), "rules:") || !strings.Contains(string(data), "added") {
				t.Errorf("file after the write:\n%s", data)
			}
		})
	}
}

// TestFirstLoadStreamsJSONL: the first load of a JSON Lines file reads it
// as it decodes (decision.Store.ReplaceFrom); the version's hash is still
// the file's SHA-256, so the reload after it sees the same content and
// applies nothing, and a blank file is refused as a read one is.
func TestFirstLoadStreamsJSONL(t *testing.T) {
	dir := t.TempDir()
	content := "# two rules\n{\"id\":\"r0\",\"path\":\"/p/0\",\"to\":\"/q/0\"}\n\n{\"id\":\"r1\",\"path\":\"/p/1\",\"to\":\"/q/1\"}\n"
	path := writeRules(t, dir, "rules.jsonl", content)
	st := newTestStore(t, path, time.Now)
	if err := st.Load(); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(content))
	if cur := st.Engine.Current(); cur.Version.Hash != hex.EncodeToString(sum[:]) || cur.Index.Len() != 2 {
		t.Errorf("version %+v with %d rules; want hash %x and 2 rules", cur.Version, cur.Index.Len(), sum)
	}
	if applied, err := st.Reload(); applied || err != nil {
		t.Errorf("reload of the same file: applied %v, error %v", applied, err)
	}

	for _, name := range []string{"rules.jsonl", "rules.yaml", "rules.json"} {
		blank := writeRules(t, t.TempDir(), name, " \n\n")
		err := newTestStore(t, blank, time.Now).Load()
		if err == nil || !strings.Contains(err.Error(), "is empty") {
			t.Errorf("blank %s: %v, want an error saying it is empty", name, err)
		}
	}
}

// TestAdminWriteKeepsHandEdits: a put or delete writes the whole rules
// file, so it must not overwrite an edit made to the file by hand that is
// not serving: one not reloaded yet is ABORTED (read again and retry), one
// the reload refused fails until the file is fixed. ApplyRules, which
// replaces the whole set, still does.
func TestAdminWriteKeepsHandEdits(t *testing.T) {
	path := writeRules(t, t.TempDir(), "rules.yaml", versionRules("v1"))
	st := newTestStore(t, path, time.Now)
	if err := st.Load(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	put := func(id string) error {
		_, _, err := st.Update(ctx, Precondition{}, Edit{Puts: []decision.Rule{{ID: id, Path: "/" + id, To: "/to-" + id}}})
		return err
	}
	if err := put("first"); err != nil {
		t.Fatalf("a put on the file as loaded: %v", err)
	}
	edit := func(content string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	holds := func(want string) {
		t.Helper()
		if got, _ := os.ReadFile(path); string(got) != want {
			t.Errorf("the rules file holds:\n%s\nwant the hand edit:\n%s", got, want)
		}
	}

	byHand := versionRules("by-hand")
	edit(byHand)
	if err := put("second"); !errors.Is(err, ErrVersionMismatch) || !strings.Contains(err.Error(), "not loaded yet") {
		t.Errorf("a put before the hand edit is reloaded: %v, want a version mismatch saying the change is not loaded yet", err)
	}
	holds(byHand)
	if _, err := st.Reload(); err != nil {
		t.Fatal(err)
	}
	if err := put("second"); err != nil {
		t.Fatalf("a put once the hand edit serves: %v", err)
	}
	if ix := st.Engine.Current().Index; !ix.Has("second") || ix.Len() != 2 {
		t.Errorf("serving %d rules after the put, want the hand edit's moved and second", ix.Len())
	}

	refused := "rules:\n  - id: moved\n    path: /old\n    to: /new\n    status: 404\n"
	edit(refused)
	if _, err := st.Reload(); err == nil {
		t.Fatal("a status 404 was loaded")
	}
	if err := put("third"); !errors.Is(err, ErrNotPersistable) || !strings.Contains(err.Error(), "refused") {
		t.Errorf("a put over a refused hand edit: %v, want a refusal naming the refused edit", err)
	}
	holds(refused)
	if _, _, err := st.Update(ctx, Precondition{}, Edit{Puts: []decision.Rule{{ID: "all", Path: "/all", To: "/new"}}, Whole: true}); err != nil {
		t.Errorf("ApplyRules over a refused hand edit: %v, want it to replace the set and the file", err)
	}
}
