// Package loadgen is an open-loop load generator for redirectd's
// DecisionService.Decide and Envoy's Authorization.Check: the engine behind
// `redirectctl bench`.
//
// At a fixed rate, call i is scheduled at start + i/rate whatever happened
// to earlier calls, and its latency is measured from that scheduled time.
// A worker that finds its slot already past sends at once, so a server that
// stalls for 200 ms shows 200 ms of latency on every call scheduled during
// the stall, not only on the few in flight: no coordinated omission (the
// mistake of letting a slow server slow down the load that measures it).
// In closed loop (rate 0) each caller sends its next call as soon as the
// previous one returns, which measures the throughput ceiling.
package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"sync"
	"sync/atomic"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/redirectd/redirectd/decision"
	redirectv1 "github.com/redirectd/redirectd/proto/redirect/v1"
)

// RPC names the call under load.
type RPC string

const (
	// RPCDecide is redirect.v1.DecisionService/Decide.
	RPCDecide RPC = "decide"
	// RPCCheck is envoy.service.auth.v3.Authorization/Check, shaped as Envoy's
	// ext_authz filter sends it.
	RPCCheck RPC = "check"
	// RPCHealth is grpc.health.v1.Health/Check for the whole server: a
	// unary call that does no work, so its throughput on the same server
	// is the gRPC floor the other two are compared with.
	RPCHealth RPC = "health"
)

// lateAfter is how late a send may start before it counts as behind
// schedule: the generator's own sleep jitter stays below it.
const lateAfter = time.Millisecond

// Config describes one load run.
type Config struct {
	RPC RPC
	// Rate is calls per second; 0 runs closed loop.
	Rate float64
	// Concurrency is the number of callers: at a fixed rate, at most this
	// many calls are in flight (and a late call waits for a free caller, its
	// wait counted in its latency).
	Concurrency int
	// Warmup runs load before measuring (connections, caches, GC pacing);
	// its calls are sent but not counted.
	Warmup time.Duration
	// Duration is the measured part of the run.
	Duration time.Duration
	// Timeout bounds each call; 0 means no deadline.
	Timeout time.Duration
	// Requests are sent in order, cycling.
	Requests []decision.Request
	// Progress, when set, receives a line per second while the run lasts.
	Progress io.Writer
}

// Summary is a latency distribution.
type Summary struct {
	P50  time.Duration `json:"p50_ns"`
	P90  time.Duration `json:"p90_ns"`
	P99  time.Duration `json:"p99_ns"`
	P999 time.Duration `json:"p999_ns"`
	Max  time.Duration `json:"max_ns"`
	Mean time.Duration `json:"mean_ns"`
}

func summarize(h *Histogram) Summary {
	return Summary{
		P50: h.Quantile(0.5), P90: h.Quantile(0.9), P99: h.Quantile(0.99),
		P999: h.Quantile(0.999), Max: h.Max(), Mean: h.Mean(),
	}
}

// Result is what a run measured. Only calls scheduled inside the measured
// window count; warm-up calls do not.
type Result struct {
	RPC         RPC           `json:"rpc"`
	Rate        float64       `json:"rate"` // 0: closed loop
	Concurrency int           `json:"concurrency"`
	Conns       int           `json:"conns"`
	Warmup      time.Duration `json:"warmup_ns"`
	// Duration is the measured window: as configured, or up to the
	// cancellation when Interrupted.
	Duration    time.Duration `json:"duration_ns"`
	Interrupted bool          `json:"interrupted,omitempty"`
	// Elapsed runs from the start of the measured window to the last
	// measured call's completion; Throughput is Calls/Elapsed, so a server
	// that cannot keep up with the rate shows a lower throughput.
	Elapsed    time.Duration `json:"elapsed_ns"`
	Calls      uint64        `json:"calls"`
	Throughput float64       `json:"throughput"`
	// Errors counts failed calls by gRPC code name.
	Errors map[string]uint64 `json:"errors"`
	// Redirects and Passes split the successful calls by answer.
	Redirects uint64 `json:"redirects"`
	Passes    uint64 `json:"passes"`
	// Latency is measured from each call's scheduled send time (includes
	// waiting for a free caller); Service from its actual send. They differ
	// only when the generator fell behind.
	Latency Summary `json:"latency"`
	Service Summary `json:"service"`
	// Stalls is how much longer than 1 ms the generator's own 1 ms sleeps
	// took during the measured window: its machine's hiccups, which every
	// call in flight shares (see stallMeter).
	Stalls Summary `json:"generator_stalls"`
	// Behind counts calls sent more than 1 ms after their scheduled time.
	Behind uint64 `json:"behind"`
	// Unsent counts fixed-rate calls scheduled in the measured window but
	// never sent: the generator was still behind when the run was
	// interrupted or reached its hard stop (Timeout or 1 s past the end).
	Unsent uint64 `json:"unsent"`

	latency Histogram
}

// Failed is the number of calls that ended in an error.
func (r *Result) Failed() uint64 {
	var n uint64
	for _, c := range r.Errors {
		n += c
	}
	return n
}

// LatencyHistogram is the full distribution behind Latency.
func (r *Result) LatencyHistogram() *Histogram { return &r.latency }

// caller sends the i-th prepared request over conn.
type caller func(ctx context.Context, conn grpc.ClientConnInterface, i int) (redirect bool, err error)

func newCaller(rpc RPC, reqs []decision.Request) (caller, error) {
	var method string
	var redirectAt []protowire.Number // the answer's field that says redirect
	var build func(i int, r decision.Request) proto.Message
	switch rpc {
	case RPCDecide:
		method, redirectAt = redirectv1.DecisionService_Decide_FullMethodName, decideRedirect
		build = func(_ int, r decision.Request) proto.Message {
			return &redirectv1.DecideRequest{Method: r.Method, Scheme: r.Scheme, Host: r.Host, Path: r.Target, Protocol: r.Protocol}
		}
	case RPCCheck:
		// ext_authz: a redirect is a denial carrying the 3xx (README "Envoy").
		method, redirectAt = "/envoy.service.auth.v3.Authorization/Check", checkStatusCode
		build = func(i int, r decision.Request) proto.Message { return envoyCheckRequest(r, i) }
	case RPCHealth:
		method, redirectAt = healthpb.Health_Check_FullMethodName, nil
		reqs = reqs[:1] // every health check is the same empty request
		build = func(int, decision.Request) proto.Message { return &healthpb.HealthCheckRequest{} }
	default:
		return nil, fmt.Errorf("rpc %q: want %q, %q or %q", rpc, RPCDecide, RPCCheck, RPCHealth)
	}
	msgs := make([]encoded, len(reqs))
	for i, r := range reqs {
		m, err := proto.Marshal(build(i, r))
		if err != nil {
			return nil, fmt.Errorf("request %d: %w", i+1, err)
		}
		msgs[i] = m
	}
	return func(ctx context.Context, conn grpc.ClientConnInterface, i int) (bool, error) {
		a := &answer{path: redirectAt}
		err := conn.Invoke(ctx, method, msgs[i%len(msgs)], a, wire)
		if rpc == RPCCheck {
			return a.value == uint64(codes.PermissionDenied), err
		}
		return a.value != 0, err
	}, nil
}

// The fields of the answers that say "redirect": DecideResponse.redirect,
// and CheckResponse.status.code (google.rpc.Status).
var (
	decideRedirect  = []protowire.Number{1}
	checkStatusCode = []protowire.Number{1, 1}
)

// envoyCheckRequest fills the fields Envoy's ext_authz filter fills for an
// HTTP request: the request attributes and the headers map, pseudo-headers
// included, with the path undecoded and carrying its query.
func envoyCheckRequest(r decision.Request, i int) *authv3.CheckRequest {
	proto := r.Protocol
	if proto == "" {
		proto = "HTTP/1.1"
	}
	scheme := r.Scheme
	if scheme == "" {
		scheme = "http"
	}
	id := fmt.Sprintf("loadgen-%d", i)
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source:      &authv3.AttributeContext_Peer{Address: &corev3.Address{}},
		Destination: &authv3.AttributeContext_Peer{Address: &corev3.Address{}},
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Id: id, Method: r.Method, Host: r.Host, Path: r.Target, Scheme: scheme, Protocol: proto,
			Headers: map[string]string{
				":authority": r.Host, ":method": r.Method, ":path": r.Target, ":scheme": scheme,
				"user-agent": "redirectctl-bench", "x-request-id": id,
			},
		}},
	}}
}

// worker holds one caller's counts; the progress reporter reads them under mu.
type worker struct {
	mu        sync.Mutex
	latency   Histogram // measured calls, from scheduled time
	service   Histogram // measured calls, from actual send
	interval  Histogram // every call since the last progress line
	ivErrors  uint64
	errs      [codes.Unauthenticated + 1]uint64
	redirects uint64
	passes    uint64
	behind    uint64
	lastDone  time.Time
}

// Run sends load over conns (round-robin per call) as cfg says and returns
// what it measured. Cancelling ctx (Ctrl-C in redirectctl) ends the run
// early and cleanly: no new call starts, calls in flight finish (they do not
// fail as cancelled), and the result covers the window up to the
// cancellation, marked Interrupted.
func Run(ctx context.Context, conns []grpc.ClientConnInterface, cfg Config) (*Result, error) {
	switch {
	case len(conns) == 0:
		return nil, errors.New("loadgen: no connections")
	case cfg.Concurrency < 1:
		return nil, fmt.Errorf("loadgen: concurrency %d: want at least 1", cfg.Concurrency)
	case cfg.Duration <= 0:
		return nil, fmt.Errorf("loadgen: duration %v: want more than 0", cfg.Duration)
	case cfg.Rate < 0:
		return nil, fmt.Errorf("loadgen: rate %v: want 0 (closed loop) or more", cfg.Rate)
	case cfg.Warmup < 0:
		return nil, fmt.Errorf("loadgen: warm-up %v: want 0 or more", cfg.Warmup)
	case len(cfg.Requests) == 0:
		return nil, errors.New("loadgen: no requests to send")
	}
	call, err := newCaller(cfg.RPC, cfg.Requests)
	if err != nil {
		return nil, fmt.Errorf("loadgen: %w", err)
	}

	start := time.Now()
	measureFrom := start.Add(cfg.Warmup)
	end := measureFrom.Add(cfg.Duration)
	// A fixed-rate run that fell behind keeps sending its backlog (each call
	// late, its lateness in its latency) until this hard stop.
	hardStop := end.Add(max(cfg.Timeout, time.Second))
	var period float64
	if cfg.Rate > 0 {
		period = float64(time.Second) / cfg.Rate
	}

	var stoppedAt atomic.Int64 // unix ns of the cancellation
	defer context.AfterFunc(ctx, func() { stoppedAt.Store(time.Now().UnixNano()) })()
	callBase := context.WithoutCancel(ctx)

	var next, rr atomic.Uint64
	workers := make([]*worker, cfg.Concurrency)
	var wg sync.WaitGroup
	for w := range workers {
		wk := &worker{}
		workers[w] = wk
		wg.Go(func() {
			timer := time.NewTimer(time.Hour)
			defer timer.Stop()
			for {
				n := next.Add(1) - 1
				var sched time.Time
				if period > 0 {
					sched = start.Add(time.Duration(float64(n) * period))
				} else {
					sched = time.Now()
				}
				if !sched.Before(end) {
					return
				}
				measured := !sched.Before(measureFrom)
				if wait := time.Until(sched); wait > 0 {
					timer.Reset(wait)
					select {
					case <-ctx.Done():
						return
					case <-timer.C:
					}
				}
				sent := time.Now()
				if period == 0 {
					sched = sent // closed loop: the call is due when it is sent
				}
				if ctx.Err() != nil || sent.After(hardStop) {
					return
				}
				callCtx, cancel := callBase, context.CancelFunc(func() {})
				if cfg.Timeout > 0 {
					callCtx, cancel = context.WithTimeout(callBase, cfg.Timeout)
				}
				conn := conns[rr.Add(1)%uint64(len(conns))]
				redirect, err := call(callCtx, conn, int(n%uint64(len(cfg.Requests))))
				cancel()
				done := time.Now()
				wk.record(measured, sched, sent, done, redirect, err)
			}
		})
	}

	stop := make(chan struct{})
	var watchers sync.WaitGroup // progress lines and the stall meter
	if cfg.Progress != nil {
		watchers.Go(func() { reportProgress(cfg.Progress, workers, start, measureFrom, stop) })
	}
	var stalls Histogram
	watchers.Go(func() { realStallMeter.run(measureFrom, stop, &stalls) })
	wg.Wait()
	close(stop)
	watchers.Wait()

	res := &Result{
		RPC: cfg.RPC, Rate: cfg.Rate, Concurrency: cfg.Concurrency, Conns: len(conns),
		Warmup: cfg.Warmup, Duration: cfg.Duration, Errors: map[string]uint64{},
	}
	var service Histogram
	var last time.Time
	for _, wk := range workers {
		wk.mu.Lock()
		res.latency.Merge(&wk.latency)
		service.Merge(&wk.service)
		for code, c := range wk.errs {
			if c > 0 {
				res.Errors[codes.Code(code).String()] += c
			}
		}
		res.Redirects += wk.redirects
		res.Passes += wk.passes
		res.Behind += wk.behind
		if wk.lastDone.After(last) {
			last = wk.lastDone
		}
		wk.mu.Unlock()
	}
	res.Calls = res.latency.Count()
	if ns := stoppedAt.Load(); ns != 0 && time.Unix(0, ns).Before(end) {
		res.Interrupted = true
		res.Duration = max(time.Unix(0, ns).Sub(measureFrom), 0)
	}
	if period > 0 {
		if slots := slotsBetween(period, cfg.Warmup, cfg.Warmup+res.Duration); slots > res.Calls {
			res.Unsent = slots - res.Calls
		}
	}
	if last.After(measureFrom) {
		res.Elapsed = last.Sub(measureFrom)
		res.Throughput = float64(res.Calls) / res.Elapsed.Seconds()
	}
	res.Latency = summarize(&res.latency)
	res.Service = summarize(&service)
	res.Stalls = summarize(&stalls)
	return res, nil
}

// slotsBetween counts the fixed-rate slots whose offset from the start lies
// in [from, to), with the same arithmetic the workers schedule by.
func slotsBetween(period float64, from, to time.Duration) uint64 {
	var n uint64
	// Start one slot early: the float product may round either way.
	for i := max(int64(math.Ceil(float64(from)/period))-1, 0); ; i++ {
		off := time.Duration(float64(i) * period)
		if off >= to {
			return n
		}
		if off >= from {
			n++
		}
	}
}

func (wk *worker) record(measured bool, sched, sent, done time.Time, redirect bool, err error) {
	wk.mu.Lock()
	defer wk.mu.Unlock()
	wk.interval.Record(done.Sub(sched))
	if err != nil {
		wk.ivErrors++
	}
	if !measured {
		return
	}
	wk.latency.Record(done.Sub(sched))
	wk.service.Record(done.Sub(sent))
	if sent.Sub(sched) > lateAfter {
		wk.behind++
	}
	if done.After(wk.lastDone) {
		wk.lastDone = done
	}
	switch code := status.Code(err); {
	case err == nil:
		if redirect {
			wk.redirects++
		} else {
			wk.passes++
		}
	case int(code) < len(wk.errs):
		wk.errs[code]++
	default:
		wk.errs[codes.Unknown]++
	}
}

// reportProgress writes one line per second: the calls completed in the last
// second and their latency, so a stall or a reload shows while it happens.
func reportProgress(w io.Writer, workers []*worker, start, measureFrom time.Time, stop <-chan struct{}) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var iv Histogram
	prev := start
	for {
		select {
		case <-stop:
			return
		case now := <-tick.C:
			iv.Reset()
			var errs uint64
			for _, wk := range workers {
				wk.mu.Lock()
				iv.Merge(&wk.interval)
				wk.interval.Reset()
				errs += wk.ivErrors
				wk.ivErrors = 0
				wk.mu.Unlock()
			}
			phase := ""
			if prev.Before(measureFrom) { // the interval began in warm-up
				phase = "  (warm-up)"
			}
			fmt.Fprintf(w, "%5.0fs %9.0f calls/s  errors %d  p50 %s  p99 %s  max %s%s\n",
				now.Sub(start).Seconds(), float64(iv.Count())/now.Sub(prev).Seconds(), errs,
				ms(iv.Quantile(0.5)), ms(iv.Quantile(0.99)), ms(iv.Max()), phase)
			prev = now
		}
	}
}

// ms formats a latency in milliseconds with microsecond resolution.
func ms(d time.Duration) string { return fmt.Sprintf("%.3fms", float64(d)/float64(time.Millisecond)) }

// msf is a latency in milliseconds.
func msf[D ~int64](d D) float64 { return float64(d) / 1e6 }
