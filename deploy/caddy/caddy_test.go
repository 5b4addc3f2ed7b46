package caddy_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// rules are what redirectd serves in this test.
const rules = `rules:
  - id: old-page
    path: /old
    to: /new
    intent: permanent
  - id: form-moved
    path: /form
    to: /contact
    intent: temporary
  - id: docs-moved
    path: /docs
    match: prefix
    to: https://docs.example.com
    intent: permanent
  - id: beta-app
    path: /app
    to: /beta/app
    has: [{type: cookie, key: beta, value: "1"}]
  - id: home-language
    path: /
    to: /:lang/
    languages: [en, de, fr-CH]
`

// output collects a child process's output across goroutines.
type output struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (o *output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.Write(p)
}

func (o *output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

// process is a child started for this test: killed at cleanup, its
// output printed when the test fails.
type process struct {
	name   string
	cmd    *exec.Cmd
	out    *output
	exited chan struct{}
}

func startProcess(t *testing.T, name string, cmd *exec.Cmd) *process {
	t.Helper()
	p := &process{name: name, cmd: cmd, out: &output{}, exited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("--- %s output:\n%s", name, p.out)
		}
	})
	return p
}

func (p *process) stop() {
	select {
	case <-p.exited:
	default:
		p.cmd.Process.Kill()
		<-p.exited
	}
}

// waitFor polls ready until it is true, the process exits or a minute
// passes.
func (p *process) waitFor(t *testing.T, what string, ready func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !ready() {
		select {
		case <-p.exited:
			t.Fatalf("%s exited before %s: %v\n%s", p.name, what, p.cmd.ProcessState, p.out)
		case <-time.After(25 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no %s after a minute\n%s", p.name, what, p.out)
		}
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	return lis.Addr().String()
}

func port(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

// built is the redirectd binary, built once for all tests of the package.
var built struct {
	once      sync.Once
	dir, path string
	err       error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
	os.Exit(code)
}

// buildRedirectd builds the real daemon from this repository.
func buildRedirectd(t *testing.T) string {
	t.Helper()
	built.once.Do(func() {
		built.dir, built.err = os.MkdirTemp("", "redirectd-caddy-test-")
		if built.err != nil {
			return
		}
		built.path = filepath.Join(built.dir, "redirectd")
		cmd := exec.Command("go", "build", "-o", built.path, "./server/cmd/redirectd")
		cmd.Dir = filepath.Join("..", "..")
		if out, err := cmd.CombinedOutput(); err != nil {
			built.err = fmt.Errorf("go build ./server/cmd/redirectd: %v\n%s", err, out)
		}
	})
	if built.err != nil {
		t.Fatal(built.err)
	}
	return built.path
}

// stack is redirectd and Caddy, running, in front of an app.
type stack struct {
	site      string // Caddy's site address, host:port
	redirectd *process
	appSaw    func() []string // "METHOD URI body" of each request the app got
}

// startStack runs the real redirectd binary and a real Caddy with the
// committed Caddyfile, in front of an in-process app, on free loopback
// ports, with every file either writes inside the test's temp dir.
func startStack(t *testing.T) *stack {
	t.Helper()
	caddy, err := exec.LookPath("caddy")
	if err != nil {
		t.Skip("caddy not on PATH; install with: apt-get install -y caddy")
	}
	dir := t.TempDir()

	var mu sync.Mutex
	var seen []string
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		seen = append(seen, strings.TrimSpace(fmt.Sprintf("%s %s %s", r.Method, r.RequestURI, body)))
		mu.Unlock()
		fmt.Fprintf(w, "app: %s %s", r.Method, r.RequestURI)
	}))
	t.Cleanup(app.Close)

	rulesFile := filepath.Join(dir, "rules.yaml")
	if err := os.WriteFile(rulesFile, []byte(rules), 0o644); err != nil {
		t.Fatal(err)
	}
	httpAddr := freeAddr(t)
	rd := startProcess(t, "redirectd", exec.Command(buildRedirectd(t),
		"--rules="+rulesFile, "--grpc-addr="+freeAddr(t), "--http-addr="+httpAddr, "--admin-addr="))
	rd.waitFor(t, "/readyz 200", func() bool {
		resp, err := http.Get("http://" + httpAddr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})

	site := freeAddr(t)
	home := filepath.Join(dir, "home")
	cmd := exec.Command(caddy, "run", "--config", "Caddyfile", "--adapter", "caddyfile")
	cmd.Env = append(os.Environ(),
		"SITE_ADDRESS=:"+port(site),
		"FORWARD_AUTH_UPSTREAM="+httpAddr,
		"APP_UPSTREAM="+app.Listener.Addr().String(),
		"CADDY_ADMIN="+freeAddr(t),
		"HOME="+home,
		"XDG_DATA_HOME="+filepath.Join(home, "data"),
		"XDG_CONFIG_HOME="+filepath.Join(home, "config"),
	)
	cp := startProcess(t, "caddy", cmd)
	cp.waitFor(t, "listener on "+site, func() bool {
		c, err := net.DialTimeout("tcp", site, time.Second)
		if err == nil {
			c.Close()
		}
		return err == nil
	})

	return &stack{site: site, redirectd: rd, appSaw: func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), seen...)
	}}
}

// answer is a response as a client sees it.
type answer struct {
	status                      int
	location, cacheControl, app string // app: the body when the app answered
}

func (a answer) String() string {
	return fmt.Sprintf("%d Location=%q Cache-Control=%q body=%q", a.status, a.location, a.cacheControl, a.app)
}

func readAnswer(t *testing.T, resp *http.Response) answer {
	t.Helper()
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	a := answer{status: resp.StatusCode, location: resp.Header.Get("Location"), cacheControl: resp.Header.Get("Cache-Control"), app: string(body)}
	if a.status/100 == 3 && len(body) != 0 {
		t.Errorf("redirect has a body: %q", body)
	}
	return a
}

// TestCaddyForwardAuth sends real requests through Caddy and checks what
// a client sees.
func TestCaddyForwardAuth(t *testing.T) {
	s := startStack(t)
	client := &http.Client{
		Timeout:       10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	const day = "public, max-age=86400"

	tests := []struct {
		name, method, target, body string
		header                     map[string]string
		want                       answer
	}{
		{"GET", "GET", "/old", "", nil, answer{301, "/new", day, ""}},
		{"a client cannot choose the intent", "GET", "/old", "", map[string]string{"X-Redirectd-Intent": "temporary"}, answer{301, "/new", day, ""}},
		{"a client cannot claim HTTP/1.0", "GET", "/form", "", map[string]string{"X-Redirectd-Protocol": "HTTP/1.0"}, answer{307, "/contact", "no-store", ""}},
		{"HEAD", "HEAD", "/old", "", nil, answer{301, "/new", day, ""}},
		{"POST keeps its method: 308, not 301", "POST", "/old", "name=ann", nil, answer{308, "/new", day, ""}},
		{"query merged into Location", "GET", "/old?utm_source=mail&id=1&id=2", "", nil, answer{301, "/new?utm_source=mail&id=1&id=2", day, ""}},
		{"prefix rule, percent-encoding kept", "GET", "/docs/a%20b?x=1", "", nil, answer{301, "https://docs.example.com/a%20b?x=1", day, ""}},
		{"temporary: 307, not cached", "POST", "/form", "a=1", nil, answer{307, "/contact", "no-store", ""}},
		{"miss reaches the app", "GET", "/pricing?plan=pro", "", nil, answer{200, "", "", "app: GET /pricing?plan=pro"}},
		{"miss POST reaches the app with its body", "POST", "/submit", "hello", nil, answer{200, "", "", "app: POST /submit"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(s.appSaw())
			req, err := http.NewRequest(tt.method, "http://"+s.site+tt.target, strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range tt.header {
				req.Header.Set(k, v)
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			if got := readAnswer(t, resp); got != tt.want {
				t.Errorf("%s %s\n got %v\nwant %v", tt.method, tt.target, got, tt.want)
			}
			// Only a miss reaches the app, with its body intact.
			var want []string
			if tt.want.status == http.StatusOK {
				want = []string{strings.TrimSpace(tt.method + " " + tt.target + " " + tt.body)}
			}
			if got := s.appSaw()[before:]; !slices.Equal(got, want) {
				t.Errorf("the app saw %q, want %q", got, want)
			}
		})
	}
}

// TestCaddyConditions: forward_auth copies the client's Cookie and
// Accept-Language to redirectd, so cookie conditions and languages
// decide, and the redirect carries Vary.
func TestCaddyConditions(t *testing.T) {
	s := startStack(t)
	client := &http.Client{
		Timeout:       10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	tests := []struct {
		name, target string
		header       http.Header
		want         answer
		wantVary     string
	}{
		{"cookie holds", "/app", http.Header{"Cookie": {"session=x; beta=1"}}, answer{307, "/beta/app", "no-store", ""}, "Cookie"},
		{"cookie in two fields", "/app", http.Header{"Cookie": {"session=x", "beta=1"}}, answer{307, "/beta/app", "no-store", ""}, "Cookie"},
		{"cookie with a longer name", "/app", http.Header{"Cookie": {"xbeta=1"}}, answer{200, "", "", "app: GET /app"}, ""},
		{"language negotiated", "/", http.Header{"Accept-Language": {"fr-CH, de;q=0.5"}}, answer{307, "/fr-CH/", "no-store", ""}, "Accept-Language"},
		{"language by q-value", "/", http.Header{"Accept-Language": {"en;q=0.1, de;q=0.9"}}, answer{307, "/de/", "no-store", ""}, "Accept-Language"},
		{"q=0 refuses", "/", http.Header{"Accept-Language": {"de;q=0"}}, answer{200, "", "", "app: GET /"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest("GET", "http://"+s.site+tt.target, nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header = tt.header
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			vary := resp.Header.Get("Vary")
			if got := readAnswer(t, resp); got != tt.want {
				t.Errorf("GET %s\n got %v\nwant %v", tt.target, got, tt.want)
			}
			if tt.wantVary != "" && vary != tt.wantVary {
				t.Errorf("Vary %q, want %q", vary, tt.wantVary)
			}
		})
	}
}

// TestCaddyHTTP10 speaks HTTP/1.0 on a raw connection: Caddy tells
// redirectd the client's version, and the status follows the HTTP/1.0
// column of the table (302 for temporary, 301 for permanent POST).
func TestCaddyHTTP10(t *testing.T) {
	s := startStack(t)
	tests := []struct {
		requestLine string
		want        answer
	}{
		{"GET /old HTTP/1.0", answer{301, "/new", "public, max-age=86400", ""}},
		{"POST /old HTTP/1.0", answer{301, "/new", "public, max-age=86400", ""}},
		{"GET /form HTTP/1.0", answer{302, "/contact", "no-store", ""}},
		{"GET /form HTTP/1.1", answer{307, "/contact", "no-store", ""}},
	}
	for _, tt := range tests {
		t.Run(tt.requestLine, func(t *testing.T) {
			conn, err := net.DialTimeout("tcp", s.site, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(10 * time.Second))
			method, _, _ := strings.Cut(tt.requestLine, " ")
			fmt.Fprintf(conn, "%s\r\nHost: %s\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", tt.requestLine, s.site)
			resp, err := http.ReadResponse(bufio.NewReader(conn), &http.Request{Method: method})
			if err != nil {
				t.Fatal(err)
			}
			if got := readAnswer(t, resp); got != tt.want {
				t.Errorf("%s\n got %v\nwant %v", tt.requestLine, got, tt.want)
			}
		})
	}
}

// TestCaddyFailsOpen stops redirectd: requests must still reach the app.
func TestCaddyFailsOpen(t *testing.T) {
	s := startStack(t)
	s.redirectd.stop()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", "http://"+s.site+"/old", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	want := answer{200, "", "", "app: GET /old"}
	if got := readAnswer(t, resp); got != want {
		t.Errorf("with redirectd down: got %v, want %v (fail open)", got, want)
	}
}
