// Package etcdtest starts a real etcd server for tests, on loopback ports
// of its own and in a temporary directory: the etcd store is tested
// against etcd itself, never a mock.
package etcdtest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// Binary is the etcd server the tests run: Debian's etcd-server package
// installs it there (.ci/run does).
const Binary = "/usr/bin/etcd"

// Etcd is a running (or stopped) single-member etcd.
type Etcd struct {
	t         testing.TB
	dir       string
	clientURL string
	peerURL   string
	mu        sync.Mutex
	cmd       *exec.Cmd
	exited    chan struct{}
	logs      *syncBuffer
	// Client is a client of this etcd for the test's own reads and writes.
	Client *clientv3.Client
}

// Start starts etcd and waits until it answers (at most 30 s), or skips
// the test when the binary is not installed. It is stopped at the end of
// the test.
func Start(t testing.TB) *Etcd {
	t.Helper()
	if _, err := os.Stat(Binary); err != nil {
		t.Skipf("etcd server not installed (%v): install Debian's etcd-server package (apt-get install etcd-server) to run this test", err)
	}
	e := &Etcd{t: t, dir: t.TempDir(), clientURL: "http://" + freeAddr(t), peerURL: "http://" + freeAddr(t)}
	e.start()
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{e.clientURL}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	e.Client = c
	t.Cleanup(func() {
		c.Close()
		e.Stop()
	})
	return e
}

// Endpoint is the client URL.
func (e *Etcd) Endpoint() string { return e.clientURL }

// CPU is the processor time etcd has used so far, user and system; false
// where it cannot be read. Benchmarks report etcd's share of an operation
// with it, as etcd runs on the same cores.
func (e *Etcd) CPU() (time.Duration, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.cmd == nil {
		return 0, false
	}
	return ProcessCPU(e.cmd.Process.Pid)
}

// ProcessCPU is the processor time process pid has used so far, user and
// system, read from /proc (Linux); false where it cannot be read.
func ProcessCPU(pid int) (time.Duration, bool) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, false
	}
	// The fields after the command name, which is in parentheses:
	// utime and stime are the 12th and 13th, in clock ticks (100 a
	// second on Linux).
	_, rest, ok := strings.Cut(string(stat), ") ")
	f := strings.Fields(rest)
	if !ok || len(f) < 13 {
		return 0, false
	}
	user, err1 := strconv.ParseInt(f[11], 10, 64)
	sys, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return time.Duration(user+sys) * 10 * time.Millisecond, true
}

func (e *Etcd) start() {
	e.t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	e.logs = &syncBuffer{}
	e.cmd = exec.Command(Binary,
		"--name", "test",
		"--data-dir", e.dir,
		"--listen-client-urls", e.clientURL, "--advertise-client-urls", e.clientURL,
		"--listen-peer-urls", e.peerURL, "--initial-advertise-peer-urls", e.peerURL,
		"--initial-cluster", "test="+e.peerURL,
		"--logger", "zap", "--log-level", "warn")
	e.cmd.Stdout, e.cmd.Stderr = e.logs, e.logs
	if err := e.cmd.Start(); err != nil {
		e.t.Fatalf("start %s: %v", Binary, err)
	}
	exited := make(chan struct{})
	e.exited = exited
	go func() { e.cmd.Wait(); close(exited) }()
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{e.clientURL}, DialTimeout: time.Second, Logger: zap.NewNop()})
	if err != nil {
		e.t.Fatal(err)
	}
	defer c.Close()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			e.t.Fatalf("etcd exited at start:\n%s", e.logs)
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := c.Get(ctx, "health")
		cancel()
		if err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	e.t.Fatalf("etcd at %s not answering after 30 s:\n%s", e.clientURL, e.logs)
}

// Stop stops etcd (SIGKILL: the tests want it gone at once) and waits
// until it has exited. Its data stays for Restart.
func (e *Etcd) Stop() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.cmd == nil {
		return
	}
	e.cmd.Process.Kill()
	<-e.exited
	e.cmd = nil
}

// Restart starts a stopped etcd again on the same ports and data.
func (e *Etcd) Restart() { e.start() }

// Compact compacts etcd's history up to its current revision.
func (e *Etcd) Compact(ctx context.Context) int64 {
	e.t.Helper()
	resp, err := e.Client.Get(ctx, "compact")
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.Client.Compact(ctx, resp.Header.Revision, clientv3.WithCompactPhysical()); err != nil {
		e.t.Fatal(err)
	}
	return resp.Header.Revision
}

func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
