package server

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redirectd/redirectd/decision"
	"github.com/redirectd/redirectd/decision/rulegen"
	"github.com/redirectd/redirectd/internal/etcdtest"
	redirectv1 "github.com/redirectd/redirectd/proto/redirect/v1"
)

// BenchmarkEtcdWriteToEveryReplica: three replicas on one etcd; each
// write goes through the next replica's admin API (gRPC on loopback) and
// is timed until all three serve it. README "Performance":
//
//	go test -run '^$' -bench EtcdWriteToEveryReplica -benchtime 1000x ./server/
func BenchmarkEtcdWriteToEveryReplica(b *testing.B) {
	ec := etcdtest.Start(b)
	fleet := []*etcdReplica{startEtcdReplica(b, ec), startEtcdReplica(b, ec), startEtcdReplica(b, ec)}
	ctx := context.Background()
	took := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		start := time.Now()
		resp, err := fleet[i%3].admin.PutRule(ctx, &redirectv1.PutRuleRequest{Rule: testRule(fmt.Sprintf("w%d", i%100), fmt.Sprintf("/w/%d/:p", i))})
		if err != nil {
			b.Fatal(err)
		}
		for _, r := range fleet {
			if _, err := r.store.awaitApplied(ctx, int64(resp.GetVersion().GetNumber())); err != nil {
				b.Fatal(err)
			}
		}
		took = append(took, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(took)
	b.ReportMetric(float64(took[len(took)/2].Microseconds())/1000, "p50_ms")
	b.ReportMetric(float64(took[len(took)*99/100].Microseconds())/1000, "p99_ms")
}

// BenchmarkEtcdApplyAndFirstLoad applies a whole set of
// BENCH_ETCD_RULES rules (default 100,000) through one replica, then
// times a new replica's first load; it reports etcd's database size.
//
//	BENCH_ETCD_RULES=1000000 go test -run '^$' -bench EtcdApplyAndFirstLoad -benchtime 1x -timeout 30m ./server/
func BenchmarkEtcdApplyAndFirstLoad(b *testing.B) {
	n := 100_000
	if v := os.Getenv("BENCH_ETCD_RULES"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil {
			b.Fatalf("BENCH_ETCD_RULES=%q: %v", v, err)
		}
	}
	ec := etcdtest.Start(b)
	a := startEtcdReplica(b, ec)
	rules := make([]decision.Rule, n)
	for i := range rules {
		rules[i] = decision.Rule{ID: fmt.Sprintf("r%07d", i), Host: fmt.Sprintf("h%d.example", i%100), Path: fmt.Sprintf("/p/%d", i), To: fmt.Sprintf("/t/%d", i)}
	}
	ctx := context.Background()
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		if _, _, err := a.store.Update(ctx, Precondition{}, Edit{Puts: rules, Whole: true}); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(time.Since(start).Seconds(), "apply_s")
		etcdBefore, etcdOK := ec.CPU()
		ownBefore := processCPU(b)
		start = time.Now()
		fresh := newEtcdStore(b, ec)
		if err := fresh.Load(ctx); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(time.Since(start).Seconds(), "first_load_s")
		// Where the first load's time went: etcd's answers, or this
		// process (receiving them, decoding, building the index).
		if etcdAfter, ok := ec.CPU(); ok && etcdOK {
			b.ReportMetric((etcdAfter - etcdBefore).Seconds(), "first_load_etcd_cpu_s")
		}
		b.ReportMetric((processCPU(b) - ownBefore).Seconds(), "first_load_replica_cpu_s")
		if got := fresh.rules.Engine.Store().Index().Len(); got != n {
			b.Fatalf("new replica serves %d rules, want %d", got, n)
		}
	}
	b.StopTimer()
	st, err := ec.Client.Status(ctx, ec.Endpoint())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(st.DbSize)/(1<<20), "etcd_db_MiB")
}

// newEtcdStore is a replica's store on ec that has not loaded yet.
func newEtcdStore(t testing.TB, ec *etcdtest.Etcd) *EtcdStore {
	cfg := DefaultConfig()
	cfg.ConsoleAddr = "" // tests start several daemons
	cfg.Store, cfg.EtcdEndpoints, cfg.EtcdPrefix = "etcd", ec.Endpoint(), testPrefix
	st := &RuleStore{Engine: NewEngine(decision.NewStore(decision.Options{}), time.Now), Log: testLogger(), Metrics: NewMetrics(), Hits: NewHits(), Now: time.Now}
	es, err := NewEtcdStore(cfg, st)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { es.Close() })
	return es
}

// BenchmarkDecideDuringEtcdWrites measures Engine.Decide throughput on a
// replica serving 100k rules from etcd, steady and while another replica
// puts 100 rules a second, each applied in place here through the watch.
// The two alternate in rounds, so the machine's drift (the cores are
// shared) falls on both alike: ratio is the median of the rounds' ratios
// of decisions/s with writes to decisions/s steady.
//
//	go test -run '^$' -bench DecideDuringEtcdWrites -benchtime 1x ./server/
func BenchmarkDecideDuringEtcdWrites(b *testing.B) {
	const rounds, phase = 5, 2 * time.Second
	rules := rulegen.Rules(rulegen.Config{N: 100_000, Hosts: 20, Seed: 1})
	reqs := rulegen.Requests(rules, rulegen.RequestConfig{N: 1 << 16, Hit: 0.8, Seed: 2})
	ec := etcdtest.Start(b)
	deciding, writing := startEtcdReplica(b, ec), startEtcdReplica(b, ec)
	ctx := context.Background()
	snap, _, err := writing.store.Update(ctx, Precondition{}, Edit{Puts: rules, Whole: true})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := deciding.store.awaitApplied(ctx, int64(snap.Version.Number)); err != nil {
		b.Fatal(err)
	}
	engine := deciding.store.rules.Engine
	var steady, during, ratios []float64
	writes, etcdCPU, etcdOK := 0, time.Duration(0), true
	b.ResetTimer()
	for round := range rounds {
		s := decisionsPerSecond(b, engine, reqs, phase)
		etcdBefore, ok1 := ec.CPU()
		// Open loop: a write is due every 10 ms whatever the last one is
		// doing, up to 64 in flight.
		stop, inflight := make(chan struct{}), make(chan struct{}, 64)
		var acked atomic.Int64
		go func() {
			tick := time.NewTicker(10 * time.Millisecond)
			defer tick.Stop()
			start, sent := time.Now(), 0
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				// The deciders hold both cores, so ticks come late and
				// the ticker drops some (only 55 writes a second were
				// sent): send every write due by now.
				for due := int(time.Since(start) / (10 * time.Millisecond)); sent < due; sent++ {
					select {
					case inflight <- struct{}{}:
					default:
						continue
					}
					r := rules[(round<<20+sent)%len(rules)]
					r.To = fmt.Sprintf("/moved/%d/%d", round, sent)
					go func() {
						defer func() { <-inflight }()
						_, err := writing.admin.PutRule(ctx, &redirectv1.PutRuleRequest{Rule: redirectv1.RuleToProto(r)})
						select {
						case <-stop: // acknowledged after the phase
						default:
							if err == nil {
								acked.Add(1)
							}
						}
					}()
				}
			}
		}()
		w := decisionsPerSecond(b, engine, reqs, phase)
		close(stop)
		for range cap(inflight) {
			inflight <- struct{}{} // every write has returned
		}
		// The next steady phase starts once this replica serves every write.
		if _, err := deciding.store.awaitApplied(ctx, int64(writing.version())); err != nil {
			b.Fatal(err)
		}
		etcdAfter, ok2 := ec.CPU()
		etcdCPU, etcdOK = etcdCPU+etcdAfter-etcdBefore, etcdOK && ok1 && ok2
		writes += int(acked.Load())
		b.Logf("round %d: %.0f decisions/s steady, %.0f with %d writes acknowledged: %.2f", round+1, s, w, acked.Load(), w/s)
		steady, during, ratios = append(steady, s), append(during, w), append(ratios, w/s)
	}
	b.StopTimer()
	b.ReportMetric(median(steady), "steady_decisions/s")
	b.ReportMetric(median(during), "writing_decisions/s")
	b.ReportMetric(median(ratios), "ratio")
	b.ReportMetric(float64(writes)/(rounds*phase).Seconds(), "writes/s")
	if etcdOK && writes > 0 {
		b.ReportMetric(float64(etcdCPU.Microseconds())/1000/float64(writes), "etcd_cpu_ms/write")
	}
}

// decisionsPerSecond is the rate at which e decides reqs on every core
// for d.
func decisionsPerSecond(b *testing.B, e *Engine, reqs []decision.Request, d time.Duration) float64 {
	var stop atomic.Bool
	var total atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for w := range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := 0
			for i := w << 12; !stop.Load(); i++ {
				if _, err := e.Decide(&reqs[i%len(reqs)]); err != nil {
					b.Error(err)
					break
				}
				n++
			}
			total.Add(int64(n))
		}()
	}
	time.Sleep(d)
	stop.Store(true)
	wg.Wait()
	return float64(total.Load()) / time.Since(start).Seconds()
}

func median(xs []float64) float64 {
	s := slices.Sorted(slices.Values(xs))
	return s[len(s)/2]
}
