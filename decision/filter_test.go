package decision

import (
	"fmt"
	"testing"
)

// TestOverlayFilter: every id and slot key a change writes is held by the
// filter of the Index it makes, a key never written is mostly not, and a
// later change never touches the filter of the Index serving before it.
func TestOverlayFilter(t *testing.T) {
	s := NewStore(Options{})
	c, err := s.Replace([]Rule{{ID: "base", Path: "/base", To: "/b"}})
	if err != nil {
		t.Fatal(err)
	}
	c.Commit(Info{})
	c, err = s.Apply([]Rule{{ID: "one", Path: "/one", To: "/x"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	first := c.Commit(Info{})
	var puts []Rule
	for i := range 200 {
		puts = append(puts, Rule{ID: fmt.Sprint("r", i), Path: fmt.Sprint("/p/", i), To: "/x"})
	}
	c, err = s.Apply(puts, []string{"base"})
	if err != nil {
		t.Fatal(err)
	}
	second := c.Commit(Info{})
	for _, r := range append(puts, Rule{ID: "base"}, Rule{ID: "one"}) {
		if !second.filter.mayHold(second.base.seed, r.ID) {
			t.Errorf("the filter does not hold id %q, written by a change", r.ID)
		}
		if r.Path != "" {
			if row := second.row(r.ID); row == nil || !second.filter.mayHold(second.base.seed, row.Key) {
				t.Errorf("rule %q: its row or its slot key is not found", r.ID)
			}
		}
	}
	if first.filter.mayHold(first.base.seed, "r7") && first.filter.mayHold(first.base.seed, "r8") && first.filter.mayHold(first.base.seed, "r9") {
		t.Error("the earlier Index's filter holds ids only a later change wrote")
	}
	if d, err := second.Decide(&Request{Method: "GET", Target: "/base"}, testNow); err != nil || d.Redirect {
		t.Errorf("/base after its delete: %+v, %v; want a pass", d, err)
	}
	if d, err := first.Decide(&Request{Method: "GET", Target: "/base"}, testNow); err != nil || d.Location != "/b" {
		t.Errorf("/base on the Index before the delete: %+v, %v; want /b", d, err)
	}
	misses := 0
	for i := range 1000 {
		if second.filter.mayHold(second.base.seed, fmt.Sprint("absent-", i)) {
			misses++
		}
	}
	if misses > 100 {
		t.Errorf("%d of 1000 absent keys taken for present: the filter passes everything to memdb", misses)
	}
}
