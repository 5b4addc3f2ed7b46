package loadgen

import (
	"bytes"
	"context"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/redirectd/redirectd/decision"
	redirectv1 "github.com/redirectd/redirectd/proto/redirect/v1"
)

// fakeServer answers Decide and Check over a real loopback listener with a
// handler the test chooses, and records what it saw.
type fakeServer struct {
	redirectv1.UnimplementedDecisionServiceServer
	authv3.UnimplementedAuthorizationServer

	handle func(path string) (redirect bool, err error)
	calls  atomic.Int64

	mu    sync.Mutex
	peers map[string]bool // client addresses: one per connection
	paths map[string]int
}

func (f *fakeServer) seen(ctx context.Context, path string) {
	f.calls.Add(1)
	p, _ := peer.FromContext(ctx)
	f.mu.Lock()
	f.peers[p.Addr.String()] = true
	f.paths[path]++
	f.mu.Unlock()
}

func (f *fakeServer) Decide(ctx context.Context, req *redirectv1.DecideRequest) (*redirectv1.DecideResponse, error) {
	f.seen(ctx, req.GetPath())
	redirect, err := f.handle(req.GetPath())
	if err != nil {
		return nil, err
	}
	return &redirectv1.DecideResponse{Redirect: redirect}, nil
}

func (f *fakeServer) Check(ctx context.Context, req *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	http := req.GetAttributes().GetRequest().GetHttp()
	f.seen(ctx, http.GetPath())
	if http.GetHeaders()[":path"] != http.GetPath() || http.GetHeaders()[":authority"] != http.GetHost() {
		return nil, status.Errorf(codes.InvalidArgument, "headers %v do not match the request attributes", http.GetHeaders())
	}
	redirect, err := f.handle(http.GetPath())
	if err != nil {
		return nil, err
	}
	code := codes.OK
	if redirect {
		code = codes.PermissionDenied
	}
	return &authv3.CheckResponse{Status: &rpcstatus.Status{Code: int32(code)}}, nil
}

// serve starts f on a loopback port and dials n connections to it.
func serve(t *testing.T, f *fakeServer, n int) []grpc.ClientConnInterface {
	t.Helper()
	f.peers, f.paths = map[string]bool{}, map[string]int{}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	redirectv1.RegisterDecisionServiceServer(srv, f)
	authv3.RegisterAuthorizationServer(srv, f)
	healthpb.RegisterHealthServer(srv, health.NewServer())
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	conns := make([]grpc.ClientConnInterface, n)
	for i := range conns {
		cc, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cc.Close() })
		conns[i] = cc
	}
	return conns
}

func requests(paths ...string) []decision.Request {
	reqs := make([]decision.Request, len(paths))
	for i, p := range paths {
		reqs[i] = decision.Request{Method: "GET", Scheme: "https", Host: "example.com", Target: p}
	}
	return reqs
}

// TestFixedRateSendsEveryScheduledCall: at a fixed rate the number of calls
// is fixed by the schedule, warm-up calls reach the server but are not
// counted, every connection carries calls, and the answers add up.
func TestFixedRateSendsEveryScheduledCall(t *testing.T) {
	f := &fakeServer{handle: func(path string) (bool, error) { return path == "/hit", nil }}
	conns := serve(t, f, 3)
	cfg := Config{
		RPC: RPCDecide, Rate: 400, Concurrency: 8,
		Warmup: 250 * time.Millisecond, Duration: time.Second, Timeout: 5 * time.Second,
		Requests: requests("/hit", "/miss"),
	}
	res, err := Run(context.Background(), conns, cfg)
	if err != nil {
		t.Fatal(err)
	}
	const warmupSlots, measuredSlots = 100, 400 // 0.25 s and 1 s at 400/s
	if res.Calls != measuredSlots || res.Unsent != 0 {
		t.Errorf("calls %d, unsent %d: want %d, 0", res.Calls, res.Unsent, measuredSlots)
	}
	if got := f.calls.Load(); got != warmupSlots+measuredSlots {
		t.Errorf("server saw %d calls, want %d (warm-up included)", got, warmupSlots+measuredSlots)
	}
	if res.Failed() != 0 || res.Redirects != measuredSlots/2 || res.Passes != measuredSlots/2 {
		t.Errorf("errors %v, redirects %d, passes %d: want none, %d, %d", res.Errors, res.Redirects, res.Passes, measuredSlots/2, measuredSlots/2)
	}
	if len(f.peers) != len(conns) {
		t.Errorf("calls came over %d connections, want %d", len(f.peers), len(conns))
	}
	// The last measured slot is scheduled one period before the end.
	if lastSlot := cfg.Duration - time.Second/400; res.Elapsed < lastSlot || res.Throughput <= 0 {
		t.Errorf("elapsed %v (want ≥ %v), throughput %v", res.Elapsed, lastSlot, res.Throughput)
	}
	if h := res.LatencyHistogram(); h.Count() != res.Calls || res.Latency.P50 > res.Latency.P99 || res.Latency.P99 > res.Latency.Max {
		t.Errorf("latency summary inconsistent: count %d, %+v", h.Count(), res.Latency)
	}
	// A 1 ms sleep always takes longer than 1 ms; zero means no sleep was
	// measured.
	if res.Stalls.Mean <= 0 || res.Stalls.Max < res.Stalls.P50 {
		t.Errorf("generator stalls %+v: the stall meter measured nothing in the window", res.Stalls)
	}
}

// TestLatencyIncludesQueueingDuringStall: the server stalls every call for
// 300 ms once; calls scheduled during the stall wait for it, and their
// latency, measured from the scheduled time, shows it. A generator with
// coordinated omission would show the stall on at most `Concurrency` calls.
func TestLatencyIncludesQueueingDuringStall(t *testing.T) {
	const stall = 300 * time.Millisecond
	const rate = 400
	var stallUntil atomic.Int64 // unix nanos
	var n atomic.Int64
	f := &fakeServer{handle: func(string) (bool, error) {
		if n.Add(1) == 100 {
			stallUntil.Store(time.Now().Add(stall).UnixNano())
		}
		if wait := time.Until(time.Unix(0, stallUntil.Load())); wait > 0 {
			time.Sleep(wait)
		}
		return false, nil
	}}
	conns := serve(t, f, 2)
	res, err := Run(context.Background(), conns, Config{
		RPC: RPCDecide, Rate: rate, Concurrency: 4, Duration: time.Second, Timeout: 5 * time.Second,
		Requests: requests("/a"),
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Failed() != 0 || res.Calls != rate {
		t.Fatalf("calls %d, errors %v: want %d, none", res.Calls, res.Errors, rate)
	}
	// The 13 slots in the first 10% of the stall all finish after it: their
	// latency is ≥ 90% of the stall, and they are more than 1% of 400 calls.
	if res.Latency.P99 < stall*9/10 || res.Latency.Max < stall {
		t.Errorf("p99 %v, max %v: want p99 ≥ %v and max ≥ %v", res.Latency.P99, res.Latency.Max, stall*9/10, stall)
	}
	// Every slot in the first half of the stall (60 at 400/s) waits more
	// than half of it; allow for a few landing in the boundary bucket.
	if got := res.LatencyHistogram().CountAbove(stall / 2); got < 48 {
		t.Errorf("%d calls above %v, want ≥ 48 (coordinated omission would give ≤ 4)", got, stall/2)
	}
	if res.Behind == 0 {
		t.Error("no call counted behind schedule during a stall")
	}
}

// TestClosedLoopCheckCountsErrorsByCode: closed-loop Check calls, some
// denied (redirects), some failing; the result's counts match what the
// server saw.
func TestClosedLoopCheckCountsErrorsByCode(t *testing.T) {
	f := &fakeServer{handle: func(path string) (bool, error) {
		switch path {
		case "/fail":
			return false, status.Error(codes.Unavailable, "induced")
		case "/moved?q=1":
			return true, nil
		}
		return false, nil
	}}
	conns := serve(t, f, 2)
	res, err := Run(context.Background(), conns, Config{
		RPC: RPCCheck, Concurrency: 4, Duration: 300 * time.Millisecond,
		Requests: requests("/moved?q=1", "/stay", "/fail"),
	})
	if err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if res.Calls == 0 || uint64(f.calls.Load()) != res.Calls {
		t.Fatalf("calls %d, server saw %d: want equal and non-zero (no warm-up)", res.Calls, f.calls.Load())
	}
	if res.Errors["Unavailable"] != uint64(f.paths["/fail"]) || res.Failed() != res.Errors["Unavailable"] {
		t.Errorf("errors %v, server failed %d", res.Errors, f.paths["/fail"])
	}
	if res.Redirects != uint64(f.paths["/moved?q=1"]) || res.Passes != uint64(f.paths["/stay"]) {
		t.Errorf("redirects %d passes %d, server saw %v", res.Redirects, res.Passes, f.paths)
	}
	if res.Behind != 0 || res.Unsent != 0 {
		t.Errorf("closed loop reported behind %d unsent %d", res.Behind, res.Unsent)
	}
	var out bytes.Buffer
	if err := WriteTable(&out, res); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"check, closed loop, 4 callers, 2 connections", "Unavailable", "from schedule", "p99.9"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
}

func TestProgressLinesWhileRunning(t *testing.T) {
	f := &fakeServer{handle: func(string) (bool, error) { return false, nil }}
	conns := serve(t, f, 1)
	var progress bytes.Buffer
	_, err := Run(context.Background(), conns, Config{
		RPC: RPCDecide, Rate: 100, Concurrency: 2, Warmup: time.Second, Duration: 1100 * time.Millisecond,
		Requests: requests("/a"), Progress: &progress,
	})
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(progress.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], "(warm-up)") || !strings.Contains(lines[1], "calls/s") || strings.Contains(lines[1], "warm-up") {
		t.Errorf("progress lines:\n%s\nwant a warm-up line then a measured line", progress.String())
	}
}

func TestRunRejectsBadConfig(t *testing.T) {
	conns := []grpc.ClientConnInterface{nil}
	good := Config{RPC: RPCDecide, Concurrency: 1, Duration: time.Second, Requests: requests("/a")}
	tests := []struct {
		name   string
		conns  []grpc.ClientConnInterface
		change func(*Config)
		want   string
	}{
		{"no connections", nil, func(*Config) {}, "no connections"},
		{"zero callers", conns, func(c *Config) { c.Concurrency = 0 }, "concurrency 0"},
		{"no duration", conns, func(c *Config) { c.Duration = 0 }, "duration 0s"},
		{"negative rate", conns, func(c *Config) { c.Rate = -1 }, "rate -1"},
		{"no requests", conns, func(c *Config) { c.Requests = nil }, "no requests"},
		{"unknown rpc", conns, func(c *Config) { c.RPC = "list" }, `rpc "list": want "decide", "check" or "health"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := good
			tc.change(&cfg)
			_, err := Run(context.Background(), tc.conns, cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestSlotsBetweenMatchesSchedule(t *testing.T) {
	tests := []struct {
		rate     float64
		from, to time.Duration
		want     uint64
	}{
		{400, 0, time.Second, 400},
		{400, 250 * time.Millisecond, 1250 * time.Millisecond, 400},
		{3, 0, time.Second, 3},
		{7, 100 * time.Millisecond, 2 * time.Second, 13}, // slots at k/7 s, k=1..13
	}
	for _, tc := range tests {
		if got := slotsBetween(float64(time.Second)/tc.rate, tc.from, tc.to); got != tc.want {
			t.Errorf("slotsBetween(rate %v, %v, %v) = %d, want %d", tc.rate, tc.from, tc.to, got, tc.want)
		}
	}
}

// TestHealthFloor: the no-op floor call succeeds and counts as a pass.
func TestHealthFloor(t *testing.T) {
	f := &fakeServer{handle: func(string) (bool, error) { return false, nil }}
	conns := serve(t, f, 1)
	res, err := Run(context.Background(), conns, Config{
		RPC: RPCHealth, Rate: 200, Concurrency: 2, Duration: 250 * time.Millisecond, Requests: requests("/unused"),
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Calls != 50 || res.Passes != 50 || res.Failed() != 0 || f.calls.Load() != 0 {
		t.Errorf("calls %d passes %d errors %v, handler calls %d: want 50, 50, none, 0", res.Calls, res.Passes, res.Errors, f.calls.Load())
	}
}

// TestInterruptedRunStopsCleanly: cancelling the run ends it at once; calls
// in flight finish instead of failing as cancelled, and the result's
// window ends at the cancellation with every scheduled call accounted for.
func TestInterruptedRunStopsCleanly(t *testing.T) {
	f := &fakeServer{handle: func(string) (bool, error) {
		time.Sleep(20 * time.Millisecond) // calls are in flight at the cancellation
		return true, nil
	}}
	conns := serve(t, f, 2)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(700*time.Millisecond, cancel)
	start := time.Now()
	res, err := Run(ctx, conns, Config{
		RPC: RPCDecide, Rate: 200, Concurrency: 8, Warmup: 200 * time.Millisecond, Duration: time.Minute,
		Requests: requests("/a"),
	})
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 30*time.Second {
		t.Fatalf("run went on for %v after the cancellation", took)
	}
	if !res.Interrupted || res.Duration <= 0 || res.Duration >= time.Minute {
		t.Fatalf("interrupted %v, duration %v: want an interrupted run with the window cut short", res.Interrupted, res.Duration)
	}
	if res.Failed() != 0 {
		t.Errorf("errors %v: calls in flight at the cancellation must finish, not fail", res.Errors)
	}
	slots := slotsBetween(float64(time.Second)/200, 200*time.Millisecond, 200*time.Millisecond+res.Duration)
	if res.Calls+res.Unsent != slots || res.Calls != res.Redirects {
		t.Errorf("calls %d + unsent %d, redirects %d: want %d scheduled slots, all redirects", res.Calls, res.Unsent, res.Redirects, slots)
	}
}
