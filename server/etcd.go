package server

import (
	"cmp"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/redirectd/redirectd/decision"
	redirectv1 "github.com/redirectd/redirectd/proto/redirect/v1"
)

// Limits of the etcd store. etcd refuses a transaction of more than
// --max-txn-ops (128 by default) operations or a request larger than
// --max-request-bytes (1.5 MiB by default), so a whole set is written in
// batches below both.
const (
	etcdBatchOps   = 128
	etcdBatchBytes = 1 << 20
	// etcdWriters batches are in flight while a generation is written:
	// etcd commits concurrent transactions in one fsync.
	etcdWriters = 16
	// etcdPageSize rules are read per call of a load. etcd 3.4 walks
	// every key from a page's start to the range's end to count them, so
	// small pages make a load quadratic: 5,000-key pages took 61 s for a
	// million rules, 50,000-key pages (about 12 MB each) take a few.
	etcdPageSize = 50000
	// etcdCallTimeout bounds one call to etcd, so a write while etcd is
	// away fails UNAVAILABLE instead of hanging.
	etcdCallTimeout = 5 * time.Second
	// etcdWriteTries bounds the retries of a write without
	// expected_version that lost a race with another write.
	etcdWriteTries = 10
)

// EtcdStore keeps the rule set in etcd, shared by every replica (README
// "The rule set in etcd"). The layout under the prefix:
//
//	<prefix>current                    the serving generation's name
//	<prefix>gen/<generation>/rules/<id> one rule: {"seq": n, "rule": {...}}
//
// A rule is the JSON of redirect.v1.Rule with the rules file's field
// names (protojson); seq, set only for rules written by ApplyRules, is the
// rule's place in the applied file. Rules are served in file order: by
// seq, then, for rules created by PutRule, by the revision that created
// them, which is the order the watch delivers them in.
//
// Every change made through redirectd also puts the pointer key, in the
// same transaction: its ModRevision is the set's version, the same on
// every replica, and the one expected_version is compared with. The set's
// hash is derived from the version (versionHash), so expected_hash is
// checked by the same compare.
//
// Each replica loads the serving generation with paginated reads at one
// revision, then follows a watch of the prefix from the next revision and
// applies each change in place (decision.Store.Apply). ApplyRules writes
// a new generation in as many transactions as it needs, then flips the
// pointer in one compare-and-swap; replicas load the new generation aside
// and swap it in whole, and the old generation is deleted.
type EtcdStore struct {
	rules     *RuleStore
	client    *clientv3.Client
	prefix    string
	endpoints string
	connected prometheus.Gauge

	mu sync.Mutex
	// gen is the serving generation ("" before a first write ever made
	// one) and rev the last etcd revision this replica has applied: the
	// watch resumes after it. Both change only on the follower.
	gen string
	rev int64
	// applied is closed, and replaced, whenever rev moves: writers wait
	// on it for their change to serve here.
	applied chan struct{}
}

// NewEtcdStore returns the etcd store of cfg publishing through rules. It
// does not wait for etcd: Load does.
func NewEtcdStore(cfg Config, rules *RuleStore) (*EtcdStore, error) {
	var tc *tls.Config
	if cfg.EtcdCA != "" || cfg.EtcdCert != "" {
		info := transport.TLSInfo{CertFile: cfg.EtcdCert, KeyFile: cfg.EtcdKey, TrustedCAFile: cfg.EtcdCA}
		var err error
		if tc, err = info.ClientConfig(); err != nil {
			return nil, fmt.Errorf("etcd TLS (--etcd-ca, --etcd-cert, --etcd-key): %w", err)
		}
	}
	var endpoints []string
	for _, ep := range strings.Split(cfg.EtcdEndpoints, ",") {
		if ep = strings.TrimSpace(ep); ep != "" {
			endpoints = append(endpoints, ep)
		}
	}
	client, err := clientv3.New(clientv3.Config{
		Endpoints:   endpoints,
		DialTimeout: etcdCallTimeout,
		// A dead peer that sends no RST (a partition) is noticed within
		// 15 s, so the connected gauge and the log say so.
		DialKeepAliveTime:    10 * time.Second,
		DialKeepAliveTimeout: 5 * time.Second,
		TLS:                  tc,
		Username:             cfg.EtcdUsername,
		Password:             cfg.EtcdPassword,
		// The client's own retries would fill the log; EtcdStore logs
		// what an operator needs (unreachable, back, compacted).
		Logger: zap.NewNop(),
	})
	if err != nil {
		return nil, fmt.Errorf("etcd client (--etcd-endpoints %q): %w", cfg.EtcdEndpoints, err)
	}
	e := &EtcdStore{
		rules:     rules,
		client:    client,
		prefix:    cfg.EtcdPrefix,
		endpoints: strings.Join(endpoints, ","),
		applied:   make(chan struct{}),
		connected: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "redirectd_store_connected",
			Help: "1 while the rule store (etcd) is reachable, 0 while it is not and the last rule set keeps serving.",
		}),
	}
	if rules.Metrics != nil {
		rules.Metrics.registry.MustRegister(e.connected)
	}
	return e, nil
}

// Rules is the RuleStore every set is published through.
func (e *EtcdStore) Rules() *RuleStore { return e.rules }

// Close closes the etcd client.
func (e *EtcdStore) Close() error { return e.client.Close() }

func (e *EtcdStore) pointerKey() string          { return e.prefix + "current" }
func (e *EtcdStore) genPrefix(gen string) string { return e.prefix + "gen/" + gen + "/" }
func (e *EtcdStore) rulesPrefix(gen string) string {
	return e.genPrefix(gen) + "rules/"
}
func (e *EtcdStore) ruleKey(gen, id string) string { return e.rulesPrefix(gen) + id }

// source names the store in logs and in the version's Source.
func (e *EtcdStore) source() string { return "etcd " + e.endpoints + " " + e.prefix }

// unavailable is the error of a call etcd did not answer.
func (e *EtcdStore) unavailable(what string, err error) error {
	return fmt.Errorf("%w: etcd %s (--etcd-endpoints %s, prefix %s): %v", ErrStoreUnavailable, what, e.endpoints, e.prefix, err)
}

// etcdValue is the value of a rule key.
type etcdValue struct {
	Seq  *int64          `json:"seq,omitempty"`
	Rule json.RawMessage `json:"rule"`
}

var ruleJSON = protojson.MarshalOptions{UseProtoNames: true}

func encodeRule(r decision.Rule, seq *int64) ([]byte, error) {
	rule, err := ruleJSON.Marshal(redirectv1.RuleToProto(r))
	if err != nil {
		return nil, fmt.Errorf("rule %q: %w", r.ID, err)
	}
	return json.Marshal(etcdValue{Seq: seq, Rule: rule})
}

func decodeRule(key, value []byte) (decision.Rule, *int64, error) {
	var v etcdValue
	if err := json.Unmarshal(value, &v); err != nil {
		return decision.Rule{}, nil, fmt.Errorf("etcd key %s: %w", key, err)
	}
	var pb redirectv1.Rule
	if err := protojson.Unmarshal(v.Rule, &pb); err != nil {
		return decision.Rule{}, nil, fmt.Errorf("etcd key %s: rule: %w", key, err)
	}
	r, err := redirectv1.RuleFromProto(&pb)
	if err != nil {
		return decision.Rule{}, nil, fmt.Errorf("etcd key %s: %w", key, err)
	}
	return r, v.Seq, nil
}

// versionHash is the hash of the set at version of generation gen: the
// SHA-256 of the prefix, the generation and the version, the same on
// every replica and across restarts, as the version is (README "The rule
// set in etcd"). It names a set in etcd rather than hashing its content:
// a content hash would cost O(rules) per write or a digest kept per rule.
func (e *EtcdStore) versionHash(gen string, version int64) string {
	sum := sha256.Sum256([]byte(e.prefix + "\x00" + gen + "\x00" + strconv.FormatInt(version, 10)))
	return hex.EncodeToString(sum[:])
}

// check refuses a write prepared against another set than the one in
// etcd: generation gen at version.
func (e *EtcdStore) check(pre Precondition, gen string, version int64) error {
	return pre.check(Version{Number: uint64(version), Hash: e.versionHash(gen, version)}, "the etcd set's")
}

// ruleID is the id of a rule key of generation gen; false for any other
// key.
func (e *EtcdStore) ruleID(key []byte, gen string) (string, bool) {
	return strings.CutPrefix(string(key), e.rulesPrefix(gen))
}

// Load serves the set in etcd for the first time, trying again until it
// serves or ctx ends: a replica started while etcd is away is not ready
// until then (README "The rule set in etcd").
func (e *EtcdStore) Load(ctx context.Context) error {
	for attempt := 0; ; attempt++ {
		err := e.reload(ctx)
		if err == nil || ctx.Err() != nil {
			return err
		}
		e.rules.Log.Warn("rules not loaded from etcd yet; not ready, trying again", "store", e.source(), "error", err)
		if !sleep(ctx, backoff(attempt)) {
			return ctx.Err()
		}
	}
}

// backoff is the wait before try attempt+1: 250 ms doubling to 5 s.
func backoff(attempt int) time.Duration {
	return min(250*time.Millisecond<<min(attempt, 5), 5*time.Second)
}

// sleep waits d; false when ctx ended first.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// reload reads the whole serving generation at one revision, builds it
// aside and swaps it in (decision.Store.Replace): the first load, and the
// resync after the watch's history was compacted.
func (e *EtcdStore) reload(ctx context.Context) error {
	start := e.rules.Now()
	cctx, cancel := context.WithTimeout(ctx, etcdCallTimeout)
	resp, err := e.client.Get(cctx, e.pointerKey())
	cancel()
	if err != nil {
		return e.unavailable("read "+e.pointerKey(), err)
	}
	gen, version := "", int64(0)
	if len(resp.Kvs) > 0 {
		gen, version = string(resp.Kvs[0].Value), resp.Kvs[0].ModRevision
	}
	rev := resp.Header.Revision
	if err := e.serveGeneration(ctx, gen, rev, version, start); err != nil {
		return err
	}
	e.advance(rev)
	return nil
}

// serveGeneration loads generation gen as it was at revision rev and
// serves it as version; nothing when gen is "" (no write ever made one).
func (e *EtcdStore) serveGeneration(ctx context.Context, gen string, rev, version int64, start time.Time) error {
	var rules []decision.Rule
	if gen != "" {
		var err error
		if rules, err = e.readGeneration(ctx, gen, rev); err != nil {
			return err
		}
	}
	c, err := e.rules.Engine.Store().Replace(rules)
	if err != nil {
		e.rules.reject(e.source(), err)
		return fmt.Errorf("generation %s at revision %d: %w", gen, rev, err)
	}
	e.rules.publish(c, decision.Info{Version: uint64(version), Hash: e.versionHash(gen, version), Source: e.source(), LoadedAt: start})
	e.mu.Lock()
	e.gen = gen
	e.mu.Unlock()
	return nil
}

// readGeneration reads every rule of gen at revision rev, a page at a
// time, in file order. The next page is fetched while the last one is
// decoded: at a million rules, etcd's answers and the decoding take
// about as long as each other.
func (e *EtcdStore) readGeneration(ctx context.Context, gen string, rev int64) ([]decision.Rule, error) {
	type placed struct {
		rule  decision.Rule
		order int64
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pages := make(chan *clientv3.GetResponse, 1)
	fetchErr := make(chan error, 1)
	go func() {
		defer close(pages)
		from, end := e.rulesPrefix(gen), clientv3.GetPrefixRangeEnd(e.rulesPrefix(gen))
		for {
			cctx, cc := context.WithTimeout(ctx, etcdCallTimeout)
			resp, err := e.client.Get(cctx, from, clientv3.WithRange(end), clientv3.WithRev(rev), clientv3.WithLimit(etcdPageSize))
			cc()
			if err != nil {
				fetchErr <- e.unavailable(fmt.Sprintf("read generation %s at revision %d", gen, rev), err)
				return
			}
			select {
			case pages <- resp:
			case <-ctx.Done():
				return
			}
			if !resp.More || len(resp.Kvs) == 0 {
				return
			}
			from = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
		}
	}()
	// Pages are decoded on every core, each into its own slot.
	type page struct {
		kvs   []*mvccpb.KeyValue
		rules []placed
		err   error
	}
	var decoded []*page
	var wg sync.WaitGroup
	work := make(chan *page)
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range work {
				p.rules = make([]placed, 0, len(p.kvs))
				for _, kv := range p.kvs {
					r, seq, err := decodeRule(kv.Key, kv.Value)
					if err != nil {
						p.err = err
						break
					}
					// Rules ApplyRules wrote come first, in file order;
					// rules PutRule created follow in the order they were
					// created.
					order := kv.CreateRevision + 1<<40
					if seq != nil {
						order = *seq
					}
					p.rules = append(p.rules, placed{r, order})
				}
			}
		}()
	}
	total := 0
	for resp := range pages {
		p := &page{kvs: resp.Kvs}
		decoded = append(decoded, p)
		total += len(resp.Kvs)
		work <- p
	}
	close(work)
	wg.Wait()
	select {
	case err := <-fetchErr:
		return nil, err
	default:
	}
	all := make([]placed, 0, total)
	for _, p := range decoded {
		if p.err != nil {
			return nil, p.err
		}
		all = append(all, p.rules...)
	}
	slices.SortStableFunc(all, func(a, b placed) int { return cmp.Compare(a.order, b.order) })
	rules := make([]decision.Rule, len(all))
	for i := range all {
		rules[i] = all[i].rule
	}
	return rules, nil
}

// advance records that every revision up to rev is applied here.
func (e *EtcdStore) advance(rev int64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if rev > e.rev {
		e.rev = rev
		close(e.applied)
		e.applied = make(chan struct{})
	}
}

// Follow applies every change in etcd until ctx ends: a watch of the
// prefix from the revision after the last one applied, resumed from there
// when it breaks (etcd away and back), and a full reload aside when etcd
// has compacted that revision away.
func (e *EtcdStore) Follow(ctx context.Context) error {
	for attempt := 0; ctx.Err() == nil; {
		err := e.watch(ctx)
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, rpctypes.ErrCompacted):
			e.mu.Lock()
			rev := e.rev
			e.mu.Unlock()
			e.rules.Log.Warn("etcd compacted its history past the last revision applied; reloading the whole set aside",
				"store", e.source(), "revision", rev)
			if err := e.reload(ctx); err != nil {
				e.rules.Log.Error("reload from etcd failed; serving the last set, trying again", "store", e.source(), "error", err)
				attempt++
				sleep(ctx, backoff(attempt))
				continue
			}
		default:
			e.rules.Log.Warn("etcd watch ended; resuming from the last revision applied", "store", e.source(), "error", err)
			attempt++
			sleep(ctx, backoff(attempt))
			continue
		}
		attempt = 0
	}
	return nil
}

// watch follows one watch until it ends, and says why.
func (e *EtcdStore) watch(ctx context.Context) error {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	e.mu.Lock()
	from := e.rev + 1
	e.mu.Unlock()
	for resp := range e.client.Watch(wctx, e.prefix, clientv3.WithPrefix(), clientv3.WithRev(from)) {
		if err := resp.Err(); err != nil {
			return err
		}
		if err := e.applyEvents(ctx, resp.Events); err != nil {
			return err
		}
	}
	return errors.New("watch closed")
}

// applyEvents applies a watch answer's events, one revision (one etcd
// transaction) at a time.
func (e *EtcdStore) applyEvents(ctx context.Context, events []*clientv3.Event) error {
	for len(events) > 0 {
		rev := events[0].Kv.ModRevision
		n := 1
		for n < len(events) && events[n].Kv.ModRevision == rev {
			n++
		}
		if err := e.applyRevision(ctx, rev, events[:n]); err != nil {
			return err
		}
		e.advance(rev)
		events = events[n:]
	}
	return nil
}

// applyRevision applies the events of one revision: a flip of the
// pointer loads the new generation aside and swaps it in; puts and
// deletes of the serving generation's rules are applied in place; keys of
// other generations (one being written, one being deleted) are skipped.
// An error means the revision was not applied and must be tried again.
func (e *EtcdStore) applyRevision(ctx context.Context, rev int64, events []*clientv3.Event) error {
	start := e.rules.Now()
	e.mu.Lock()
	gen := e.gen
	e.mu.Unlock()
	var puts []decision.Rule
	var deletes []string
	cur := e.rules.Engine.Store().Index()
	for _, ev := range events {
		key := string(ev.Kv.Key)
		if key == e.pointerKey() {
			if ev.Type == clientv3.EventTypeDelete {
				e.rules.Log.Error("etcd pointer key deleted; serving the last set until a rule set is applied again", "store", e.source(), "key", key, "revision", rev)
				continue
			}
			if next := string(ev.Kv.Value); next != gen {
				// ApplyRules flips the pointer alone in its transaction.
				e.rules.Log.Info("new rule generation in etcd; loading it aside", "store", e.source(), "generation", next, "revision", rev)
				return e.serveGeneration(ctx, next, rev, rev, start)
			}
			continue
		}
		id, ok := e.ruleID(ev.Kv.Key, gen)
		if !ok || gen == "" {
			continue
		}
		if ev.Type == clientv3.EventTypeDelete {
			if _, ok := cur.Rule(id); ok {
				deletes = append(deletes, id)
			}
			continue
		}
		r, _, err := decodeRule(ev.Kv.Key, ev.Kv.Value)
		if err != nil {
			// Written around redirectd (etcdctl): every replica skips it alike.
			e.rules.reject(e.source(), err)
			continue
		}
		puts = append(puts, r)
	}
	if len(puts)+len(deletes) == 0 {
		return nil
	}
	c, err := e.rules.Engine.Store().Apply(puts, deletes)
	if err != nil {
		// Every replica refuses the same change; keep following.
		e.rules.reject(fmt.Sprintf("%s revision %d", e.source(), rev), err)
		return nil
	}
	e.rules.publish(c, decision.Info{Version: uint64(rev), Hash: e.versionHash(gen, rev), Source: e.source(), LoadedAt: start})
	return nil
}

// Monitor keeps redirectd_store_connected and the log up to date with the
// state of the connection to etcd until ctx ends (README "The rule set in
// etcd": etcd away, the last set keeps serving).
func (e *EtcdStore) Monitor(ctx context.Context) error {
	conn := e.client.ActiveConnection()
	up := true
	e.connected.Set(1)
	for state := conn.GetState(); ; state = conn.GetState() {
		switch now := state == connectivity.Ready || state == connectivity.Idle; {
		case now && !up:
			e.connected.Set(1)
			e.rules.Log.Info("etcd reachable again", "store", e.source())
		case !now && up:
			e.connected.Set(0)
			e.rules.Log.Warn("etcd unreachable; serving the last rule set, admin writes fail UNAVAILABLE",
				"store", e.source(), "state", state.String(), "version", e.servedVersion())
		}
		up = state == connectivity.Ready || state == connectivity.Idle
		if !conn.WaitForStateChange(ctx, state) {
			return nil
		}
	}
}

func (e *EtcdStore) servedVersion() uint64 {
	if cur := e.rules.Engine.Current(); cur != nil {
		return cur.Version.Number
	}
	return 0
}

// Writable is nil: any replica writes to etcd (a write while etcd is away
// fails ErrStoreUnavailable).
func (e *EtcdStore) Writable() error { return nil }

// Update checks e against this replica's serving set, so invalid rules
// never reach etcd, then writes it in etcd and answers once this replica
// serves it. pre is compared with the set in etcd in the write's own
// transaction.
func (e *EtcdStore) Update(ctx context.Context, pre Precondition, edit Edit) (*Snapshot, []decision.Problem, error) {
	if e.rules.Engine.Current() == nil {
		return nil, nil, ErrNotReady
	}
	c, err := edit.prepare(e.rules.Engine.Store(), e.rules.Now())
	if err != nil {
		return nil, nil, err
	}
	warnings := c.Warnings()
	c.Abort()
	var rev int64
	if edit.Whole {
		rev, err = e.applyWhole(ctx, pre, edit.Puts)
	} else {
		rev, err = e.change(ctx, pre, edit.Puts, edit.Deletes)
	}
	if err != nil {
		return nil, nil, err
	}
	snap, err := e.awaitApplied(ctx, rev)
	return snap, warnings, err
}

// awaitApplied waits until this replica has applied revision rev, as
// long as the caller waits (a million rules take seconds to load aside),
// or 5 minutes when it set no deadline.
func (e *EtcdStore) awaitApplied(ctx context.Context, rev int64) (*Snapshot, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 5*time.Minute)
		defer cancel()
	}
	for {
		e.mu.Lock()
		done, applied := e.rev >= rev, e.applied
		e.mu.Unlock()
		if done {
			return e.rules.Engine.Current(), nil
		}
		select {
		case <-applied:
		case <-ctx.Done():
			return nil, e.unavailable(fmt.Sprintf("written at revision %d, not yet served by this replica", rev), ctx.Err())
		}
	}
}

// pointer reads the pointer key: the serving generation, its
// ModRevision (the set's version; 0 when there is none yet) and the
// revision read at.
func (e *EtcdStore) pointer(ctx context.Context) (gen string, version, rev int64, err error) {
	cctx, cancel := context.WithTimeout(ctx, etcdCallTimeout)
	defer cancel()
	resp, err := e.client.Get(cctx, e.pointerKey())
	if err != nil {
		return "", 0, 0, e.unavailable("read "+e.pointerKey(), err)
	}
	if len(resp.Kvs) > 0 {
		gen, version = string(resp.Kvs[0].Value), resp.Kvs[0].ModRevision
	}
	return gen, version, resp.Header.Revision, nil
}

// newGeneration names a new generation: the revision it was started at,
// and randomness so two applies started together never share one.
func newGeneration(rev int64) string {
	return fmt.Sprintf("%016x-%08x", rev, rand.Uint32())
}

// change writes puts and deletes in one transaction that also puts the
// pointer. With a precondition, it holds only if the set is still at the
// version the precondition was checked against; without, only if the
// generation is still the one read, so writers of different rules never
// make each other retry (a version compare would let one of n concurrent
// writers through at a time).
func (e *EtcdStore) change(ctx context.Context, pre Precondition, puts []decision.Rule, deletes []string) (int64, error) {
	for try := 0; try < etcdWriteTries; try++ {
		gen, version, rev, err := e.pointer(ctx)
		if err != nil {
			return 0, err
		}
		if err := e.check(pre, gen, version); err != nil {
			return 0, err
		}
		var cmps []clientv3.Cmp
		switch {
		case pre.set():
			cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(e.pointerKey()), "=", version))
		case gen == "":
			cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(e.pointerKey()), "=", 0))
		default:
			cmps = append(cmps, clientv3.Compare(clientv3.Value(e.pointerKey()), "=", gen))
		}
		if gen == "" {
			gen = newGeneration(rev) // the first write ever
		}
		ops := []clientv3.Op{clientv3.OpPut(e.pointerKey(), gen)}
		for _, id := range deletes {
			cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(e.ruleKey(gen, id)), ">", 0))
			ops = append(ops, clientv3.OpDelete(e.ruleKey(gen, id)))
		}
		for _, r := range puts {
			// A rule ApplyRules wrote keeps its place in the file.
			seq, err := e.seqOf(ctx, gen, r.ID, rev)
			if err != nil {
				return 0, err
			}
			v, err := encodeRule(r, seq)
			if err != nil {
				return 0, err
			}
			ops = append(ops, clientv3.OpPut(e.ruleKey(gen, r.ID), string(v)))
		}
		cctx, cancel := context.WithTimeout(ctx, etcdCallTimeout)
		resp, err := e.client.Txn(cctx).If(cmps...).Then(ops...).Commit()
		cancel()
		if err != nil {
			return 0, e.unavailable("write", err)
		}
		if resp.Succeeded {
			return resp.Header.Revision, nil
		}
		// The set moved on, or a rule to delete is gone: which one?
		nowGen, now, _, err := e.pointer(ctx)
		if err != nil {
			return 0, err
		}
		if err := e.check(pre, nowGen, now); err != nil {
			return 0, err
		}
		if nowGen == gen && len(deletes) > 0 {
			return 0, fmt.Errorf("rule %q: %w", deletes[0], ErrRuleNotFound)
		}
	}
	return 0, e.unavailable("write", fmt.Errorf("lost the race with other writers %d times", etcdWriteTries))
}

// seqOf is the seq of the rule id of gen at revision rev, nil when it
// has none (or does not exist).
func (e *EtcdStore) seqOf(ctx context.Context, gen, id string, rev int64) (*int64, error) {
	cctx, cancel := context.WithTimeout(ctx, etcdCallTimeout)
	defer cancel()
	resp, err := e.client.Get(cctx, e.ruleKey(gen, id), clientv3.WithRev(rev))
	if err != nil {
		return nil, e.unavailable("read "+e.ruleKey(gen, id), err)
	}
	if len(resp.Kvs) == 0 {
		return nil, nil
	}
	_, seq, err := decodeRule(resp.Kvs[0].Key, resp.Kvs[0].Value)
	if err != nil {
		return nil, nil // replaced by the put anyway
	}
	return seq, nil
}

// applyWhole writes rules as a new generation, in batches under etcd's
// limits, flips the pointer to it in one compare-and-swap and deletes the
// old generation. Until the flip no replica sees the new generation; the
// flip is one revision, so none ever serves half of it.
func (e *EtcdStore) applyWhole(ctx context.Context, pre Precondition, rules []decision.Rule) (int64, error) {
	old, version, rev, err := e.pointer(ctx)
	if err != nil {
		return 0, err
	}
	if err := e.check(pre, old, version); err != nil {
		return 0, err
	}
	gen := newGeneration(rev)
	if err := e.writeGeneration(ctx, gen, rules); err != nil {
		e.dropGeneration(gen)
		return 0, err
	}
	for try := 0; ; try++ {
		cctx, cancel := context.WithTimeout(ctx, etcdCallTimeout)
		resp, err := e.client.Txn(cctx).
			If(clientv3.Compare(clientv3.ModRevision(e.pointerKey()), "=", version)).
			Then(clientv3.OpPut(e.pointerKey(), gen)).Commit()
		cancel()
		if err != nil {
			e.dropGeneration(gen)
			return 0, e.unavailable("flip "+e.pointerKey(), err)
		}
		if resp.Succeeded {
			if old != "" {
				e.dropGeneration(old)
			}
			return resp.Header.Revision, nil
		}
		// Another write landed meanwhile: an explicit precondition is
		// now stale; without one, the whole set still wins.
		var perr error
		if old, version, _, perr = e.pointer(ctx); perr == nil {
			perr = e.check(pre, old, version)
		}
		if perr == nil && try+1 == etcdWriteTries {
			perr = e.unavailable("flip "+e.pointerKey(), fmt.Errorf("lost the race with other writers %d times", etcdWriteTries))
		}
		if perr != nil {
			e.dropGeneration(gen)
			return 0, perr
		}
	}
}

// writeGeneration puts every rule of gen, etcdWriters batches at a time.
func (e *EtcdStore) writeGeneration(ctx context.Context, gen string, rules []decision.Rule) error {
	batches := make(chan []clientv3.Op)
	errs := make(chan error, etcdWriters)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	for range etcdWriters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ops := range batches {
				cctx, cc := context.WithTimeout(ctx, etcdCallTimeout)
				_, err := e.client.Txn(cctx).Then(ops...).Commit()
				cc()
				if err != nil {
					errs <- e.unavailable("write generation "+gen, err)
					cancel()
					return
				}
			}
		}()
	}
	var err error
	var ops []clientv3.Op
	size := 0
	send := func() bool {
		select {
		case batches <- ops:
			ops, size = nil, 0
			return true
		case <-ctx.Done():
			return false
		}
	}
	for i := range rules {
		seq := int64(i)
		v, encErr := encodeRule(rules[i], &seq)
		if encErr != nil {
			err = encErr
			break
		}
		key := e.ruleKey(gen, rules[i].ID)
		if len(ops) == etcdBatchOps || size+len(key)+len(v) > etcdBatchBytes {
			if !send() {
				break
			}
		}
		ops = append(ops, clientv3.OpPut(key, string(v)))
		size += len(key) + len(v)
	}
	if err == nil && len(ops) > 0 {
		send()
	}
	close(batches)
	wg.Wait()
	close(errs)
	if err != nil {
		return err
	}
	if werr := <-errs; werr != nil {
		return werr
	}
	return ctx.Err()
}

// dropGeneration deletes every key of gen: an old generation after a
// flip, or a new one that was not flipped to. Best effort: a generation
// left behind only takes space, and is logged.
func (e *EtcdStore) dropGeneration(gen string) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*etcdCallTimeout)
	defer cancel()
	if _, err := e.client.Delete(ctx, e.genPrefix(gen), clientv3.WithPrefix()); err != nil {
		e.rules.Log.Warn("etcd generation not deleted; delete its keys by hand", "store", e.source(), "prefix", e.genPrefix(gen), "error", err)
	}
}
