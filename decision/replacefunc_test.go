package decision

import (
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// TestReplaceFunc: a set built through ReplaceFunc, on every core, serves
// what Replace serves from the same rules: the same answers, the same
// rules in the same order, the same warnings; and a second ReplaceFunc of
// a set that differs in a few rules changes only those in place.
func TestReplaceFunc(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	for _, n := range []int{0, 300, 9000} { // 9000: split over the cores
		rules := storeRules(rng, n)
		rules = slices.DeleteFunc(rules, func(r Rule) bool { return r.Match == MatchRegex })
		want := commit(t)(NewStore(Options{}).Replace(slices.Clone(rules)))
		s := NewStore(Options{})
		got := commit(t)(s.ReplaceFunc(len(rules), func(i int, r *Rule) error { *r = rules[i]; return nil }))
		sameAnswers(t, "ReplaceFunc", got, want)
		if diff := cmp.Diff(ids(want), ids(got)); diff != "" {
			t.Fatalf("n=%d: file order (-Replace +ReplaceFunc):\n%s", n, diff)
		}
		if diff := cmp.Diff(want.Warnings(), got.Warnings(), cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("n=%d: warnings (-Replace +ReplaceFunc):\n%s", n, diff)
		}
		if n == 0 {
			continue
		}
		edited := slices.Clone(rules)
		edited[n/2].To = "/dest/edited"
		c, err := s.ReplaceFunc(len(edited), func(i int, r *Rule) error { *r = edited[i]; return nil })
		if err != nil {
			t.Fatal(err)
		}
		if c.Rebuilt || c.Puts != 1 {
			t.Errorf("n=%d: one rule changed: rebuilt %v, %d puts; want it changed in place", n, c.Rebuilt, c.Puts)
		}
		c.Commit(Info{})
	}
}

// TestReplaceFuncProblems: every rule that cannot be decoded and every
// rule that does not check is reported, in rule order, and the serving
// set stays.
func TestReplaceFuncProblems(t *testing.T) {
	rules := genRules(5000)
	rules[10].Status = 404
	s := NewStore(Options{})
	_, err := s.ReplaceFunc(len(rules), func(i int, r *Rule) error {
		if i == 4000 {
			return errors.New("etcd key /k/r4000: not JSON")
		}
		*r = rules[i]
		return nil
	})
	var re *RulesError
	if !errors.As(err, &re) || len(re.Problems) != 2 {
		t.Fatalf("got %v, want a RulesError of two problems", err)
	}
	if p := re.Problems[0]; p.RuleID != "r10" || p.Field != "status" {
		t.Errorf("first problem %q, want rule r10's status", p)
	}
	if p := re.Problems[1]; p.String() != "etcd key /k/r4000: not JSON" {
		t.Errorf("second problem %q, want the decoder's error as it is", p)
	}
	if s.Index() != nil {
		t.Error("a refused set serves")
	}
}

// TestUnmarshalRule: a rule object in rules-file spelling decodes field by
// field; an unknown field, a repeated one or a word outside its accepted
// ones is an error naming it.
func TestUnmarshalRule(t *testing.T) {
	var r Rule
	err := UnmarshalRule([]byte(`{"id":"a","host":"example.com","path":"/a/:x","match":"pattern","to":"/b/:x",`+
		`"intent":"temporary","status":307,"methods":["GET"],"query":"drop","query_strip":["utm_*"],"case_insensitive":true,`+
		`"trailing_slash":"strict","headers":{"x-a":"1"},"has":[{"type":"cookie","key":"c"}],"languages":["de"],`+
		`"cache_max_age":"3600s","since":"2026-01-02T03:04:05.5Z","active_from":"2026-01-01T00:00:00Z",`+
		`"active_until":"2027-01-01T00:00:00Z","mode":"shadow","promote_after":"2592000s"}`), &r)
	if err != nil {
		t.Fatal(err)
	}
	hour := time.Hour
	want := Rule{ID: "a", Host: "example.com", Path: "/a/:x", Match: MatchPattern, To: "/b/:x", Intent: IntentTemporary,
		Status: 307, Methods: []string{"GET"}, Query: QueryDrop, QueryStrip: []string{"utm_*"}, CaseInsensitive: true,
		TrailingSlash: TrailingSlashStrict, Headers: map[string]string{"x-a": "1"}, Has: []Condition{{Type: "cookie", Key: "c"}},
		Languages: []string{"de"}, CacheMaxAge: &hour, Since: time.Date(2026, 1, 2, 3, 4, 5, 5e8, time.UTC),
		ActiveFrom: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), ActiveUntil: time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC),
		Mode: ModeShadow, PromoteAfter: 30 * 24 * time.Hour}
	if diff := cmp.Diff(want, r); diff != "" {
		t.Errorf("decoded (-want +got):\n%s", diff)
	}
	for in, field := range map[string]string{
		`{"id":"a","path":"/a","to":"/b","cacheMaxAge":"1s"}`: "cacheMaxAge",
		`{"id":"a","path":"/a","to":"/b","to":"/c"}`:          `"to"`,
		`{"id":"a","path":"/a","to":"/b","match":"glob"}`:     "match",
		`{"id":"a","path":"/a","to":"/b"} {}`:                 "",
	} {
		if err := UnmarshalRule([]byte(in), &r); err == nil || !strings.Contains(err.Error(), field) {
			t.Errorf("UnmarshalRule(%s) = %v, want an error naming %s", in, err, field)
		}
	}
}
