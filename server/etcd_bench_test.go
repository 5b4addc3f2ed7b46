package server

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/redirectd/redirectd/decision"
	"github.com/redirectd/redirectd/decision/rulegen"
	"github.com/redirectd/redirectd/internal/etcdtest"
	redirectv1 "github.com/redirectd/redirectd/proto/redirect/v1"
)

// BenchmarkEtcdWriteToEveryReplica: three replicas on one etcd, serving
// BENCH_ETCD_RULES rules (default none; DESIGN's figure is at a million);
// each write goes through the next replica's admin API (gRPC on
// loopback) and is timed until that replica acknowledges it (ack: it
// serves it) and until all three serve it. README "Performance":
//
//	go test -run '^$' -bench EtcdWriteToEveryReplica -benchtime 1000x ./server/
//	BENCH_ETCD_RULES=1000000 go test -run '^$' -bench EtcdWriteToEveryReplica -benchtime 1000x -timeout 30m ./server/
func BenchmarkEtcdWriteToEveryReplica(b *testing.B) {
	ec := etcdtest.Start(b)
	fleet := []*etcdReplica{startEtcdReplica(b, ec), startEtcdReplica(b, ec), startEtcdReplica(b, ec)}
	ctx := context.Background()
	if rules := etcdBenchRules(b, 0); len(rules) > 0 {
		applyToAll(b, rules, fleet...)
	}
	acked := make([]time.Duration, 0, b.N)
	took := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		start := time.Now()
		resp, err := fleet[i%3].admin.PutRule(ctx, &redirectv1.PutRuleRequest{Rule: testRule(fmt.Sprintf("w%d", i%100), fmt.Sprintf("/w/%d/:p", i))})
		if err != nil {
			b.Fatal(err)
		}
		acked = append(acked, time.Since(start))
		for _, r := range fleet {
			if _, err := r.store.awaitApplied(ctx, int64(resp.GetVersion().GetNumber())); err != nil {
				b.Fatal(err)
			}
		}
		took = append(took, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(acked)
	slices.Sort(took)
	b.ReportMetric(float64(took[len(took)/2].Microseconds())/1000, "p50_ms")
	b.ReportMetric(float64(took[len(took)*99/100].Microseconds())/1000, "p99_ms")
	b.ReportMetric(float64(acked[len(acked)/2].Microseconds())/1000, "ack_p50_ms")
	b.ReportMetric(float64(acked[len(acked)*99/100].Microseconds())/1000, "ack_p99_ms")
}

// etcdBenchRules is BENCH_ETCD_RULES exact rules (def when it is not
// set), over 100 hosts.
func etcdBenchRules(b *testing.B, def int) []decision.Rule {
	n := def
	if v := os.Getenv("BENCH_ETCD_RULES"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil {
			b.Fatalf("BENCH_ETCD_RULES=%q: %v", v, err)
		}
	}
	rules := make([]decision.Rule, n)
	for i := range rules {
		rules[i] = decision.Rule{ID: fmt.Sprintf("r%07d", i), Host: fmt.Sprintf("h%d.example", i%100), Path: fmt.Sprintf("/p/%d", i), To: fmt.Sprintf("/t/%d", i)}
	}
	return rules
}

// BenchmarkEtcdApplyAndFirstLoad applies a whole set of
// BENCH_ETCD_RULES rules (default 100,000) through one replica, then
// times a new replica's first load; it reports etcd's database size.
//
//	BENCH_ETCD_RULES=1000000 go test -run '^$' -bench EtcdApplyAndFirstLoad -benchtime 1x -timeout 30m ./server/
func BenchmarkEtcdApplyAndFirstLoad(b *testing.B) {
	rules := etcdBenchRules(b, 100_000)
	n := len(rules)
	ec := etcdtest.Start(b)
	a := startEtcdReplica(b, ec)
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
// The writing replica runs in a process of its own (TestEtcdWriterProcess),
// as it would in a fleet: what the writes cost this replica is receiving
// and applying them, not serving another replica's admin API. The two
// phases alternate in rounds, so the machine's drift (the cores are
// shared) falls on both alike: ratio is the median of the rounds' ratios
// of decisions/s with writes to decisions/s steady.
//
//	go test -run '^$' -bench DecideDuringEtcdWrites -benchtime 1x -cpu 1,2 ./server/
//
// With -cpu 1 the replica decides on one core and etcd and the writer
// have the other, as when etcd and the other replicas run on machines of
// their own; with -cpu 2 the deciders take both cores, and etcd's and the
// writer's work comes out of their share.
func BenchmarkDecideDuringEtcdWrites(b *testing.B) {
	ec, deciding, _, reqs := startDecidingReplica(b)
	ctx := context.Background()
	writer := startEtcdWriter(b, ec.Endpoint())
	engine := deciding.store.rules.Engine
	var rates phaseRates
	etcdCPU, writerCPU, cpuOK := time.Duration(0), time.Duration(0), true
	b.ResetTimer()
	for round := range writeRounds {
		s := decisionsPerSecond(b, engine, reqs, writePhase)
		etcdBefore, ok1 := ec.CPU()
		writerBefore, ok2 := etcdtest.ProcessCPU(writer.cmd.Process.Pid)
		writer.command(b, fmt.Sprintf("write %d", round))
		w := decisionsPerSecond(b, engine, reqs, writePhase)
		var acked int
		var version int64
		writer.command(b, "stop")
		if _, err := fmt.Sscanf(writer.reply(b), "acked %d version %d", &acked, &version); err != nil {
			b.Fatalf("writer: %v", err)
		}
		// The next steady phase starts once this replica serves every write.
		if _, err := deciding.store.awaitApplied(ctx, version); err != nil {
			b.Fatal(err)
		}
		etcdAfter, ok3 := ec.CPU()
		writerAfter, ok4 := etcdtest.ProcessCPU(writer.cmd.Process.Pid)
		etcdCPU, writerCPU = etcdCPU+etcdAfter-etcdBefore, writerCPU+writerAfter-writerBefore
		cpuOK = cpuOK && ok1 && ok2 && ok3 && ok4
		rates.add(b, s, w, acked, "acknowledged")
	}
	b.StopTimer()
	rates.report(b)
	if cpuOK && rates.writes > 0 {
		b.ReportMetric(float64(etcdCPU.Microseconds())/1000/float64(rates.writes), "etcd_cpu_ms/write")
		b.ReportMetric(float64(writerCPU.Microseconds())/1000/float64(rates.writes), "writer_cpu_ms/write")
	}
}

// BenchmarkDecideFollowingWrites is BenchmarkDecideDuringEtcdWrites with
// etcd and the writing replica off this machine's cores, as in a fleet
// where they run on machines of their own: the same puts, 100 a second,
// reach the deciding replica's watch handler (applyEvents) as etcd's
// watch delivers them, one revision each, the pointer beside the rule.
// What it measures is the replica's own cost of following the writes:
// reading each event, applying it in place and publishing the new set.
// The values are encoded before each round, as the writer would have.
//
//	go test -run '^$' -bench DecideFollowingWrites -benchtime 1x -cpu 1,2 ./server/
func BenchmarkDecideFollowingWrites(b *testing.B) {
	_, deciding, rules, reqs := startDecidingReplica(b)
	es := deciding.store
	// From here on etcd is idle: the revisions handed to the replica
	// follow the last it applied, as a writer's would.
	es.mu.Lock()
	gen, rev := es.gen, es.rev
	es.mu.Unlock()
	engine := es.rules.Engine
	var rates phaseRates
	b.ResetTimer()
	for round := range writeRounds {
		b.StopTimer()
		revisions := make([][]*clientv3.Event, 3*writePhase/(10*time.Millisecond))
		for i := range revisions {
			r := rules[(round<<20+i)%len(rules)]
			r.To = fmt.Sprintf("/moved/%d/%d", round, i)
			v, err := encodeRule(r, nil)
			if err != nil {
				b.Fatal(err)
			}
			rev++
			revisions[i] = []*clientv3.Event{
				{Type: clientv3.EventTypePut, Kv: &mvccpb.KeyValue{Key: []byte(es.pointerKey()), Value: []byte(gen), ModRevision: rev}},
				{Type: clientv3.EventTypePut, Kv: &mvccpb.KeyValue{Key: []byte(es.ruleKey(gen, r.ID)), Value: v, ModRevision: rev}},
			}
		}
		b.StartTimer()
		s := decisionsPerSecond(b, engine, reqs, writePhase)
		stop, done := make(chan struct{}), make(chan int)
		go func() { done <- followEvery10ms(b, es, revisions, stop) }()
		w := decisionsPerSecond(b, engine, reqs, writePhase)
		close(stop)
		n := <-done
		// applyRevision refuses a bad event by logging it: check that the
		// last one serves.
		if n > 0 {
			last := rules[(round<<20+n-1)%len(rules)]
			if got, _ := es.rules.Engine.Store().Index().Rule(last.ID); got.To != fmt.Sprintf("/moved/%d/%d", round, n-1) {
				b.Fatalf("rule %s serves To %q after the round's writes", last.ID, got.To)
			}
		}
		rates.add(b, s, w, n, "followed")
	}
	b.StopTimer()
	rates.report(b)
}

// writeRounds and writePhase: the write benchmarks alternate a steady
// phase and a writing phase of writePhase each, writeRounds times, so the
// machine's drift (the cores are shared) falls on both alike.
const writeRounds, writePhase = 5, 2 * time.Second

// startDecidingReplica starts etcd and the deciding replica of the write
// benchmarks, serving duringWritesRules; reqs are requests for them.
func startDecidingReplica(b *testing.B) (ec *etcdtest.Etcd, deciding *etcdReplica, rules []decision.Rule, reqs []decision.Request) {
	rules = duringWritesRules()
	reqs = rulegen.Requests(rules, rulegen.RequestConfig{N: 1 << 16, Hit: 0.8, Seed: 2})
	ec = etcdtest.Start(b)
	deciding = startEtcdReplica(b, ec)
	applyToAll(b, rules, deciding)
	return ec, deciding, rules, reqs
}

// applyToAll applies rules as the whole set through the first of fleet
// and waits until every replica of fleet serves them.
func applyToAll(b *testing.B, rules []decision.Rule, fleet ...*etcdReplica) {
	ctx := context.Background()
	snap, _, err := fleet[0].store.Update(ctx, Precondition{}, Edit{Puts: rules, Whole: true})
	if err != nil {
		b.Fatal(err)
	}
	for _, r := range fleet {
		if _, err := r.store.awaitApplied(ctx, int64(snap.Version.Number)); err != nil {
			b.Fatal(err)
		}
	}
}

// phaseRates gathers the write benchmarks' rounds: decisions/s steady and
// while writes came in, and the writes.
type phaseRates struct {
	steady, during, ratios []float64
	writes                 int
}

// add records a round; how says what became of its writes.
func (p *phaseRates) add(b *testing.B, steady, during float64, writes int, how string) {
	b.Logf("round %d: %.0f decisions/s steady, %.0f with %d writes %s: %.2f", len(p.ratios)+1, steady, during, writes, how, during/steady)
	p.steady, p.during, p.ratios = append(p.steady, steady), append(p.during, during), append(p.ratios, during/steady)
	p.writes += writes
}

// report reports the medians of the rounds: ratio is the median of the
// rounds' ratios of decisions/s while writing to decisions/s steady.
func (p *phaseRates) report(b *testing.B) {
	b.ReportMetric(median(p.steady), "steady_decisions/s")
	b.ReportMetric(median(p.during), "writing_decisions/s")
	b.ReportMetric(median(p.ratios), "ratio")
	b.ReportMetric(float64(p.writes)/(writeRounds*writePhase).Seconds(), "writes/s")
}

// followEvery10ms hands es the next of revisions every 10 ms (every10ms)
// until stop or the last, and returns how many it applied.
func followEvery10ms(b *testing.B, es *EtcdStore, revisions [][]*clientv3.Event, stop chan struct{}) int {
	applied := 0
	every10ms(stop, func(i int) bool {
		if i == len(revisions) {
			return false
		}
		if err := es.applyEvents(context.Background(), revisions[i]); err != nil {
			b.Error(err)
			return false
		}
		applied++
		return true
	})
	return applied
}

// every10ms calls write(i) for the i-th of a stream of writes due every
// 10 ms from now, open loop, until stop or until write returns false.
// Ticks come late when the cores are busy, and the ticker drops some
// (only 55 writes a second were sent): each tick makes every write due by
// then.
func every10ms(stop chan struct{}, write func(i int) bool) {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	start, sent := time.Now(), 0
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		for due := int(time.Since(start) / (10 * time.Millisecond)); sent < due; sent++ {
			if !write(sent) {
				return
			}
		}
	}
}

// duringWritesRules is the set BenchmarkDecideDuringEtcdWrites serves and
// its writer changes.
func duringWritesRules() []decision.Rule {
	return rulegen.Rules(rulegen.Config{N: 100_000, Hosts: 20, Seed: 1})
}

// writerEnv names etcd's endpoint to TestEtcdWriterProcess, and tells it
// that it runs as the benchmark's writer (not REDIRECTD_*: TestMain
// clears those).
const writerEnv = "BENCH_ETCD_WRITER"

// etcdWriter is the writing replica's process, driven by a line protocol
// on its standard input and output (TestEtcdWriterProcess).
type etcdWriter struct {
	cmd *exec.Cmd
	in  io.Writer
	out *bufio.Scanner
}

// startEtcdWriter runs this test binary again as TestEtcdWriterProcess and
// waits until its replica has loaded.
func startEtcdWriter(b *testing.B, endpoint string) *etcdWriter {
	cmd := exec.Command(os.Args[0], "-test.run=^TestEtcdWriterProcess$", "-test.count=1", "-test.timeout=10m")
	cmd.Env = append(os.Environ(), writerEnv+"="+endpoint)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		in.Close() // the writer's end of input: it returns
		cmd.Wait()
	})
	w := &etcdWriter{cmd: cmd, in: in, out: bufio.NewScanner(out)}
	if got := w.reply(b); got != "ready" {
		b.Fatalf("writer: %s, want ready", got)
	}
	return w
}

func (w *etcdWriter) command(b *testing.B, line string) {
	if _, err := io.WriteString(w.in, line+"\n"); err != nil {
		b.Fatalf("writer: %v", err)
	}
}

// reply is the writer's next line of the protocol; it fails the benchmark
// with what the writer printed instead (a failed test's output) if the
// writer ends first.
func (w *etcdWriter) reply(b *testing.B) string {
	var other []string
	for w.out.Scan() {
		line, ok := strings.CutPrefix(w.out.Text(), "writer: ")
		if ok {
			return line
		}
		other = append(other, w.out.Text())
	}
	b.Fatalf("writer ended: %s", strings.Join(other, "\n"))
	return ""
}

// TestEtcdWriterProcess is BenchmarkDecideDuringEtcdWrites's writing
// replica, run by it as a process of its own. On "write R" it puts rules
// through its admin API at 100 a second, open loop, until "stop"; then it
// prints how many were acknowledged before the stop and the highest
// version a write answered, which the deciding replica waits for.
func TestEtcdWriterProcess(t *testing.T) {
	endpoint := os.Getenv(writerEnv)
	if endpoint == "" {
		t.Skip("the writing replica of BenchmarkDecideDuringEtcdWrites: it runs only as that benchmark's child process")
	}
	writing := startEtcdReplicaAt(t, endpoint)
	rules := duringWritesRules()
	fmt.Println("writer: ready")
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		var round int
		if _, err := fmt.Sscanf(in.Text(), "write %d", &round); err != nil {
			t.Fatalf("%q: %v", in.Text(), err)
		}
		stop, done := make(chan struct{}), make(chan struct{})
		var acked, version atomic.Int64
		go func() {
			defer close(done)
			putEvery10ms(writing.admin, rules, round, stop, &acked, &version)
		}()
		if !in.Scan() || in.Text() != "stop" {
			t.Fatalf("%q, want stop", in.Text())
		}
		close(stop)
		<-done
		fmt.Printf("writer: acked %d version %d\n", acked.Load(), version.Load())
	}
}

// putEvery10ms puts a rule of rules with a new target every 10 ms, whatever
// the last put is doing (up to 64 in flight), until stop; it counts the
// puts acknowledged before stop and raises version to the highest version
// answered. It returns once every put has.
func putEvery10ms(admin redirectv1.RuleServiceClient, rules []decision.Rule, round int, stop chan struct{}, acked, version *atomic.Int64) {
	inflight := make(chan struct{}, 64)
	defer func() {
		for range cap(inflight) {
			inflight <- struct{}{}
		}
	}()
	every10ms(stop, func(sent int) bool {
		select {
		case inflight <- struct{}{}:
		default:
			return true // 64 in flight: this write is skipped
		}
		r := rules[(round<<20+sent)%len(rules)]
		r.To = fmt.Sprintf("/moved/%d/%d", round, sent)
		go func() {
			defer func() { <-inflight }()
			resp, err := admin.PutRule(context.Background(), &redirectv1.PutRuleRequest{Rule: redirectv1.RuleToProto(r)})
			if err != nil {
				return
			}
			for v := int64(resp.GetVersion().GetNumber()); ; {
				old := version.Load()
				if old >= v || version.CompareAndSwap(old, v) {
					break
				}
			}
			select {
			case <-stop: // acknowledged after the phase
			default:
				acked.Add(1)
			}
		}()
		return true
	})
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
