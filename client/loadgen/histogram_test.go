package loadgen

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// TestBucketsCoverEveryValue checks the bucket arithmetic: every value lies
// in its bucket's range, ranges are contiguous, and no bucket is wider than
// 1/64 of its lower bound (the promised relative error).
func TestBucketsCoverEveryValue(t *testing.T) {
	var prevHi int64 = -1
	for i := 0; i < bucketCount; i++ {
		lo, hi := bucketRange(i)
		if lo != prevHi+1 {
			t.Fatalf("bucket %d starts at %d, previous ended at %d", i, lo, prevHi)
		}
		if lo >= linearLimit && hi-lo+1 > lo/subBuckets {
			t.Fatalf("bucket %d [%d,%d] is wider than 1/%d of %d", i, lo, hi, subBuckets, lo)
		}
		for _, v := range []int64{lo, hi, lo + (hi-lo)/2} {
			if got := bucketOf(v); got != i {
				t.Fatalf("bucketOf(%d) = %d, want %d (range [%d,%d])", v, got, i, lo, hi)
			}
		}
		prevHi = hi
	}
	if prevHi != maxTracked {
		t.Fatalf("last bucket ends at %d, want %d", prevHi, maxTracked)
	}
	if got := bucketOf(maxTracked * 4); got != bucketCount-1 {
		t.Fatalf("a huge value lands in bucket %d, want the last (%d)", got, bucketCount-1)
	}
}

// TestQuantilesOnKnownData compares the histogram's quantiles with exact
// nearest-rank quantiles of the same data.
func TestQuantilesOnKnownData(t *testing.T) {
	uniform := make([]time.Duration, 0, 10000)
	for i := 1; i <= 10000; i++ {
		uniform = append(uniform, time.Duration(i)*time.Microsecond)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	heavyTail := make([]time.Duration, 0, 100000)
	for range 100000 {
		// Mostly ~200µs, with a 1% tail out to ~50ms: the shape of a real run.
		d := time.Duration(150_000 + rng.IntN(100_000))
		if rng.IntN(100) == 0 {
			d = time.Duration(1_000_000 + rng.IntN(49_000_000))
		}
		heavyTail = append(heavyTail, d)
	}
	small := []time.Duration{3, 1, 4, 1, 5, 9, 2, 6} // exact region, ns

	tests := []struct {
		name string
		data []time.Duration
	}{
		{"uniform 1µs..10ms", uniform},
		{"heavy tail", heavyTail},
		{"small exact values", small},
		{"one value", []time.Duration{42 * time.Millisecond}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var h Histogram
			for _, d := range tc.data {
				h.Record(d)
			}
			sorted := slices.Clone(tc.data)
			slices.Sort(sorted)
			if h.Count() != uint64(len(sorted)) || h.Min() != sorted[0] || h.Max() != sorted[len(sorted)-1] {
				t.Fatalf("count/min/max = %d/%v/%v, want %d/%v/%v",
					h.Count(), h.Min(), h.Max(), len(sorted), sorted[0], sorted[len(sorted)-1])
			}
			for _, q := range []float64{0.5, 0.9, 0.99, 0.999, 1} {
				want := nearestRank(sorted, q)
				got := h.Quantile(q)
				// Never below the true value, at most one bucket (1/64) above.
				if got < want || got > want+want/subBuckets {
					t.Errorf("Quantile(%v) = %v, want %v (+≤1/64)", q, got, want)
				}
			}
		})
	}
}

func nearestRank(sorted []time.Duration, q float64) time.Duration {
	rank := int(q*float64(len(sorted)) + 0.999999999)
	rank = max(rank, 1)
	return sorted[rank-1]
}

func TestMergeEqualsRecordingTogether(t *testing.T) {
	var a, b, all Histogram
	for i := 1; i <= 1000; i++ {
		d := time.Duration(i*i) * time.Nanosecond
		all.Record(d)
		if i%3 == 0 {
			a.Record(d)
		} else {
			b.Record(d)
		}
	}
	var merged Histogram
	merged.Merge(&a)
	merged.Merge(&b)
	merged.Merge(&Histogram{}) // merging an empty histogram changes nothing
	if merged != all {
		t.Fatalf("merged histogram differs: count %d/%d min %v/%v max %v/%v mean %v/%v",
			merged.Count(), all.Count(), merged.Min(), all.Min(), merged.Max(), all.Max(), merged.Mean(), all.Mean())
	}
	var split Histogram
	for i := range 110 {
		d := time.Millisecond
		if i%11 == 0 {
			d = 10 * time.Millisecond
		}
		split.Record(d)
	}
	if got := split.CountAbove(5 * time.Millisecond); got != 10 {
		t.Errorf("CountAbove(5ms) = %d, want 10", got)
	}
	if got := split.CountAbove(10 * time.Millisecond); got != 0 {
		t.Errorf("CountAbove(10ms) = %d, want 0 (values in the same bucket are not above)", got)
	}
	var empty Histogram
	if empty.Quantile(0.99) != 0 || empty.Mean() != 0 {
		t.Error("an empty histogram must report zeros")
	}
}
