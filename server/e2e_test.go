package server

import (
	"bytes"
	"context"
	"encoding/json"

	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestDaemonEndToEnd does what README tells a newcomer: start redirectd
// with no rules flag, list its services with grpcurl and run README's
// Decide example, which must print the answer README shows.
func TestDaemonEndToEnd(t *testing.T) {
	grpcurl, err := exec.LookPath("grpcurl")
	if err != nil {
		t.Skip("grpcurl is not on PATH; install with: go install github.com/fullstorydev/grpcurl/cmd/grpcurl@v1.9.4")
	}
	wantList, command, wantOutput := readmeExamples(t)

	bin := filepath.Join(t.TempDir(), "redirectd")
	if out, err := exec.Command("go", "build", "-o", bin, "./cmd/redirectd").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	grpcAddr, httpAddr, adminAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	daemon := exec.Command(bin, "--grpc-addr", grpcAddr, "--http-addr", httpAddr, "--admin-addr", adminAddr, "--console-addr", "", "--drain-delay", "0")
	var logs logBuffer
	daemon.Stdout, daemon.Stderr = &logs, &logs
	if err := daemon.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- daemon.Wait() }()
	defer func() {
		if daemon.ProcessState == nil {
			daemon.Process.Kill()
			<-exited
		}
	}()
	waitForReady(t, httpAddr, exited, &logs)

	list, err := exec.Command(grpcurl, "-plaintext", grpcAddr, "list").CombinedOutput()
	if err != nil {
		t.Fatalf("grpcurl list: %v\n%s", err, list)
	}
	if diff := cmp.Diff(wantList, string(list)); diff != "" {
		t.Errorf("grpcurl list printed something else than README shows (-README +got):\n%s", diff)
	}

	// README addresses the daemon at its default port.
	command = strings.ReplaceAll(command, "localhost:50051", grpcAddr)
	out, err := exec.Command("sh", "-c", command).CombinedOutput()
	if err != nil {
		t.Fatalf("README's example %s: %v\n%s", command, err, out)
	}
	var got, want any
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("grpcurl printed %q: %v", out, err)
	}
	if err := json.Unmarshal([]byte(wantOutput), &want); err != nil {
		t.Fatalf("README's expected output %q: %v", wantOutput, err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("README's Decide example printed something else (-README +got):\n%s", diff)
	}

	if err := daemon.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := <-exited; err != nil {
		t.Errorf("redirectd after SIGTERM: %v\n%s", err, &logs)
	}
	for _, want := range []string{"built-in example", "shutting down"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("the daemon's log does not mention %q:\n%s", want, &logs)
		}
	}
}

// TestDaemonBadRulesFile: the binary exits non-zero at once and says which
// file and line is wrong.
func TestDaemonBadRulesFile(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "redirectd")
	if out, err := exec.Command("go", "build", "-o", bin, "./cmd/redirectd").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	rules := filepath.Join("testdata", "bad-rules.yaml")
	cmd := exec.Command(bin, "--rules", rules, "--grpc-addr", freeAddr(t), "--http-addr", freeAddr(t), "--admin-addr", freeAddr(t))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	if exit, ok := err.(*exec.ExitError); !ok || exit.ExitCode() != 1 {
		t.Fatalf("redirectd with a bad rules file: %v, want exit status 1\n%s", err, &stderr)
	}
	if !strings.Contains(stderr.String(), "redirectd: ") || !strings.Contains(stderr.String(), rules+":7") {
		t.Errorf("stderr does not name %s:7:\n%s", rules, &stderr)
	}
}

// readmeExamples returns what README shows grpcurl list print, and its
// grpcurl Decide command with the JSON shown after it.
func readmeExamples(t *testing.T) (list, command, output string) {
	t.Helper()
	readme, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	l := regexp.MustCompile("(?s)```sh\ngrpcurl -plaintext localhost:50051 list\n```\\s*```\n(.*?)```").FindSubmatch(readme)
	if l == nil {
		t.Fatal("README.md has no ```sh block with grpcurl -plaintext localhost:50051 list followed by a ``` block of its output")
	}
	m := regexp.MustCompile("(?s)```sh\n(grpcurl [^`]*?redirect\\.v1\\.DecisionService/Decide)\n```.*?```json\n(.*?)```").FindSubmatch(readme)
	if m == nil {
		t.Fatal("README.md has no ```sh block with a grpcurl ... redirect.v1.DecisionService/Decide command followed by a ```json block")
	}
	// A command continued over lines with backslashes is one shell line.
	return string(l[1]), strings.ReplaceAll(string(m[1]), "\\\n", " "), string(m[2])
}

func waitForReady(t *testing.T, httpAddr string, exited <-chan error, logs *logBuffer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for {
		select {
		case err := <-exited:
			t.Fatalf("redirectd exited before ready: %v\n%s", err, logs)
		case <-ctx.Done():
			t.Fatalf("redirectd not ready after a minute:\n%s", logs)
		case <-time.After(20 * time.Millisecond):
		}
		resp, err := http.Get("http://" + httpAddr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
	}
}
