package server

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/redirectd/redirectd/internal/etcdtest"
	redirectv1 "github.com/redirectd/redirectd/proto/redirect/v1"
)

// TestAdminExpectedHash checks expected_hash (README "Admin API") through
// the admin API of each store that takes writes: a change is refused with
// ABORTED, naming both hashes and writing nothing, unless the serving set
// has the hash given; concurrent changes that all expect one hash are
// refused but one, since the check is atomic with the write. With etcd,
// a hash read from one replica is good on another, and a replica started
// later serves the same number and hash.
func TestAdminExpectedHash(t *testing.T) {
	for _, tc := range []struct {
		name string
		// start returns the admin API of a store serving one rule, and of
		// a second replica of it (the same for the file store); another
		// starts a new replica of it after the writes.
		start func(t *testing.T) (a, b redirectv1.RuleServiceClient, another func() redirectv1.RuleServiceClient)
	}{
		{"file", func(t *testing.T) (redirectv1.RuleServiceClient, redirectv1.RuleServiceClient, func() redirectv1.RuleServiceClient) {
			c := startRuleService(t, loadedStore(t, time.Now))
			return c, c, nil
		}},
		{"etcd", func(t *testing.T) (redirectv1.RuleServiceClient, redirectv1.RuleServiceClient, func() redirectv1.RuleServiceClient) {
			ec := etcdtest.Start(t)
			a, b := startEtcdReplica(t, ec), startEtcdReplica(t, ec)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if _, err := a.admin.ApplyRules(ctx, &redirectv1.ApplyRulesRequest{Rules: []*redirectv1.Rule{{Id: "old", Path: "/old", To: "/new"}}}); err != nil {
				t.Fatal(err)
			}
			return a.admin, b.admin, func() redirectv1.RuleServiceClient { return startEtcdReplica(t, ec).admin }
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b, another := tc.start(t)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			serving := func(c redirectv1.RuleServiceClient) *redirectv1.Version {
				t.Helper()
				resp, err := c.ListRules(ctx, &redirectv1.ListRulesRequest{PageSize: 1})
				if err != nil {
					t.Fatal(err)
				}
				return resp.GetVersion()
			}
			read := serving(a)
			if len(read.GetHash()) != 64 {
				t.Fatalf("serving version %v has no SHA-256 hash", read)
			}
			put, err := b.PutRule(ctx, &redirectv1.PutRuleRequest{Rule: &redirectv1.Rule{Id: "put", Path: "/put", To: "/x"}, ExpectedHash: read.GetHash()})
			if err != nil {
				t.Fatalf("PutRule expecting the hash read on another replica: %v", err)
			}
			now := put.GetVersion()
			if now.GetHash() == read.GetHash() || len(now.GetHash()) != 64 {
				t.Fatalf("hash after a change: %q, before %q", now.GetHash(), read.GetHash())
			}
			refused := func(what string, err error) {
				t.Helper()
				if status.Code(err) != codes.Aborted {
					t.Fatalf("%s: %v, want ABORTED", what, err)
				}
				msg := status.Convert(err).Message()
				if !strings.Contains(msg, "expected hash "+read.GetHash()) || !strings.Contains(msg, "hash "+now.GetHash()) {
					t.Errorf("%s: message %q does not name both hashes", what, msg)
				}
				if got := serving(a); got.GetHash() != now.GetHash() {
					t.Errorf("%s: a refused change moved the set to %v", what, got)
				}
			}
			_, err = a.PutRule(ctx, &redirectv1.PutRuleRequest{Rule: &redirectv1.Rule{Id: "late", Path: "/late", To: "/x"}, ExpectedHash: read.GetHash()})
			refused("PutRule with a stale hash", err)
			_, err = a.DeleteRule(ctx, &redirectv1.DeleteRuleRequest{Id: "put", ExpectedHash: read.GetHash()})
			refused("DeleteRule with a stale hash", err)
			_, err = a.ApplyRules(ctx, &redirectv1.ApplyRulesRequest{Rules: []*redirectv1.Rule{{Id: "only", Path: "/only", To: "/x"}}, ExpectedHash: read.GetHash()})
			refused("ApplyRules with a stale hash", err)
			// Both given: each must hold.
			_, err = a.PutRule(ctx, &redirectv1.PutRuleRequest{Rule: &redirectv1.Rule{Id: "late", Path: "/late", To: "/x"}, ExpectedVersion: now.GetNumber(), ExpectedHash: read.GetHash()})
			refused("PutRule with the serving version and a stale hash", err)
			_, err = a.PutRule(ctx, &redirectv1.PutRuleRequest{Rule: &redirectv1.Rule{Id: "late", Path: "/late", To: "/x"}, ExpectedHash: "f00"})
			wantCode(t, err, codes.InvalidArgument, "expected_hash", "64 hex digits")

			// One hash, many writers: exactly one change lands.
			const writers = 6
			var wg sync.WaitGroup
			codesSeen := make([]codes.Code, writers)
			for i := range writers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					c := []redirectv1.RuleServiceClient{a, b}[i%2]
					_, err := c.PutRule(ctx, &redirectv1.PutRuleRequest{Rule: &redirectv1.Rule{Id: "race", Path: "/race", To: "/" + string(rune('a'+i))}, ExpectedHash: now.GetHash()})
					codesSeen[i] = status.Code(err)
				}()
			}
			wg.Wait()
			landed := 0
			for i, c := range codesSeen {
				switch c {
				case codes.OK:
					landed++
				case codes.Aborted:
				default:
					t.Errorf("writer %d: %v, want OK or ABORTED", i, c)
				}
			}
			if landed != 1 {
				t.Errorf("%d of %d writers expecting one hash landed, want exactly 1: %v", landed, writers, codesSeen)
			}

			last := serving(a)
			del, err := a.DeleteRule(ctx, &redirectv1.DeleteRuleRequest{Id: "race", ExpectedHash: last.GetHash()})
			if err != nil {
				t.Fatalf("DeleteRule with the serving hash: %v", err)
			}
			if _, err := a.ApplyRules(ctx, &redirectv1.ApplyRulesRequest{Rules: []*redirectv1.Rule{{Id: "only", Path: "/only", To: "/x"}}, ExpectedHash: del.GetVersion().GetHash()}); err != nil {
				t.Fatalf("ApplyRules with the serving hash: %v", err)
			}
			if another != nil {
				want := serving(a)
				if got := serving(another()); got.GetNumber() != want.GetNumber() || got.GetHash() != want.GetHash() {
					t.Errorf("a replica started later serves %v, want %v: the same number and hash", got, want)
				}
			}
		})
	}
}

// TestExpectedHashSurvivesRestart: the file store's version number starts
// again at 1 with the process, its hash (the rules file's SHA-256) does
// not. After a restart, a hash read before it is refused when the set
// changed meanwhile, where the number read then is the serving number
// again and would let the stale change through; and a hash of an
// unchanged set still holds, where the number does not.
func TestExpectedHashSurvivesRestart(t *testing.T) {
	ctx := context.Background()
	path := writeRules(t, t.TempDir(), "rules.yaml", statsRules)
	restart := func() (*RuleStore, redirectv1.RuleServiceClient) {
		st := newTestStore(t, path, time.Now)
		if err := st.Load(); err != nil {
			t.Fatal(err)
		}
		return st, startRuleService(t, st)
	}
	st, c := restart()
	read := st.Engine.Current().Version // what a CMS read
	if _, err := c.PutRule(ctx, &redirectv1.PutRuleRequest{Rule: &redirectv1.Rule{Id: "other", Path: "/other", To: "/x"}}); err != nil {
		t.Fatal(err)
	}
	changed := st.Engine.Current().Version

	st, c = restart()
	if got := st.Engine.Current().Version; got.Number != read.Number || got.Hash != changed.Hash {
		t.Fatalf("after a restart: %+v, want number %d again and hash %s of the changed set", got, read.Number, changed.Hash)
	}
	stale := &redirectv1.Rule{Id: "docs", Path: "/docs", To: "/stale"}
	_, err := c.PutRule(ctx, &redirectv1.PutRuleRequest{Rule: stale, ExpectedHash: read.Hash})
	wantCode(t, err, codes.Aborted, "expected hash "+read.Hash, "serving hash "+changed.Hash)
	if got := st.Engine.Current().Version; got.Hash != changed.Hash {
		t.Fatalf("a refused change moved the set to %+v", got)
	}
	// The same stale change guarded by the number read before the restart
	// goes through: the counter cannot tell the sets apart.
	if _, err := c.PutRule(ctx, &redirectv1.PutRuleRequest{Rule: stale, ExpectedVersion: read.Number}); err != nil {
		t.Fatalf("the number read before the restart no longer matches (%v): this test no longer shows why the hash is needed", err)
	}

	// Unchanged across a restart: the hash holds, the number does not.
	unchanged := st.Engine.Current().Version
	st, c = restart()
	_, err = c.DeleteRule(ctx, &redirectv1.DeleteRuleRequest{Id: "other", ExpectedVersion: unchanged.Number})
	wantCode(t, err, codes.Aborted, "expected version 2, serving version 1")
	if _, err := c.DeleteRule(ctx, &redirectv1.DeleteRuleRequest{Id: "other", ExpectedHash: unchanged.Hash}); err != nil {
		t.Fatalf("DeleteRule with the hash of the set as it was before the restart: %v", err)
	}
}
