package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/redirectd/redirectd/decision"
	redirectv1 "github.com/redirectd/redirectd/proto/redirect/v1"
	"github.com/redirectd/redirectd/server"
)

// startAdmin serves the admin API over a rules file in a temp directory,
// with a bearer token, as `redirectd --rules FILE --admin-token T` does.
func startAdmin(t *testing.T, rules, token string) (addr string, store *server.RuleStore) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(path, []byte(rules), 0o644); err != nil {
		t.Fatal(err)
	}
	hits := server.NewHits()
	engine := server.NewEngine(decision.NewStore(decision.Options{}), time.Now)
	engine.SetObserver((&server.DecisionObserver{Hits: hits}).Observe)
	store = &server.RuleStore{Engine: engine, Path: path, Hits: hits, Now: time.Now,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if err := store.Load(); err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer(server.RequireBearerToken(token)...)
	redirectv1.RegisterRuleServiceServer(gs, server.NewRuleService(store))
	go gs.Serve(lis)
	t.Cleanup(gs.Stop)
	return lis.Addr().String(), store
}

func TestAdminCommands(t *testing.T) {
	const token = "t0ken"
	addr, store := startAdmin(t, "rules:\n  - id: old\n    path: /old\n    to: /new\n", token)
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	set := write("set.yaml", `rules:
  - id: docs
    path: /docs
    match: prefix
    to: https://docs.example.com
    intent: permanent
  - id: old
    path: /old
    to: /new
`)
	one := write("one.yaml", "rules:\n  - id: blog\n    host: example.com\n    path: /blog\n    to: https://blog.example.com/\n")
	bad := write("bad.yaml", "rules:\n  - id: x\n    path: /x\n    to: /y\n    status: 404\n")

	for _, tc := range []struct {
		name     string
		args     []string
		code     int
		stdout   []string // each must appear
		noStdout []string // none may appear
	}{
		{"no token", []string{"list"}, 1, nil, nil},
		{"apply stale version", []string{"apply", set, "--expected-version", "9"}, 1, nil, nil},
		{"apply", []string{"apply", set, "--expected-version", "1"}, 0, []string{"applied 2 rules: version 2"}, nil},
		{"put", []string{"put", one}, 0, []string{"put blog: version 3"}, nil},
		{"list", []string{"list", "--page-size", "1"}, 0, []string{"blog  example.com", "docs  *", "https://docs.example.com", "3 rules, version 3"}, nil},
		{"list yaml", []string{"list", "-o", "yaml"}, 0, []string{"# redirectd rules version 3", "id: docs", "match: prefix"}, nil},
		{"get", []string{"get", "docs"}, 0, []string{"id: docs", "intent: permanent"}, []string{"id: old"}},
		{"get missing", []string{"get", "nope"}, 1, nil, nil},
		{"delete", []string{"delete", "old"}, 0, []string{"deleted old: version 4"}, nil},
		{"validate good", []string{"validate", set}, 0, []string{"set.yaml: ok"}, nil},
		{"validate bad", []string{"validate", bad}, 1, []string{"bad.yaml:", "status", "rejected by the server"}, nil},
		{"stats", []string{"stats"}, 0, []string{"docs  1", "blog  0     never", "2 of 2 rules, version 4"}, nil},
		{"stats unused", []string{"stats", "--unused"}, 0, []string{"blog", "1 of 2 rules"}, []string{"docs"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "stats" {
				if _, err := store.Engine.Decide(&decision.Request{Method: "GET", Target: "/docs/a"}); err != nil {
					t.Fatal(err)
				}
			}
			args := append(tc.args, "--admin", addr)
			if tc.name != "no token" {
				args = append(args, "--token", token)
			}
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), args, &stdout, &stderr)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.code, &stdout, &stderr)
			}
			for _, want := range tc.stdout {
				if !strings.Contains(stdout.String(), want) {
					t.Errorf("stdout lacks %q:\n%s", want, &stdout)
				}
			}
			for _, not := range tc.noStdout {
				if strings.Contains(stdout.String(), not) {
					t.Errorf("stdout has %q:\n%s", not, &stdout)
				}
			}
		})
	}
}

// TestStatsExpired: stats --expired lists the rules whose active_until has
// passed, with their statistics and when they ended, judged at --now.
func TestStatsExpired(t *testing.T) {
	const token = "t0ken"
	addr, store := startAdmin(t, `rules:
  - {id: summer-sale, path: /summer, to: /summer-sale, active_until: 2026-09-01T00:00:00Z}
  - {id: winter-sale, path: /winter, to: /winter-sale, active_from: 2026-12-01T00:00:00Z, active_until: 2027-01-01T00:00:00Z}
  - {id: docs, path: /docs, to: /documentation}
`, token)
	if _, err := store.Engine.Decide(&decision.Request{Method: "GET", Target: "/docs"}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name           string
		args           []string
		code           int
		stdout, absent []string
	}{
		{"one ended", []string{"--now", "2026-12-10T00:00:00Z"}, 0,
			[]string{"RULE         HITS  LAST HIT  ENDED", "summer-sale  0     never     2026-09-01T00:00:00Z", "1 of 3 rules have ended, version 1"},
			[]string{"winter-sale", "docs"}},
		{"two ended", []string{"--now", "2027-01-01T00:00:00Z"}, 0,
			[]string{"summer-sale", "winter-sale  0     never     2027-01-01T00:00:00Z", "2 of 3 rules have ended"},
			[]string{"docs"}},
		{"none ended", []string{"--now", "2026-08-01T00:00:00Z"}, 0,
			[]string{"0 of 3 rules have ended, version 1"}, []string{"summer-sale", "winter-sale", "docs"}},
		{"ids with --expired", []string{"docs"}, 2, nil, nil},
		{"bad --now", []string{"--now", "soon"}, 2, nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"stats", "--expired", "--admin", addr, "--token", token}, tc.args...)
			var stdout, stderr bytes.Buffer
			if code := run(context.Background(), args, &stdout, &stderr); code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.code, &stdout, &stderr)
			}
			for _, want := range tc.stdout {
				if !strings.Contains(stdout.String(), want) {
					t.Errorf("stdout lacks %q:\n%s", want, &stdout)
				}
			}
			for _, not := range tc.absent {
				if strings.Contains(stdout.String(), not) {
					t.Errorf("stdout has %q:\n%s", not, &stdout)
				}
			}
		})
	}
}

// TestAdminExpectedHash: put, delete and apply with --expected-hash are
// refused, naming both hashes, when the serving set is another one, and
// go through when it is the one named; the hash comes from `list -o yaml`.
func TestAdminExpectedHash(t *testing.T) {
	const token = "t0ken"
	addr, store := startAdmin(t, "rules:\n  - id: old\n    path: /old\n    to: /new\n", token)
	file := filepath.Join(t.TempDir(), "one.yaml")
	if err := os.WriteFile(file, []byte("rules:\n  - id: a\n    path: /a\n    to: /b\n  - id: c\n    path: /c\n    to: /d\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctl := func(args ...string) (int, string, string) {
		t.Helper()
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), append(args, "--admin", addr, "--token", token), &stdout, &stderr)
		return code, stdout.String(), stderr.String()
	}
	_, listed, _ := ctl("list", "-o", "yaml")
	read := store.Engine.Current().Version.Hash
	if !strings.Contains(listed, "# redirectd rules version 1 ("+read+")") {
		t.Fatalf("list -o yaml does not name the hash %s:\n%s", read, listed)
	}
	stale := strings.Repeat("0", 64)
	for _, args := range [][]string{{"put", file}, {"delete", "old"}, {"apply", file}} {
		code, _, stderr := ctl(append(args, "--expected-hash", stale)...)
		if code != 1 || !strings.Contains(stderr, "Aborted") || !strings.Contains(stderr, "expected hash "+stale) || !strings.Contains(stderr, "serving hash "+read) {
			t.Errorf("%s with a stale hash: exit %d, want 1 and ABORTED naming both hashes\nstderr: %s", args[0], code, stderr)
		}
	}
	if got := store.Engine.Current().Version; got.Hash != read || got.Number != 1 {
		t.Fatalf("refused changes moved the set to %+v", got)
	}
	// Two rules, one precondition: the second put expects the set the
	// first one left.
	code, out, stderr := ctl("put", file, "--expected-hash", read)
	if code != 0 || !strings.Contains(out, "put a: version 2") || !strings.Contains(out, "put c: version 3") {
		t.Fatalf("put with the serving hash: exit %d\nstdout: %s\nstderr: %s", code, out, stderr)
	}
	now := store.Engine.Current().Version.Hash
	if code, out, stderr := ctl("delete", "old", "--expected-hash", now); code != 0 || !strings.Contains(out, "deleted old: version 4") {
		t.Fatalf("delete with the serving hash: exit %d\nstdout: %s\nstderr: %s", code, out, stderr)
	}
	if code, _, stderr := ctl("apply", file, "--expected-hash", "not-a-hash"); code != 1 || !strings.Contains(stderr, "InvalidArgument") || !strings.Contains(stderr, "64 hex digits") {
		t.Errorf("apply with a malformed hash: exit %d, want 1 and INVALID_ARGUMENT\nstderr: %s", code, stderr)
	}
}
