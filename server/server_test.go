package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/redirectd/redirectd/decision"
	"github.com/redirectd/redirectd/deploy"
	redirectv1 "github.com/redirectd/redirectd/proto/redirect/v1"
)

// running is a Server serving on loopback for one test.
type running struct {
	*Server
	logs *logBuffer
	// stop cancels Run and returns its error.
	stop func() error
}

// testConfig listens on free loopback ports and serves testdata/rules.yaml.
func testConfig() Config {
	cfg := DefaultConfig()
	cfg.GRPCAddr = "127.0.0.1:0"
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.AdminAddr = "127.0.0.1:0"
	cfg.ConsoleAddr = "127.0.0.1:0"
	cfg.Rules = filepath.Join("testdata", "rules.yaml")
	cfg.ShutdownTimeout = 10 * time.Second
	cfg.DrainDelay = 0 // tests that drain set their own
	return cfg
}

func newTestServer(t *testing.T, cfg Config) (*Server, *logBuffer) {
	t.Helper()
	logs := &logBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s, err := New(cfg, log)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s, logs
}

// start runs a Server for cfg and waits until /readyz says ready.
func start(t *testing.T, cfg Config) *running {
	t.Helper()
	s, logs := newTestServer(t, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	var once sync.Once
	var runErr error
	r := &running{Server: s, logs: logs, stop: func() error {
		once.Do(func() {
			cancel()
			runErr = <-done
		})
		return runErr
	}}
	t.Cleanup(func() {
		if err := r.stop(); err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	for {
		select {
		case err := <-done:
			done <- err
			t.Fatalf("Run returned before ready: %v\nlog:\n%s", err, logs)
		default:
		}
		if code, _ := get(t, "http://"+s.HTTPAddr()+"/readyz"); code == http.StatusOK {
			return r
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func dial(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func TestDecide(t *testing.T) {
	r := start(t, testConfig())
	client := redirectv1.NewDecisionServiceClient(dial(t, r.GRPCAddr()))

	permanent := func(maxAge time.Duration) *redirectv1.CacheAdvice {
		return &redirectv1.CacheAdvice{
			Cacheable:    true,
			MaxAge:       durationpb.New(maxAge),
			CacheControl: fmt.Sprintf("public, max-age=%d", int(maxAge.Seconds())),
		}
	}
	noStore := &redirectv1.CacheAdvice{CacheControl: "no-store"}
	headers := func(location string, cache *redirectv1.CacheAdvice) []*redirectv1.Header {
		return []*redirectv1.Header{
			{Name: "Location", Value: location},
			{Name: "Cache-Control", Value: cache.CacheControl},
		}
	}
	tests := []struct {
		name string
		req  *redirectv1.DecideRequest
		want *redirectv1.DecideResponse
	}{
		{
			name: "permanent prefix, GET: 301 with the rest of the path and the query",
			req:  &redirectv1.DecideRequest{Method: "GET", Scheme: "https", Host: "example.com", Path: "/docs/intro?lang=en"},
			want: &redirectv1.DecideResponse{
				Redirect: true, StatusCode: 301, Location: "https://docs.example.com/intro?lang=en",
				FollowUpMethod: "GET", Cache: permanent(24 * time.Hour),
				Headers: headers("https://docs.example.com/intro?lang=en", permanent(24*time.Hour)), RuleId: "docs-moved",
			},
		},
		{
			name: "permanent, POST: 308 keeps method and body",
			req:  &redirectv1.DecideRequest{Method: "POST", Host: "example.com:8443", Path: "/docs"},
			want: &redirectv1.DecideResponse{
				Redirect: true, StatusCode: 308, Location: "https://docs.example.com",
				FollowUpMethod: "POST", FollowUpKeepsBody: true, Cache: permanent(24 * time.Hour),
				Headers: headers("https://docs.example.com", permanent(24*time.Hour)), RuleId: "docs-moved",
			},
		},
		{
			name: "no intent anywhere: temporary, 307",
			req:  &redirectv1.DecideRequest{Method: "GET", Host: "other.example", Path: "/blog"},
			want: &redirectv1.DecideResponse{
				Redirect: true, StatusCode: 307, Location: "/news", FollowUpMethod: "GET",
				Cache: noStore, Headers: headers("/news", noStore), RuleId: "old-blog",
			},
		},
		{
			name: "temporary for an HTTP/1.0 client: 302",
			req:  &redirectv1.DecideRequest{Method: "GET", Path: "/blog", Protocol: "HTTP/1.0"},
			want: &redirectv1.DecideResponse{
				Redirect: true, StatusCode: 302, Location: "/news", FollowUpMethod: "GET",
				Cache: noStore, Headers: headers("/news", noStore), RuleId: "old-blog",
			},
		},
		{
			name: "the request's intent overrides the rule's",
			req:  &redirectv1.DecideRequest{Method: "GET", Path: "/blog", Intent: redirectv1.Intent_INTENT_PERMANENT},
			want: &redirectv1.DecideResponse{
				Redirect: true, StatusCode: 301, Location: "/news", FollowUpMethod: "GET",
				Cache: permanent(24 * time.Hour), Headers: headers("/news", permanent(24*time.Hour)), RuleId: "old-blog",
			},
		},
		{
			name: "see other, POST: 303 and the follow-up is a GET without body",
			req:  &redirectv1.DecideRequest{Method: "POST", Path: "/signup"},
			want: &redirectv1.DecideResponse{
				Redirect: true, StatusCode: 303, Location: "/register", FollowUpMethod: "GET",
				Cache: noStore, Headers: headers("/register", noStore), RuleId: "signup",
			},
		},
		{
			name: "no rule matches: pass the request on",
			req:  &redirectv1.DecideRequest{Method: "GET", Host: "example.com", Path: "/docsearch"},
			want: &redirectv1.DecideResponse{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := client.Decide(context.Background(), tt.req)
			if err != nil {
				t.Fatalf("Decide: %v", err)
			}
			if diff := cmp.Diff(tt.want, got, protocmp.Transform()); diff != "" {
				t.Errorf("Decide(%v) (-want +got):\n%s", tt.req, diff)
			}
		})
	}
}

func TestDecideExplain(t *testing.T) {
	r := start(t, testConfig())
	client := redirectv1.NewDecisionServiceClient(dial(t, r.GRPCAddr()))
	got, err := client.Decide(context.Background(), &redirectv1.DecideRequest{
		Method: "GET", Host: "Example.COM.", Path: "/docs/a/../b", Explain: true,
	})
	if err != nil {
		t.Fatalf("Decide: %v", err)
	}
	x := got.GetExplanation()
	if x == nil {
		t.Fatal("no explanation though explain was set")
	}
	if x.GetHost() != "example.com" || x.GetPath() != "/docs/b" {
		t.Errorf("explanation host, path = %q, %q; want the normalised %q, %q", x.GetHost(), x.GetPath(), "example.com", "/docs/b")
	}
	var applied []string
	for _, c := range x.GetCandidates() {
		if c.GetApplied() {
			applied = append(applied, c.GetRuleId())
			if c.GetMatch() != "prefix" || c.GetReason() == "" {
				t.Errorf("applied candidate %v: want match prefix and a reason", c)
			}
		}
	}
	if diff := cmp.Diff([]string{"docs-moved"}, applied); diff != "" {
		t.Errorf("applied candidates (-want +got):\n%s", diff)
	}

	plain, err := client.Decide(context.Background(), &redirectv1.DecideRequest{Method: "GET", Host: "example.com", Path: "/docs"})
	if err != nil {
		t.Fatalf("Decide: %v", err)
	}
	if plain.GetExplanation() != nil {
		t.Errorf("explanation %v without explain", plain.GetExplanation())
	}
}

// badRequests are inputs every entry point must refuse, with the field the
// message must name.
var badRequests = []struct {
	name  string
	req   *redirectv1.DecideRequest
	field string
}{
	{"missing method", &redirectv1.DecideRequest{Path: "/docs"}, "method"},
	{"method is not a token", &redirectv1.DecideRequest{Method: "GE T", Path: "/docs"}, "method"},
	{"missing path", &redirectv1.DecideRequest{Method: "GET"}, "path"},
	{"path not starting with /", &redirectv1.DecideRequest{Method: "GET", Path: "docs"}, "path"},
	{"control character in path", &redirectv1.DecideRequest{Method: "GET", Path: "/docs\r\nSet-Cookie: a=b"}, "path"},
	{"path over 8 KiB", &redirectv1.DecideRequest{Method: "GET", Path: "/" + strings.Repeat("a", 8<<10)}, "path"},
	{"unknown intent", &redirectv1.DecideRequest{Method: "GET", Path: "/docs", Intent: 9}, "intent"},
}

func TestDecideBadInput(t *testing.T) {
	r := start(t, testConfig())
	client := redirectv1.NewDecisionServiceClient(dial(t, r.GRPCAddr()))
	for _, tt := range badRequests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := client.Decide(context.Background(), tt.req)
			if status.Code(err) != codes.InvalidArgument {
				t.Fatalf("Decide = %v, %v; want INVALID_ARGUMENT", resp, err)
			}
			if msg := status.Convert(err).Message(); !strings.Contains(msg, tt.field) {
				t.Errorf("message %q does not name the field %q", msg, tt.field)
			}
		})
	}
}

func TestDecideBatch(t *testing.T) {
	r := start(t, testConfig())
	client := redirectv1.NewDecisionServiceClient(dial(t, r.GRPCAddr()))
	ctx := context.Background()

	hit := &redirectv1.DecideRequest{Method: "GET", Host: "example.com", Path: "/docs/x"}
	miss := &redirectv1.DecideRequest{Method: "GET", Path: "/elsewhere"}
	wantHit, err := client.Decide(ctx, hit)
	if err != nil {
		t.Fatalf("Decide: %v", err)
	}
	reqs := []*redirectv1.DecideRequest{hit}
	for _, bad := range badRequests {
		reqs = append(reqs, bad.req)
	}
	reqs = append(reqs, miss)

	got, err := client.DecideBatch(ctx, &redirectv1.DecideBatchRequest{Requests: reqs})
	if err != nil {
		t.Fatalf("DecideBatch: %v", err)
	}
	if len(got.GetResults()) != len(reqs) {
		t.Fatalf("%d results for %d requests", len(got.GetResults()), len(reqs))
	}
	if diff := cmp.Diff(wantHit, got.GetResults()[0].GetResponse(), protocmp.Transform()); diff != "" {
		t.Errorf("results[0]: batch and Decide disagree (-Decide +batch):\n%s", diff)
	}
	for i, bad := range badRequests {
		res := got.GetResults()[i+1]
		want := fmt.Sprintf("requests[%d].%s", i+1, bad.field)
		if res.GetResponse() != nil || !strings.HasPrefix(res.GetError(), want) {
			t.Errorf("results[%d] (%s) = %v; want an error starting %q", i+1, bad.name, res, want)
		}
	}
	if diff := cmp.Diff(&redirectv1.DecideResponse{}, got.GetResults()[len(reqs)-1].GetResponse(), protocmp.Transform()); diff != "" {
		t.Errorf("last result, a miss (-want +got):\n%s", diff)
	}

	for _, n := range []int{0, MaxBatch} {
		got, err := client.DecideBatch(ctx, &redirectv1.DecideBatchRequest{Requests: repeat(miss, n)})
		if err != nil || len(got.GetResults()) != n {
			t.Errorf("DecideBatch of %d: %d results, %v", n, len(got.GetResults()), err)
		}
	}
	_, err = client.DecideBatch(ctx, &redirectv1.DecideBatchRequest{Requests: repeat(miss, MaxBatch+1)})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), "requests") {
		t.Errorf("DecideBatch of %d = %v; want INVALID_ARGUMENT naming requests", MaxBatch+1, err)
	}
}

func repeat(req *redirectv1.DecideRequest, n int) []*redirectv1.DecideRequest {
	reqs := make([]*redirectv1.DecideRequest, n)
	for i := range reqs {
		reqs[i] = req
	}
	return reqs
}

func TestHealthPerService(t *testing.T) {
	r := start(t, testConfig())
	for _, tt := range []struct {
		addr, service string
		want          healthpb.HealthCheckResponse_ServingStatus
	}{
		{r.GRPCAddr(), "", healthpb.HealthCheckResponse_SERVING},
		{r.GRPCAddr(), "redirect.v1.DecisionService", healthpb.HealthCheckResponse_SERVING},
		{r.GRPCAddr(), "grpc.health.v1.Health", healthpb.HealthCheckResponse_SERVING},
		{r.AdminAddr(), "", healthpb.HealthCheckResponse_SERVING},
	} {
		got, err := healthpb.NewHealthClient(dial(t, tt.addr)).Check(context.Background(), &healthpb.HealthCheckRequest{Service: tt.service})
		if err != nil {
			t.Errorf("Check(%q) on %s: %v", tt.service, tt.addr, err)
			continue
		}
		if got.GetStatus() != tt.want {
			t.Errorf("Check(%q) on %s = %v, want %v", tt.service, tt.addr, got.GetStatus(), tt.want)
		}
	}
	_, err := healthpb.NewHealthClient(dial(t, r.GRPCAddr())).Check(context.Background(), &healthpb.HealthCheckRequest{Service: "no.such.Service"})
	if status.Code(err) != codes.NotFound {
		t.Errorf("Check of an unknown service = %v, want NOT_FOUND", err)
	}
}

func TestReflectionListsServices(t *testing.T) {
	r := start(t, testConfig())
	stream, err := reflectionpb.NewServerReflectionClient(dial(t, r.GRPCAddr())).ServerReflectionInfo(context.Background())
	if err != nil {
		t.Fatalf("ServerReflectionInfo: %v", err)
	}
	if err := stream.Send(&reflectionpb.ServerReflectionRequest{
		MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{},
	}); err != nil {
		t.Fatalf("send: %v", err)
	}
	resp, err := stream.Recv()
	if err != nil {
		t.Fatalf("recv: %v", err)
	}
	got := map[string]bool{}
	for _, s := range resp.GetListServicesResponse().GetService() {
		got[s.GetName()] = true
	}
	for _, want := range []string{"redirect.v1.DecisionService", "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection"} {
		if !got[want] {
			t.Errorf("reflection lists %v; %s is missing", got, want)
		}
	}
}

func TestHTTPProbes(t *testing.T) {
	r := start(t, testConfig())
	for path, want := range map[string]string{"/healthz": "ok\n", "/readyz": "ready\n"} {
		code, body := get(t, "http://"+r.HTTPAddr()+path)
		if code != http.StatusOK || body != want {
			t.Errorf("GET %s = %d %q, want 200 %q", path, code, body, want)
		}
	}

	// Before the first load, readiness is refused; liveness is not.
	s, _ := newTestServer(t, testConfig())
	defer s.Close()
	for path, want := range map[string]int{"/healthz": http.StatusOK, "/readyz": http.StatusServiceUnavailable} {
		rec := httptest.NewRecorder()
		s.mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		if rec.Code != want {
			t.Errorf("before the first load, GET %s = %d, want %d", path, rec.Code, want)
		}
	}
}

// TestGracefulShutdown: on cancel, health watchers hear NOT_SERVING and
// /readyz turns 503 at once, while every listener keeps answering, on old
// and new connections, for the drain delay. Then the open Watch stream
// ends by itself, and Run returns well before --shutdown-timeout without
// cutting calls.
func TestGracefulShutdown(t *testing.T) {
	cfg := testConfig()
	cfg.DrainDelay = time.Second
	r := start(t, cfg)
	public := dial(t, r.GRPCAddr())
	decide := redirectv1.NewDecisionServiceClient(public)
	watch, err := healthpb.NewHealthClient(public).Watch(context.Background(), &healthpb.HealthCheckRequest{Service: "redirect.v1.DecisionService"})
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	if got, err := watch.Recv(); err != nil || got.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("first health status = %v, %v; want SERVING", got, err)
	}

	began := time.Now()
	stopped := make(chan error, 1)
	go func() { stopped <- r.stop() }()

	if got, err := watch.Recv(); err != nil || got.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("health status after shutdown began = %v, %v; want NOT_SERVING", got, err)
	}
	if code, body := get(t, "http://"+r.HTTPAddr()+"/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "shutting down") {
		t.Errorf("GET /readyz during the drain = %d %q, want 503 shutting down", code, body)
	}
	req := &redirectv1.DecideRequest{Method: "GET", Host: "example.com", Path: "/old"}
	if _, err := decide.Decide(context.Background(), req); err != nil {
		t.Errorf("Decide during the drain: %v", err)
	}
	fresh := redirectv1.NewDecisionServiceClient(dial(t, r.GRPCAddr()))
	if _, err := fresh.Decide(context.Background(), req); err != nil {
		t.Errorf("Decide on a new connection during the drain: %v", err)
	}
	if code, _ := get(t, "http://"+r.HTTPAddr()+"/healthz"); code != http.StatusOK {
		t.Errorf("GET /healthz during the drain = %d, want 200", code)
	}
	if d := time.Since(began); d >= cfg.DrainDelay {
		t.Fatalf("the checks took %v, longer than the drain delay %v: too slow to tell", d, cfg.DrainDelay)
	}

	// The Watch stream ends once the drain delay is over, by itself.
	if got, err := watch.Recv(); err == nil {
		t.Fatalf("Watch after the drain delay: %v, want the stream ended", got)
	}
	if err := <-stopped; err != nil {
		t.Errorf("Run after graceful shutdown: %v", err)
	}
	took := time.Since(began)
	if took < cfg.DrainDelay || took > cfg.DrainDelay+cfg.ShutdownTimeout/2 {
		t.Errorf("Run returned %v after cancel; want the drain delay %v and little more (an open Watch must not hold it)", took, cfg.DrainDelay)
	}
	if strings.Contains(r.logs.String(), "cutting them") {
		t.Errorf("calls were cut although they ended before the deadline:\n%s", r.logs)
	}
}

// TestShutdownDeadline: a call that never ends is cut at --shutdown-timeout.
// A reflection stream whose client sends nothing more waits on its
// client, not on its context, so ending streams does not end it.
func TestShutdownDeadline(t *testing.T) {
	cfg := testConfig()
	cfg.ShutdownTimeout = 100 * time.Millisecond
	r := start(t, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream, err := reflectionpb.NewServerReflectionClient(dial(t, r.GRPCAddr())).ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatalf("ServerReflectionInfo: %v", err)
	}
	// One answer, so the call is open on the server, which then waits for
	// the next request.
	if err := stream.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil {
		t.Fatal(err)
	}
	if err := r.stop(); err != nil {
		t.Errorf("Run: %v", err)
	}
	if !strings.Contains(r.logs.String(), "cutting them") {
		t.Errorf("no log of cut calls:\n%s", r.logs)
	}
}

func TestBusyPort(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	addr := busy.Addr().String()
	for _, tt := range []struct {
		flag string
		set  func(*Config)
	}{
		{"--grpc-addr", func(c *Config) { c.GRPCAddr = addr }},
		{"--http-addr", func(c *Config) { c.HTTPAddr = addr }},
		{"--admin-addr", func(c *Config) { c.AdminAddr = addr }},
	} {
		cfg := testConfig()
		tt.set(&cfg)
		s, err := New(cfg, slog.New(slog.DiscardHandler))
		if err == nil {
			s.Close()
			t.Errorf("New with %s on a busy port succeeded", tt.flag)
			continue
		}
		for _, want := range []string{addr, tt.flag, "address already in use"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not mention %q", err, want)
			}
		}
	}
}

func TestRulesFileErrors(t *testing.T) {
	for _, tt := range []struct {
		name  string
		rules string
		want  []string
	}{
		{"unknown field", filepath.Join("testdata", "bad-rules.yaml"), []string{filepath.Join("testdata", "bad-rules.yaml") + ":7", "too"}},
		{"missing file", filepath.Join("testdata", "no-such-rules.yaml"), []string{"--rules", "no-such-rules.yaml"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig()
			cfg.Rules = tt.rules
			s, _ := newTestServer(t, cfg)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			err := s.Run(ctx)
			if err == nil {
				t.Fatal("Run succeeded with a bad rules file")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			var rulesErr *decision.RulesError
			if tt.name == "unknown field" && !errors.As(err, &rulesErr) {
				t.Errorf("error %T does not carry the *decision.RulesError", err)
			}
		})
	}
}

func TestBuiltInExample(t *testing.T) {
	cfg := testConfig()
	cfg.Rules = ""
	r := start(t, cfg)
	snap := r.Engine().Current()
	if snap.Source != deploy.ExampleRulesName || snap.Index.Len() == 0 {
		t.Errorf("serving %q with %d rules, want the built-in example %q", snap.Source, snap.Index.Len(), deploy.ExampleRulesName)
	}
	if !strings.Contains(r.logs.String(), "built-in example") {
		t.Errorf("the log does not say the built-in example is served:\n%s", r.logs)
	}
}

func TestFirstVersion(t *testing.T) {
	r := start(t, testConfig())
	v := r.Engine().Current().Version
	if v.Number != 1 || len(v.Hash) != 64 || strings.Trim(v.Hash, "0123456789abcdef") != "" {
		t.Errorf("first version = %+v, want number 1 and a hex SHA-256", v)
	}
}

func TestRecoverUnary(t *testing.T) {
	logs := &logBuffer{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	info := &grpc.UnaryServerInfo{FullMethod: "/redirect.v1.DecisionService/Decide"}
	resp, err := recoverUnary(log)(context.Background(), nil, info, func(context.Context, any) (any, error) {
		var m map[string]int
		m["boom"]++ // nil map: panics
		return "unreachable", nil
	})
	if resp != nil || status.Code(err) != codes.Internal || strings.Contains(err.Error(), "nil map") {
		t.Errorf("after a panic: %v, %v; want nil and INTERNAL without the panic text", resp, err)
	}
	for _, want := range []string{"panic in gRPC handler", "/redirect.v1.DecisionService/Decide", "nil map", "goroutine"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log does not mention %q:\n%s", want, logs)
		}
	}
}

// TestMain keeps the test binary from inheriting REDIRECTD_* settings of
// the shell that runs it; REDIRECTD_SCREENSHOTS is a test setting, kept.
func TestMain(m *testing.M) {
	screenshotDir = os.Getenv("REDIRECTD_SCREENSHOTS")
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); strings.HasPrefix(name, EnvPrefix) {
			os.Unsetenv(name)
		}
	}
	os.Exit(m.Run())
}
