package server

import (
	"context"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc/codes"

	"github.com/redirectd/redirectd/decision"
	redirectv1 "github.com/redirectd/redirectd/proto/redirect/v1"
)

// publisher is a real net/http server publishing a rules file with an
// ETag (RFC 9110 section 8.8.3) and Last-Modified, answering conditional
// requests as object storage does.
type publisher struct {
	mu       sync.Mutex
	body     string
	status   int // 0: serve the file
	modified time.Time
	version  int      // the ETag: bumped with every new body
	asked    []string // the conditional headers of each request
}

func (p *publisher) set(body string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.body, p.modified, p.version = body, p.modified.Add(time.Minute), p.version+1
}

func (p *publisher) fail(status int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.status = status
}

func (p *publisher) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.asked = append(p.asked, r.Header.Get("If-None-Match")+"|"+r.Header.Get("If-Modified-Since"))
	if p.status != 0 {
		w.WriteHeader(p.status)
		return
	}
	etag := fmt.Sprintf(`"v%d"`, p.version)
	w.Header().Set("ETag", etag)
	w.Header().Set("Last-Modified", p.modified.UTC().Format(http.TimeFormat))
	if r.Header.Get("If-None-Match") == etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	// Declared, as object storage does: an oversized file is refused
	// from its length, before its body is read.
	w.Header().Set("Content-Length", fmt.Sprint(len(p.body)))
	fmt.Fprint(w, p.body)
}

func (p *publisher) lastAsked() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.asked[len(p.asked)-1]
}

func TestRulesFromURL(t *testing.T) {
	pub := &publisher{modified: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	pub.set("rules:\n  - {id: one, path: /one, to: /landed-1}\n")
	srv := httptest.NewTLSServer(pub)
	defer srv.Close()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.ConsoleAddr = "" // tests start several daemons
	cfg.Rules, cfg.RulesCA = srv.URL+"/rules.yaml?sig=secret", ca
	st := &RuleStore{Engine: NewEngine(decision.NewStore(decision.Options{}), time.Now), Log: testLogger(), Metrics: NewMetrics(), Now: time.Now}
	u, err := NewURLRules(cfg, st)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := u.Load(ctx); err != nil {
		t.Fatal(err)
	}
	serves := func(id string) bool { _, ok := st.Engine.Store().Index().Rule(id); return ok }
	if !serves("one") {
		t.Fatal("first load does not serve the published rule")
	}
	if src := st.Engine.Current().Source; src != srv.URL+"/rules.yaml" {
		t.Errorf("source %q: want the URL without its query (it may hold a signature)", src)
	}

	// Unchanged: a conditional GET answered 304, nothing applied.
	v := st.Engine.Current().Version.Number
	if applied, err := u.Fetch(ctx); applied || err != nil {
		t.Fatalf("unchanged file: applied %v, %v", applied, err)
	}
	if got := pub.lastAsked(); !strings.HasPrefix(got, `"`) || !strings.Contains(got, "GMT") {
		t.Errorf("poll sent If-None-Match|If-Modified-Since %q, want both", got)
	}

	pub.set("rules:\n  - {id: two, path: /two, to: /landed-2}\n")
	if applied, err := u.Fetch(ctx); !applied || err != nil {
		t.Fatalf("changed file: applied %v, %v", applied, err)
	}
	if !serves("two") || serves("one") || st.Engine.Current().Version.Number != v+1 {
		t.Fatal("the changed file does not serve")
	}

	// Failures keep the last good set: an error status (counted), a bad
	// file (refused, not fetched again until it changes), a file too big.
	pub.fail(http.StatusServiceUnavailable)
	if _, err := u.Fetch(ctx); err == nil || !strings.Contains(err.Error(), "503") {
		t.Errorf("503: got %v", err)
	}
	if n := testutil.ToFloat64(u.failed); n != 1 {
		t.Errorf("redirectd_rules_fetch_failures_total = %v, want 1", n)
	}
	pub.fail(0)
	pub.set("rules:\n  - {id: bad, path: /bad, to: /x, status: 404}\n")
	if _, err := u.Fetch(ctx); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("bad file: got %v", err)
	}
	if applied, err := u.Fetch(ctx); applied || err != nil {
		t.Errorf("the same bad file again: applied %v, %v; want a 304, nothing applied", applied, err)
	}
	pub.set(strings.Repeat("#", decision.MaxRulesFileBytes+1))
	if _, err := u.Fetch(ctx); err == nil || !strings.Contains(err.Error(), "accepted: at most") {
		t.Errorf("too big: got %v", err)
	}
	if !serves("two") {
		t.Fatal("a failed fetch changed the serving set")
	}

	// Without --rules-ca the test server's certificate is not trusted.
	cfg.RulesCA = ""
	untrusted, err := NewURLRules(cfg, &RuleStore{Engine: NewEngine(decision.NewStore(decision.Options{}), time.Now), Log: testLogger(), Now: time.Now})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := untrusted.Fetch(ctx); err == nil || !strings.Contains(err.Error(), "certificate") || strings.Contains(err.Error(), "secret") {
		t.Errorf("untrusted certificate: got %v; want it named, and the URL's query (a signature) left out", err)
	}
}

// TestServerPollsRulesURL: the daemon started with --rules URL serves
// the published file, follows a change at --rules-poll, and refuses admin
// writes, which have nowhere to go.
func TestServerPollsRulesURL(t *testing.T) {
	pub := &publisher{}
	pub.set("rules:\n  - {id: one, path: /one, to: /landed-1}\n")
	srv := httptest.NewServer(pub)
	defer srv.Close()
	cfg := testConfig()
	cfg.Rules, cfg.RulesPoll = srv.URL+"/rules.yaml", 50*time.Millisecond
	r := start(t, cfg)
	ix := func() *decision.Index { return r.Engine().Store().Index() }
	if _, ok := ix().Rule("one"); !ok {
		t.Fatal("the published rule does not serve")
	}
	// (A file that drops most rules would be refused by --reload-max-drop.)
	pub.set("rules:\n  - {id: one, path: /one, to: /landed-1}\n  - {id: two, path: /two, to: /landed-2}\n")
	waitFor(t, 10*time.Second, func() bool { _, ok := ix().Rule("two"); return ok }, func() string { return "the changed file never served; log:\n" + r.logs.String() })

	admin := redirectv1.NewRuleServiceClient(dial(t, r.AdminAddr()))
	_, err := admin.DeleteRule(context.Background(), &redirectv1.DeleteRuleRequest{Id: "two"})
	wantCode(t, err, codes.FailedPrecondition, "change the published file")
}
