package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/redirectd/redirectd/client/loadgen"
	redirectv1 "github.com/redirectd/redirectd/proto/redirect/v1"
)

// benchTarget answers Decide and Check by path: /hit redirects, /fail
// fails with UNAVAILABLE, anything else passes.
type benchTarget struct {
	redirectv1.UnimplementedDecisionServiceServer
	authv3.UnimplementedAuthorizationServer
}

func answer(path string) (bool, error) {
	switch path {
	case "/hit":
		return true, nil
	case "/fail":
		return false, status.Error(codes.Unavailable, "induced")
	}
	return false, nil
}

func (benchTarget) Decide(_ context.Context, req *redirectv1.DecideRequest) (*redirectv1.DecideResponse, error) {
	redirect, err := answer(req.GetPath())
	if err != nil {
		return nil, err
	}
	return &redirectv1.DecideResponse{Redirect: redirect}, nil
}

func (benchTarget) Check(_ context.Context, req *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	redirect, err := answer(req.GetAttributes().GetRequest().GetHttp().GetPath())
	if err != nil {
		return nil, err
	}
	code := codes.OK
	if redirect {
		code = codes.PermissionDenied
	}
	return &authv3.CheckResponse{Status: &rpcstatus.Status{Code: int32(code)}}, nil
}

func startBenchTarget(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	redirectv1.RegisterDecisionServiceServer(srv, benchTarget{})
	authv3.RegisterAuthorizationServer(srv, benchTarget{})
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	return lis.Addr().String()
}

func writeRequests(t *testing.T, paths ...string) string {
	t.Helper()
	var b strings.Builder
	for _, p := range paths {
		b.WriteString(`{"method":"GET","scheme":"https","host":"example.com","path":"` + p + `"}` + "\n")
	}
	file := filepath.Join(t.TempDir(), "requests.jsonl")
	if err := os.WriteFile(file, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return file
}

func TestBenchFixedRateJSON(t *testing.T) {
	addr := startBenchTarget(t)
	reqs := writeRequests(t, "/hit", "/miss")
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"bench", "--server", addr, "--rate", "200", "--duration", "500ms",
		"--warmup", "0s", "--concurrency", "4", "--conns", "2", "--requests", reqs, "--json"}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr.String())
	}
	var res loadgen.Result
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		t.Fatalf("--json output is not a result: %v\n%s", err, stdout.String())
	}
	if res.RPC != "decide" || res.Rate != 200 || res.Conns != 2 || res.Calls != 100 || res.Redirects != 50 || res.Passes != 50 || res.Failed() != 0 {
		t.Errorf("result %+v: want decide at 200/s over 2 conns, 100 calls, 50 redirects, 50 passes, no errors", res)
	}
	if res.Latency.P99 <= 0 || res.Latency.P50 > res.Latency.Max {
		t.Errorf("latency summary %+v is not a distribution", res.Latency)
	}
}

func TestBenchClosedLoopCheckTable(t *testing.T) {
	addr := startBenchTarget(t)
	reqs := writeRequests(t, "/hit", "/miss")
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"bench", "--target", addr, "--rpc", "check", "--duration", "300ms",
		"--warmup", "0s", "--concurrency", "3", "--requests", reqs, "--quiet"}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr.String())
	}
	for _, want := range []string{"check, closed loop, 3 callers, 4 connections", "throughput", "from schedule", "p99.9"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, stdout.String())
		}
	}
	if stderr.Len() != 0 {
		t.Errorf("--quiet run wrote to stderr:\n%s", stderr.String())
	}
}

// A failed call fails the run: `redirectctl bench` is the gate for "no
// request fails during a reload".
func TestBenchFailsOnFailedCalls(t *testing.T) {
	addr := startBenchTarget(t)
	reqs := writeRequests(t, "/miss", "/fail")
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"bench", "--server", addr, "--rate", "100", "--duration", "200ms",
		"--warmup", "0s", "--requests", reqs}, &stdout, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), "10 calls failed") || !strings.Contains(stdout.String(), "Unavailable 10") {
		t.Errorf("exit %d, stdout:\n%s\nstderr:\n%s\nwant exit 1 and 10 UNAVAILABLE calls reported", code, stdout.String(), stderr.String())
	}
}

func TestBenchRejectsBadArguments(t *testing.T) {
	badFile := filepath.Join(t.TempDir(), "bad.jsonl")
	os.WriteFile(badFile, []byte(`{"method":"GET","path":"/"}`+"\n"+`{"path":"/x"}`+"\n"), 0o644)
	emptyFile := filepath.Join(t.TempDir(), "empty.jsonl")
	os.WriteFile(emptyFile, []byte("\n\n"), 0o644)
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"unknown rpc", []string{"--rpc", "list"}, 2, `--rpc "list": want decide, check or health`},
		{"negative rate", []string{"--rate", "-5"}, 2, "--rate -5"},
		{"no callers", []string{"--concurrency", "0"}, 2, "--concurrency and --conns want at least 1"},
		{"no duration", []string{"--duration", "0s"}, 2, "--duration wants a positive duration"},
		{"stray argument", []string{"extra"}, 2, `unexpected argument "extra"`},
		{"bad request line", []string{"--requests", badFile}, 1, "bad.jsonl:2: method and path are required"},
		{"empty request file", []string{"--requests", emptyFile}, 1, "no requests"},
		{"missing request file", []string{"--requests", badFile + ".none"}, 1, "no such file"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), append([]string{"bench"}, tc.args...), &stdout, &stderr)
			if code != tc.code || !strings.Contains(stderr.String(), tc.want) {
				t.Errorf("exit %d, stderr %q: want exit %d and %q", code, stderr.String(), tc.code, tc.want)
			}
		})
	}
}
