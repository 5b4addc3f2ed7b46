package server

import (
	"os"
	"runtime"
	"runtime/debug"
)

// loadGOGC is the GC target while a rule set is built.
const loadGOGC = 400

// relaxGC sets GOGC to loadGOGC, unless the GOGC environment variable chose
// a value, until the returned func restores it.
//
// The first load is nearly all allocation of a set that stays, and the
// pacing meant for serving (GOGC=100) marks it again at each doubling: five
// collections on the way to a million rules. At 400 the daemon is ready
// 0.5 s sooner at a million rules, with the same peak RSS. GOMEMLIMIT, when
// set, still bounds the heap.
func relaxGC() (restore func()) {
	if os.Getenv("GOGC") != "" {
		return func() {}
	}
	prev := debug.SetGCPercent(loadGOGC)
	return func() { debug.SetGCPercent(prev) }
}

// rebuildGC is relaxGC for a set built while another serves, and the
// returned func, called once the new set is published, runs one collection
// before restoring GOGC.
//
// A rebuild allocates a second set while the first still serves. Under
// GOGC=100 a collection starts midway through the build, and to finish
// before the heap doubles, the pacer charges mark assists to every
// goroutine that allocates, request handlers included. At a million rules
// and 5,000 decisions/s that was 0.5–0.7 s of assists, and stalls of 100 to
// 400 ms. At GOGC=400 no collection starts during the build. Afterwards, one
// collection runs on the rebuilding goroutine (at nice 19; see
// atLowPriority) with GOGC=400's runway, needing almost no assists (1–2 ms
// measured), and frees the old set. Restoring GOGC=100 before that
// collection would start it with the heap far past its goal: the worst
// case for assists.
func rebuildGC() (done func()) {
	restore := relaxGC()
	return func() {
		runtime.GC()
		restore()
	}
}
