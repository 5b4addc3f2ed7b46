package decision

import (
	"slices"
	"sync"
	"sync/atomic"
)

// loadChunk is how many rules a worker of inChunks takes at a time.
const loadChunk = 1024

// inChunks calls f for consecutive chunks [lo, hi) of [0, n), on up to
// maxWorkers goroutines at once; worker (0 ≤ worker < maxWorkers) names the
// goroutine, so f can keep per-worker state without locks. It returns when
// every chunk is done. Checking and the graph walk of a million rules are
// seconds of CPU: spread over the cores they take a fraction of the wall
// time of a load.
func inChunks(n, maxWorkers int, f func(worker, lo, hi int)) {
	chunks := (n + loadChunk - 1) / loadChunk
	workers := max(min(maxWorkers, chunks), 1)
	var next atomic.Int64
	work := func(w int) {
		for {
			c := int(next.Add(1) - 1)
			if c >= chunks {
				return
			}
			lo := c * loadChunk
			f(w, lo, min(lo+loadChunk, n))
		}
	}
	if workers == 1 {
		work(0)
		return
	}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() { work(w) })
	}
	wg.Wait()
}

// chunkProblems gathers the problems inChunks workers find, by chunk, so
// they come out in rule order whatever order the chunks ran in.
type chunkProblems [][]Problem

func newChunkProblems(n int) chunkProblems {
	return make(chunkProblems, (n+loadChunk-1)/loadChunk)
}

// add records problems found in the chunk that starts at lo.
func (c chunkProblems) add(lo int, ps ...Problem) {
	c[lo/loadChunk] = append(c[lo/loadChunk], ps...)
}

func (c chunkProblems) all() []Problem {
	return slices.Concat(c...)
}
