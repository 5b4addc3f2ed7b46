package server

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/redirectd/redirectd/decision"
	redirectv1 "github.com/redirectd/redirectd/proto/redirect/v1"
)

// startRuleService serves RuleService for st on a loopback listener.
func startRuleService(t testing.TB, st RuleSource, opts ...grpc.ServerOption) redirectv1.RuleServiceClient {
	t.Helper()
	return startRuleServiceDialing(t, st, opts)
}

// startRuleServiceDialing is startRuleService with options for the
// client's connection too.
func startRuleServiceDialing(t testing.TB, st RuleSource, opts []grpc.ServerOption, dialOpts ...grpc.DialOption) redirectv1.RuleServiceClient {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer(opts...)
	redirectv1.RegisterRuleServiceServer(gs, NewRuleService(st))
	go gs.Serve(lis)
	t.Cleanup(gs.Stop)
	dialOpts = append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, dialOpts...)
	conn, err := grpc.NewClient(lis.Addr().String(), dialOpts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return redirectv1.NewRuleServiceClient(conn)
}

// loadedStore is a file-backed store serving statsRules.
func loadedStore(t *testing.T, now func() time.Time) *RuleStore {
	t.Helper()
	st := newTestStore(t, writeRules(t, t.TempDir(), "rules.yaml", statsRules), now)
	if err := st.Load(); err != nil {
		t.Fatal(err)
	}
	return st
}

func wantCode(t *testing.T, err error, code codes.Code, msgParts ...string) {
	t.Helper()
	if status.Code(err) != code {
		t.Fatalf("got %v, want code %v", err, code)
	}
	for _, p := range msgParts {
		if !strings.Contains(status.Convert(err).Message(), p) {
			t.Errorf("message %q does not mention %q", status.Convert(err).Message(), p)
		}
	}
}

func TestRuleServiceChanges(t *testing.T) {
	clock := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	st := loadedStore(t, func() time.Time { return clock })
	c := startRuleService(t, st)
	ctx := context.Background()

	got, err := c.GetRule(ctx, &redirectv1.GetRuleRequest{Id: "old"})
	if err != nil {
		t.Fatal(err)
	}
	want := &redirectv1.GetRuleResponse{
		Rule:    &redirectv1.Rule{Id: "old", Path: "/old", Match: "exact", To: "/new"},
		Version: versionToProto(st.Engine.Current().Version),
	}
	if d := cmp.Diff(want, got, protocmp.Transform()); d != "" {
		t.Errorf("GetRule (-want +got):\n%s", d)
	}

	// A new rule without since gets the current time; Decide answers it
	// as soon as PutRule returns, and the file holds it.
	put, err := c.PutRule(ctx, &redirectv1.PutRuleRequest{Rule: &redirectv1.Rule{
		Id: "launch", Path: "/launch", To: "https://example.com/2026", Intent: "permanent",
		CacheMaxAge: durationpb.New(time.Hour),
	}, ExpectedVersion: 1})
	if err != nil {
		t.Fatal(err)
	}
	if put.GetVersion().GetNumber() != 2 || !put.GetRule().GetSince().AsTime().Equal(clock) {
		t.Errorf("PutRule: version %d since %v, want 2 and %v", put.GetVersion().GetNumber(), put.GetRule().GetSince().AsTime(), clock)
	}
	d, err := st.Engine.Decide(&decision.Request{Method: "GET", Target: "/launch"})
	if err != nil || d.Location != "https://example.com/2026" || d.Status != 301 {
		t.Errorf("Decide after PutRule: %+v, %v; want 301 to https://example.com/2026", d, err)
	}
	onDisk := readRulesFile(t, st.Path)
	if r, ok := onDisk["launch"]; !ok || !r.Since.Equal(clock) || r.CacheMaxAge == nil || *r.CacheMaxAge != time.Hour {
		t.Errorf("rules file after PutRule: launch = %+v (present %v)", r, ok)
	}

	// Replacing a rule keeps its since (unset here), so its cache ramp
	// does not restart.
	if _, err := c.PutRule(ctx, &redirectv1.PutRuleRequest{Rule: &redirectv1.Rule{Id: "old", Path: "/old", To: "/newer"}}); err != nil {
		t.Fatal(err)
	}
	if r := readRulesFile(t, st.Path)["old"]; r.To != "/newer" || !r.Since.IsZero() {
		t.Errorf("replaced rule on disk: %+v, want to /newer and no since", r)
	}

	del, err := c.DeleteRule(ctx, &redirectv1.DeleteRuleRequest{Id: "never"})
	if err != nil {
		t.Fatal(err)
	}
	if del.GetVersion().GetNumber() != 4 {
		t.Errorf("DeleteRule version = %d, want 4", del.GetVersion().GetNumber())
	}
	_, err = c.GetRule(ctx, &redirectv1.GetRuleRequest{Id: "never"})
	wantCode(t, err, codes.NotFound, `"never"`)
	_, err = c.DeleteRule(ctx, &redirectv1.DeleteRuleRequest{Id: "never"})
	wantCode(t, err, codes.NotFound, `"never"`)

	// A rejected rule changes nothing and says which field is wrong.
	_, err = c.PutRule(ctx, &redirectv1.PutRuleRequest{Rule: &redirectv1.Rule{Id: "bad", Path: "/bad", To: "/x", Status: 404}})
	wantCode(t, err, codes.InvalidArgument, "status")
	_, err = c.PutRule(ctx, &redirectv1.PutRuleRequest{Rule: &redirectv1.Rule{Id: "bad", Path: "/bad", To: "/x", Match: "glob"}})
	wantCode(t, err, codes.InvalidArgument, "match", "glob")
	if v := st.Engine.Current().Version.Number; v != 4 {
		t.Errorf("version after rejected puts = %d, want 4", v)
	}

	// ApplyRules with a stale expected_version is refused; with the
	// serving one it replaces the set.
	_, err = c.ApplyRules(ctx, &redirectv1.ApplyRulesRequest{ExpectedVersion: 3, Rules: []*redirectv1.Rule{{Id: "a", Path: "/a", To: "/b"}}})
	wantCode(t, err, codes.Aborted, "expected version 3", "serving version 4")
	applied, err := c.ApplyRules(ctx, &redirectv1.ApplyRulesRequest{ExpectedVersion: 4, Rules: []*redirectv1.Rule{
		{Id: "a", Path: "/a", To: "/b"},
		{Id: "launch", Path: "/launch", To: "https://example.com/2027"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if applied.GetVersion().GetNumber() != 5 {
		t.Errorf("ApplyRules version = %d, want 5", applied.GetVersion().GetNumber())
	}
	onDisk = readRulesFile(t, st.Path)
	if len(onDisk) != 2 || !onDisk["launch"].Since.Equal(clock) || !onDisk["a"].Since.Equal(clock) {
		t.Errorf("rules file after ApplyRules: %+v; want a and launch, both since %v", onDisk, clock)
	}
}

// readRulesFile parses the rules file as a restarted daemon would.
func readRulesFile(t *testing.T, path string) map[string]decision.Rule {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	rules, err := decision.ParseRules(path, data)
	if err != nil {
		t.Fatalf("rules file written by the admin API does not parse: %v\n%s", err, data)
	}
	out := map[string]decision.Rule{}
	for _, r := range rules {
		out[r.ID] = r
	}
	return out
}

func TestListRulesPages(t *testing.T) {
	st := loadedStore(t, time.Now)
	c := startRuleService(t, st)
	var ids []string
	token := ""
	pages := 0
	for {
		resp, err := c.ListRules(context.Background(), &redirectv1.ListRulesRequest{PageSize: 2, PageToken: token})
		if err != nil {
			t.Fatal(err)
		}
		pages++
		if resp.GetTotalSize() != 3 {
			t.Errorf("total_size = %d, want 3", resp.GetTotalSize())
		}
		for _, r := range resp.GetRules() {
			ids = append(ids, r.GetId())
		}
		token = resp.GetNextPageToken()
		if token == "" {
			break
		}
	}
	if d := cmp.Diff([]string{"docs", "never", "old"}, ids); d != "" || pages != 2 {
		t.Errorf("ListRules pages = %d, ids (-want +got):\n%s", pages, d)
	}
	for _, tc := range []struct {
		name string
		req  *redirectv1.ListRulesRequest
	}{
		{"negative size", &redirectv1.ListRulesRequest{PageSize: -1}},
		{"forged token", &redirectv1.ListRulesRequest{PageToken: "!!"}},
	} {
		_, err := c.ListRules(context.Background(), tc.req)
		if status.Code(err) != codes.InvalidArgument {
			t.Errorf("%s: got %v, want InvalidArgument", tc.name, err)
		}
	}
}

func TestValidateRulesNeverApplies(t *testing.T) {
	st := loadedStore(t, time.Now)
	c := startRuleService(t, st)
	for _, tc := range []struct {
		name      string
		req       *redirectv1.ValidateRulesRequest
		valid     bool
		wantField string
		wantLine  bool // the problem names a line of the file
	}{
		{"good file", &redirectv1.ValidateRulesRequest{File: []byte(statsRules)}, true, "", false},
		{"bad status in file", &redirectv1.ValidateRulesRequest{FileName: "x.yaml", File: []byte("rules:\n  - id: a\n    path: /a\n    to: /b\n    status: 404\n")}, false, "status", true},
		{"unknown word in rules", &redirectv1.ValidateRulesRequest{Rules: []*redirectv1.Rule{{Id: "a", Path: "/a", To: "/b", Query: "merge"}}}, false, "rules[0].query", false},
		{"self redirect", &redirectv1.ValidateRulesRequest{Rules: []*redirectv1.Rule{{Id: "a", Path: "/a", To: "/a"}}}, false, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := c.ValidateRules(context.Background(), tc.req)
			if err != nil {
				t.Fatal(err)
			}
			if resp.GetValid() != tc.valid {
				t.Fatalf("valid = %v, want %v; problems %v", resp.GetValid(), tc.valid, resp.GetProblems())
			}
			if !tc.valid && len(resp.GetProblems()) == 0 {
				t.Fatal("invalid with no problem listed")
			}
			if tc.wantField != "" {
				p := resp.GetProblems()[0]
				if p.GetField() != tc.wantField || (p.GetLine() > 0) != tc.wantLine || p.GetSeverity() != "error" {
					t.Errorf("problem %v: want field %q, a line %v, severity error", p, tc.wantField, tc.wantLine)
				}
			}
		})
	}
	// Every problem of a file, the graph's errors and warnings too, names
	// the file and the line: file:line: rule "id": field: what is wrong.
	for _, tc := range []struct{ name, file, want string }{
		{"graph error", "rules:\n  - {id: a, path: /a, to: /a}\n", `x.yaml:2: rule "a": to: redirects to itself`},
		{"chain warning", "rules:\n  - {id: a, path: /a, to: /b}\n  - {id: b, path: /b, to: /c}\n", `x.yaml:2: warning: rule "a": to: redirect chain`},
	} {
		resp, err := c.ValidateRules(context.Background(), &redirectv1.ValidateRulesRequest{FileName: "x.yaml", File: []byte(tc.file)})
		if err != nil {
			t.Fatal(err)
		}
		if ps := resp.GetProblems(); len(ps) != 1 || !strings.HasPrefix(redirectv1.ProblemFromProto(ps[0]).String(), tc.want) {
			t.Errorf("%s: problems %v, want one starting %q", tc.name, ps, tc.want)
		}
	}
	// A refused file lists the warnings found beside its errors, after
	// them (README "lint": every error and warning).
	resp, err := c.ValidateRules(context.Background(), &redirectv1.ValidateRulesRequest{FileName: "x.yaml",
		File: []byte("rules:\n  - {id: a, path: /a, to: /b}\n  - {id: b, path: /b, to: /c}\n  - {id: l, path: /l, to: /l}\n")})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range resp.GetProblems() {
		got = append(got, redirectv1.ProblemFromProto(p).String())
	}
	if len(got) != 2 || resp.GetValid() || !strings.HasPrefix(got[0], `x.yaml:4: rule "l": to: redirects to itself`) ||
		!strings.HasPrefix(got[1], `x.yaml:2: warning: rule "a": to: redirect chain`) {
		t.Errorf("valid %v, problems:\n%s\nwant the self-redirect's error, then the chain's warning", resp.GetValid(), strings.Join(got, "\n"))
	}
	if v := st.Engine.Current().Version.Number; v != 1 {
		t.Errorf("version after ValidateRules = %d, want 1 (never applied)", v)
	}
}

func TestAdminWritesRefused(t *testing.T) {
	put := &redirectv1.PutRuleRequest{Rule: &redirectv1.Rule{Id: "x", Path: "/x", To: "/y"}}
	for _, tc := range []struct {
		name  string
		store func(t *testing.T) *RuleStore
		req   *redirectv1.PutRuleRequest
		code  codes.Code
		parts []string
	}{
		{
			name: "read-only rules file",
			store: func(t *testing.T) *RuleStore {
				st := loadedStore(t, time.Now)
				if err := os.Chmod(st.Path, 0o444); err != nil {
					t.Fatal(err)
				}
				return st
			},
			req: put, code: codes.FailedPrecondition,
			parts: []string{"rules.yaml is not writable", "read-only (mode 0444)"},
		},
		{
			name: "started without --rules",
			store: func(t *testing.T) *RuleStore {
				st := newTestStore(t, "", time.Now)
				if err := st.LoadBytes("built-in example", []byte(statsRules)); err != nil {
					t.Fatal(err)
				}
				return st
			},
			req: put, code: codes.FailedPrecondition,
			parts: []string{"started without --rules: nowhere to persist"},
		},
		{
			name:  "stale expected_version",
			store: func(t *testing.T) *RuleStore { return loadedStore(t, time.Now) },
			req:   &redirectv1.PutRuleRequest{Rule: put.Rule, ExpectedVersion: 7},
			code:  codes.Aborted,
			parts: []string{"expected version 7, serving version 1"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := tc.store(t)
			before := st.Engine.Current()
			_, err := startRuleService(t, st).PutRule(context.Background(), tc.req)
			wantCode(t, err, tc.code, tc.parts...)
			if st.Engine.Current().Index != before.Index {
				t.Error("a refused write changed the serving rule set")
			}
		})
	}
}

func TestAdminToken(t *testing.T) {
	st := loadedStore(t, time.Now)
	c := startRuleService(t, st, RequireBearerToken("s3cret-token")...)
	for _, tc := range []struct {
		name string
		md   []string
		code codes.Code
	}{
		{"no token", nil, codes.Unauthenticated},
		{"wrong token", []string{"authorization", "Bearer s3cret"}, codes.Unauthenticated},
		{"not bearer", []string{"authorization", "Basic s3cret-token"}, codes.Unauthenticated},
		{"right token", []string{"authorization", "Bearer s3cret-token"}, codes.OK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			if tc.md != nil {
				ctx = metadata.AppendToOutgoingContext(ctx, tc.md...)
			}
			_, err := c.GetRuleStats(ctx, &redirectv1.GetRuleStatsRequest{})
			if status.Code(err) != tc.code {
				t.Errorf("got %v, want %v", err, tc.code)
			}
		})
	}
}

func TestGetRuleStats(t *testing.T) {
	clock := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	st := loadedStore(t, func() time.Time { return clock })
	for range 3 {
		if _, err := st.Engine.Decide(&decision.Request{Method: "GET", Target: "/old"}); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := startRuleService(t, st).GetRuleStats(context.Background(), &redirectv1.GetRuleStatsRequest{Ids: []string{"old", "never"}})
	if err != nil {
		t.Fatal(err)
	}
	want := []*redirectv1.RuleStats{
		{RuleId: "never"},
		{RuleId: "old", Hits: 3, LastHit: timestamppb.New(clock)},
	}
	if d := cmp.Diff(want, resp.GetStats(), protocmp.Transform()); d != "" {
		t.Errorf("stats (-want +got):\n%s", d)
	}
}

// TestApplyLargeRuleSet sends an ApplyRules request well over gRPC's 4 MB
// default through the daemon's admin listener options.
func TestApplyLargeRuleSet(t *testing.T) {
	st := loadedStore(t, time.Now)
	opts, err := adminListenerOptions(DefaultConfig(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	rs := startRuleServiceDialing(t, st, opts,
		grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(64<<20), grpc.MaxCallRecvMsgSize(64<<20)))

	long := strings.Repeat("a", 400)
	req := &redirectv1.ApplyRulesRequest{}
	for i := range 15_000 {
		req.Rules = append(req.Rules, &redirectv1.Rule{Id: fmt.Sprintf("r%05d", i), Path: fmt.Sprintf("/p/%d", i), To: "https://example.com/" + long})
	}
	if size := proto.Size(req); size < 5<<20 {
		t.Fatalf("request is only %d bytes; the test needs more than 4 MB", size)
	}
	resp, err := rs.ApplyRules(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetVersion().GetNumber() != 2 || st.Engine.Current().Index.Len() != 15_000 {
		t.Errorf("version %d with %d rules, want 2 with 15000", resp.GetVersion().GetNumber(), st.Engine.Current().Index.Len())
	}
}

// TestRuleServiceStagedPermanence: promote_after needs since, so the admin
// API sets it when a rule that has none is staged, and the rule answers
// 307 with no-store until since + promote_after, then 301 (README "Staged
// permanence"). The lifecycle fields come back as they were put.
func TestRuleServiceStagedPermanence(t *testing.T) {
	clock := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	now := clock
	st := loadedStore(t, func() time.Time { return now })
	c := startRuleService(t, st)
	ctx := context.Background()

	// "old" exists without since.
	put, err := c.PutRule(ctx, &redirectv1.PutRuleRequest{Rule: &redirectv1.Rule{
		Id: "old", Path: "/old", To: "/new", Intent: "permanent", PromoteAfter: durationpb.New(30 * 24 * time.Hour),
		ActiveUntil: timestamppb.New(clock.AddDate(1, 0, 0)),
	}})
	if err != nil {
		t.Fatal(err)
	}
	want := &redirectv1.Rule{Id: "old", Path: "/old", Match: "exact", To: "/new", Intent: "permanent",
		Since: timestamppb.New(clock), ActiveUntil: timestamppb.New(clock.AddDate(1, 0, 0)), PromoteAfter: durationpb.New(30 * 24 * time.Hour)}
	if diff := cmp.Diff(want, put.GetRule(), protocmp.Transform()); diff != "" {
		t.Errorf("PutRule answered (-want +got):\n%s", diff)
	}
	for _, tc := range []struct {
		at           time.Time
		status       int
		cacheControl string
	}{
		{clock, 307, "no-store"},
		{clock.Add(30*24*time.Hour - time.Second), 307, "no-store"},
		{clock.Add(30 * 24 * time.Hour), 301, "public, max-age=86400"},
	} {
		now = tc.at
		d, err := st.Engine.Decide(&decision.Request{Method: "GET", Target: "/old"})
		if err != nil || d.Status != tc.status || d.Cache.CacheControl != tc.cacheControl {
			t.Errorf("at %v: %d %q, %v; want %d %q", tc.at, d.Status, d.Cache.CacheControl, err, tc.status, tc.cacheControl)
		}
	}
}
