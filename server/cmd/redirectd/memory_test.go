package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	appsv1 "k8s.io/api/apps/v1"
	"sigs.k8s.io/yaml"

	redirectv1 "github.com/redirectd/redirectd/proto/redirect/v1"
)

// rawCodec sends pre-marshalled request bytes, so 48 callers of a 15 MB
// batch cost the test's process no marshalling.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return *v.(*[]byte), nil }
func (rawCodec) Unmarshal([]byte, any) error   { return nil }
func (rawCodec) Name() string                  { return "proto" }

// manifestMemory reads the Kubernetes manifest's container memory limit,
// the figure the daemon must live within; the manifest passes it to
// --memory-limit (through the downward API), as the test does.
func manifestMemory(t *testing.T) int64 {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "..", "deploy", "kubernetes", "deployment.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var d appsv1.Deployment
	if err := yaml.Unmarshal(data, &d); err != nil {
		t.Fatalf("deployment.yaml: %v", err)
	}
	c := d.Spec.Template.Spec.Containers[0]
	mem := c.Resources.Limits.Memory()
	if mem.IsZero() {
		t.Fatalf("deployment.yaml: container %s has no memory limit", c.Name)
	}
	return mem.Value()
}

// TestMemoryBoundUnderLargeBatches: 48 callers repeating a DecideBatch of
// 1,900 requests of 8 KiB each (about 15 MB) against the daemon under the
// manifest's memory limit given to --memory-limit. The batches are allowed in size
// (--max-request-bytes 16MiB, the old limit), so what bounds memory is
// --max-inflight-bytes: peak RSS must stay under the manifest's memory
// limit, health must answer throughout, and every call must either
// succeed or be refused with RESOURCE_EXHAUSTED.
func TestMemoryBoundUnderLargeBatches(t *testing.T) {
	const (
		callers, conns = 48, 8
		load           = 8 * time.Second
	)
	limit := manifestMemory(t)
	p := runRedirectd(t, nil, "--max-request-bytes", "16MiB", "--memory-limit", strconv.FormatInt(limit, 10))
	d := &daemon{cmd: p.cmd}

	batch := &redirectv1.DecideBatchRequest{}
	for i := range 1900 {
		path := "/" + strings.Repeat(string(rune('a'+i%26)), 8<<10-1)
		batch.Requests = append(batch.Requests, &redirectv1.DecideRequest{Method: "GET", Host: "example.com", Path: path})
	}
	body, err := proto.Marshal(batch)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("batch: %d requests, %.1f MiB; manifest: memory limit %.0f MiB (--memory-limit)", len(batch.Requests), mib(int64(len(body))), mib(limit))

	// Cancelled, not a deadline: a deadline travels with each call, and
	// the daemon would end calls with DEADLINE_EXCEEDED a moment before
	// the test's own context says it is done.
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	time.AfterFunc(load, stop)
	var ok, exhausted atomic.Int64
	var otherMu sync.Mutex
	var other []error
	var wg sync.WaitGroup
	for range conns {
		conn, err := grpc.NewClient(p.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(32<<20), grpc.ForceCodec(rawCodec{})))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		for range callers / conns {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for ctx.Err() == nil {
					var resp []byte
					err := conn.Invoke(ctx, redirectv1.DecisionService_DecideBatch_FullMethodName, &body, &resp)
					switch code := status.Code(err); {
					case err == nil:
						ok.Add(1)
					case code == codes.ResourceExhausted:
						exhausted.Add(1)
						time.Sleep(20 * time.Millisecond) // a client's backoff
					case ctx.Err() != nil:
					default:
						otherMu.Lock()
						other = append(other, err)
						otherMu.Unlock()
						time.Sleep(20 * time.Millisecond)
					}
				}
			}()
		}
	}

	// Health on a connection of its own, and RSS, every 250 ms.
	hconn, err := grpc.NewClient(p.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer hconn.Close()
	health := healthpb.NewHealthClient(hconn)
	var checks, healthFailures int
	var maxRSS int64
	for tick := time.NewTicker(250 * time.Millisecond); ctx.Err() == nil; <-tick.C {
		hctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		resp, err := health.Check(hctx, &healthpb.HealthCheckRequest{})
		cancel()
		checks++
		if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			healthFailures++
			if healthFailures <= 3 {
				t.Errorf("health under load: %v, %v; want SERVING within 2 s", resp.GetStatus(), err)
			}
		}
		rss, _ := d.memory(t)
		maxRSS = max(maxRSS, rss)
	}
	wg.Wait()
	_, peak := d.memory(t)
	t.Logf("%d batches answered, %d refused RESOURCE_EXHAUSTED, %d other errors; %d health checks, %d failed; RSS max %.0f MiB, peak (VmHWM) %.0f MiB",
		ok.Load(), exhausted.Load(), len(other), checks, healthFailures, mib(maxRSS), mib(peak))
	if peak >= limit {
		t.Errorf("peak RSS %.0f MiB reached the manifest's memory limit %.0f MiB: the pod would be OOM-killed", mib(peak), mib(limit))
	}
	if err := errors.Join(other...); err != nil {
		t.Errorf("calls failed otherwise than RESOURCE_EXHAUSTED: %.500v", err)
	}
	if ok.Load() == 0 {
		t.Error("no batch was answered: the bound starves every caller")
	}
}
