package decision

import "testing"

// TestGrowGently: the slice comes back with its elements, in order, and
// room for n more, across more than one megabyte-sized step of the copy.
func TestGrowGently(t *testing.T) {
	for _, n := range []int{0, 1, 3 << 20} {
		s := make([]uint32, n, n+1)
		for i := range s {
			s[i] = uint32(i)
		}
		g := growGently(s, 1<<20)
		if len(g) != n || cap(g)-len(g) < 1<<20 {
			t.Fatalf("len %d: got len %d, cap %d; want len %d and room for %d", n, len(g), cap(g), n, 1<<20)
		}
		for i, v := range g {
			if v != uint32(i) {
				t.Fatalf("len %d: element %d is %d after growing", n, i, v)
			}
		}
	}
	s := make([]byte, 2, 10)
	if g := growGently(s, 8); &g[0] != &s[0] {
		t.Error("a slice with room enough was copied")
	}
}
