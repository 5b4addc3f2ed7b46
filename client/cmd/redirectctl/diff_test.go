package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/redirectd/redirectd/client/accesslog"
	"github.com/redirectd/redirectd/decision"
	"github.com/redirectd/redirectd/decision/rulegen"
)

// diffNow fixes the clock of every diff test.
const diffNow = "2026-11-01T00:00:00Z"

// diffFixture is a generated rule set (OLD), a changed copy of it (NEW),
// requests for OLD, and what diff must report for each request.
type diffFixture struct {
	dir      string
	old, new string // rules files
	rules    []decision.Rule
	reqs     []decision.Request
	// want is the kind of change of each request (by index), as the edits
	// made to NEW imply it; requests not in it keep their answer.
	want map[int]string
}

// newDiffFixture generates nRules rules and nReqs requests for them, and
// makes NEW from OLD by edits whose effect is known: rules deleted
// (removed), switched from permanent to temporary (status changed), with
// a target moved under /v2 (target changed), with a new cache_max_age
// (cache changed), and one new rule for /favicon.ico (new redirect). All
// requests are https on www.example.com, which every log format can say.
func newDiffFixture(t testing.TB, nRules, nReqs int) *diffFixture {
	t.Helper()
	f := &diffFixture{dir: t.TempDir(), want: map[int]string{}}
	f.rules = rulegen.Rules(rulegen.Config{N: nRules, Hosts: 1, Seed: 7})
	f.reqs = rulegen.Requests(f.rules, rulegen.RequestConfig{N: nReqs, Hit: 0.8, Seed: 7})
	for i := range f.reqs {
		f.reqs[i].Scheme, f.reqs[i].Host = "https", rulegen.Host(0)
	}

	edited := map[string]string{}
	var next []decision.Rule
	for i, r := range f.rules {
		permanent := r.Intent == decision.IntentPermanent && (r.Status == 0 || r.Status == 301 || r.Status == 308)
		switch {
		case i%20 == 1:
			edited[r.ID] = "removed"
			continue
		case i%20 == 2 && permanent && r.Status == 0:
			r.Intent = decision.IntentTemporary
			edited[r.ID] = "statusChanged"
		case i%20 == 3:
			if host, path, ok := strings.Cut(strings.TrimPrefix(r.To, "https://"), "/"); ok && strings.HasPrefix(r.To, "https://") {
				r.To = "https://" + host + "/v2/" + path
			} else {
				r.To = "/v2" + r.To
			}
			edited[r.ID] = "targetChanged"
		case i%20 == 4 && permanent:
			var age time.Duration
			if r.CacheMaxAge != nil {
				age = *r.CacheMaxAge
			}
			r.CacheMaxAge = new(age + time.Hour)
			edited[r.ID] = "cacheChanged"
		}
		next = append(next, r)
	}
	next = append(next, decision.Rule{ID: "favicon", Path: "/favicon.ico", To: "/static/favicon.ico"})

	f.old = writeRulesForTest(t, f.dir, "old.jsonl", f.rules)
	f.new = writeRulesForTest(t, f.dir, "new.yaml", next)

	// The rule that answers each request in OLD says what must change.
	ix, _, err := decision.Build(f.rules, decision.Options{})
	if err != nil {
		t.Fatal(err)
	}
	now, _ := time.Parse(time.RFC3339, diffNow)
	for i := range f.reqs {
		d, err := ix.Decide(&f.reqs[i], now)
		if err != nil {
			t.Fatalf("request %d %+v: %v", i, f.reqs[i], err)
		}
		if kind, ok := edited[d.RuleID]; ok && d.Redirect {
			f.want[i] = kind
		} else if !d.Redirect && strings.HasPrefix(f.reqs[i].Target, "/favicon.ico") {
			f.want[i] = "newRedirect"
		}
	}
	kinds := map[string]int{}
	for _, k := range f.want {
		kinds[k]++
	}
	for _, k := range kindJSON {
		if kinds[k] == 0 {
			t.Fatalf("the fixture changes no request in the way %q; want every kind: %v", k, kinds)
		}
	}
	return f
}

func writeRulesForTest(t testing.TB, dir, name string, rules []decision.Rule) string {
	t.Helper()
	var b bytes.Buffer
	if err := decision.WriteRules(&b, decision.FormatOf(name), decision.RuleSeq(rules)); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// writeLog writes the requests in format f; bad lines are inserted before
// the requests at the given indexes. It returns the file and, for each
// request, its line number.
func (f *diffFixture) writeLog(t testing.TB, format accesslog.Format, bad map[int]string) (string, []int) {
	t.Helper()
	path := filepath.Join(f.dir, "requests."+format.String()+".log")
	file, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriter(file)
	lineOf := make([]int, len(f.reqs))
	line := 0
	var b []byte
	for i := range f.reqs {
		if text, ok := bad[i]; ok {
			w.WriteString(text + "\n")
			line++
		}
		w.Write(accesslog.Append(b[:0], format, &f.reqs[i], logStart))
		line++
		lineOf[i] = line
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := file.Close(); err != nil {
		t.Fatal(err)
	}
	return path, lineOf
}

// jsonDiff is diff --json's output read back.
type jsonDiff struct {
	changes map[int]string // line → kind
	summary jsonSummary
}

func readJSONDiff(t *testing.T, out string) jsonDiff {
	t.Helper()
	d := jsonDiff{changes: map[int]string{}}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	for _, l := range lines[:len(lines)-1] {
		var c jsonChange
		if err := json.Unmarshal([]byte(l), &c); err != nil {
			t.Fatalf("change %q: %v", l, err)
		}
		if _, dup := d.changes[c.Line]; dup {
			t.Errorf("line %d reported twice", c.Line)
		}
		d.changes[c.Line] = c.Kind
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &d.summary); err != nil {
		t.Fatalf("summary %q: %v", lines[len(lines)-1], err)
	}
	return d
}

// TestDiffEnvoyLog replays a generated Envoy access log with bad lines in
// it against a generated rule set and its edited copy: every changed
// request is reported once, at its line, under the kind its edit implies,
// and nothing else is.
func TestDiffEnvoyLog(t *testing.T) {
	f := newDiffFixture(t, 2000, 20000)
	bad := map[int]string{
		0:     "not a log line",
		500:   `[2026-11-01T00:00:00.000Z] "-" 400 - 0 0 1 - "-" "-" "-" "-" "-"`,
		1000:  `[2026-11-01T00:00:00.000Z] "G@T / HTTP/1.1" 400 - 0 0 1 - "-" "-" "-" "www.example.com" "-"`,
		19999: `[yesterday] "GET / HTTP/1.1" 200`,
	}
	log, lineOf := f.writeLog(t, accesslog.Envoy, bad)

	code, stdout, stderr := cli(t, "diff", f.old, f.new, "--requests", log, "--scheme", "https", "--now", diffNow, "--json", "--max-changes", "1000000")
	if code != 0 {
		t.Fatalf("exit %d\nstderr:\n%s", code, stderr)
	}
	got := readJSONDiff(t, stdout)
	want := map[int]string{}
	kinds := map[string]int{}
	for i, k := range f.want {
		want[lineOf[i]] = k
		kinds[k]++
	}
	if d := cmp.Diff(want, got.changes); d != "" {
		t.Errorf("changed lines (-want +got):\n%s", d)
	}
	s := got.summary.Summary
	if s.Format != "envoy" || s.Requests != len(f.reqs) || s.BadLines != len(bad) || s.Lines != len(f.reqs)+len(bad) || s.Changed != len(f.want) || s.Exceeds {
		t.Errorf("summary %+v; want envoy, %d requests, %d bad lines, %d changed", s, len(f.reqs), len(bad), len(f.want))
	}
	if d := cmp.Diff(kinds, s.Kinds); d != "" {
		t.Errorf("summary kinds (-want +got):\n%s", d)
	}
	// Bad lines: each with file:line and why, in the log's order.
	for _, w := range []string{
		log + ":1: want `[START_TIME]",
		fmt.Sprintf(`%s:%d: no request line ("-")`, log, lineOf[500]-1),
		fmt.Sprintf(`%s:%d: invalid request: method: not an HTTP method token (RFC 9110 section 5.6.2)`, log, lineOf[1000]-1),
		fmt.Sprintf(`%s:%d: start time "yesterday"`, log, lineOf[19999]-1),
	} {
		if !strings.Contains(stderr, w) {
			t.Errorf("stderr lacks %q:\n%s", w, stderr)
		}
	}
}

// TestDiffHumanOutput runs README "diff"'s example: the words people
// read, a request whose answer changes in each way, a bad line.
func TestDiffHumanOutput(t *testing.T) {
	const (
		oldRules = "testdata/rules.yaml"
		newRules = "testdata/rules-next.yaml"
		log      = "testdata/access.log"
	)
	code, stdout, stderr := cli(t, "diff", oldRules, newRules, "--requests", log, "--host", "example.com", "--scheme", "https", "--now", diffNow)
	if code != 1 {
		t.Errorf("exit %d, want 1 (changes beyond --max-changes 0)\nstderr:\n%s", code, stderr)
	}
	want := log + `:1: GET https://example.com/docs/intro
  target changed: 301 https://docs.example.com/intro (public, max-age=86400; rule docs-moved) → 301 https://docs.example.com/v2/intro (public, max-age=86400; rule docs-moved)
` + log + `:2: GET https://example.com/blog
  status changed: 307 /news (no-store; rule old-blog) → 301 /news (public, max-age=86400; rule old-blog)
` + log + `:3: GET https://example.com/pricing
  new redirect: pass → 307 /plans (no-store; rule pricing)
` + log + `:5: POST https://example.com/signup
  removed: 303 /register (no-store; rule signup) → pass
` + log + " (combined log): 6 requests decided against " + oldRules + " and " + newRules + ", 1 bad line\n" +
		"4 answers changed: 1 new redirect, 1 removed, 1 status changed, 1 target changed\n"
	if d := cmp.Diff(want, stdout); d != "" {
		t.Errorf("stdout (-want +got):\n%s", d)
	}
	for _, w := range []string{log + ":4: no request line (\"-\")\n", "\n4 answers changed, more than --max-changes 0\n"} {
		if !strings.Contains(stderr, w) {
			t.Errorf("stderr lacks %q:\n%s", w, stderr)
		}
	}
	if strings.Contains(stderr, "\r") {
		t.Errorf("a progress line on stderr that is not a terminal:\n%q", stderr)
	}
	if code, _, stderr := cli(t, "diff", oldRules, newRules, "--requests", log, "--host", "example.com", "--scheme", "https", "--now", diffNow, "--max-changes", "4"); code != 0 {
		t.Errorf("--max-changes 4: exit %d, want 0\nstderr:\n%s", code, stderr)
	}

	// The same log, read as what it is not, has no request in it: exit 2.
	code, _, stderr = cli(t, "diff", oldRules, newRules, "--requests", log, "--log-format", "envoy")
	if code != 2 || !strings.Contains(stderr, log+":1: want `[START_TIME]") || !strings.Contains(stderr, "no request could be read in the envoy format (7 lines, 7 bad lines)") {
		t.Errorf("as envoy: exit %d, stderr:\n%s", code, stderr)
	}
}

// TestDiffFormats: the same requests as a request stream and as each kind
// of access log give the same changes; the format is detected.
func TestDiffFormats(t *testing.T) {
	f := newDiffFixture(t, 500, 3000)
	var first string
	for _, format := range []accesslog.Format{accesslog.JSONL, accesslog.Envoy, accesslog.Combined, accesslog.Common} {
		log, _ := f.writeLog(t, format, nil)
		code, stdout, stderr := cli(t, "diff", f.old, f.new, "--requests", log, "--host", rulegen.Host(0), "--scheme", "https", "--now", diffNow, "--max-changes", "100000")
		if code != 0 {
			t.Fatalf("%v: exit %d\nstderr:\n%s", format, code, stderr)
		}
		if want := fmt.Sprintf("%s (%s log): 3000 requests", log, format); !strings.Contains(stdout, want) {
			t.Errorf("%v: stdout lacks %q", format, want)
		}
		if !strings.Contains(stdout, fmt.Sprintf("%d answers changed", len(f.want))) {
			t.Errorf("%v: want %d changes; stdout ends:\n%s", format, len(f.want), stdout[max(0, len(stdout)-300):])
		}
		got := strings.ReplaceAll(stdout, log, "LOG")
		got = strings.ReplaceAll(got, "("+format.String()+" log)", "(FORMAT log)")
		if first == "" {
			first = got
		} else if d := cmp.Diff(first, got); d != "" {
			t.Errorf("%v: output differs from the request stream's (-jsonl +%v):\n%s", format, format, d)
		}
	}
}

// TestDiffExitCodes: 0 within --max-changes, 1 beyond, 2 for every
// mistake and every input that keeps the comparison from being made.
func TestDiffExitCodes(t *testing.T) {
	f := newDiffFixture(t, 300, 2000)
	log, _ := f.writeLog(t, accesslog.Combined, nil)
	n := len(f.want)
	empty := filepath.Join(f.dir, "empty.log")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	base := []string{"diff", f.old, f.new, "--requests", log, "--host", rulegen.Host(0), "--scheme", "https", "--now", diffNow}
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStderr string
	}{
		{"exactly max-changes", append(base, "--max-changes", fmt.Sprint(n)), 0, ""},
		{"one more than max-changes", append(base, "--max-changes", fmt.Sprint(n-1)), 1, fmt.Sprintf("%d answers changed, more than --max-changes %d", n, n-1)},
		{"default max-changes is 0", base, 1, "more than --max-changes 0"},
		{"same rules", []string{"diff", f.old, f.old, "--requests", log, "--host", "www.example.com"}, 0, ""},
		{"no arguments", []string{"diff"}, 2, "want OLD NEW rules files"},
		{"no requests", []string{"diff", f.old, f.new}, 2, "--requests FILE is required"},
		{"combined log without --host", []string{"diff", f.old, f.new, "--requests", log}, 2, "a combined log names no host: give the site's --host"},
		{"unknown log format", append(base, "--log-format", "w3c"), 2, `unknown log format "w3c"; accepted: jsonl, envoy, combined, common`},
		{"bad scheme", append(base, "--scheme", "ftp"), 2, `--scheme "ftp"`},
		{"missing log", []string{"diff", f.old, f.new, "--requests", filepath.Join(f.dir, "nope.log")}, 2, "nope.log: no such file"},
		{"empty log", []string{"diff", f.old, f.new, "--requests", empty}, 2, "no lines to detect the log format from"},
		{"empty log, format named", []string{"diff", f.old, f.new, "--requests", empty, "--log-format", "jsonl"}, 2, "no request could be read in the jsonl format (0 lines"},
		{"bad rules file", []string{"diff", f.old, "testdata/bad-rules.yaml", "--requests", log, "--host", "h"}, 2, `bad-rules.yaml:6: rule "not-a-redirect": status`},
		{"server unreachable", []string{"diff", "--server", "127.0.0.1:1", f.new, "--requests", log, "--host", "h", "--timeout", "2s"}, 2, "admin API at 127.0.0.1:1 is unavailable"},
		{"--server with two files", []string{"diff", "--server", "127.0.0.1:1", f.old, f.new, "--requests", log}, 2, "with --server, want NEW"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := cli(t, tt.args...)
			if code != tt.wantCode || !strings.Contains(stderr, tt.wantStderr) {
				t.Errorf("exit %d, want %d; stderr:\n%s\nwant it to contain %q", code, tt.wantCode, stderr, tt.wantStderr)
			}
		})
	}
}

// TestDiffServer compares the set a running redirectd serves, read through
// the admin API, with a rules file.
func TestDiffServer(t *testing.T) {
	const token = "t0ken"
	addr, _ := startAdmin(t, "rules:\n  - id: old\n    path: /old\n    to: /new\n  - id: gone\n    path: /gone\n    to: /x\n", token)
	dir := t.TempDir()
	newRules := filepath.Join(dir, "new.yaml")
	if err := os.WriteFile(newRules, []byte("rules:\n  - id: old\n    path: /old\n    to: /newer\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	log := filepath.Join(dir, "requests.jsonl")
	if err := os.WriteFile(log, []byte(`{"method":"GET","host":"example.com","path":"/old"}`+"\n"+`{"method":"GET","host":"example.com","path":"/gone"}`+"\n"+`{"method":"GET","host":"example.com","path":"/same"}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := cli(t, "diff", "--server", addr, "--token", token, newRules, "--requests", log, "--max-changes", "2")
	if code != 0 {
		t.Fatalf("exit %d\nstderr:\n%s", code, stderr)
	}
	for _, want := range []string{
		log + ":1: GET example.com/old\n  target changed: 307 /new (no-store; rule old) → 307 /newer (no-store; rule old)\n",
		log + ":2: GET example.com/gone\n  removed: 307 /x (no-store; rule gone) → pass\n",
		"3 requests decided against redirectd at " + addr + " (version ",
		"2 answers changed: 1 removed, 1 target changed\n",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, stdout)
		}
	}
	code, _, stderr = cli(t, "diff", "--server", addr, newRules, "--requests", log)
	if code != 2 || !strings.Contains(stderr, "Unauthenticated") {
		t.Errorf("without the token: exit %d, stderr:\n%s", code, stderr)
	}
}

// TestDiffBadLinesShown: the first few bad lines are named, the rest
// counted, and the rest of the log is still compared.
func TestDiffBadLinesShown(t *testing.T) {
	f := newDiffFixture(t, 100, 300)
	bad := map[int]string{}
	for i := 10; i < 300; i += 10 {
		bad[i] = "junk"
	}
	log, lineOf := f.writeLog(t, accesslog.JSONL, bad)
	code, stdout, stderr := cli(t, "diff", f.old, f.new, "--requests", log, "--max-changes", "1000", "--now", diffNow)
	if code != 0 {
		t.Fatalf("exit %d\nstderr:\n%s", code, stderr)
	}
	var shown int
	for i := 10; i < 300; i += 10 {
		if strings.Contains(stderr, fmt.Sprintf("%s:%d: invalid character 'j'", log, lineOf[i]-1)) {
			shown++
		}
	}
	if shown != maxBadShown || !strings.Contains(stderr, fmt.Sprintf("%s: and %d more bad lines", log, len(bad)-maxBadShown)) {
		t.Errorf("%d bad lines shown, want %d and a count of the others; stderr:\n%s", shown, maxBadShown, stderr)
	}
	if !strings.Contains(stdout, fmt.Sprintf("300 requests decided against %s and %s, %d bad lines", f.old, f.new, len(bad))) {
		t.Errorf("stdout:\n%s", stdout)
	}
}

// TestReadBlocks: blocks hold whole lines, in order, with their first line
// number, also when a line is longer than a block.
func TestReadBlocks(t *testing.T) {
	input := "a\nbb\n" + strings.Repeat("x", 40) + "\n\nccc\nlast line without newline"
	pool := &sync.Pool{New: func() any { b := make([]byte, 0, 8); return &b }}
	var got bytes.Buffer
	next := 1
	err := readBlocks(iotestHalfReader{strings.NewReader(input)}, pool, func(b block) bool {
		if b.firstLine != next {
			t.Errorf("block %d starts at line %d, want %d", b.seq, b.firstLine, next)
		}
		if !bytes.HasSuffix(b.data, []byte{'\n'}) && got.Len()+len(b.data) != len(input) {
			t.Errorf("block %d %q does not end a line", b.seq, b.data)
		}
		next += bytes.Count(b.data, []byte{'\n'})
		got.Write(b.data)
		pool.Put(b.buf)
		return true
	})
	if err != nil || got.String() != input {
		t.Errorf("readBlocks: %v; read %q, want %q", err, got.String(), input)
	}
}

func TestIsTerminal(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	for _, out := range []io.Writer{f, w, &bytes.Buffer{}} {
		if isTerminal(out) {
			t.Errorf("isTerminal(%T) = true", out)
		}
	}
}

// iotestHalfReader reads at most half of what is asked, like a pipe.
type iotestHalfReader struct{ r io.Reader }

func (h iotestHalfReader) Read(p []byte) (int, error) {
	return h.r.Read(p[:(len(p)+1)/2])
}

// BenchmarkDiffMillionLineLog replays a one-million-line Envoy access log
// against 10k generated rules and an edited copy (README "diff").
func BenchmarkDiffMillionLineLog(b *testing.B) {
	f := newDiffFixture(b, 10_000, 1_000_000)
	log, _ := f.writeLog(b, accesslog.Envoy, nil)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), []string{"diff", f.old, f.new, "--requests", log, "--scheme", "https", "--now", diffNow, "--max-changes", "1000000", "--json"}, &stdout, &stderr)
		if code != 0 {
			b.Fatalf("exit %d: %s", code, stderr.String())
		}
	}
	b.ReportMetric(float64(len(f.reqs))*float64(b.N)/b.Elapsed().Seconds(), "lines/s")
}

// TestDiffRequestHeaders: a request stream's headers reach the decisions,
// so a rule with a cookie condition redirects only the request that
// carries the cookie, and the change names the header it was decided on.
func TestDiffRequestHeaders(t *testing.T) {
	dir := t.TempDir()
	old := filepath.Join(dir, "old.yaml")
	next := filepath.Join(dir, "new.yaml")
	reqs := filepath.Join(dir, "requests.jsonl")
	for path, text := range map[string]string{
		old:  "rules: []\n",
		next: "rules:\n  - {id: beta, path: /app, to: /beta/app, has: [{type: cookie, key: beta, value: \"1\"}]}\n",
		reqs: `{"method":"GET","host":"example.com","path":"/app"}` + "\n" +
			`{"method":"GET","host":"example.com","path":"/app","headers":{"Cookie":"beta=1"}}` + "\n",
	} {
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"diff", old, next, "--requests", reqs}, &stdout, &stderr)
	// Without the cookie the request still passes, but now with Vary:
	// Cookie, since the decision consulted it.
	out := stdout.String()
	if code != 1 || !strings.Contains(out, reqs+":2: GET example.com/app [cookie: beta=1]\n  new redirect: pass → 307 /beta/app") ||
		!strings.Contains(out, reqs+":1: GET example.com/app\n  cache changed: pass → pass (Vary: Cookie)") ||
		!strings.Contains(out, "2 answers changed: 1 new redirect, 1 cache changed") {
		t.Errorf("exit %d\nstdout:\n%s\nstderr:\n%s", code, &stdout, &stderr)
	}
}
