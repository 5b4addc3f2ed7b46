package server

import (
	"runtime"
	"runtime/debug"
	"testing"
)

func TestLoadGC(t *testing.T) {
	t.Setenv("GOGC", "") // as when unset
	before := debug.SetGCPercent(77)
	defer debug.SetGCPercent(before)

	restore := relaxGC()
	if got := debug.SetGCPercent(loadGOGC); got != loadGOGC {
		t.Errorf("GOGC during a load = %d, want %d", got, loadGOGC)
	}
	restore()
	if got := debug.SetGCPercent(77); got != 77 {
		t.Errorf("GOGC after a load = %d, want the previous 77", got)
	}

	// A rebuild ends with one collection, then the previous GOGC.
	var stats runtime.MemStats
	runtime.ReadMemStats(&stats)
	cycles := stats.NumGC
	done := rebuildGC()
	if got := debug.SetGCPercent(loadGOGC); got != loadGOGC {
		t.Errorf("GOGC during a rebuild = %d, want %d", got, loadGOGC)
	}
	done()
	runtime.ReadMemStats(&stats)
	if stats.NumGC == cycles {
		t.Error("no collection ran at the end of a rebuild")
	}
	if got := debug.SetGCPercent(77); got != 77 {
		t.Errorf("GOGC after a rebuild = %d, want the previous 77", got)
	}

	t.Setenv("GOGC", "50") // the operator's choice stands
	relaxGC()()
	if got := debug.SetGCPercent(77); got != 77 {
		t.Errorf("with GOGC set, a load changed GOGC to %d", got)
	}
}
