package decision

import (
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
)

// loadChunk is how many rules a load step handles between yields: about a
// millisecond of checking or compiling.
const loadChunk = 1024

// inChunks calls f for consecutive chunks [lo, hi) of [0, n), on up to
// maxWorkers goroutines at once; worker (0 ≤ worker < maxWorkers) names the
// goroutine, so f can keep per-worker state without locks. It returns when
// every chunk is done, and returns how many workers ran. Callers pass
// Options.loadWorkers.
//
// A million-rule load is seconds of CPU: spread over the cores it halves
// the daemon's startup. Each worker yields the processor after every chunk,
// because a reload runs while decisions are served, and a goroutine that
// never blocks keeps its processor for the scheduler's whole 10 ms time
// slice while the goroutines answering requests wait behind it.
func inChunks(n, maxWorkers int, f func(worker, lo, hi int)) (workers int) {
	chunks := (n + loadChunk - 1) / loadChunk
	workers = max(min(maxWorkers, chunks), 1)
	var next atomic.Int64
	work := func(w int) {
		for {
			c := int(next.Add(1) - 1)
			if c >= chunks {
				return
			}
			lo := c * loadChunk
			f(w, lo, min(lo+loadChunk, n))
			runtime.Gosched()
		}
	}
	if workers == 1 {
		work(0)
		return 1
	}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() { work(w) })
	}
	wg.Wait()
	return workers
}

// yielder lets a long loop on the load path give up its processor every
// loadChunk steps, for the reason inChunks gives. One per goroutine.
type yielder int

func (y *yielder) step() {
	if *y++; *y%loadChunk == 0 {
		runtime.Gosched()
	}
}

// inParallel calls f(0) … f(n-1), each on its own goroutine, and returns
// when all have returned.
func inParallel(n int, f func(i int)) {
	if n == 1 {
		f(0)
		return
	}
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { f(i) })
	}
	wg.Wait()
}

// chunkProblems collects problems found by inChunks workers in the order of
// the items they are about, whichever worker finished first.
type chunkProblems [][]Problem

func newChunkProblems(n int) chunkProblems {
	return make(chunkProblems, (n+loadChunk-1)/loadChunk)
}

// add records problems of the chunk starting at lo; only that chunk's worker
// calls it.
func (c chunkProblems) add(lo int, ps ...Problem) {
	c[lo/loadChunk] = append(c[lo/loadChunk], ps...)
}

// all returns every problem, in item order.
func (c chunkProblems) all() []Problem {
	var out []Problem
	for _, ps := range c {
		out = append(out, ps...)
	}
	return out
}

// sortInHalves sorts s by cmp, which must order every pair of distinct
// elements (no ties), and returns the sorted slice. Given two workers or
// more, the halves sort on two goroutines and merge into a new slice:
// sorting a million slot keys takes half a second on one core. Either way
// the sort yields as inChunks does.
func sortInHalves[E any](s []E, workers int, cmp func(a, b E) int) []E {
	sort := func(s []E) {
		var y yielder
		slices.SortFunc(s, func(a, b E) int { y.step(); return cmp(a, b) })
	}
	if len(s) < 4*loadChunk || workers < 2 {
		sort(s)
		return s
	}
	a, b := s[:len(s)/2], s[len(s)/2:]
	inParallel(2, func(i int) { sort([][]E{a, b}[i]) })
	out := make([]E, 0, len(s))
	hugePages(out[:len(s)])
	var y yielder
	for len(a) > 0 && len(b) > 0 {
		y.step()
		if cmp(a[0], b[0]) <= 0 {
			out, a = append(out, a[0]), a[1:]
		} else {
			out, b = append(out, b[0]), b[1:]
		}
	}
	return append(append(out, a...), b...)
}
