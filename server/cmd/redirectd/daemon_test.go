package main

// Tests of the real binary under load: built once per test run, on
// loopback ports of its own, every loop bounded in count and time.

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

// built is the redirectd binary, built once by redirectdBinary.
var built struct {
	once      sync.Once
	dir, path string
	out       []byte
	err       error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
	os.Exit(code)
}

func redirectdBinary(t *testing.T) string {
	t.Helper()
	built.once.Do(func() {
		if built.dir, built.err = os.MkdirTemp("", "redirectd-test-"); built.err != nil {
			return
		}
		built.path = filepath.Join(built.dir, "redirectd")
		built.out, built.err = exec.Command("go", "build", "-o", built.path, ".").CombinedOutput()
	})
	if built.err != nil {
		t.Fatalf("go build ./server/cmd/redirectd: %v\n%s", built.err, built.out)
	}
	return built.path
}

// syncBuffer is a bytes.Buffer the daemon's output and the test share.
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

// process is a running redirectd.
type process struct {
	cmd                *exec.Cmd
	grpcAddr, httpAddr string
	logs               *syncBuffer
	exited             chan struct{} // closed when it has exited; then err is set
	err                error
}

// runRedirectd starts the binary with the built-in example rules, the
// admin listener off, extra args and environment, and waits until
// /readyz answers 200 (at most 30 s).
func runRedirectd(t *testing.T, env []string, args ...string) *process {
	t.Helper()
	p := &process{grpcAddr: freeAddr(t), httpAddr: freeAddr(t), logs: &syncBuffer{}, exited: make(chan struct{})}
	p.cmd = exec.Command(redirectdBinary(t), append([]string{"--grpc-addr", p.grpcAddr, "--http-addr", p.httpAddr, "--admin-addr", "", "--console-addr", ""}, args...)...)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.exited
	})
	hc := &http.Client{Timeout: time.Second}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		select {
		case <-p.exited:
			t.Fatalf("redirectd exited before ready: %v\n%s", p.err, p.logs)
		case <-ctx.Done():
			t.Fatalf("redirectd not ready after 30 s:\n%s", p.logs)
		case <-time.After(20 * time.Millisecond):
		}
		if code, _ := p.get(hc, "/readyz"); code == http.StatusOK {
			return p
		}
	}
}

// get answers the status code of GET path on the HTTP listener, 0 when
// there was no answer.
func (p *process) get(hc *http.Client, path string) (int, error) {
	resp, err := hc.Get("http://" + p.httpAddr + path)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

func (p *process) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
}
