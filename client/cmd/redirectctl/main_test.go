package main

import (
	"bytes"
	"context"
	"flag"
	"net"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/redirectd/redirectd/decision"
	redirectv1 "github.com/redirectd/redirectd/proto/redirect/v1"
	"github.com/redirectd/redirectd/server"
)

// cli runs redirectctl in process and returns exit status, stdout, stderr.
func cli(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// startRedirectd serves rulesFile with the real engine and DecisionService
// on a loopback port and returns its address.
func startRedirectd(t *testing.T, rulesFile string) string {
	t.Helper()
	data, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	rules, err := decision.ParseRules(rulesFile, data)
	if err != nil {
		t.Fatal(err)
	}
	store := decision.NewStore(decision.Options{})
	c, err := store.Replace(rules)
	if err != nil {
		t.Fatal(err)
	}
	c.Commit(decision.Info{Version: 1, Source: rulesFile})
	engine := server.NewEngine(store, time.Now)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	redirectv1.RegisterDecisionServiceServer(s, server.NewDecisionService(engine))
	go s.Serve(lis)
	t.Cleanup(s.Stop)
	return lis.Addr().String()
}

func TestHelpAndUnknownCommands(t *testing.T) {
	tests := []struct {
		args       []string
		wantCode   int
		wantStdout []string
		wantStderr []string
	}{
		{args: []string{"help"}, wantCode: 0, wantStdout: []string{"decide", "lint", "test", "run 'redirectctl help COMMAND'"}},
		{args: []string{"--help"}, wantCode: 0, wantStdout: []string{"decide"}},
		{args: nil, wantCode: 2, wantStderr: []string{"usage: redirectctl COMMAND"}},
		{args: []string{"frobnicate"}, wantCode: 2, wantStderr: []string{`unknown command "frobnicate"`, "decide"}},
		{args: []string{"help", "decide"}, wantCode: 0, wantStderr: []string{"usage: redirectctl decide", "-rules", "-explain"}},
		{args: []string{"decide", "--bogus"}, wantCode: 2, wantStderr: []string{"flag provided but not defined: -bogus", "redirectctl help decide"}},
		{args: []string{"decide", "GET"}, wantCode: 2, wantStderr: []string{"want METHOD URL"}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, stdout, stderr := cli(t, tt.args...)
			if code != tt.wantCode {
				t.Errorf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.wantCode, stdout, stderr)
			}
			for _, want := range tt.wantStdout {
				if !strings.Contains(stdout, want) {
					t.Errorf("stdout lacks %q:\n%s", want, stdout)
				}
			}
			for _, want := range tt.wantStderr {
				if !strings.Contains(stderr, want) {
					t.Errorf("stderr lacks %q:\n%s", want, stderr)
				}
			}
		})
	}
}

func TestCommandTableNamesAreUnique(t *testing.T) {
	seen := map[string]bool{"help": true}
	for _, c := range commands {
		if seen[c.name] {
			t.Errorf("command %q listed twice (or shadows help)", c.name)
		}
		seen[c.name] = true
		if c.summary == "" || c.run == nil {
			t.Errorf("command %q needs a summary and a run function", c.name)
		}
	}
}

func TestParseArgsTakesFlagsAnywhere(t *testing.T) {
	tests := []struct {
		args     []string
		wantPos  []string
		wantJSON bool
		wantRule string
	}{
		{args: []string{"GET", "/x"}, wantPos: []string{"GET", "/x"}},
		{args: []string{"--json", "GET", "/x"}, wantPos: []string{"GET", "/x"}, wantJSON: true},
		{args: []string{"GET", "--rules", "r.yaml", "/x", "--json"}, wantPos: []string{"GET", "/x"}, wantJSON: true, wantRule: "r.yaml"},
		{args: []string{"GET", "--", "--json"}, wantPos: []string{"GET", "--json"}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			fs := flag.NewFlagSet("t", flag.ContinueOnError)
			asJSON := fs.Bool("json", false, "")
			rules := fs.String("rules", "", "")
			pos, err := parseArgs(fs, tt.args)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(pos, tt.wantPos) || *asJSON != tt.wantJSON || *rules != tt.wantRule {
				t.Errorf("got %q json=%t rules=%q, want %q json=%t rules=%q", pos, *asJSON, *rules, tt.wantPos, tt.wantJSON, tt.wantRule)
			}
		})
	}
}

func TestConnectionChoosesPlaintextForLoopbackOnly(t *testing.T) {
	tests := []struct {
		args          []string
		wantPlaintext bool
		wantErr       string
	}{
		{args: nil, wantPlaintext: true}, // localhost:50051
		{args: []string{"--server", "127.0.0.1:9"}, wantPlaintext: true},
		{args: []string{"--server", "[::1]:9"}, wantPlaintext: true},
		{args: []string{"--server", "redirectd.internal:50051"}, wantPlaintext: false},
		{args: []string{"--server", "redirectd.internal:50051", "--insecure"}, wantPlaintext: true},
		{args: []string{"--insecure=false"}, wantPlaintext: false},
		{args: []string{"--ca", "testdata/none.pem"}, wantErr: "--ca"},
		{args: []string{"--insecure", "--ca", "x.pem"}, wantErr: "cannot be combined"},
		{args: []string{"--server", "redirectd.internal:50051", "--cert", "c.pem"}, wantErr: "--cert and --key go together"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var c connection
			fs := flag.NewFlagSet("t", flag.ContinueOnError)
			c.register(fs, defaultServer)
			if err := fs.Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			cfg, err := c.tlsConfig()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := cfg == nil; got != tt.wantPlaintext {
				t.Errorf("plaintext = %t, want %t", got, tt.wantPlaintext)
			}
		})
	}
}
