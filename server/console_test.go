package server

import (
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/redirectd/redirectd/decision"
)

// TestConsoleEditConflict drives the daemon's console over HTTP: with the
// admin token, a rule saved at the serving version is written to the
// rules file, and a save from a form rendered before the set changed is a
// 409 that writes nothing.
func TestConsoleEditConflict(t *testing.T) {
	cfg := testConfig()
	cfg.Rules = writeRules(t, t.TempDir(), "rules.yaml", "rules:\n  - id: old\n    path: /old\n    to: /new\n")
	cfg.AdminToken = "console-test-token-0123456789"
	r := start(t, cfg)
	base := "http://" + r.ConsoleAddr()

	if code, _ := get(t, base+"/rules/old"); code != http.StatusUnauthorized {
		t.Fatalf("rule page without the token: %d, want 401", code)
	}
	jar, _ := cookiejar.New(nil)
	cl := &http.Client{Jar: jar}
	post := func(path string, form url.Values) (int, string) {
		t.Helper()
		resp, err := cl.PostForm(base+path, form)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := post("/login", url.Values{"token": {cfg.AdminToken}, "next": {"/rules/old"}}); code != http.StatusOK {
		t.Fatalf("sign in: %d", code)
	}
	resp, err := cl.Get(base + "/rules/old")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	csrf := regexp.MustCompile(`name="csrf" value="([0-9a-f]+)"`).FindStringSubmatch(string(page))
	version := regexp.MustCompile(`name="expected_hash" value="([0-9a-f]{64})"`).FindStringSubmatch(string(page))
	if csrf == nil || version == nil {
		t.Fatalf("rule page has no edit form:\n%s", page)
	}
	edit := func(to, version string) (int, string) {
		return post("/rules", url.Values{"csrf": {csrf[1]}, "expected_hash": {version},
			"yaml": {"rules:\n  - id: old\n    path: /old\n    to: " + to + "\n"}})
	}
	code, body := edit("/newer", version[1])
	if code != http.StatusOK || !strings.Contains(body, "Saved as version") {
		t.Fatalf("save at the serving version: %d\n%s", code, body)
	}
	code, body = edit("/stale", version[1]) // the version before the save
	if code != http.StatusConflict || !strings.Contains(body, "Conflict: nothing was written") || !strings.Contains(body, "/stale") {
		t.Errorf("save at a stale version: %d, want 409 showing the conflict and keeping the text\n%s", code, body)
	}
	if !strings.Contains(body, `name="expected_hash" value="`+version[1]+`"`) {
		t.Errorf("the conflict page's form no longer carries the version read (%s): submitting it again would overwrite\n%s", version[1], body)
	}
	file, _ := os.ReadFile(cfg.Rules)
	if !strings.Contains(string(file), "/newer") || strings.Contains(string(file), "/stale") {
		t.Errorf("rules file after a conflict:\n%s\nwant the first save only", file)
	}
}

// TestConsoleApplyFile uploads a rules file: a bad one shows its problems
// and cannot be applied, a good one is applied after its preview.
func TestConsoleApplyFile(t *testing.T) {
	cfg := testConfig()
	cfg.Rules = writeRules(t, t.TempDir(), "rules.yaml", "rules:\n  - id: old\n    path: /old\n    to: /new\n")
	r := start(t, cfg)
	base := "http://" + r.ConsoleAddr()
	jar, _ := cookiejar.New(nil)
	cl := &http.Client{Jar: jar}
	_, page := getWith(t, cl, base+"/apply")
	csrf := regexp.MustCompile(`name="csrf" value="([0-9a-f]+)"`).FindStringSubmatch(page)
	if csrf == nil {
		t.Fatalf("apply page has no form:\n%s", page)
	}
	upload := func(content string) (int, string) {
		t.Helper()
		var b strings.Builder
		mw := multipart.NewWriter(&b)
		mw.WriteField("csrf", csrf[1])
		fw, _ := mw.CreateFormFile("file", "upload.yaml")
		io.WriteString(fw, content)
		mw.Close()
		resp, err := cl.Post(base+"/apply", mw.FormDataContentType(), strings.NewReader(b.String()))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	_, body := upload("rules:\n  - id: bad\n    path: /x\n    to: /y\n    status: 404\n")
	if !strings.Contains(body, "is rejected") || !strings.Contains(body, "status") || strings.Contains(body, `action="/apply/confirm"`) {
		t.Errorf("a bad file's preview: want its problem and no apply button\n%s", body)
	}
	_, body = upload("rules:\n  - id: a\n    path: /a\n    to: /b\n  - id: c\n    path: /c\n    to: /d\n")
	pending := regexp.MustCompile(`name="pending" value="([0-9a-f]+)"`).FindStringSubmatch(body)
	version := regexp.MustCompile(`name="expected_hash" value="([0-9a-f]{64})"`).FindStringSubmatch(body)
	if !strings.Contains(body, "is valid: 2 rules") || pending == nil || version == nil {
		t.Fatalf("a good file's preview: want it valid with an apply button\n%s", body)
	}
	resp, err := cl.PostForm(base+"/apply/confirm", url.Values{"csrf": {csrf[1]}, "pending": {pending[1]}, "expected_hash": {version[1]}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Query().Get("applied") == "" {
		t.Errorf("apply: %d at %s, want the applied notice", resp.StatusCode, resp.Request.URL)
	}
	if _, ok := r.Engine().Current().Index.Rule("old"); ok {
		t.Error("rule old still serves after applying a file without it")
	}
	if file, _ := os.ReadFile(cfg.Rules); !strings.Contains(string(file), "id: c") {
		t.Errorf("rules file after apply:\n%s", file)
	}
}

func getWith(t *testing.T, cl *http.Client, u string) (int, string) {
	t.Helper()
	resp, err := cl.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestConsoleUsage: a rule hit through the engine is listed among the most
// hit with its per-minute chart; the other is listed as never hit.
func TestConsoleUsage(t *testing.T) {
	cfg := testConfig()
	cfg.Rules = writeRules(t, t.TempDir(), "rules.yaml", "rules:\n  - id: used\n    path: /used\n    to: /a\n  - id: unused\n    path: /unused\n    to: /b\n")
	r := start(t, cfg)
	for range 3 {
		if d, err := r.Engine().Decide(&decision.Request{Method: "GET", Host: "example.com", Target: "/used"}); err != nil || d.RuleID != "used" {
			t.Fatalf("Decide /used: %+v, %v", d, err)
		}
	}
	_, body := get(t, "http://"+r.ConsoleAddr()+"/usage")
	top, never, _ := strings.Cut(body, `id="never"`)
	if !strings.Contains(top, `/rules/used">used</a></td><td>3</td>`) || !strings.Contains(top, `<svg class="spark"`) {
		t.Errorf("usage page: want rule used with 3 hits and a chart among the most hit\n%s", body)
	}
	if !strings.Contains(never, `/rules/unused"`) || strings.Contains(never, `/rules/used"`) {
		t.Errorf("usage page: want only rule unused as never hit\n%s", body)
	}
}

// TestRecentHitsBounded: per-minute series exist for at most
// recentShards×recentPerShard rules, the least recently hit giving way.
func TestRecentHitsBounded(t *testing.T) {
	r := newRecentHits()
	at := time.Unix(1_700_000_000, 0)
	for i := range 10 * recentShards * recentPerShard {
		r.hit(fmt.Sprint("rule-", i), at.Add(time.Duration(i)*time.Second))
	}
	n := 0
	for i := range r.shards {
		n += len(r.shards[i].series)
	}
	if n > recentShards*recentPerShard {
		t.Errorf("%d series kept, want at most %d", n, recentShards*recentPerShard)
	}
	last := fmt.Sprint("rule-", 10*recentShards*recentPerShard-1)
	end := at.Add(time.Duration(10*recentShards*recentPerShard-1) * time.Second)
	pm := r.perMinute(last, end)
	if len(pm) != RecentMinutes || pm[RecentMinutes-1] != 1 {
		t.Errorf("the last rule hit: per-minute tail %v, want one hit in the last minute", pm[RecentMinutes-3:])
	}
	if r.perMinute("rule-0", end) != nil {
		t.Error("the first rule hit still has a series after thousands of newer rules")
	}
	if got := r.perMinute(last, end.Add(25*time.Hour)); got[RecentMinutes-1] != 0 || slicesSum(got) != 0 {
		t.Error("a hit more than a day old still counts")
	}
}

func slicesSum(xs []uint32) (n uint64) {
	for _, x := range xs {
		n += uint64(x)
	}
	return n
}
