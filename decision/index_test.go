package decision

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	memdb "github.com/hashicorp/go-memdb"
)

var testNow = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

func TestOverlaySchemaValid(t *testing.T) {
	if err := overlaySchema().Validate(); err != nil {
		t.Fatal(err)
	}
	if _, err := memdb.NewMemDB(overlaySchema()); err != nil {
		t.Fatal(err)
	}
}

func TestIndexAccessors(t *testing.T) {
	rules := []Rule{
		{ID: "c", Path: "/c", To: "/x"},
		{ID: "a", Path: "/a", Match: MatchPrefix, To: "/x"},
		{ID: "b", Path: "/b/:n", Match: MatchPattern, To: "/x/:n"},
		{ID: "d", Path: "/d/(.*)", Match: MatchRegex, To: "/x/$1"},
		{ID: "e", Path: "/e", To: "/x"},
	}
	ix, _, err := Build(rules, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if ix.Len() != 5 {
		t.Errorf("Len = %d", ix.Len())
	}
	for kind, want := range map[MatchKind]int{MatchExact: 2, MatchPrefix: 1, MatchPattern: 1, MatchRegex: 1} {
		if got := ix.Count(kind); got != want {
			t.Errorf("Count(%v) = %d, want %d", kind, got, want)
		}
	}
	if r, ok := ix.Rule("b"); !ok || r.Path != "/b/:n" {
		t.Errorf("Rule(b) = %+v, %v", r, ok)
	}
	if _, ok := ix.Rule("zz"); ok {
		t.Error("Rule(zz) found")
	}
	d, err := ix.Decide(&Request{Method: "GET", Host: "h", Target: "/e"}, time.Unix(0, 0))
	if err != nil || d.RuleID != "e" {
		t.Errorf("Decide(/e) = rule %q, %v; want e", d.RuleID, err)
	}
	ids := func(rs []Rule) []string {
		var out []string
		for _, r := range rs {
			out = append(out, r.ID)
		}
		return out
	}
	pages := []struct {
		after string
		limit int
		want  []string
	}{
		{"", 2, []string{"a", "b"}},
		{"b", 2, []string{"c", "d"}},
		{"d", 2, []string{"e"}},
		{"e", 2, nil},
		{"", 0, []string{"a", "b", "c", "d", "e"}},
		{"bb", 1, []string{"c"}},
	}
	for _, p := range pages {
		if diff := cmp.Diff(p.want, ids(ix.Rules(p.after, p.limit))); diff != "" {
			t.Errorf("Rules(%q, %d) (-want +got):\n%s", p.after, p.limit, diff)
		}
	}
}

func TestExplain(t *testing.T) {
	ix, _, err := Build([]Rule{
		{ID: "host", Host: "example.com", Path: "/a", To: "/h", Methods: []string{"POST"}},
		{ID: "pat", Path: "/a/:x", Match: MatchPattern, To: "/p/:x"},
		{ID: "pfx", Path: "/a", Match: MatchPrefix, To: "/q"},
	}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	d, err := ix.Decide(&Request{Method: "GET", Host: "example.com", Target: "/a", Explain: true}, testNow)
	if err != nil {
		t.Fatal(err)
	}
	want := &Explanation{Host: "example.com", Path: "/a", Candidates: []Candidate{
		{RuleID: "host", Scope: "example.com", Match: MatchExact, Reason: "method GET not in methods"},
		{RuleID: "pat", Scope: "*", Match: MatchPattern, Reason: "path does not match"},
		{RuleID: "pfx", Scope: "*", Match: MatchPrefix, Applied: true, Reason: "matched"},
	}}
	if diff := cmp.Diff(want, d.Explanation); diff != "" {
		t.Errorf("explanation (-want +got):\n%s", diff)
	}
	// A pattern higher up the path but earlier in the file wins.
	ix2, _, err := Build([]Rule{
		{ID: "p1", Path: "/:x/b", Match: MatchPattern, To: "/one"},
		{ID: "p2", Path: "/a/:y", Match: MatchPattern, To: "/two"},
	}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	d, err = ix2.Decide(&Request{Method: "GET", Target: "/a/b", Explain: true}, testNow)
	if err != nil || d.RuleID != "p1" {
		t.Fatalf("Decide = %v, %v; want p1", d.RuleID, err)
	}
	want2 := []Candidate{
		{RuleID: "p2", Scope: "*", Match: MatchPattern, Reason: `matched, but rule "p1" comes first in the file`},
		{RuleID: "p1", Scope: "*", Match: MatchPattern, Applied: true, Reason: "matched"},
	}
	if diff := cmp.Diff(want2, d.Explanation.Candidates); diff != "" {
		t.Errorf("file order explanation (-want +got):\n%s", diff)
	}
	// Without Explain there is none.
	d, _ = ix.Decide(&Request{Method: "GET", Target: "/a"}, testNow)
	if d.Explanation != nil {
		t.Error("explanation without Explain")
	}
}

// TestBuildDoesNotDisturbReaders decides on one index from several
// goroutines while new indexes are built; run with -race.
func TestBuildDoesNotDisturbReaders(t *testing.T) {
	mk := func(n int, to string) []Rule {
		rules := make([]Rule, n)
		for i := range rules {
			rules[i] = Rule{ID: fmt.Sprint(i), Path: fmt.Sprintf("/p/%d", i), To: to}
		}
		return rules
	}
	old, _, err := Build(mk(2000, "/old"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	errs := make(chan error, 4)
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := g; ; i = (i + 7) % 2000 {
				select {
				case <-stop:
					return
				default:
				}
				d, err := old.Decide(&Request{Method: "GET", Target: fmt.Sprintf("/p/%d?x=%d", i, g)}, testNow)
				if err != nil || d.Location != fmt.Sprintf("/old?x=%d", g) {
					errs <- fmt.Errorf("/p/%d: %v %q", i, err, d.Location)
					return
				}
			}
		}(g)
	}
	for range 3 {
		ix, _, err := Build(mk(2000, "/new"), Options{})
		if err != nil {
			t.Fatal(err)
		}
		if d, _ := ix.Decide(&Request{Method: "GET", Target: "/p/5"}, testNow); d.Location != "/new" {
			t.Errorf("new index: %q", d.Location)
		}
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
