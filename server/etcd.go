package server

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
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
	// etcdPageSize rules are read per call of a load, and a page of the
	// page index a generation is written with holds as many. etcd 3.4
	// walks every key from a read's start to its range's end to count
	// them, so pages read from one range make a load quadratic: 5,000-key
	// pages took 61 s for a million rules. Ranges the page index cuts
	// walk each key once; then 10,000 to 100,000-key pages load 200k
	// rules alike (0.33-0.42 s).
	etcdPageSize = 50000
	// etcdReaders ranges of a generation are read at once: etcd answers
	// them on every core while this replica receives the last ones.
	etcdReaders = 4
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
//	<prefix>gen/<generation>/pages      the page index of a large generation (readGeneration)
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
	// pageSize is how many keys a read of a load asks for, and how many
	// a page of the page index holds: etcdPageSize, fewer in tests.
	pageSize int

	mu sync.Mutex
	// gen is the serving generation ("" before a first write ever made
	// one) and rev the last etcd revision this replica has applied: the
	// watch resumes after it. Both change only on the follower.
	gen string
	rev int64
	// applied is closed, and replaced, whenever rev moves: writers wait
	// on it for their change to serve here.
	applied chan struct{}
	// writing is held by the put or delete this replica is making
	// (Update).
	writing chan struct{}
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
		writing:   make(chan struct{}, 1),
		pageSize:  etcdPageSize,
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

// pagesKey is the page index of generation gen (readGeneration).
func (e *EtcdStore) pagesKey(gen string) string { return e.genPrefix(gen) + "pages" }

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

// decodeRule decodes the value of rule key key: the rule and its seq.
func decodeRule(key, value []byte) (decision.Rule, *int64, error) {
	rule, seq, hasSeq, err := splitValue(key, value)
	if err != nil {
		return decision.Rule{}, nil, err
	}
	var r decision.Rule
	if err := decodeRuleObject(key, rule, &r); err != nil {
		return decision.Rule{}, nil, err
	}
	if !hasSeq {
		return r, nil, nil
	}
	return r, &seq, nil
}

// splitValue finds the rule object and the seq (hasSeq false when there is
// none) in the value of key key. encodeRule spells every value
// {"seq":n,"rule":{...}} or {"rule":{...}}: those are cut apart where
// they stand, without decoding (the rule object is checked when it is
// decoded, so a value cut apart means what encoding/json reads in it);
// any other spelling is decoded.
func splitValue(key, value []byte) (rule []byte, seq int64, hasSeq bool, err error) {
	rest, ruleAt := value, []byte(`{"rule":`)
	if after, ok := bytes.CutPrefix(value, []byte(`{"seq":`)); ok {
		end := 0
		for end < len(after) && (after[end] == '-' || '0' <= after[end] && after[end] <= '9') {
			end++
		}
		var buf [24]byte
		// ParseInt takes "-0" and "007", which are not JSON; neither
		// spells its number back the same.
		if n, err := strconv.ParseInt(string(after[:end]), 10, 64); err == nil && bytes.Equal(strconv.AppendInt(buf[:0], n, 10), after[:end]) {
			rest, ruleAt, seq, hasSeq = after[end:], []byte(`,"rule":`), n, true
		}
	}
	if obj, ok := bytes.CutPrefix(rest, ruleAt); ok && len(obj) > 1 && objectLen(obj) == len(obj)-1 && obj[len(obj)-1] == '}' {
		return obj[:len(obj)-1], seq, hasSeq, nil
	}
	var v etcdValue
	if err := json.Unmarshal(value, &v); err != nil {
		return nil, 0, false, fmt.Errorf("etcd key %s: %w", key, err)
	}
	if v.Seq == nil {
		return v.Rule, 0, false, nil
	}
	return v.Rule, *v.Seq, true, nil
}

// objectLen is the length of the JSON object b starts with, by its
// braces outside strings, or -1: the rule object of a value ends there,
// and only the value's own closing brace may follow it.
func objectLen(b []byte) int {
	if len(b) == 0 || b[0] != '{' {
		return -1
	}
	depth, inString := 0, false
	for i := 0; i < len(b); i++ {
		switch c := b[i]; {
		case inString && c == '\\':
			i++
		case c == '"':
			inString = !inString
		case inString:
		case c == '{' || c == '[':
			depth++
		case c == '}' || c == ']':
			if depth--; depth == 0 {
				return i + 1
			}
		}
	}
	return -1
}

// decodeRuleObject decodes the rule object of key key into r. It is the
// JSON of redirect.v1.Rule with the field names of rules files, so the
// rules files' strict reader (decision.UnmarshalRule) reads what
// encodeRule wrote, several times faster than protojson; what it refuses
// (a key written by hand in protojson's other spellings, camelCase names
// or null values) protojson reads, as it always has.
func decodeRuleObject(key, rule []byte, r *decision.Rule) error {
	if decision.UnmarshalRule(rule, r) == nil {
		return nil
	}
	var pb redirectv1.Rule
	if err := protojson.Unmarshal(rule, &pb); err != nil {
		return fmt.Errorf("etcd key %s: rule: %w", key, err)
	}
	var err error
	if *r, err = redirectv1.RuleFromProto(&pb); err != nil {
		return fmt.Errorf("etcd key %s: %w", key, err)
	}
	return nil
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
	var stored []storedRule
	if gen != "" {
		var err error
		if stored, err = e.readGeneration(ctx, gen, rev); err != nil {
			return err
		}
	}
	// Each rule is decoded on every core straight into the new index.
	c, err := e.rules.Engine.Store().ReplaceFunc(len(stored), func(i int, r *decision.Rule) error {
		return decodeRuleObject(stored[i].key, stored[i].rule, r)
	})
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

// storedRule is a rule key of a generation as a load read it: the key
// (for errors), the rule object within its value, and its place in the
// set. Both slices point into etcd's answer.
type storedRule struct {
	key  []byte
	rule []byte
	// order is the rule's place: its seq for rules ApplyRules wrote, which
	// come first in file order; after them rules PutRule created, in the
	// order they were created. at, its place in key order, breaks ties.
	order, at int64
}

// readGeneration reads every rule key of gen at revision rev and returns
// them in file order. etcd 3.4 walks every key from a read's start to its
// end to count them, even for a page of a few, so a million keys read
// page after page cost a walk of the rest of the generation per page. The
// page index ApplyRules writes (pagesKey) cuts the generation into ranges
// of a page each, read etcdReaders at a time; a generation without one is
// read from its first key to its last.
func (e *EtcdStore) readGeneration(ctx context.Context, gen string, rev int64) ([]storedRule, error) {
	ranges, err := e.generationRanges(ctx, gen, rev)
	if err != nil {
		return nil, err
	}
	read := make([][]storedRule, len(ranges))
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var mu sync.Mutex
	var failed error // the first, not a read cancelled because of it
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(etcdReaders, len(ranges)) {
		wg.Go(func() {
			for k := int(next.Add(1) - 1); k < len(ranges) && ctx.Err() == nil; k = int(next.Add(1) - 1) {
				var err error
				if read[k], err = e.readRange(ctx, ranges[k][0], ranges[k][1], rev); err != nil {
					mu.Lock()
					failed = cmp.Or(failed, err)
					mu.Unlock()
					cancel()
				}
			}
		})
	}
	wg.Wait()
	if failed != nil {
		return nil, failed
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	all := slices.Concat(read...)
	for i := range all {
		all[i].at = int64(i)
	}
	byOrder := func(a, b storedRule) int { return cmp.Or(cmp.Compare(a.order, b.order), cmp.Compare(a.at, b.at)) }
	if !slices.IsSortedFunc(all, byOrder) {
		slices.SortFunc(all, byOrder)
	}
	return all, nil
}

// readRange reads the rule keys in [from, end) at revision rev, a page at
// a time, and finds each one's rule object and place.
func (e *EtcdStore) readRange(ctx context.Context, from, end string, rev int64) ([]storedRule, error) {
	var out []storedRule
	for {
		cctx, cancel := context.WithTimeout(ctx, etcdCallTimeout)
		resp, err := e.client.Get(cctx, from, clientv3.WithRange(end), clientv3.WithRev(rev), clientv3.WithLimit(int64(e.pageSize)))
		cancel()
		if err != nil {
			return nil, e.unavailable(fmt.Sprintf("read %s at revision %d", from, rev), err)
		}
		out = slices.Grow(out, len(resp.Kvs))
		for _, kv := range resp.Kvs {
			rule, seq, hasSeq, err := splitValue(kv.Key, kv.Value)
			if err != nil {
				return nil, err
			}
			order := kv.CreateRevision + 1<<40
			if hasSeq {
				order = seq
			}
			out = append(out, storedRule{key: kv.Key, rule: rule, order: order})
		}
		if !resp.More || len(resp.Kvs) == 0 {
			return out, nil
		}
		from = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
}

// generationRanges cuts the rule keys of gen into consecutive ranges
// [from, to) at the ids its page index lists, as it was at revision rev;
// one range when it has none. Whatever the index holds, the ranges cover
// every key once: an id that is not past the last cut is skipped.
func (e *EtcdStore) generationRanges(ctx context.Context, gen string, rev int64) ([][2]string, error) {
	start := e.rulesPrefix(gen)
	cctx, cancel := context.WithTimeout(ctx, etcdCallTimeout)
	resp, err := e.client.Get(cctx, e.pagesKey(gen), clientv3.WithRev(rev))
	cancel()
	if err != nil {
		return nil, e.unavailable(fmt.Sprintf("read %s at revision %d", e.pagesKey(gen), rev), err)
	}
	var ids []string
	if len(resp.Kvs) > 0 {
		if err := json.Unmarshal(resp.Kvs[0].Value, &ids); err != nil {
			// Only a guide to reading faster: read without it.
			e.rules.Log.Warn("etcd page index unreadable; reading the generation in one range", "store", e.source(), "key", e.pagesKey(gen), "error", err)
			ids = nil
		}
	}
	var ranges [][2]string
	from := start
	for _, id := range ids {
		if cut := start + id; cut > from {
			ranges = append(ranges, [2]string{from, cut})
			from = cut
		}
	}
	return append(ranges, [2]string{from, clientv3.GetPrefixRangeEnd(start)}), nil
}

// pageStarts is the page index of a generation of rules, in pages of
// size keys: every size-th of their ids in key order, the first excepted;
// nil for a generation of one page.
func pageStarts(rules []decision.Rule, size int) []string {
	if len(rules) <= size {
		return nil
	}
	ids := make([]string, len(rules))
	for i := range rules {
		ids[i] = rules[i].ID
	}
	slices.Sort(ids)
	var starts []string
	for i := size; i < len(ids); i += size {
		starts = append(starts, ids[i])
	}
	return starts
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
//
// A put or delete lands only on the set it was checked against (change):
// two writes through two replicas, each valid alone, could otherwise close
// a redirect cycle together, which every replica would refuse to apply
// and no replica started afterwards could load. When etcd has moved on,
// this replica catches up and checks the edit again. Its own writes go one
// at a time, so they never make each other catch up.
func (e *EtcdStore) Update(ctx context.Context, pre Precondition, edit Edit) (*Snapshot, []decision.Problem, error) {
	if e.rules.Engine.Current() == nil {
		return nil, nil, ErrNotReady
	}
	if edit.Whole {
		// A whole set is checked alone, whatever it replaces.
		warnings, err := e.checkEdit(edit)
		if err != nil {
			return nil, nil, err
		}
		rev, err := e.applyWhole(ctx, pre, edit.Puts)
		if err != nil {
			return nil, nil, err
		}
		snap, err := e.awaitApplied(ctx, rev)
		return snap, warnings, err
	}
	select {
	case e.writing <- struct{}{}:
		defer func() { <-e.writing }()
	case <-ctx.Done():
		return nil, nil, e.unavailable("write", ctx.Err())
	}
	for try := 0; ; try++ {
		e.mu.Lock()
		gen, applied := e.gen, e.rev
		e.mu.Unlock()
		warnings, err := e.checkEdit(edit)
		if err != nil {
			return nil, nil, err
		}
		rev, retryAt, err := e.change(ctx, pre, gen, applied, edit.Puts, edit.Deletes)
		if err != nil {
			return nil, nil, err
		}
		if retryAt == 0 {
			snap, err := e.awaitApplied(ctx, rev)
			return snap, warnings, err
		}
		if try+1 == etcdWriteTries {
			return nil, nil, e.unavailable("write", fmt.Errorf("the set moved on under the write %d times", etcdWriteTries))
		}
		if _, err := e.awaitApplied(ctx, retryAt); err != nil {
			return nil, nil, err
		}
	}
}

// checkEdit checks edit against the set this replica serves and returns
// the warnings it would draw.
func (e *EtcdStore) checkEdit(edit Edit) ([]decision.Problem, error) {
	c, err := edit.prepare(e.rules.Engine.Store(), e.rules.Now())
	if err != nil {
		return nil, err
	}
	defer c.Abort()
	return c.Warnings(), nil
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

// change writes puts and deletes, checked against the set of generation
// gen this replica serves having applied revision applied, in one
// transaction that also puts the pointer. The transaction holds only if
// the pointer has not moved since applied: every write through redirectd
// moves it, so then the set in etcd is the one the edit was checked
// against. With a precondition, the set must also be at the version it
// names.
//
// When etcd has moved on, nothing is written and retryAt is the revision
// the pointer is at: the caller waits until this replica serves it and
// checks the edit again. retryAt is applied itself when the pointer did
// not move but a rule's compare failed (a seq read from a lagging etcd
// member).
func (e *EtcdStore) change(ctx context.Context, pre Precondition, gen string, applied int64, puts []decision.Rule, deletes []string) (rev, retryAt int64, err error) {
	if err := e.check(pre, gen, int64(e.servedVersion())); err != nil {
		// The precondition may name etcd's newer set, which this replica
		// has not applied yet.
		pgen, pversion, _, perr := e.pointer(ctx)
		if perr != nil {
			return 0, 0, perr
		}
		if pversion > applied && e.check(pre, pgen, pversion) == nil {
			return 0, pversion, nil
		}
		return 0, 0, err
	}
	var cmps []clientv3.Cmp
	if gen == "" {
		cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(e.pointerKey()), "=", 0))
		gen = newGeneration(applied) // the first write ever
	} else {
		cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(e.pointerKey()), "<", applied+1),
			clientv3.Compare(clientv3.Value(e.pointerKey()), "=", gen))
	}
	ops := []clientv3.Op{clientv3.OpPut(e.pointerKey(), gen)}
	for _, id := range deletes {
		cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(e.ruleKey(gen, id)), ">", 0))
		ops = append(ops, clientv3.OpDelete(e.ruleKey(gen, id)))
	}
	for _, r := range puts {
		// A rule ApplyRules wrote keeps its place in the file.
		seq, created, err := e.seqOf(ctx, gen, r.ID)
		if err != nil {
			return 0, 0, err
		}
		v, err := encodeRule(r, seq)
		if err != nil {
			return 0, 0, err
		}
		cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(e.ruleKey(gen, r.ID)), "=", created))
		ops = append(ops, clientv3.OpPut(e.ruleKey(gen, r.ID), string(v)))
	}
	cctx, cancel := context.WithTimeout(ctx, etcdCallTimeout)
	resp, err := e.client.Txn(cctx).If(cmps...).Then(ops...).Commit()
	cancel()
	if err != nil {
		return 0, 0, e.unavailable("write", err)
	}
	if resp.Succeeded {
		return resp.Header.Revision, 0, nil
	}
	pgen, pversion, _, err := e.pointer(ctx)
	switch {
	case err != nil:
		return 0, 0, err
	case pversion > applied || pgen != gen && pgen != "":
		return 0, max(pversion, applied), nil
	case len(deletes) > 0:
		// The set did not move on, so a rule to delete is gone (deleted
		// around redirectd).
		return 0, 0, fmt.Errorf("rule %q: %w", deletes[0], ErrRuleNotFound)
	}
	return 0, applied, nil
}

// seqOf is the seq of the rule id of gen, nil when it has none (or does
// not exist), and the revision its key was created at, 0 when there is
// none. A rule's seq is fixed when its key is created (ApplyRules writes
// it, PutRule keeps it, a rule deleted and put again has none), so the
// write compares that revision instead of reading linearizably: the read
// is serializable, answered by the etcd member at hand without a round
// of consensus, and an answer that was stale fails the write's compare,
// which then tries again.
func (e *EtcdStore) seqOf(ctx context.Context, gen, id string) (seq *int64, created int64, err error) {
	cctx, cancel := context.WithTimeout(ctx, etcdCallTimeout)
	defer cancel()
	resp, err := e.client.Get(cctx, e.ruleKey(gen, id), clientv3.WithSerializable())
	if err != nil {
		return nil, 0, e.unavailable("read "+e.ruleKey(gen, id), err)
	}
	if len(resp.Kvs) == 0 {
		return nil, 0, nil
	}
	created = resp.Kvs[0].CreateRevision
	// Only the seq is wanted: the rule object is not decoded.
	if _, n, ok, err := splitValue(resp.Kvs[0].Key, resp.Kvs[0].Value); err == nil && ok {
		return &n, created, nil
	}
	return nil, created, nil // no seq, or a value the put replaces anyway
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
	if starts := pageStarts(rules, e.pageSize); starts != nil {
		index, _ := json.Marshal(starts) // strings always marshal
		ops, size = append(ops, clientv3.OpPut(e.pagesKey(gen), string(index))), len(index)
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
