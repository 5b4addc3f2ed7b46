package loadgen

import (
	"testing"
	"time"
)

// TestStallMeterRecordsOverruns: on a clock where each sleep overruns by a
// known amount, the meter records exactly those overruns, from the start
// of the measured window on, and stops when told.
func TestStallMeterRecordsOverruns(t *testing.T) {
	overruns := []time.Duration{0, 50 * time.Microsecond, 0, 6 * time.Millisecond, 200 * time.Microsecond, 0}
	clock := time.Unix(1000, 0)
	from := clock.Add(2 * stallTick) // the first two sleeps end in warm-up
	stop := make(chan struct{})
	sleeps := 0
	m := stallMeter{
		now: func() time.Time { return clock },
		sleep: func(d time.Duration) {
			clock = clock.Add(d + overruns[sleeps])
			if sleeps++; sleeps == len(overruns) {
				close(stop)
			}
		},
	}
	var h Histogram
	m.run(from, stop, &h)
	if sleeps != len(overruns) {
		t.Fatalf("%d sleeps, want %d: the meter did not stop when told", sleeps, len(overruns))
	}
	measured := overruns[1:] // the second sleep ends at from + 50 µs: measured
	if h.Count() != uint64(len(measured)) {
		t.Fatalf("%d overruns recorded, want %d", h.Count(), len(measured))
	}
	if h.Max() != 6*time.Millisecond || h.CountAbove(time.Millisecond) != 1 {
		t.Errorf("max %v, %d above 1 ms: want the one 6 ms stall", h.Max(), h.CountAbove(time.Millisecond))
	}
	var sum time.Duration
	for _, d := range measured {
		sum += d
	}
	if want := sum / time.Duration(len(measured)); h.Mean() != want {
		t.Errorf("mean %v, want %v", h.Mean(), want)
	}
}
