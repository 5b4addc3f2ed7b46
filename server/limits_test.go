package server

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	redirectv1 "github.com/redirectd/redirectd/proto/redirect/v1"
)

// TestRequestBudget: a request over --max-request-bytes and a call that
// finds --max-inflight-bytes held answer RESOURCE_EXHAUSTED at once,
// health still answers then, and every call, answered or refused, gives
// its bytes back.
func TestRequestBudget(t *testing.T) {
	cfg := testConfig()
	cfg.MaxRequestBytes = 64 << 10
	cfg.MaxInflightBytes = 128 << 10
	r := start(t, cfg)
	conn := dial(t, r.GRPCAddr())
	c := redirectv1.NewDecisionServiceClient(conn)
	ctx := context.Background()
	small := &redirectv1.DecideRequest{Method: "GET", Host: "example.com", Path: "/old"}
	if _, err := c.Decide(ctx, small); err != nil {
		t.Fatalf("Decide: %v", err)
	}
	big := &redirectv1.DecideBatchRequest{Requests: repeat(&redirectv1.DecideRequest{Method: "GET", Path: "/" + strings.Repeat("a", 8<<10-1)}, 10)}
	if _, err := c.DecideBatch(ctx, big); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("DecideBatch of 80 KiB with --max-request-bytes 64KiB: %v; want RESOURCE_EXHAUSTED", err)
	}
	var raw []byte
	if err := conn.Invoke(ctx, "/redirect.v1.DecisionService/Decide", &[]byte{0xff}, &raw, grpc.ForceCodec(rawCodec{})); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("undecodable Decide: %v; want INVALID_ARGUMENT", err)
	}
	budget := r.public.budget
	if used := budget.used.Load(); used != 0 {
		t.Fatalf("after the calls ended, %d bytes are still held", used)
	}

	// The budget held by others: refused at once, health unaffected.
	if !budget.reserve(budget.limit - budget.perCall + 1) {
		t.Fatal("could not take the budget")
	}
	start := time.Now()
	if _, err := c.Decide(ctx, small); status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "--max-inflight-bytes") {
		t.Errorf("Decide with the budget held: %v; want RESOURCE_EXHAUSTED naming --max-inflight-bytes", err)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("the refusal took %v; want it at once", took)
	}
	if resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("health with the budget held: %v, %v; want SERVING", resp, err)
	}
	budget.release(budget.limit - budget.perCall + 1)
	if _, err := c.Decide(ctx, small); err != nil {
		t.Errorf("Decide after the budget was given back: %v", err)
	}
}

// TestRequestBudgetWaits: a call that finds the budget held waits for a
// release instead of being refused at once, so a burst of small calls is
// answered; a call whose budget is not given back in time is refused.
func TestRequestBudgetWaits(t *testing.T) {
	ctx := context.Background()
	b := newRequestBudget(100, 60)
	b.wait = time.Minute // however slow the machine, the release comes first
	if !b.reserve(60) {
		t.Fatal("could not take the budget")
	}
	admitted := make(chan bool)
	go func() { admitted <- b.reserveWaiting(ctx, 60) }()
	for b.waiting.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	b.release(60)
	if !<-admitted {
		t.Fatal("a call waiting for the budget was refused after it was given back")
	}
	b.wait = time.Millisecond
	if b.reserveWaiting(ctx, 60) {
		t.Fatal("a call was admitted beyond the budget")
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if b.reserveWaiting(cancelled, 60) {
		t.Fatal("a call whose caller has gone was admitted beyond the budget")
	}
	b.release(60)
	if used := b.used.Load(); used != 0 {
		t.Errorf("%d bytes still held after every reservation was given back", used)
	}
}
