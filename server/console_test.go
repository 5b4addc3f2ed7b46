package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/redirectd/redirectd/decision"
	"github.com/redirectd/redirectd/internal/etcdtest"
)

// TestConsoleEditConflict drives the daemon's console over HTTP, with the
// rules in a file and in etcd (README "Web console"): with the admin
// token, a form rendered before someone else changed the set is a 409
// that writes nothing, whether it saves or deletes, and keeps the hash it
// was read at; a form rendered from the serving set saves through the
// configured source.
func TestConsoleEditConflict(t *testing.T) {
	const seed = "rules:\n  - id: old\n    path: /old\n    to: /new\n"
	for _, tc := range []struct {
		name string
		// config returns the daemon's configuration; seed, when set,
		// writes the first rule once the daemon serves.
		config func(t *testing.T) (Config, func(r *running))
	}{
		{"file", func(t *testing.T) (Config, func(*running)) {
			cfg := testConfig()
			cfg.Rules = writeRules(t, t.TempDir(), "rules.yaml", seed)
			return cfg, nil
		}},
		{"etcd", func(t *testing.T) (Config, func(*running)) {
			ec := etcdtest.Start(t)
			cfg := testConfig()
			cfg.Rules, cfg.Store, cfg.EtcdEndpoints, cfg.EtcdPrefix = "", "etcd", ec.Endpoint(), testPrefix
			return cfg, func(r *running) {
				rules, err := decision.ParseRules("seed.yaml", []byte(seed))
				if err != nil {
					t.Fatal(err)
				}
				if _, _, err := r.source.Update(context.Background(), Precondition{}, Edit{Puts: rules, Whole: true}); err != nil {
					t.Fatal(err)
				}
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, seedRules := tc.config(t)
			cfg.AdminToken = "console-test-token-0123456789"
			r := start(t, cfg)
			if seedRules != nil {
				seedRules(r)
			}
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
			// form reads the rule page's CSRF token and the hash its forms carry.
			form := func() (csrf, hash string) {
				t.Helper()
				_, page := getWith(t, cl, base+"/rules/old")
				c := regexp.MustCompile(`name="csrf" value="([0-9a-f]+)"`).FindStringSubmatch(page)
				h := regexp.MustCompile(`name="expected_hash" value="([0-9a-f]{64})"`).FindAllStringSubmatch(page, -1)
				if c == nil || len(h) != 2 {
					t.Fatalf("rule page has no edit and delete forms carrying the hash:\n%s", page)
				}
				return c[1], h[0][1]
			}
			edit := func(csrf, to, hash string) (int, string) {
				return post("/rules", url.Values{"csrf": {csrf}, "expected_hash": {hash},
					"yaml": {"rules:\n  - id: old\n    path: /old\n    to: " + to + "\n"}})
			}
			serving := func() string {
				rule, _ := r.Engine().Current().Index.Rule("old")
				return rule.To
			}
			csrf, read := form()

			// Someone else changes the set while the page is open.
			if _, _, err := r.source.Update(context.Background(), Precondition{}, Edit{Puts: []decision.Rule{{ID: "other", Path: "/other", To: "/x"}}}); err != nil {
				t.Fatal(err)
			}
			code, body := edit(csrf, "/stale", read)
			if code != http.StatusConflict || !strings.Contains(body, "Conflict: nothing was written") || !strings.Contains(body, "/stale") {
				t.Errorf("save from a stale form: %d, want 409 showing the conflict and keeping the text\n%s", code, body)
			}
			if !strings.Contains(body, `name="expected_hash" value="`+read+`"`) {
				t.Errorf("the conflict page's form no longer carries the hash read (%s): submitting it again would overwrite\n%s", read, body)
			}
			if code, body := post("/rules/old/delete", url.Values{"csrf": {csrf}, "expected_hash": {read}}); code != http.StatusConflict {
				t.Errorf("delete from a stale form: %d, want 409\n%s", code, body)
			}
			if got := serving(); got != "/new" {
				t.Fatalf("after stale forms, rule old redirects to %q, want /new", got)
			}

			csrf, read = form()
			code, body = edit(csrf, "/newer", read)
			if code != http.StatusOK || !strings.Contains(body, "Saved as version") {
				t.Fatalf("save from a form of the serving set: %d\n%s", code, body)
			}
			if got := serving(); got != "/newer" {
				t.Errorf("after the save, rule old redirects to %q, want /newer", got)
			}
			if cfg.Rules != "" {
				if file, _ := os.ReadFile(cfg.Rules); !strings.Contains(string(file), "/newer") || strings.Contains(string(file), "/stale") {
					t.Errorf("rules file:\n%s\nwant the second save only", file)
				}
			}
		})
	}
}

// TestConsoleURLSourceReadOnly: with rules from a URL the console says
// why it cannot edit, offers no form, and its writes are refused.
func TestConsoleURLSourceReadOnly(t *testing.T) {
	pub := &publisher{}
	pub.set("rules:\n  - id: old\n    path: /old\n    to: /new\n")
	srv := httptest.NewServer(pub)
	t.Cleanup(srv.Close)
	cfg := testConfig()
	cfg.Rules = srv.URL + "/rules.yaml"
	r := start(t, cfg)
	base := "http://" + r.ConsoleAddr()
	jar, _ := cookiejar.New(nil)
	cl := &http.Client{Jar: jar}
	const why = "Editing is not available: rules cannot be persisted: the rules come from " // + the URL
	_, page := getWith(t, cl, base+"/rules/old")
	if !strings.Contains(page, why+srv.URL+"/rules.yaml (--rules): change the published file instead") || strings.Contains(page, `name="yaml"`) || strings.Contains(page, `/delete"`) {
		t.Errorf("rule page with rules from a URL: want the reason and no edit or delete form\n%s", page)
	}
	if _, page := getWith(t, cl, base+"/apply"); !strings.Contains(page, "Applying a file is not available: rules cannot be persisted") {
		t.Errorf("apply page with rules from a URL: want the reason\n%s", page)
	}
	// No page offers a form to post; the console's writes refuse anyway.
	b := consoleBackend{source: r.source}
	if _, err := b.Put(context.Background(), r.Engine().Current().Version.Hash, &decision.Rule{ID: "old", Path: "/old", To: "/posted"}); !errors.Is(err, ErrNotPersistable) {
		t.Errorf("a console write with rules from a URL: %v, want ErrNotPersistable", err)
	}
	if rule, _ := r.Engine().Current().Index.Rule("old"); rule.To != "/new" {
		t.Errorf("rule old redirects to %q, want /new", rule.To)
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
		for _, ms := range r.shards[i].series {
			if ms != nil {
				n++
			}
		}
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

// TestRecentHitsSlotTakenOver: a rule given the slot of one hit less
// recently counts from its own first hit, never the other rule's hits of
// the same minute or earlier.
func TestRecentHitsSlotTakenOver(t *testing.T) {
	r := newRecentHits()
	at := time.Unix(1_700_000_000, 0)
	// More rules than there are slots, each hit three times in one minute:
	// every later rule takes over the slot of an earlier one.
	n := 4 * recentShards * recentPerShard
	for i := range n {
		for range 3 {
			r.hit(fmt.Sprint("rule-", i), at.Add(time.Duration(i)*time.Millisecond))
		}
	}
	end := at.Add(time.Duration(n) * time.Millisecond)
	kept := 0
	for i := range n {
		pm := r.perMinute(fmt.Sprint("rule-", i), end)
		if pm == nil {
			continue
		}
		kept++
		if sum := slicesSum(pm); sum != 3 {
			t.Errorf("rule-%d: %d hits counted, want its own 3", i, sum)
		}
	}
	if kept == 0 || kept > recentShards*recentPerShard {
		t.Errorf("%d rules have a series, want 1 to %d", kept, recentShards*recentPerShard)
	}
}

func slicesSum(xs []uint32) (n uint64) {
	for _, x := range xs {
		n += uint64(x)
	}
	return n
}
