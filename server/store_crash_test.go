package server

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	redirectv1 "github.com/redirectd/redirectd/proto/redirect/v1"
)

// daemon is a redirectd process started from the built binary.
type daemon struct {
	cmd                           *exec.Cmd
	exited                        chan error
	logs                          *logBuffer
	grpcAddr, httpAddr, adminAddr string
}

func startDaemon(t *testing.T, bin string, args ...string) *daemon {
	t.Helper()
	d := &daemon{exited: make(chan error, 1), logs: &logBuffer{}, grpcAddr: freeAddr(t), httpAddr: freeAddr(t), adminAddr: freeAddr(t)}
	d.cmd = exec.Command(bin, append([]string{"--grpc-addr", d.grpcAddr, "--http-addr", d.httpAddr, "--admin-addr", d.adminAddr, "--console-addr", "", "--log-format", "text"}, args...)...)
	d.cmd.Stdout, d.cmd.Stderr = d.logs, d.logs
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.exited <- d.cmd.Wait() }()
	t.Cleanup(func() {
		if d.cmd.ProcessState == nil {
			d.cmd.Process.Kill()
			<-d.exited
		}
	})
	waitForReady(t, d.httpAddr, d.exited, d.logs)
	return d
}

// TestAcknowledgedWritesSurviveSIGKILL streams PutRule calls to the real
// daemon, kills it with SIGKILL in the middle of the stream, restarts it
// on the same rules file and looks for every write it acknowledged, three
// times over.
func TestAcknowledgedWritesSurviveSIGKILL(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "redirectd")
	if out, err := exec.Command("go", "build", "-o", bin, "./cmd/redirectd").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	rules := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(rules, []byte("rules:\n  - id: seed\n    path: /seed\n    to: /seeded\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	acked := map[string]string{} // rule id → its target, as acknowledged
	next := 0
	for round := range 3 {
		d := startDaemon(t, bin, "--rules", rules)
		rs := redirectv1.NewRuleServiceClient(dial(t, d.adminAddr))

		// Every write acknowledged before an earlier kill is there.
		checkAcked(t, rs, acked, round)

		var mu sync.Mutex
		enough := make(chan struct{})
		stopped := make(chan struct{})
		go func() {
			defer close(stopped)
			for n := 0; ; n++ {
				mu.Lock()
				i := next
				next++
				mu.Unlock()
				id, to := fmt.Sprintf("w%04d", i), fmt.Sprintf("/target/%d", i)
				_, err := rs.PutRule(context.Background(), &redirectv1.PutRuleRequest{Rule: &redirectv1.Rule{Id: id, Path: "/w/" + id, To: to}})
				if err != nil {
					return // the daemon is gone: this write was never acknowledged
				}
				mu.Lock()
				acked[id] = to
				mu.Unlock()
				if n == 25 {
					close(enough)
				}
			}
		}()
		select {
		case <-enough:
		case <-time.After(30 * time.Second):
			t.Fatalf("round %d: 25 writes not acknowledged in 30s\n%s", round, d.logs)
		}
		// Writes keep flowing: the kill lands on one in flight.
		if err := d.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		<-d.exited
		<-stopped
	}
	d := startDaemon(t, bin, "--rules", rules)
	checkAcked(t, redirectv1.NewRuleServiceClient(dial(t, d.adminAddr)), acked, 3)
	if len(acked) < 75 {
		t.Errorf("only %d writes acknowledged in three rounds, want at least 75", len(acked))
	}
}

// checkAcked lists every rule and wants each acknowledged write in it.
func checkAcked(t *testing.T, rs redirectv1.RuleServiceClient, acked map[string]string, round int) {
	t.Helper()
	have := map[string]string{}
	token := ""
	for {
		resp, err := rs.ListRules(context.Background(), &redirectv1.ListRulesRequest{PageSize: 1000, PageToken: token})
		if err != nil {
			t.Fatalf("after restart %d: ListRules: %v", round, err)
		}
		for _, r := range resp.GetRules() {
			have[r.GetId()] = r.GetTo()
		}
		if token = resp.GetNextPageToken(); token == "" {
			break
		}
	}
	if have["seed"] != "/seeded" {
		t.Errorf("after restart %d: the seed rule is gone", round)
	}
	for id, to := range acked {
		if have[id] != to {
			t.Errorf("after restart %d: acknowledged write %s → %s is missing (found %q)", round, id, to, have[id])
		}
	}
}
