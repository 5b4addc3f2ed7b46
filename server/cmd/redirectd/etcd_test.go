package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/redirectd/redirectd/internal/etcdtest"
	redirectv1 "github.com/redirectd/redirectd/proto/redirect/v1"
)

// etcdReplica is one redirectd process of a fleet sharing etcd.
type etcdReplica struct {
	*process
	decide redirectv1.DecisionServiceClient
	admin  redirectv1.RuleServiceClient
}

func startEtcdReplica(t *testing.T, endpoint string) *etcdReplica {
	t.Helper()
	adminAddr := freeAddr(t)
	p := runRedirectd(t, nil, "--store", "etcd", "--etcd-endpoints", endpoint, "--admin-addr", adminAddr)
	r := &etcdReplica{process: p}
	for addr, set := range map[string]func(*grpc.ClientConn){
		p.grpcAddr: func(c *grpc.ClientConn) { r.decide = redirectv1.NewDecisionServiceClient(c) },
		adminAddr:  func(c *grpc.ClientConn) { r.admin = redirectv1.NewRuleServiceClient(c) },
	} {
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		set(conn)
	}
	return r
}

// location is where the replica redirects path to, "" when it does not.
func (r *etcdReplica) location(path string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	resp, err := r.decide.Decide(ctx, &redirectv1.DecideRequest{Method: "GET", Host: "example.com", Path: path})
	return resp.GetLocation(), err
}

// waitAll waits (at most 20 s) until every replica redirects path to
// location.
func waitAll(t *testing.T, replicas []*etcdReplica, path, location string) {
	t.Helper()
	for i, r := range replicas {
		deadline := time.Now().Add(20 * time.Second)
		for {
			got, err := r.location(path)
			if err == nil && got == location {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("replica %d redirects %s to %q (%v), want %q\n%s", i, path, got, err, location, r.logs)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

func putRule(t *testing.T, r *etcdReplica, id, to string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := r.admin.PutRule(ctx, &redirectv1.PutRuleRequest{Rule: &redirectv1.Rule{Id: id, Path: "/" + id, To: to}}); err != nil {
		t.Fatalf("put %s: %v", id, err)
	}
}

// TestEtcdFleet: etcd and three redirectd processes. A write through one
// is answered by all three; etcd stopped, no Decide call fails over 10 s
// of load; etcd back, a write reaches all three; a replica cut off while
// etcd compacts past its revision resyncs.
func TestEtcdFleet(t *testing.T) {
	ec := etcdtest.Start(t)
	cut := startCutProxy(t, strings.TrimPrefix(ec.Endpoint(), "http://"))
	fleet := []*etcdReplica{
		startEtcdReplica(t, ec.Endpoint()),
		startEtcdReplica(t, ec.Endpoint()),
		startEtcdReplica(t, "http://"+cut.addr()),
	}

	putRule(t, fleet[0], "one", "/landed-1")
	waitAll(t, fleet, "/one", "/landed-1")

	// etcd away: light load on every replica for 10 s.
	ec.Stop()
	var calls, failed atomic.Int64
	var firstMu sync.Mutex
	first := ""
	loadCtx, stopLoad := context.WithTimeout(context.Background(), 10*time.Second)
	defer stopLoad()
	var wg sync.WaitGroup
	for _, r := range fleet {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for loadCtx.Err() == nil {
				got, err := r.location("/one")
				calls.Add(1)
				if err != nil || got != "/landed-1" {
					failed.Add(1)
					firstMu.Lock()
					if first == "" {
						first = fmt.Sprintf("location %q, error %v", got, err)
					}
					firstMu.Unlock()
				}
				time.Sleep(10 * time.Millisecond)
			}
		}()
	}
	wg.Wait()
	if failed.Load() > 0 || calls.Load() < 100 {
		t.Errorf("etcd stopped: %d of %d Decide calls failed or answered wrong (first: %s); want 0 of at least 100", failed.Load(), calls.Load(), first)
	}
	hc := &http.Client{Timeout: time.Second}
	for i, r := range fleet {
		if code, err := r.get(hc, "/readyz"); code != http.StatusOK {
			t.Errorf("replica %d with etcd stopped: /readyz %d %v, want 200", i, code, err)
		}
	}

	ec.Restart()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := fleet[1].admin.PutRule(ctx, &redirectv1.PutRuleRequest{Rule: &redirectv1.Rule{Id: "two", Path: "/two", To: "/landed-2"}})
		cancel()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("put after etcd came back: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	waitAll(t, fleet, "/two", "/landed-2")

	// The third replica cut off from etcd while history it has not seen
	// is compacted away: back, it reloads the whole set.
	cut.cut()
	putRule(t, fleet[0], "three", "/landed-3")
	putRule(t, fleet[0], "one", "/landed-1-again")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ec.Compact(ctx)
	cut.restore()
	waitAll(t, fleet, "/three", "/landed-3")
	waitAll(t, fleet, "/one", "/landed-1-again")
	if !strings.Contains(fleet[2].logs.String(), "etcd compacted its history") {
		t.Errorf("the cut-off replica caught up without the compaction resync:\n%s", fleet[2].logs)
	}
}

// cutProxy forwards TCP connections to etcd until cut: then it closes
// them and refuses new ones, as a network partition would, until
// restored.
type cutProxy struct {
	lis    net.Listener
	target string
	mu     sync.Mutex
	open   bool
	conns  []net.Conn
}

func startCutProxy(t *testing.T, target string) *cutProxy {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{lis: lis, target: target, open: true}
	t.Cleanup(func() {
		lis.Close()
		p.cut()
	})
	go func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			if !p.open {
				p.mu.Unlock()
				c.Close()
				continue
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				p.mu.Unlock()
				c.Close()
				continue
			}
			p.conns = append(p.conns, c, up)
			p.mu.Unlock()
			go func() { io.Copy(up, c); up.Close() }()
			go func() { io.Copy(c, up); c.Close() }()
		}
	}()
	return p
}

func (p *cutProxy) addr() string { return p.lis.Addr().String() }

func (p *cutProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.open = false
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

func (p *cutProxy) restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.open = true
}
