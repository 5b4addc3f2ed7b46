package loadgen

import (
	"math"
	"math/bits"
	"time"
)

// Histogram layout: values below linearLimit nanoseconds get a bucket each;
// above, every power-of-two range [2^m, 2^(m+1)) is split into subBuckets
// equal buckets, so a bucket is never wider than 1/subBuckets of the values
// in it (≤ 1.6 % relative error) and memory stays fixed whatever the run
// length: the same log-linear scheme HdrHistogram uses, without its
// configurable precision.
const (
	subBits     = 6
	subBuckets  = 1 << subBits   // 64 buckets per power of two
	linearLimit = 2 * subBuckets // 128 ns: exact below this
	maxExponent = 40             // 2^41 ns ≈ 36 min: anything longer is clamped
	bucketCount = linearLimit + (maxExponent-subBits)*subBuckets
	maxTracked  = int64(1)<<(maxExponent+1) - 1
)

// Histogram counts durations with bounded memory (about 19 KiB) and bounded
// relative error. The zero value is empty and ready to use. It is not safe
// for concurrent use: each load worker keeps its own and they are merged.
type Histogram struct {
	counts [bucketCount]uint64
	total  uint64
	sum    time.Duration
	min    time.Duration
	max    time.Duration
}

// bucketOf maps a non-negative value in nanoseconds to its bucket.
func bucketOf(v int64) int {
	if v < linearLimit {
		return int(v)
	}
	if v > maxTracked {
		v = maxTracked
	}
	msb := bits.Len64(uint64(v)) - 1 // ≥ subBits+1
	shift := msb - subBits           // bucket width is 2^shift
	top := int(v >> shift)           // in [subBuckets, 2*subBuckets)
	return linearLimit + (shift-1)*subBuckets + top - subBuckets
}

// bucketRange is the inclusive range of values bucket i counts.
func bucketRange(i int) (lo, hi int64) {
	if i < linearLimit {
		return int64(i), int64(i)
	}
	j := i - linearLimit
	shift := j/subBuckets + 1
	top := int64(subBuckets + j%subBuckets)
	lo = top << shift
	return lo, lo + int64(1)<<shift - 1
}

// Record adds one observation; negative durations count as zero.
func (h *Histogram) Record(d time.Duration) {
	if d < 0 {
		d = 0
	}
	h.counts[bucketOf(int64(d))]++
	if h.total == 0 || d < h.min {
		h.min = d
	}
	if d > h.max {
		h.max = d
	}
	h.total++
	h.sum += d
}

// Merge adds every observation of o to h.
func (h *Histogram) Merge(o *Histogram) {
	if o.total == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.total == 0 || o.min < h.min {
		h.min = o.min
	}
	if o.max > h.max {
		h.max = o.max
	}
	h.total += o.total
	h.sum += o.sum
}

// Reset empties h.
func (h *Histogram) Reset() { *h = Histogram{} }

// Count is the number of observations.
func (h *Histogram) Count() uint64 { return h.total }

// Max is the largest observation, exact.
func (h *Histogram) Max() time.Duration { return h.max }

// Min is the smallest observation, exact.
func (h *Histogram) Min() time.Duration { return h.min }

// Mean is the arithmetic mean, exact.
func (h *Histogram) Mean() time.Duration {
	if h.total == 0 {
		return 0
	}
	return h.sum / time.Duration(h.total)
}

// Quantile returns the smallest bucket bound at or below which a fraction q
// of the observations lie (nearest-rank: rank ⌈q·n⌉). It reports the
// bucket's upper bound, capped at the exact maximum, so a latency is never
// under-reported; the error is at most 1/64 of the value.
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.total == 0 {
		return 0
	}
	if q >= 1 {
		return h.max
	}
	rank := uint64(math.Ceil(q * float64(h.total)))
	if rank < 1 {
		rank = 1
	}
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			_, hi := bucketRange(i)
			if d := time.Duration(hi); d < h.max {
				return max(d, h.min)
			}
			return h.max
		}
	}
	return h.max
}

// CountAbove is the number of observations certainly greater than d: those
// in buckets wholly above the one holding d.
func (h *Histogram) CountAbove(d time.Duration) uint64 {
	var n uint64
	for i := bucketOf(max(int64(d), 0)) + 1; i < bucketCount; i++ {
		n += h.counts[i]
	}
	return n
}
