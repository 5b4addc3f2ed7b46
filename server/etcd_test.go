package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/redirectd/redirectd/decision"
	"github.com/redirectd/redirectd/internal/etcdtest"
	redirectv1 "github.com/redirectd/redirectd/proto/redirect/v1"
)

// etcdReplica is one redirectd replica of the etcd store, in process:
// its own engine, store and admin API over loopback.
type etcdReplica struct {
	store  *EtcdStore
	admin  redirectv1.RuleServiceClient
	cancel context.CancelFunc
	done   chan struct{}
}

const testPrefix = "/test/"

func startEtcdReplica(t testing.TB, ec *etcdtest.Etcd) *etcdReplica {
	t.Helper()
	return startEtcdReplicaAt(t, ec.Endpoint())
}

// startEtcdReplicaAt is startEtcdReplica on the etcd at endpoint, which
// another process started.
func startEtcdReplicaAt(t testing.TB, endpoint string) *etcdReplica {
	t.Helper()
	cfg := DefaultConfig()
	cfg.ConsoleAddr = "" // tests start several daemons
	cfg.Store, cfg.EtcdEndpoints, cfg.EtcdPrefix = "etcd", endpoint, testPrefix
	st := &RuleStore{Engine: NewEngine(decision.NewStore(decision.Options{}), time.Now), Log: testLogger(), Metrics: NewMetrics(), Hits: NewHits(), Now: time.Now}
	es, err := NewEtcdStore(cfg, st)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { es.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := es.Load(ctx); err != nil {
		t.Fatalf("first load: %v", err)
	}
	r := &etcdReplica{store: es, admin: startRuleService(t, es)}
	r.follow(t)
	return r
}

// follow runs the replica's watch and connection monitor until stop.
func (r *etcdReplica) follow(t testing.TB) {
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel, r.done = cancel, make(chan struct{})
	go func() {
		defer close(r.done)
		go r.store.Monitor(ctx)
		r.store.Follow(ctx)
	}()
	t.Cleanup(r.stop)
}

func (r *etcdReplica) stop() {
	r.cancel()
	<-r.done
}

func (r *etcdReplica) version() uint64 { return r.store.servedVersion() }

// waitVersion waits (at most 10 s) until r serves version v.
func (r *etcdReplica) waitVersion(t *testing.T, v uint64) {
	t.Helper()
	waitFor(t, 10*time.Second, func() bool { return r.version() == v }, func() string {
		return fmt.Sprintf("replica serves version %d, want %d", r.version(), v)
	})
}

// syncLog is a log buffer the replica and the test share.
type syncLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *syncLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *syncLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// waitFor polls cond every 10 ms until it holds or limit passes.
func waitFor(t *testing.T, limit time.Duration, cond func() bool, why func() string) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", limit, why())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// fileOrder is the ids of what r serves, in file order.
func (r *etcdReplica) fileOrder() []string {
	var ids []string
	for rule := range r.store.rules.Engine.Store().Index().All() {
		ids = append(ids, rule.ID)
	}
	return ids
}

func testRule(id, path string) *redirectv1.Rule {
	return &redirectv1.Rule{Id: id, Path: path, Match: "pattern", To: "/to/" + id}
}

func TestEtcdReplicasServeOneSet(t *testing.T) {
	ec := etcdtest.Start(t)
	a, b := startEtcdReplica(t, ec), startEtcdReplica(t, ec)
	if a.version() != 0 || b.version() != 0 {
		t.Fatalf("empty etcd: versions %d and %d, want 0", a.version(), b.version())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// Two patterns that both match /x/y: file order decides, so every
	// replica must keep it, whatever the ids' order.
	applied, err := a.admin.ApplyRules(ctx, &redirectv1.ApplyRulesRequest{Rules: []*redirectv1.Rule{
		testRule("zz", "/x/:p"), testRule("aa", "/:q/y"), testRule("mm", "/m/:p"),
	}})
	if err != nil {
		t.Fatal(err)
	}
	v := applied.GetVersion().GetNumber()
	if a.version() != v {
		t.Fatalf("replica A answered version %d but serves %d", v, a.version())
	}
	b.waitVersion(t, v)

	put, err := b.admin.PutRule(ctx, &redirectv1.PutRuleRequest{Rule: testRule("bb", "/b/:p"), ExpectedVersion: v})
	if err != nil {
		t.Fatal(err)
	}
	v2 := put.GetVersion().GetNumber()
	if v2 <= v {
		t.Fatalf("put answered version %d, not after %d", v2, v)
	}
	a.waitVersion(t, v2)
	// Replacing a rule ApplyRules wrote keeps its place in the file.
	put, err = a.admin.PutRule(ctx, &redirectv1.PutRuleRequest{Rule: testRule("zz", "/x/:p/")})
	if err != nil {
		t.Fatal(err)
	}
	b.waitVersion(t, put.GetVersion().GetNumber())
	want := []string{"zz", "aa", "mm", "bb"}
	fresh := startEtcdReplica(t, ec)
	for name, r := range map[string]*etcdReplica{"A": a, "B": b, "a new replica": fresh} {
		if got := r.fileOrder(); !slices.Equal(got, want) {
			t.Errorf("%s serves %v in file order, want %v", name, got, want)
		}
		if r.version() != put.GetVersion().GetNumber() {
			t.Errorf("%s serves version %d, want %d", name, r.version(), put.GetVersion().GetNumber())
		}
	}

	// A stale expected_version, an invalid rule, an unknown id: refused,
	// and nothing reaches etcd.
	before := testutil.ToFloat64(a.store.connected)
	_, err = a.admin.PutRule(ctx, &redirectv1.PutRuleRequest{Rule: testRule("cc", "/c/:p"), ExpectedVersion: v})
	wantCode(t, err, codes.Aborted, "expected version")
	_, err = a.admin.PutRule(ctx, &redirectv1.PutRuleRequest{Rule: &redirectv1.Rule{Id: "bad", Path: "/bad", To: "/x", Status: 404}})
	wantCode(t, err, codes.InvalidArgument, "404")
	_, err = b.admin.DeleteRule(ctx, &redirectv1.DeleteRuleRequest{Id: "nope"})
	wantCode(t, err, codes.NotFound, "nope")
	keys, err := ec.Client.Get(ctx, testPrefix, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		t.Fatal(err)
	}
	if keys.Count != 5 {
		t.Errorf("etcd holds %d keys under %s, want the pointer and 4 rules", keys.Count, testPrefix)
	}
	if before != 1 {
		t.Errorf("redirectd_store_connected = %v while etcd is up, want 1", before)
	}

	del, err := b.admin.DeleteRule(ctx, &redirectv1.DeleteRuleRequest{Id: "aa"})
	if err != nil {
		t.Fatal(err)
	}
	a.waitVersion(t, del.GetVersion().GetNumber())
	if _, ok := a.store.rules.Engine.Store().Index().Rule("aa"); ok {
		t.Error("replica A still serves the rule deleted through B")
	}

	// A whole new set replaces the generation: the old one is deleted.
	applied, err = b.admin.ApplyRules(ctx, &redirectv1.ApplyRulesRequest{Rules: []*redirectv1.Rule{testRule("n1", "/n/:p")}, ExpectedVersion: del.GetVersion().GetNumber()})
	if err != nil {
		t.Fatal(err)
	}
	a.waitVersion(t, applied.GetVersion().GetNumber())
	if got := a.fileOrder(); !slices.Equal(got, []string{"n1"}) {
		t.Errorf("after the second apply replica A serves %v, want [n1]", got)
	}
	keys, err = ec.Client.Get(ctx, testPrefix+"gen/", clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		t.Fatal(err)
	}
	if keys.Count != 1 {
		t.Errorf("etcd holds %d rule keys after the apply, want 1 (the old generation deleted)", keys.Count)
	}
}

// TestEtcdWriteFromStaleReplica: a replica writes against the set it
// serves without reading etcd first. While its watch is stopped another
// replica moves the set on; the stale replica's writes then write nothing
// and name the revision to catch up to (a precondition naming the set it
// serves, etcd's newer set, a delete, a write after a flip alike). Caught
// up, it checks them again: the precondition naming its old set is
// refused, the one naming etcd's lands, a rule deleted meanwhile is not
// found, and a write after a flip lands in the new generation, keeping its
// rule's place.
func TestEtcdWriteFromStaleReplica(t *testing.T) {
	ec := etcdtest.Start(t)
	a, b := startEtcdReplica(t, ec), startEtcdReplica(t, ec)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rule := func(id, to string) decision.Rule { return decision.Rule{ID: id, Path: "/" + id, To: to} }

	// The first write ever, from a replica serving no generation, makes one.
	first, retryAt, err := b.change(ctx, Precondition{}, []decision.Rule{rule("first", "/1")}, nil)
	if err != nil || retryAt != 0 {
		t.Fatalf("first write: %v, retry at %d", err, retryAt)
	}
	a.waitVersion(t, uint64(first))
	applied, err := a.admin.ApplyRules(ctx, &redirectv1.ApplyRulesRequest{Rules: []*redirectv1.Rule{
		testRule("zz", "/x/:p"), testRule("aa", "/:q/y"), testRule("mm", "/m/:p"),
	}})
	if err != nil {
		t.Fatal(err)
	}
	b.waitVersion(t, applied.GetVersion().GetNumber())

	b.stop()
	stale := b.store.rules.Engine.Current().Version
	if _, err := a.admin.DeleteRule(ctx, &redirectv1.DeleteRuleRequest{Id: "aa"}); err != nil {
		t.Fatal(err)
	}
	now := a.store.rules.Engine.Current().Version
	for name, w := range map[string]struct {
		pre     Precondition
		deletes []string
	}{
		"expecting the served version": {pre: Precondition{Version: stale.Number}},
		"expecting the served hash":    {pre: Precondition{Hash: stale.Hash}},
		"expecting etcd's version":     {pre: Precondition{Version: now.Number}},
		"deleting the deleted rule":    {deletes: []string{"aa"}},
	} {
		var puts []decision.Rule
		if w.deletes == nil {
			puts = []decision.Rule{rule("zz", "/stale")}
		}
		if rev, retryAt, err := b.change(ctx, w.pre, puts, w.deletes); err != nil || rev != 0 || retryAt != int64(now.Number) {
			t.Errorf("stale write %s: revision %d, retry at %d, %v; want nothing written and a retry at %d", name, rev, retryAt, err, now.Number)
		}
	}
	b.follow(t)
	b.waitVersion(t, now.Number)
	for _, pre := range []Precondition{{Version: stale.Number}, {Hash: stale.Hash}} {
		_, _, err := b.store.Update(ctx, pre, Edit{Puts: []decision.Rule{rule("zz", "/refused")}})
		if !errors.Is(err, ErrVersionMismatch) || !strings.Contains(err.Error(), "the etcd set's") {
			t.Errorf("write expecting %+v, the set the replica served before: %v, want a mismatch with the etcd set's", pre, err)
		}
	}
	if _, _, err := b.store.Update(ctx, Precondition{}, Edit{Deletes: []string{"aa"}}); !errors.Is(err, ErrRuleNotFound) {
		t.Errorf("delete of a rule deleted meanwhile: %v, want ErrRuleNotFound", err)
	}
	if _, _, err := b.store.Update(ctx, Precondition{Version: now.Number}, Edit{Puts: []decision.Rule{rule("zz", "/by-version")}}); err != nil {
		t.Fatalf("write expecting etcd's version: %v", err)
	}

	// A flips to a new generation; the stale replica's write waits for it
	// and lands in it.
	b.stop()
	flipped, err := a.admin.ApplyRules(ctx, &redirectv1.ApplyRulesRequest{Rules: []*redirectv1.Rule{testRule("zz", "/x/:p"), testRule("mm", "/m/:p")}})
	if err != nil {
		t.Fatal(err)
	}
	if _, retryAt, err := b.change(ctx, Precondition{}, []decision.Rule{rule("zz", "/after-flip")}, nil); err != nil || retryAt != int64(flipped.GetVersion().GetNumber()) {
		t.Errorf("write after a flip it has not seen: retry at %d, %v; want a retry at the flip, %d", retryAt, err, flipped.GetVersion().GetNumber())
	}
	b.follow(t)
	snap, _, err := b.store.Update(ctx, Precondition{}, Edit{Puts: []decision.Rule{rule("zz", "/after-flip")}})
	if err != nil {
		t.Fatal(err)
	}
	for name, r := range map[string]*etcdReplica{"A": a, "B": b} {
		r.waitVersion(t, snap.Version.Number)
		if got := r.fileOrder(); !slices.Equal(got, []string{"zz", "mm"}) {
			t.Errorf("%s serves %v in file order, want [zz mm]", name, got)
		}
		if zz, _ := r.store.rules.Engine.Store().Index().Rule("zz"); zz.To != "/after-flip" {
			t.Errorf("%s serves zz to %q, want /after-flip", name, zz.To)
		}
	}
}

// change is the replica's store's change, against the set it serves.
func (r *etcdReplica) change(ctx context.Context, pre Precondition, puts []decision.Rule, deletes []string) (rev, retryAt int64, err error) {
	r.store.mu.Lock()
	gen, applied := r.store.gen, r.store.rev
	r.store.mu.Unlock()
	return r.store.change(ctx, pre, gen, applied, puts, deletes)
}

// TestEtcdAwayAndBack: etcd stopped, the replicas keep serving and say
// so; writes fail UNAVAILABLE naming etcd; etcd back, the watch resumes
// and a write reaches every replica.
func TestEtcdAwayAndBack(t *testing.T) {
	ec := etcdtest.Start(t)
	a, b := startEtcdReplica(t, ec), startEtcdReplica(t, ec)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	put, err := a.admin.PutRule(ctx, &redirectv1.PutRuleRequest{Rule: testRule("one", "/one/:p")})
	if err != nil {
		t.Fatal(err)
	}
	b.waitVersion(t, put.GetVersion().GetNumber())

	ec.Stop()
	waitFor(t, 20*time.Second, func() bool { return testutil.ToFloat64(a.store.connected) == 0 }, func() string {
		return "redirectd_store_connected still 1 with etcd stopped"
	})
	_, err = a.admin.PutRule(ctx, &redirectv1.PutRuleRequest{Rule: testRule("two", "/two/:p")})
	wantCode(t, err, codes.Unavailable, "etcd")
	if _, ok := b.store.rules.Engine.Store().Index().Rule("one"); !ok {
		t.Fatal("replica B lost its rules while etcd is away")
	}

	ec.Restart()
	waitFor(t, 20*time.Second, func() bool { return testutil.ToFloat64(a.store.connected) == 1 }, func() string {
		return "redirectd_store_connected still 0 with etcd back"
	})
	var put2 *redirectv1.PutRuleResponse
	waitFor(t, 20*time.Second, func() bool {
		put2, err = a.admin.PutRule(ctx, &redirectv1.PutRuleRequest{Rule: testRule("two", "/two/:p")})
		return err == nil
	}, func() string { return "put after etcd came back: " + err.Error() })
	b.waitVersion(t, put2.GetVersion().GetNumber())
}

// TestEtcdCompactedResync: a replica whose watch was away while etcd
// compacted its history past the replica's revision reloads the whole set
// aside and serves what the others serve.
func TestEtcdCompactedResync(t *testing.T) {
	ec := etcdtest.Start(t)
	a, b := startEtcdReplica(t, ec), startEtcdReplica(t, ec)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b.stop()
	for _, id := range []string{"r1", "r2", "r3"} {
		if _, err := a.admin.PutRule(ctx, &redirectv1.PutRuleRequest{Rule: testRule(id, "/"+id+"/:p")}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.admin.DeleteRule(ctx, &redirectv1.DeleteRuleRequest{Id: "r2"}); err != nil {
		t.Fatal(err)
	}
	ec.Compact(ctx)
	if b.version() != 0 {
		t.Fatalf("stopped replica moved to version %d", b.version())
	}
	var logs syncLog
	b.store.rules.Log = slog.New(slog.NewTextHandler(&logs, nil))
	b.follow(t)
	b.waitVersion(t, a.version())
	if !strings.Contains(logs.String(), "etcd compacted its history") {
		t.Errorf("the resync was not a reload after compaction; log:\n%s", logs.String())
	}
	if got := b.fileOrder(); !slices.Equal(got, []string{"r1", "r3"}) {
		t.Errorf("resynced replica serves %v, want [r1 r3]", got)
	}
}

// TestEtcdFirstLoadWaitsForEtcd: a replica started while etcd is away
// is not ready until its first load.
func TestEtcdFirstLoadWaitsForEtcd(t *testing.T) {
	ec := etcdtest.Start(t)
	ec.Stop()
	cfg := DefaultConfig()
	cfg.ConsoleAddr = "" // tests start several daemons
	cfg.Store, cfg.EtcdEndpoints, cfg.EtcdPrefix = "etcd", ec.Endpoint(), testPrefix
	st := &RuleStore{Engine: NewEngine(decision.NewStore(decision.Options{}), time.Now), Log: testLogger(), Now: time.Now}
	es, err := NewEtcdStore(cfg, st)
	if err != nil {
		t.Fatal(err)
	}
	defer es.Close()
	loaded := make(chan error, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	go func() { loaded <- es.Load(ctx) }()
	select {
	case err := <-loaded:
		t.Fatalf("Load returned %v with etcd stopped", err)
	case <-time.After(2 * time.Second):
	}
	if st.Engine.Ready() {
		t.Fatal("ready with etcd stopped")
	}
	ec.Restart()
	if err := <-loaded; err != nil {
		t.Fatal(err)
	}
	if !st.Engine.Ready() {
		t.Fatal("not ready after the first load")
	}
}

// TestEtcdWritesCheckedAgainstTheSetTheyLandOn: two writes, each valid
// alone, that close a redirect cycle together, made through two replicas
// at once (one has not seen the other's). The set in etcd must never hold
// both: every replica would refuse the second, and a replica started
// afterwards could not load the set at all.
func TestEtcdWritesCheckedAgainstTheSetTheyLandOn(t *testing.T) {
	ec := etcdtest.Start(t)
	a, b := startEtcdReplica(t, ec), startEtcdReplica(t, ec)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	applied, err := a.admin.ApplyRules(ctx, &redirectv1.ApplyRulesRequest{Rules: []*redirectv1.Rule{{Id: "base", Path: "/base", To: "/elsewhere"}}})
	if err != nil {
		t.Fatal(err)
	}
	b.waitVersion(t, applied.GetVersion().GetNumber())
	b.stop() // b does not see a's next write
	if _, err := a.admin.PutRule(ctx, &redirectv1.PutRuleRequest{Rule: &redirectv1.Rule{Id: "x", Path: "/x", To: "/y"}}); err != nil {
		t.Fatal(err)
	}
	short, cancelShort := context.WithTimeout(ctx, 2*time.Second)
	_, err = b.admin.PutRule(short, &redirectv1.PutRuleRequest{Rule: &redirectv1.Rule{Id: "y", Path: "/y", To: "/x"}})
	cancelShort()
	t.Logf("the write closing the cycle, through the replica that had not seen the other: %v", err)
	if err == nil {
		t.Error("a write that closes a redirect cycle was acknowledged")
	}
	b.follow(t)
	// Caught up, the replica checks the write against the set it would
	// land on, and refuses it.
	_, err = b.admin.PutRule(ctx, &redirectv1.PutRuleRequest{Rule: &redirectv1.Rule{Id: "y", Path: "/y", To: "/x"}})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "redirect cycle") {
		t.Errorf("the same write once the replica has caught up: %v, want INVALID_ARGUMENT naming the cycle", err)
	}

	fresh := newEtcdStore(t, ec)
	load, cancelLoad := context.WithTimeout(ctx, 5*time.Second)
	defer cancelLoad()
	if err := fresh.reload(load); err != nil {
		t.Fatalf("a replica started afterwards cannot load the set in etcd: %v", err)
	}
	ix := fresh.rules.Engine.Store().Index()
	if _, ok := ix.Rule("x"); !ok || ix.Has("y") {
		t.Errorf("etcd's set holds x %v and y %v; want x, the first write, alone", ix.Has("x"), ix.Has("y"))
	}
}
