package server

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/redirectd/redirectd/decision"
	"github.com/redirectd/redirectd/decision/rulegen"
)

// BenchmarkDecideDuringReload measures Engine.Decide throughput over 100k
// generated rules, steady and while the whole set is re-read from its
// rules file bytes and swapped every second (README "Performance": a full
// reload under load fails no request). Run it for several seconds
// so several reloads land inside it:
//
//	go test -run '^$' -bench DecideDuringReload -benchtime 30s ./server/
func BenchmarkDecideDuringReload(b *testing.B) {
	rules := rulegen.Rules(rulegen.Config{N: 100_000, Hosts: 20, Seed: 1})
	reqs := rulegen.Requests(rules, rulegen.RequestConfig{N: 1 << 16, Hit: 0.8, Seed: 2})
	data := decision.MarshalRules(rules)

	for _, tc := range []struct {
		name   string
		reload time.Duration // 0: no reload, the baseline
	}{
		{"steady", 0},
		{"reload-every-1s", time.Second},
	} {
		b.Run(tc.name, func(b *testing.B) {
			st := &RuleStore{Engine: NewEngine(decision.NewStore(decision.Options{}), time.Now), Log: testLogger(), Metrics: NewMetrics(), Hits: NewHits(), Now: time.Now}
			st.Engine.SetObserver((&DecisionObserver{Metrics: st.Metrics, Hits: st.Hits}).Observe)
			if err := st.LoadBytes("bench.yaml", data); err != nil {
				b.Fatal(err)
			}
			var reloads, reloadFailures atomic.Int64
			var reloadTook atomic.Int64 // nanoseconds, summed
			stop := make(chan struct{})
			done := make(chan struct{})
			go func() {
				defer close(done)
				if tc.reload == 0 {
					return
				}
				tick := time.NewTicker(tc.reload)
				defer tick.Stop()
				for {
					select {
					case <-stop:
						return
					case <-tick.C:
						start := time.Now()
						if err := st.LoadBytes("bench.yaml", data); err != nil {
							reloadFailures.Add(1)
						}
						reloadTook.Add(int64(time.Since(start)))
						reloads.Add(1)
					}
				}
			}()

			var failed atomic.Int64
			var next atomic.Uint64
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				i := next.Add(1 << 12)
				for pb.Next() {
					req := reqs[i%uint64(len(reqs))]
					i++
					if _, err := st.Engine.Decide(&req); err != nil {
						failed.Add(1)
					}
				}
			})
			elapsed := time.Since(start)
			b.StopTimer()
			close(stop)
			<-done

			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "decisions/s")
			b.ReportMetric(float64(failed.Load()), "failed")
			b.ReportMetric(float64(reloads.Load()), "reloads")
			b.ReportMetric(float64(reloadFailures.Load()), "failed-reloads")
			if n := reloads.Load(); n > 0 {
				b.ReportMetric(time.Duration(reloadTook.Load()/n).Seconds()*1000, "ms/reload")
			}
			if failed.Load() > 0 || reloadFailures.Load() > 0 {
				b.Errorf("%d decisions and %d reloads failed", failed.Load(), reloadFailures.Load())
			}
		})
	}
}
