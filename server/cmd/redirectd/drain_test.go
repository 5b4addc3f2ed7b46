package main

import (
	"context"
	"net/http"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	redirectv1 "github.com/redirectd/redirectd/proto/redirect/v1"
)

// TestSIGTERMDrainsUnderLoad sends SIGTERM to the daemon while it answers
// about 1,000 calls a second and holds an open health Watch, as a rolling
// update does (README, Daemon behaviour). Health must turn NOT_SERVING and
// /readyz 503 at once; no call sent before the drain delay ended may
// fail; the open Watch must not hold the exit.
func TestSIGTERMDrainsUnderLoad(t *testing.T) {
	const drain, shutdownTimeout = 1500 * time.Millisecond, 10 * time.Second
	p := runRedirectd(t, nil, "--drain-delay", drain.String(), "--shutdown-timeout", shutdownTimeout.String())
	conn, err := grpc.NewClient(p.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	health := healthpb.NewHealthClient(conn)
	watchCtx, endWatch := context.WithTimeout(context.Background(), 30*time.Second)
	defer endWatch()
	watch, err := health.Watch(watchCtx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := watch.Recv(); err != nil || got.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health before SIGTERM: %v, %v; want SERVING", got, err)
	}

	// The load: 4 callers, each a call every 4 ms at most, until the
	// daemon has exited or 20 s have passed.
	type call struct {
		sent time.Time
		err  error
	}
	var (
		mu    sync.Mutex
		calls []call
		wg    sync.WaitGroup
	)
	loadCtx, stopLoad := context.WithTimeout(context.Background(), 20*time.Second)
	defer stopLoad()
	client := redirectv1.NewDecisionServiceClient(conn)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(4 * time.Millisecond)
			defer tick.Stop()
			for loadCtx.Err() == nil {
				sent := time.Now()
				ctx, cancel := context.WithTimeout(loadCtx, 5*time.Second)
				_, err := client.Decide(ctx, &redirectv1.DecideRequest{Method: "GET", Host: "example.com", Path: "/old"})
				cancel()
				if loadCtx.Err() != nil {
					return
				}
				mu.Lock()
				calls = append(calls, call{sent, err})
				mu.Unlock()
				<-tick.C
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)

	term := time.Now()
	p.signal(t, syscall.SIGTERM)
	if got, err := watch.Recv(); err != nil || got.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("health Watch after SIGTERM: %v, %v; want NOT_SERVING", got, err)
	}
	if got, err := health.Check(context.Background(), &healthpb.HealthCheckRequest{}); err != nil || got.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Errorf("health Check after SIGTERM: %v, %v; want NOT_SERVING", got, err)
	}
	if code, err := p.get(&http.Client{Timeout: time.Second}, "/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("GET /readyz after SIGTERM: %d %v; want 503", code, err)
	}
	if took := time.Since(term); took > drain/2 {
		t.Errorf("health and /readyz told of the shutdown %v after SIGTERM; want at once", took)
	}

	select {
	case <-p.exited:
	case <-time.After(drain + shutdownTimeout + 5*time.Second):
		t.Fatalf("redirectd still running %v after SIGTERM:\n%s", time.Since(term), p.logs)
	}
	exitedAfter := time.Since(term)
	stopLoad()
	wg.Wait()
	if p.err != nil {
		t.Errorf("redirectd after SIGTERM: %v\n%s", p.err, p.logs)
	}
	// The Watch ended with the drain delay, not at --shutdown-timeout.
	if exitedAfter > drain+shutdownTimeout/2 {
		t.Errorf("redirectd exited %v after SIGTERM; an open health Watch must not hold it (drain %v, shutdown timeout %v)", exitedAfter, drain, shutdownTimeout)
	}

	drainEnd := term.Add(drain)
	var before, duringDrain, failed int
	for _, c := range calls {
		if !c.sent.Before(drainEnd) {
			continue
		}
		before++
		if c.sent.After(term) {
			duringDrain++
		}
		if c.err != nil {
			failed++
			if failed <= 5 {
				t.Errorf("call sent %v after SIGTERM, before the drain delay ended, failed: %v", c.sent.Sub(term).Round(time.Millisecond), c.err)
			}
		}
	}
	t.Logf("%d calls sent before the drain delay ended (%d after SIGTERM), %d failed; exit %v after SIGTERM", before, duringDrain, failed, exitedAfter.Round(time.Millisecond))
	if duringDrain < 100 {
		t.Errorf("only %d calls were sent during the drain delay: the load did not test it", duringDrain)
	}
}
