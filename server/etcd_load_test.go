package server

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/redirectd/redirectd/decision"
	"github.com/redirectd/redirectd/decision/rulegen"
	"github.com/redirectd/redirectd/internal/etcdtest"
	redirectv1 "github.com/redirectd/redirectd/proto/redirect/v1"
)

// referenceDecode is how a rule key's value is defined: encoding/json for
// the {"seq": n, "rule": ...} around the rule, protojson for the rule.
func referenceDecode(value []byte) (decision.Rule, *int64, error) {
	var v etcdValue
	if err := json.Unmarshal(value, &v); err != nil {
		return decision.Rule{}, nil, err
	}
	var pb redirectv1.Rule
	if err := protojson.Unmarshal(v.Rule, &pb); err != nil {
		return decision.Rule{}, nil, err
	}
	r, err := redirectv1.RuleFromProto(&pb)
	return r, v.Seq, err
}

// richRules have every field a rule can have, with values protojson
// spells in its own ways (durations in seconds, fractional times).
func richRules() []decision.Rule {
	day, half := 24*time.Hour, 1500*time.Millisecond
	value := "v*"
	return []decision.Rule{
		{ID: "all", Host: "*.example.com", Path: "/a/:x/*", Match: decision.MatchPattern, To: "https://example.org/:x/:splat",
			Intent: decision.IntentTemporary, Status: 307, Methods: []string{"GET", "HEAD"}, Query: decision.QueryDrop,
			QueryStrip: []string{"utm_*"}, CaseInsensitive: true, TrailingSlash: decision.TrailingSlashStrict,
			Headers: map[string]string{"x-a": "1*", "x-b": ""}, Has: []decision.Condition{{Type: "cookie", Key: "c", Value: &value}},
			Missing: []decision.Condition{{Type: "query", Key: "q"}}, Languages: []string{"de", "fr-CH"}, CacheMaxAge: &day,
			Since: time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.UTC), ActiveFrom: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC),
			ActiveUntil: time.Date(2027, 3, 1, 0, 0, 0, 5e8, time.UTC), Mode: decision.ModeShadow, PromoteAfter: 30*day + time.Hour},
		{ID: "half-second", Path: "/h", To: "/i", CacheMaxAge: &half, PromoteAfter: 90 * time.Minute},
		{ID: "ünïcode \"quoted\" \\ </script>", Path: "/ü/%20", Match: decision.MatchRegex, To: "/$1\u2028"},
		{ID: "zero-age", Path: "/z", Match: decision.MatchPrefix, To: "/y", CacheMaxAge: new(time.Duration)},
	}
}

// TestEtcdValueDecoding: every rule redirectd writes decodes to the same
// rule and seq through the fast path as through the reference decoders,
// and so do values spelled otherwise (keys written by hand).
func TestEtcdValueDecoding(t *testing.T) {
	rules := append(richRules(), rulegen.Rules(rulegen.Config{N: 2000, Hosts: 5, Seed: 3})...)
	var values [][]byte
	for i, r := range rules {
		var seq *int64
		if i%3 != 0 {
			seq = new(int64(i * 1000))
		}
		v, err := encodeRule(r, seq)
		if err != nil {
			t.Fatal(err)
		}
		values = append(values, v)
	}
	values = append(values,
		[]byte(`{"rule":{"id":"camel","path":"/c","to":"/d","cacheMaxAge":"60s","caseInsensitive":true},"seq":4}`),
		[]byte(` { "seq" : 5 , "rule" : { "id" : "spaced" , "path" : "/s" , "to" : "/t" } } `),
		[]byte(`{"seq":6,"rule":{"id":"extra","path":"/e","to":"/f"},"note":{"by":"hand"}}`),
		[]byte(`{"seq":7,"rule":{"id":"nulls","path":"/n","to":"/o","cache_max_age":null,"status":"301"}}`),
		[]byte(`{"seq":-0,"rule":{"id":"minus-zero","path":"/m","to":"/n"}}`),
		[]byte(`{"seq":1,"rule":{"id":"seq-twice","path":"/m","to":"/n"},"seq":2}`),
	)
	for _, v := range values {
		want, wantSeq, werr := referenceDecode(v)
		got, gotSeq, err := decodeRule([]byte("/k"), v)
		if (werr == nil) != (err == nil) {
			t.Errorf("%s: decoded with error %v, the reference with %v", v, err, werr)
			continue
		}
		if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("%s: rule (-reference +fast):\n%s", v, diff)
		}
		if diff := cmp.Diff(wantSeq, gotSeq); diff != "" {
			t.Errorf("%s: seq (-reference +fast):\n%s", v, diff)
		}
	}
}

// FuzzEtcdValue: whatever a value holds, what the reference decoders read
// in it the load reads the same (it may read more: a rules-file spelling
// such as "cache_max_age": 3600, which protojson refuses).
//
//	go test -run x -fuzz FuzzEtcdValue -fuzztime 60s ./server/
func FuzzEtcdValue(f *testing.F) {
	for i, r := range richRules() {
		v, err := encodeRule(r, new(int64(i)))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(v)
	}
	f.Add([]byte(`{"seq":1,"rule":{"id":"a","path":"/a","to":"/b"},"x":{"y":"}"}}`))
	f.Fuzz(func(t *testing.T, v []byte) {
		want, wantSeq, werr := referenceDecode(v)
		if werr != nil {
			return
		}
		got, gotSeq, err := decodeRule([]byte("/k"), v)
		if err != nil {
			t.Fatalf("%q: %v; the reference decodes it", v, err)
		}
		if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("%q: rule (-reference +fast):\n%s", v, diff)
		}
		if diff := cmp.Diff(wantSeq, gotSeq); diff != "" {
			t.Errorf("%q: seq (-reference +fast):\n%s", v, diff)
		}
	})
}

// putRules writes rules as generation gen in etcd, ids in key order and
// seqs in the order given, and points the set at it.
func putRules(t *testing.T, ec *etcdtest.Etcd, es *EtcdStore, gen string, rules []decision.Rule, seqs []*int64) {
	t.Helper()
	ctx := context.Background()
	for i, r := range rules {
		v, err := encodeRule(r, seqs[i])
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ec.Client.Put(ctx, es.ruleKey(gen, r.ID), string(v)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := ec.Client.Put(ctx, es.pointerKey(), gen); err != nil {
		t.Fatal(err)
	}
}

// TestEtcdReadGenerationRanges: whatever the page index holds, a load
// reads every key of the generation once, at the revision asked for, in
// file order: seq first, then the rules without one in the order they
// were created.
func TestEtcdReadGenerationRanges(t *testing.T) {
	ec := etcdtest.Start(t)
	es := newEtcdStore(t, ec)
	es.pageSize = 7 // several pages per range
	const n = 100
	rng := rand.New(rand.NewPCG(1, 2))
	rules := make([]decision.Rule, n)
	seqs := make([]*int64, n)
	for i, k := range rng.Perm(n) {
		rules[i] = decision.Rule{ID: fmt.Sprintf("id-%03d", k), Path: fmt.Sprintf("/p/%d", i), To: "/t"}
		if i < 80 {
			seqs[i] = new(int64(n - i)) // file order against key order
		}
	}
	putRules(t, ec, es, "g", rules, seqs)
	ctx := context.Background()
	var want []string
	for i := n - 1; i >= 0; i-- {
		if seqs[i] != nil {
			want = append(want, rules[i].ID)
		}
	}
	for i := 80; i < n; i++ {
		want = append(want, rules[i].ID)
	}
	gone := rules[0] // has a seq: putting it back keeps its place
	goneValue, err := encodeRule(gone, seqs[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, index string }{
		{"no index", ""},
		{"every 10th id", `["id-010","id-020","id-030","id-040","id-050","id-060","id-070","id-080","id-090"]`},
		{"ids that are not keys", `["id-005x","id-0","id-050a","id-099z","zzz"]`},
		{"unsorted and repeated", `["id-060","id-020","id-020","id-090","id-000","","id-040","id-040"]`},
		{"a range per key", indexOfEvery(n)},
		{"not a list", `{"from":"id-050"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			if tc.index == "" {
				_, err = ec.Client.Delete(ctx, es.pagesKey("g"))
			} else {
				_, err = ec.Client.Put(ctx, es.pagesKey("g"), tc.index)
			}
			if err != nil {
				t.Fatal(err)
			}
			at, err := ec.Client.Get(ctx, es.pointerKey())
			if err != nil {
				t.Fatal(err)
			}
			rev := at.Header.Revision
			// After rev: none of it may show.
			if _, err := ec.Client.Put(ctx, es.ruleKey("g", "id-050a"), `{"rule":{"id":"late","path":"/l","to":"/t"}}`); err != nil {
				t.Fatal(err)
			}
			if _, err := ec.Client.Delete(ctx, es.ruleKey("g", gone.ID)); err != nil {
				t.Fatal(err)
			}
			if _, err := ec.Client.Put(ctx, es.pagesKey("g"), `["id-050"]`); err != nil {
				t.Fatal(err)
			}
			stored, err := es.readGeneration(ctx, "g", rev)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, s := range stored {
				var r decision.Rule
				if err := decodeRuleObject(s.key, s.rule, &r); err != nil {
					t.Fatal(err)
				}
				got = append(got, r.ID)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("rules read at revision %d (-want +got):\n%s", rev, diff)
			}
			if _, err := ec.Client.Delete(ctx, es.ruleKey("g", "id-050a")); err != nil {
				t.Fatal(err)
			}
			if _, err := ec.Client.Put(ctx, es.ruleKey("g", gone.ID), string(goneValue)); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// indexOfEvery is a page index that starts a range at each of the n ids.
func indexOfEvery(n int) string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("id-%03d", i)
	}
	v, _ := json.Marshal(ids)
	return string(v)
}

// TestEtcdApplyWritesPageIndex: ApplyRules writes the page index of a
// generation of several pages, and a new replica reading the ranges it
// cuts serves the set in the applied file order, which is not key order.
func TestEtcdApplyWritesPageIndex(t *testing.T) {
	ec := etcdtest.Start(t)
	a := startEtcdReplica(t, ec)
	a.store.pageSize = 10
	rules := rulegen.Rules(rulegen.Config{N: 95, Hosts: 3, Seed: 9})
	rand.New(rand.NewPCG(3, 4)).Shuffle(len(rules), func(i, j int) { rules[i], rules[j] = rules[j], rules[i] })
	ctx := context.Background()
	snap, _, err := a.store.Update(ctx, Precondition{}, Edit{Puts: rules, Whole: true})
	if err != nil {
		t.Fatal(err)
	}
	gen, _, _, err := a.store.pointer(ctx)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := ec.Client.Get(ctx, a.store.pagesKey(gen))
	if err != nil {
		t.Fatal(err)
	}
	var index []string
	if len(resp.Kvs) != 1 || json.Unmarshal(resp.Kvs[0].Value, &index) != nil || len(index) != 9 {
		t.Fatalf("page index %s: want a list of 9 ids", resp.Kvs)
	}
	fresh := newEtcdStore(t, ec)
	fresh.pageSize = 10
	if err := fresh.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if got := fresh.servedVersion(); got != snap.Version.Number {
		t.Errorf("new replica serves version %d, want %d", got, snap.Version.Number)
	}
	var got []string
	for r := range fresh.rules.Engine.Store().Index().All() {
		got = append(got, r.ID)
	}
	want := make([]string, len(rules))
	for i := range rules {
		want[i] = rules[i].ID
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("new replica's file order (-applied +served):\n%s", diff)
	}
}

// TestEtcdLoadNamesBadKey: a rule value that does not decode, or a rule
// that does not check, keeps a set from loading, and the error names the
// key or the rule.
func TestEtcdLoadNamesBadKey(t *testing.T) {
	ec := etcdtest.Start(t)
	es := newEtcdStore(t, ec)
	good := []decision.Rule{{ID: "a", Path: "/a", To: "/b"}, {ID: "c", Path: "/c", To: "/d"}}
	putRules(t, ec, es, "g", good, []*int64{new(int64(0)), new(int64(1))})
	ctx := context.Background()
	for _, tc := range []struct{ key, value, want string }{
		{es.ruleKey("g", "x"), `{"seq":2,"rule":{"id":"x","path":"/x","to":"/y","match":"glob"}}`, "etcd key " + es.ruleKey("g", "x") + ": "},
		{es.ruleKey("g", "x"), `{"seq":2,"rule":`, "etcd key " + es.ruleKey("g", "x") + ": "},
		{es.ruleKey("g", "x"), `{"seq":2,"rule":{"id":"x","path":"/x","to":"/y","status":404}}`, `rule "x": status: `},
	} {
		if _, err := ec.Client.Put(ctx, tc.key, tc.value); err != nil {
			t.Fatal(err)
		}
		err := es.reload(ctx)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s = %s: load error %v, want one with %q", tc.key, tc.value, err, tc.want)
		}
	}
}
