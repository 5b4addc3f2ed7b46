package server

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestConsoleEditConflict drives the daemon's console over HTTP: with the
// admin token, a rule saved at the serving version is written to the
// rules file, and a save at a stale version is a 409 that writes nothing.
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
	version := regexp.MustCompile(`name="expected_version" value="(\d+)"`).FindStringSubmatch(string(page))
	if csrf == nil || version == nil {
		t.Fatalf("rule page has no edit form:\n%s", page)
	}
	edit := func(to, version string) (int, string) {
		return post("/rules", url.Values{"csrf": {csrf[1]}, "expected_version": {version},
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
	file, _ := os.ReadFile(cfg.Rules)
	if !strings.Contains(string(file), "/newer") || strings.Contains(string(file), "/stale") {
		t.Errorf("rules file after a conflict:\n%s\nwant the first save only", file)
	}
}
