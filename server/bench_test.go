package server

import (
	"context"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/emptypb"

	redirectv1 "github.com/redirectd/redirectd/proto/redirect/v1"
)

// noopDesc is a unary method that decodes its request and answers it
// back: the gRPC floor that Decide is compared with, on a server with the
// same options and interceptors.
var noopDesc = grpc.ServiceDesc{
	ServiceName: "redirectd.bench.Noop",
	HandlerType: (*any)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "Call",
		Handler: func(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
			in := new(emptypb.Empty)
			if err := dec(in); err != nil {
				return nil, err
			}
			if interceptor == nil {
				return in, nil
			}
			info := &grpc.UnaryServerInfo{Server: srv, FullMethod: noopMethod}
			return interceptor(ctx, in, info, func(_ context.Context, req any) (any, error) { return req, nil })
		},
	}},
}

const noopMethod = "/redirectd.bench.Noop/Call"

const (
	benchCallers = 50
	benchConns   = 4
)

// BenchmarkGRPC compares Decide with the no-op handler in one run, both
// on the daemon's own public gRPC server (New: same options, interceptors,
// metrics and hit counting): 50 concurrent callers over 4 connections on
// loopback, client and server in this process.
//
//	go test -run '^$' -bench BenchmarkGRPC -benchtime 200000x -count 5 ./server/
func BenchmarkGRPC(b *testing.B) {
	cfg := DefaultConfig()
	cfg.GRPCAddr, cfg.HTTPAddr, cfg.AdminAddr, cfg.ConsoleAddr = "127.0.0.1:0", "127.0.0.1:0", "", ""
	cfg.DrainDelay = 0
	cfg.Rules = filepath.Join("testdata", "rules.yaml")
	s, err := New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	s.public.RegisterService(&noopDesc, struct{}{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			b.Error(err)
		}
	}()
	for !s.loaded.Load() {
		select {
		case err := <-done:
			b.Fatalf("Run: %v", err)
		case <-time.After(10 * time.Millisecond):
		}
	}

	conns := make([]*grpc.ClientConn, benchConns)
	for i := range conns {
		conn, err := grpc.NewClient(s.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			b.Fatal(err)
		}
		defer conn.Close()
		conns[i] = conn
	}

	b.Run("noop", func(b *testing.B) {
		runCallers(b, func(ctx context.Context, caller int) error {
			return conns[caller%benchConns].Invoke(ctx, noopMethod, &emptypb.Empty{}, new(emptypb.Empty))
		})
	})
	b.Run("decide", func(b *testing.B) {
		clients := make([]redirectv1.DecisionServiceClient, benchConns)
		for i, conn := range conns {
			clients[i] = redirectv1.NewDecisionServiceClient(conn)
		}
		req := &redirectv1.DecideRequest{Method: "GET", Scheme: "https", Host: "example.com", Path: "/docs/intro?lang=en"}
		runCallers(b, func(ctx context.Context, caller int) error {
			resp, err := clients[caller%benchConns].Decide(ctx, req)
			if err == nil && !resp.GetRedirect() {
				b.Errorf("Decide(%v) did not redirect", req)
			}
			return err
		})
	})
}

// runCallers makes b.N calls from benchCallers goroutines and reports
// throughput and latency percentiles.
func runCallers(b *testing.B, call func(ctx context.Context, caller int) error) {
	b.ReportAllocs()
	ctx := context.Background()
	var next atomic.Int64
	latencies := make([][]time.Duration, benchCallers)
	var wg sync.WaitGroup
	b.ResetTimer()
	cpuStart := processCPU(b)
	start := time.Now()
	for c := range benchCallers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(b.N) {
				t0 := time.Now()
				if err := call(ctx, c); err != nil {
					b.Error(err)
					return
				}
				latencies[c] = append(latencies[c], time.Since(t0))
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu := processCPU(b) - cpuStart
	b.StopTimer()

	all := slices.Concat(latencies...)
	slices.Sort(all)
	percentile := func(p float64) float64 {
		return float64(all[int(p*float64(len(all)-1))].Nanoseconds()) / 1e3
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "calls/s")
	b.ReportMetric(percentile(0.50), "p50-µs")
	b.ReportMetric(percentile(0.99), "p99-µs")
	// CPU per call (client and server, both in this process) does not
	// depend on what else the machine runs; calls/s does.
	b.ReportMetric(float64(cpu.Nanoseconds())/1e3/float64(b.N), "cpu-µs/call")
}

// processCPU is the user and system CPU time this process has used.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
