package decision_test

import (
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redirectd/redirectd/decision"
	"github.com/redirectd/redirectd/decision/rulegen"
)

// benchSet is a generated rule set, its index and requests sorted by what
// they hit, built once per size and shared by the sub-benchmarks.
type benchSet struct {
	ix   *decision.Index
	reqs map[string][]decision.Request // "exact-hit", "prefix-hit", "pattern-hit", "miss"
	// mapKeys[kind][i] is the plain-map key of reqs[kind][i]: host, NUL,
	// path; byKey maps every rule's host, NUL, path to its index.
	mapKeys map[string][]string
	byKey   map[string]int32
}

var (
	benchMu   sync.Mutex
	benchSets = map[int]*benchSet{}
)

var benchNow = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

// benchRules is the shared generator's set: the default mix (80% exact,
// 15% prefix, 5% pattern) over 20 hosts.
func benchRules(n int) []decision.Rule {
	return rulegen.Rules(rulegen.Config{N: n, Hosts: 20, Seed: 1})
}

func loadBenchSet(b *testing.B, n int) *benchSet {
	benchMu.Lock()
	defer benchMu.Unlock()
	if s, ok := benchSets[n]; ok {
		return s
	}
	rules := benchRules(n)
	ix, _, err := decision.Build(rules, decision.Options{})
	if err != nil {
		b.Fatal(err)
	}
	s := &benchSet{ix: ix, reqs: map[string][]decision.Request{}, mapKeys: map[string][]string{}, byKey: make(map[string]int32, n)}
	for i := range rules {
		s.byKey[rules[i].Host+"\x00"+rules[i].Path] = int32(i)
	}
	reqs := rulegen.Requests(rules, rulegen.RequestConfig{N: 40_000, Hit: 0.5, Seed: 2})
	for _, q := range reqs {
		d, err := ix.Decide(&q, benchNow)
		if err != nil {
			b.Fatal(err)
		}
		kind := "miss"
		if d.Redirect {
			r, _ := ix.Rule(d.RuleID)
			kind = r.Match.String() + "-hit"
		}
		if len(s.reqs[kind]) >= 4096 {
			continue
		}
		s.reqs[kind] = append(s.reqs[kind], q)
		path, _, _ := strings.Cut(q.Target, "?")
		s.mapKeys[kind] = append(s.mapKeys[kind], q.Host+"\x00"+path)
	}
	benchSets[n] = s
	return s
}

// cpuTime is the process's user+system CPU time in nanoseconds (it
// includes the garbage collector's work, which a decision causes).
func cpuTime() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

var (
	sinkDecision decision.Decision
	sinkInt      int32
)

// BenchmarkDecide measures one decision over generated rule sets, beside a
// plain Go map lookup over the same keys in the same run: ns/op and
// allocs/op are Decide's; map-ns/op is the map's and x-map the ratio.
//
//	go test -run x -bench 'Decide/rules=10000$/' -benchtime 1000000x -count 3 ./decision/
func BenchmarkDecide(b *testing.B) {
	for _, n := range []int{10_000, 300_000, 1_000_000} {
		for _, kind := range []string{"exact-hit", "prefix-hit", "pattern-hit", "miss"} {
			b.Run(fmt.Sprintf("rules=%d/%s", n, kind), func(b *testing.B) {
				s := loadBenchSet(b, n)
				reqs, keys := s.reqs[kind], s.mapKeys[kind]
				if len(reqs) == 0 {
					b.Fatalf("no %s requests generated", kind)
				}
				m := s.byKey
				runtime.GC()
				start, cpu0 := time.Now(), cpuTime()
				for i := 0; i < b.N; i++ {
					sinkInt += m[keys[i%len(keys)]]
				}
				mapNs := float64(time.Since(start).Nanoseconds()) / float64(b.N)
				mapCPU := float64(cpuTime()-cpu0) / float64(b.N)

				runtime.GC()
				b.ReportAllocs()
				b.ResetTimer()
				cpu0 = cpuTime()
				for i := 0; i < b.N; i++ {
					d, err := s.ix.Decide(&reqs[i%len(reqs)], benchNow)
					if err != nil {
						b.Fatal(err)
					}
					sinkDecision = d
				}
				b.StopTimer()
				cpu := float64(cpuTime()-cpu0) / float64(b.N)
				ns := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
				b.ReportMetric(mapNs, "map-ns/op")
				b.ReportMetric(ns/mapNs, "x-map")
				// CPU time is steadier than wall time on a shared machine.
				b.ReportMetric(cpu, "cpu-ns/op")
				b.ReportMetric(mapCPU, "map-cpu-ns/op")
				b.ReportMetric(cpu/mapCPU, "x-map-cpu")
			})
		}
	}
}

// BenchmarkBuild measures building an index from generated rules: ns/op is
// the build time, cpu-s/build the CPU it used (GC included); B/rule the
// heap the index holds per rule after GC, beyond the input rules (which
// the index keeps); heap-MiB the total.
//
//	go test -run x -bench 'Build/rules=(100000|1000000)$' -benchtime 1x -count 3 ./decision/
func BenchmarkBuild(b *testing.B) {
	for _, n := range []int{100_000, 300_000, 1_000_000} {
		b.Run(fmt.Sprintf("rules=%d", n), func(b *testing.B) {
			rules := benchRules(n)
			b.ReportAllocs()
			var perRule, heap float64
			var cpu int64
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				runtime.GC()
				var before, after runtime.MemStats
				runtime.ReadMemStats(&before)
				cpu0 := cpuTime()
				b.StartTimer()
				ix, _, err := decision.Build(rules, decision.Options{})
				if err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				cpu += cpuTime() - cpu0
				runtime.GC()
				runtime.ReadMemStats(&after)
				heap = float64(after.HeapAlloc) - float64(before.HeapAlloc)
				perRule = heap / float64(n)
				runtime.KeepAlive(ix)
				b.StartTimer()
			}
			b.ReportMetric(perRule, "B/rule")
			b.ReportMetric(heap/(1<<20), "heap-MiB")
			b.ReportMetric(float64(cpu)/1e9/float64(b.N), "cpu-s/build")
		})
	}
}

// BenchmarkBuildOldNew is BenchmarkBuild over oldNewRules.
//
//	go test -run x -bench 'BuildOldNew' -benchtime 1x -count 3 ./decision/
func BenchmarkBuildOldNew(b *testing.B) {
	rules := rulegen.OldNew(1_000_000)
	b.ReportAllocs()
	var heap float64
	for range b.N {
		b.StopTimer()
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		b.StartTimer()
		ix, _, err := decision.Build(rules, decision.Options{})
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		runtime.GC()
		runtime.ReadMemStats(&after)
		heap = float64(after.HeapAlloc) - float64(before.HeapAlloc)
		runtime.KeepAlive(ix)
		b.StartTimer()
	}
	b.ReportMetric(heap/(1<<20), "heap-MiB")
}

// BenchmarkStoreChange measures in-place changes of a Store holding
// rulegen.OldNew(1M): one admin put, one delete, and a reload of the whole
// set in which 10 rules changed (the comparison with the serving set
// included; the parse is not). Each op is one prepared and committed
// change.
//
//	go test -run x -bench 'StoreChange' -count 3 ./decision/
func BenchmarkStoreChange(b *testing.B) {
	rules := rulegen.OldNew(1_000_000)
	s := decision.NewStore(decision.Options{})
	c, err := s.Replace(slices.Clone(rules))
	if err != nil {
		b.Fatal(err)
	}
	c.Commit(decision.Info{})
	commit := func(c *decision.Change, err error) {
		if err != nil {
			b.Fatal(err)
		}
		c.Commit(decision.Info{})
	}
	b.Run("put", func(b *testing.B) {
		b.ReportAllocs()
		for i := range b.N {
			commit(s.Put(decision.Rule{ID: fmt.Sprintf("put-%d", i), Path: fmt.Sprintf("/put/%d", i), To: "/x"}))
		}
	})
	deleted := 0 // across the runs of the sub-benchmark
	b.Run("delete", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			commit(s.Delete(fmt.Sprintf("old-%d", deleted)))
			deleted++
		}
	})
	rules = rules[deleted:] // the set as it now serves, but for the puts
	b.Run("replace-10-changed", func(b *testing.B) {
		for i := range b.N {
			b.StopTimer()
			next := slices.Clone(rules)
			for j := range 10 {
				next[j*99_991].To = fmt.Sprintf("/changed/%d/%d", i, j)
			}
			b.StartTimer()
			c, err := s.Replace(next)
			if err != nil {
				b.Fatal(err)
			}
			if c.Rebuilt {
				b.Fatal("10 changed rules rebuilt the base")
			}
			c.Commit(decision.Info{})
			b.StopTimer()
		}
	})
}
