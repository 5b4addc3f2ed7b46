package loadgen

import "time"

// stallTick is how long the stall meter sleeps at a time.
const stallTick = time.Millisecond

// stallMeter measures the generator's own machine while a run lasts, the
// way jHiccup does: it sleeps stallTick at a time and records how much
// longer each sleep took. On a quiet machine that is Go's timer
// granularity, under a millisecond. Anything longer is time in which the
// generator could not run at all (another process on its cores, the
// hypervisor, the kernel), and every call in flight then shows it too. So
// when the stalls' p99 is near the calls' p99, the tail is the machine's,
// not the server's: on the 2-vCPU VM behind README's figures a thread that
// only reads the clock loses up to 6 ms at a time.
type stallMeter struct {
	sleep func(time.Duration)
	now   func() time.Time
}

var realStallMeter = stallMeter{sleep: time.Sleep, now: time.Now}

// run records into h the overrun of every sleep that ends at or after
// from, until stop is closed. It costs a thousand wake-ups a second and
// no measurable CPU.
func (m stallMeter) run(from time.Time, stop <-chan struct{}, h *Histogram) {
	for {
		select {
		case <-stop:
			return
		default:
		}
		t0 := m.now()
		m.sleep(stallTick)
		t1 := m.now()
		if !t1.Before(from) {
			h.Record(max(t1.Sub(t0)-stallTick, 0))
		}
	}
}
