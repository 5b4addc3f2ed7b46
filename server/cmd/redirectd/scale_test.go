package main

// The daemon at scale: one million generated rules, the real binaries, load
// from `redirectctl bench` in a second process, as a user sizing a
// deployment would run it. It takes minutes and a few GiB, so it runs only
// when asked:
//
//	REDIRECTD_SCALE=1 go test -run TestScale -v -timeout 30m ./server/cmd/redirectd
//
// Knobs (environment): REDIRECTD_SCALE_RULES (default 1000000),
// REDIRECTD_SCALE_DURATION (each closed-loop run, default 5s; three rounds),
// REDIRECTD_SCALE_FIXED (the fixed-rate run, default 30s; it goes on until
// 10 s after the reload is done),
// REDIRECTD_SCALE_GOMEMLIMIT (the second daemon run's, to compare the
// reload's tail latency and peak RSS with and without it; default 85% of
// the first run's peak RSS),
// REDIRECTD_SCALE_REPORT (a file to write the figures to as Markdown),
// REDIRECTD_SCALE_PROFILE (a directory: TestScaleLoadPath writes
// cpu.pprof and heap.pprof of the load path there).
//
// Figures are logged, never asserted (README "Performance": benchmarks,
// not timed tests); what is asserted is what must hold on any machine: the daemon
// gets ready, answers with redirects, and a full reload of the whole set
// under load fails no call.

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redirectd/redirectd/client/loadgen"
	"github.com/redirectd/redirectd/decision"
	"github.com/redirectd/redirectd/decision/rulegen"
	"github.com/redirectd/redirectd/server"
)

func scaleEnabled(t *testing.T) {
	t.Helper()
	if os.Getenv("REDIRECTD_SCALE") == "" {
		t.Skip("scale test: set REDIRECTD_SCALE=1 to run it (1M rules, several minutes, about 1 GiB of memory)")
	}
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func envDuration(name string, def time.Duration) time.Duration {
	if v, err := time.ParseDuration(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// scaleFixture is the generated data and the built binaries.
type scaleFixture struct {
	dir       string
	redirectd string
	ctl       string
	rules     string // the watched rules file
	requests  string // request stream for bench
	n         int
}

// newScaleBinaries builds redirectd and redirectctl into a fixture with an
// empty rules directory.
func newScaleBinaries(t *testing.T) *scaleFixture {
	t.Helper()
	f := &scaleFixture{dir: t.TempDir(), n: envInt("REDIRECTD_SCALE_RULES", 1_000_000)}
	f.redirectd = filepath.Join(f.dir, "redirectd")
	f.ctl = filepath.Join(f.dir, "redirectctl")
	for bin, pkg := range map[string]string{f.redirectd: ".", f.ctl: "../../../client/cmd/redirectctl"} {
		out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go build %s: %v\n%s", pkg, err, out)
		}
	}
	if err := os.Mkdir(filepath.Join(f.dir, "rules"), 0o755); err != nil {
		t.Fatal(err)
	}
	return f
}

// newScaleFixture is newScaleBinaries with the generated rules (the
// default mix, JSON Lines) and a request stream.
func newScaleFixture(t *testing.T) *scaleFixture {
	t.Helper()
	f := newScaleBinaries(t)
	f.rules = filepath.Join(f.dir, "rules", "rules.jsonl")
	f.requests = filepath.Join(f.dir, "requests.jsonl")
	start := time.Now()
	out, err := exec.Command(f.ctl, "gen", "--rules", strconv.Itoa(f.n), "--hosts", "100", "--seed", "1", "--format", "jsonl",
		"-o", f.rules, "--requests", "200000", "--hit", "0.9", "--requests-out", f.requests).CombinedOutput()
	if err != nil {
		t.Fatalf("redirectctl gen: %v\n%s", err, out)
	}
	st, _ := os.Stat(f.rules)
	t.Logf("generated %d rules (%d MiB of JSON Lines) and 200000 requests in %v: %s", f.n, st.Size()>>20, time.Since(start).Round(time.Millisecond), bytes.TrimSpace(out))
	return f
}

// stageReload writes a copy of the rules file in which every rule has a
// new target, next to the watched directory: renaming it over the rules
// file makes the daemon replace every rule (more than decision.FoldAt
// differ, so it builds a new base), as a deploy of a regenerated set would.
func (f *scaleFixture) stageReload(t *testing.T, tag string) string {
	t.Helper()
	data, err := os.ReadFile(f.rules)
	if err != nil {
		t.Fatal(err)
	}
	staged := filepath.Join(f.dir, "staged-"+tag+".jsonl")
	if err := os.WriteFile(staged, bytes.ReplaceAll(data, []byte(`"to":"`), []byte(`"to":"/`+tag)), 0o644); err != nil {
		t.Fatal(err)
	}
	return staged
}

// daemon is a running redirectd.
type daemon struct {
	cmd       *exec.Cmd
	grpcAddr  string
	log       string
	readyIn   time.Duration
	rssReady  int64 // VmRSS right after ready, bytes
	peakReady int64 // VmHWM right after ready, bytes
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startDaemon starts redirectd on f.rules with extra environment and
// arguments (the admin listener is off unless args set it) and waits for
// /readyz: the time to ready covers exec, read, parse, build, hash.
func startDaemon(t *testing.T, f *scaleFixture, name string, env []string, args ...string) *daemon {
	t.Helper()
	d := &daemon{grpcAddr: freeAddr(t), log: filepath.Join(f.dir, name+".log")}
	httpAddr := freeAddr(t)
	logFile, err := os.Create(d.log)
	if err != nil {
		t.Fatal(err)
	}
	args = append([]string{"--rules", f.rules, "--grpc-addr", d.grpcAddr, "--http-addr", httpAddr, "--admin-addr", "", "--console-addr", "",
		"--log-format", "json", "--drain-delay", "0"}, args...)
	d.cmd = exec.Command(f.redirectd, args...)
	d.cmd.Env = append(os.Environ(), env...)
	d.cmd.Stderr = logFile
	d.cmd.Stdout = logFile
	start := time.Now()
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- d.cmd.Wait(); logFile.Close() }()
	t.Cleanup(func() {
		d.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			d.cmd.Process.Kill()
		}
	})
	hc := &http.Client{Timeout: time.Second}
	for {
		select {
		case err := <-exited:
			log, _ := os.ReadFile(d.log)
			t.Fatalf("redirectd exited before ready: %v\n%s", err, log)
		default:
		}
		if resp, err := hc.Get("http://" + httpAddr + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Since(start) > 5*time.Minute {
			t.Fatal("redirectd not ready after 5 minutes")
		}
		time.Sleep(5 * time.Millisecond)
	}
	d.readyIn = time.Since(start)
	d.rssReady, d.peakReady = d.memory(t)
	return d
}

// memory reads VmRSS and VmHWM (peak RSS) from /proc.
func (d *daemon) memory(t *testing.T) (rss, peak int64) {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", d.cmd.Process.Pid))
	if err != nil {
		t.Fatalf("read RSS: %v (the scale test needs Linux /proc)", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) != 3 || fields[2] != "kB" {
			continue
		}
		kb, _ := strconv.ParseInt(fields[1], 10, 64)
		switch fields[0] {
		case "VmRSS:":
			rss = kb << 10
		case "VmHWM:":
			peak = kb << 10
		}
	}
	return rss, peak
}

// cpu is the CPU time (user + system) the daemon has used so far: on a
// shared machine, CPU per call is steadier than calls per second.
func (d *daemon) cpu(t *testing.T) time.Duration {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", d.cmd.Process.Pid))
	if err != nil {
		t.Fatalf("read CPU time: %v", err)
	}
	// Fields after the command name, which may hold spaces: state is the
	// first, utime and stime the 12th and 13th (proc(5) fields 14, 15).
	fields := strings.Fields(string(data[bytes.LastIndexByte(data, ')')+1:]))
	utime, _ := strconv.ParseInt(fields[11], 10, 64)
	stime, _ := strconv.ParseInt(fields[12], 10, 64)
	const clockTick = 100 // USER_HZ on Linux
	return time.Duration(utime+stime) * time.Second / clockTick
}

func loadAverage() string {
	data, _ := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(data)); len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return "?"
}

// appliedVersion waits for the daemon to log "rules applied" for version
// and returns how long that build took, as logged.
func (d *daemon) appliedVersion(t *testing.T, version int, within time.Duration) time.Duration {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		data, _ := os.ReadFile(d.log)
		for _, line := range bytes.Split(data, []byte("\n")) {
			var rec struct {
				Msg     string  `json:"msg"`
				Version int     `json:"version"`
				Took    float64 `json:"took"`
			}
			if json.Unmarshal(line, &rec) == nil && rec.Msg == "rules applied" && rec.Version == version {
				return time.Duration(rec.Took)
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	data, _ := os.ReadFile(d.log)
	t.Fatalf("no \"rules applied\" for version %d within %v; log:\n%s", version, within, data)
	return 0
}

// bench runs `redirectctl bench --json` against the daemon and decodes the
// result; a non-zero exit (failed calls) is returned with it, not fatal, so
// the caller reports the failures.
func bench(t *testing.T, f *scaleFixture, d *daemon, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(f.ctl, append([]string{"bench", "--server", d.grpcAddr, "--requests", f.requests, "--json", "--timeout", "10s"}, args...)...)
	cmd.Stdout = new(bytes.Buffer)
	cmd.Stderr = new(bytes.Buffer)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd
}

func benchResult(t *testing.T, cmd *exec.Cmd) *loadgen.Result {
	t.Helper()
	err := cmd.Wait()
	var res loadgen.Result
	if jerr := json.Unmarshal(cmd.Stdout.(*bytes.Buffer).Bytes(), &res); jerr != nil {
		t.Fatalf("redirectctl %s: %v, %v\nstderr:\n%s", strings.Join(cmd.Args[1:], " "), err, jerr, cmd.Stderr)
	}
	if err != nil && res.Failed() == 0 && res.Unsent == 0 {
		t.Fatalf("redirectctl bench: %v\n%s", err, cmd.Stderr)
	}
	return &res
}

func runBench(t *testing.T, f *scaleFixture, d *daemon, args ...string) *loadgen.Result {
	t.Helper()
	return benchResult(t, bench(t, f, d, args...))
}

// progress is the per-second lines bench wrote to stderr while it ran.
func progress(cmd *exec.Cmd) string { return cmd.Stderr.(*bytes.Buffer).String() }

// median of the values; with an even count, the lower middle one.
func median(v []float64) float64 {
	v = slices.Clone(v)
	slices.Sort(v)
	return v[(len(v)-1)/2]
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }
func msOf(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 3, 64)
}

// TestScale: ready time and RSS at 1M rules; closed-loop throughput of
// Decide and Check against the no-op floor (grpc.health.v1 Check on the
// same daemon: same listener, server options and interceptors, no work);
// then Decide at a fixed 5,000/s with a full reload of every rule in the
// middle, once with the Go runtime's defaults and once with GOMEMLIMIT.
func TestScale(t *testing.T) {
	scaleEnabled(t)
	f := newScaleFixture(t)
	closed := envDuration("REDIRECTD_SCALE_DURATION", 5*time.Second).String()
	// At a fixed rate, callers bound the calls in flight. Envoy bounds
	// nothing (each request waits on its own Check), so the fixed-rate runs
	// allow 200: a slow second queues at the server, as it would behind
	// Envoy, rather than in the generator.
	const fixedCallers = "200"
	fixed := envDuration("REDIRECTD_SCALE_FIXED", 30*time.Second)
	var report strings.Builder
	fmt.Fprintf(&report, "scale run: %d rules, %d CPUs (%s/%s), %s, load average %s at the start\n\n",
		f.n, runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, time.Now().UTC().Format(time.RFC3339), loadAverage())

	// run starts a daemon with env, measures it and stops it; the first run
	// also measures closed-loop throughput against the floor.
	run := func(name string, env []string, closedLoop bool) (reloadPeak int64) {
		t.Run(name, func(t *testing.T) {
			d := startDaemon(t, f, strings.ReplaceAll(name, "=", "-"), env)
			fmt.Fprintf(&report, "## %s\n\nready in %v, VmRSS %.0f MiB, VmHWM %.0f MiB after ready\n\n",
				name, d.readyIn.Round(time.Millisecond), mib(d.rssReady), mib(d.peakReady))
			if closedLoop {
				// Interleaved rounds, medians: the machine's other load drifts
				// during a run, and interleaving spreads the drift over all three.
				const rounds = 3
				type sample struct{ rate, p50, p99, p999, cpu []float64 }
				samples := map[string]*sample{}
				rpcs := []string{"health", "decide", "check"}
				for range rounds {
					for _, rpc := range rpcs {
						cpu0 := d.cpu(t)
						res := runBench(t, f, d, "--rpc", rpc, "--concurrency", "50", "--conns", "4", "--duration", closed)
						// Warm-up calls (2 s) are not in res.Calls: CPU per call is
						// over-stated by the warm-up's share, alike for every rpc.
						perCall := float64(d.cpu(t)-cpu0) / float64(time.Microsecond) / float64(res.Calls)
						if samples[rpc] == nil {
							samples[rpc] = &sample{}
						}
						sm := samples[rpc]
						sm.rate = append(sm.rate, res.Throughput)
						sm.p50 = append(sm.p50, float64(res.Latency.P50))
						sm.p99 = append(sm.p99, float64(res.Latency.P99))
						sm.p999 = append(sm.p999, float64(res.Latency.P999))
						sm.cpu = append(sm.cpu, perCall)
						if res.Failed() > 0 {
							t.Errorf("%s closed loop: %d calls failed: %v", rpc, res.Failed(), res.Errors)
						}
						if rpc != "health" && res.Redirects == 0 {
							t.Errorf("%s: no redirects among %d calls: the request stream does not hit the rules", rpc, res.Calls)
						}
					}
				}
				fmt.Fprintf(&report, "| closed loop, 50 callers, 4 conns, %s, median of %d interleaved runs | calls/s | vs floor | p50 ms | p99 ms | p99.9 ms | daemon CPU µs/call |\n|---|---|---|---|---|---|---|\n", closed, rounds)
				floor := median(samples["health"].rate)
				for _, rpc := range rpcs {
					sm := samples[rpc]
					fmt.Fprintf(&report, "| %s | %.0f | %.0f%% | %s | %s | %s | %.1f |\n", rpc, median(sm.rate), 100*median(sm.rate)/floor,
						msOf(time.Duration(median(sm.p50))), msOf(time.Duration(median(sm.p99))), msOf(time.Duration(median(sm.p999))), median(sm.cpu))
				}
				fmt.Fprintf(&report, "\nthroughput of each run (calls/s): ")
				for _, rpc := range rpcs {
					fmt.Fprintf(&report, "%s %.0f; ", rpc, samples[rpc].rate)
				}
				report.WriteString("\n\n")

				// Steady state at a fixed 5,000/s, no reload; the health floor
				// at the same rate shows what the machine and gRPC alone cost.
				fmt.Fprintf(&report, "| fixed 5000/s, %s callers, 4 conns, %v, steady | calls/s | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | service p99 ms | behind schedule | generator stalls p99 / p99.9 / max ms |\n|---|---|---|---|---|---|---|---|---|---|\n", fixedCallers, fixed)
				var decideSteady string
				for _, rpc := range rpcs {
					steady := bench(t, f, d, "--rpc", rpc, "--rate", "5000", "--concurrency", fixedCallers, "--conns", "4", "--duration", fixed.String())
					res := benchResult(t, steady)
					fmt.Fprintf(&report, "| %s | %.0f | %s | %s | %s | %s | %s | %s | %d | %s / %s / %s |\n", rpc, res.Throughput,
						msOf(res.Latency.P50), msOf(res.Latency.P90), msOf(res.Latency.P99), msOf(res.Latency.P999), msOf(res.Latency.Max),
						msOf(res.Service.P99), res.Behind, msOf(res.Stalls.P99), msOf(res.Stalls.P999), msOf(res.Stalls.Max))
					if res.Failed() > 0 {
						t.Errorf("%s at a fixed rate, steady: %d calls failed: %v", rpc, res.Failed(), res.Errors)
					}
					if rpc == "decide" {
						decideSteady = progress(steady)
					}
				}
				fmt.Fprintf(&report, "\ndecide, per second:\n\n```\n%s```\n\n", decideSteady)
			}

			// Fixed 5,000/s; a third into the measured part, the whole rules
			// file is replaced (rename over it) by another seed's set, which
			// the daemon decodes into a new base aside and swaps in, while
			// the load goes on.
			staged := f.stageReload(t, strings.ReplaceAll(name, "=", "-"))
			warmup := 2 * time.Second
			reloadAt := fixed / 3
			// The load runs until the reload is done and `fixed` has passed,
			// plus 10 s of the new set: how long a reload takes on a busy
			// machine is not known beforehand, so bench is interrupted then
			// (it reports the window up to the interruption).
			cmd := bench(t, f, d, "--rpc", "decide", "--rate", "5000", "--concurrency", fixedCallers, "--conns", "4",
				"--warmup", warmup.String(), "--duration", "30m")
			benchStart := time.Now()
			time.Sleep(warmup + reloadAt)
			_, peakBefore := d.memory(t)
			if err := os.Rename(staged, f.rules); err != nil {
				t.Fatal(err)
			}
			took := d.appliedVersion(t, 2, 20*time.Minute)
			time.Sleep(max(warmup+fixed-time.Since(benchStart), 10*time.Second))
			cmd.Process.Signal(os.Interrupt)
			res := benchResult(t, cmd)
			_, peak := d.memory(t)
			reloadPeak = peak
			fmt.Fprintf(&report, "fixed 5000/s decide, %s callers, %v with a full reload of %d rules at %v (built in %v): %d calls, %.0f calls/s, "+
				"p50 %s ms, p99 %s ms, p99.9 %s ms, max %s ms (service time p99 %s ms, p99.9 %s ms; generator stalls p99 %s ms, p99.9 %s ms, max %s ms); %d failed, %d behind schedule, %d unsent; VmHWM %.0f MiB before the reload, %.0f MiB after\n\n",
				fixedCallers, res.Duration.Round(time.Second), f.n, reloadAt, took.Round(time.Millisecond), res.Calls, res.Throughput,
				msOf(res.Latency.P50), msOf(res.Latency.P99), msOf(res.Latency.P999), msOf(res.Latency.Max),
				msOf(res.Service.P99), msOf(res.Service.P999), msOf(res.Stalls.P99), msOf(res.Stalls.P999), msOf(res.Stalls.Max),
				res.Failed(), res.Behind, res.Unsent, mib(peakBefore), mib(peak))
			fmt.Fprintf(&report, "per second (the reload starts %v after the warm-up's start):\n\n```\n%s```\n\n", warmup+reloadAt, progress(cmd))
			if res.Failed() > 0 {
				t.Errorf("during the reload %d calls failed (%v); want none", res.Failed(), res.Errors)
			}
			if res.Redirects == 0 {
				t.Error("no redirects at 5,000/s: the request stream does not hit the rules")
			}
		})
		return reloadPeak
	}
	peak := run("defaults", nil, true)
	if peak == 0 {
		t.Fatal("the first run measured no peak RSS; not starting the GOMEMLIMIT run")
	}
	// With the runtime's defaults the heap may grow to twice the live set
	// (GOGC=100), and a reload holds two sets at once. The second run is
	// the README's advice for a container whose limit is that peak:
	// GOMEMLIMIT at 85% of it. Does the GC, working harder during the
	// reload, hurt the tail? (A limit below the live heap of a reload, two
	// full sets, makes the GC run back to back: measured at 60% of the
	// peak, a reload took 6× longer and calls timed out.)
	memLimit := os.Getenv("REDIRECTD_SCALE_GOMEMLIMIT")
	if memLimit == "" {
		memLimit = fmt.Sprintf("%dMiB", int64(float64(peak)*0.85)>>20)
	}
	fmt.Fprintf(&report, "second run: GOMEMLIMIT=%s (unless set: 85%% of the first run's peak RSS of %.0f MiB)\n\n", memLimit, mib(peak))
	run("GOMEMLIMIT="+memLimit, []string{"GOMEMLIMIT=" + memLimit}, false)
	fmt.Fprintf(&report, "load average %s at the end\n", loadAverage())
	t.Log("\n" + report.String())
	if out := os.Getenv("REDIRECTD_SCALE_REPORT"); out != "" {
		if err := os.WriteFile(out, []byte(report.String()), 0o644); err != nil {
			t.Error(err)
		}
	}
}

// TestScaleLoadPath takes the daemon's load path apart at scale, in
// process: read, parse, build, version hash, hit-counter
// tracking (the steps of RuleStore.Reload, timed one by one), then the
// real RuleStore.Reload as a whole, with the heap each step retains and,
// when REDIRECTD_SCALE_PROFILE names a directory, a CPU profile of the
// whole reload and a heap profile of what the served set retains:
//
//	go tool pprof -top -cum $DIR/cpu.pprof
//	go tool pprof -top -sample_index=inuse_space $DIR/heap.pprof
func TestScaleLoadPath(t *testing.T) {
	scaleEnabled(t)
	n := envInt("REDIRECTD_SCALE_RULES", 1_000_000)
	file := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(file, decision.MarshalRules(rulegen.Rules(rulegen.Config{N: n, Mix: rulegen.DefaultMix, Hosts: 100, Seed: 1})), 0o644); err != nil {
		t.Fatal(err)
	}
	heap := func() int64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return int64(ms.HeapAlloc)
	}
	type step struct {
		name     string
		took     time.Duration
		retained int64 // heap retained after the step, over the previous
	}
	var steps []step
	base := heap()
	last := base
	timed := func(name string, fn func()) {
		start := time.Now()
		fn()
		took := time.Since(start)
		h := heap()
		steps = append(steps, step{name, took, h - last})
		last = h
	}
	var (
		data  []byte
		rules []decision.Rule
		ix    *decision.Index
		err   error
		sum   [32]byte
	)
	timed("read file", func() { data, err = os.ReadFile(file) })
	if err != nil {
		t.Fatal(err)
	}
	timed("parse (decision.ParseRules)", func() { rules, err = decision.ParseRules(file, data) })
	if err != nil {
		t.Fatal(err)
	}
	timed("build (decision.Build)", func() { ix, _, err = decision.Build(rules, decision.Options{PermanentMaxAge: 24 * time.Hour}) })
	if err != nil {
		t.Fatal(err)
	}
	// The daemon's version hash is the file's own SHA-256 (fed in pieces).
	timed("version hash (SHA-256 of the file)", func() { sum = sha256.Sum256(data) })
	hits := server.NewHits()
	store := &server.RuleStore{Engine: server.NewEngine(decision.NewStore(decision.Options{PermanentMaxAge: 24 * time.Hour}), time.Now),
		Path: file, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: time.Now, Hits: hits, Metrics: server.NewMetrics()}
	data = nil
	timed("drop the file bytes", func() {})

	var cpu *os.File
	if dir := os.Getenv("REDIRECTD_SCALE_PROFILE"); dir != "" {
		if cpu, err = os.Create(filepath.Join(dir, "cpu.pprof")); err != nil {
			t.Fatal(err)
		}
		pprof.StartCPUProfile(cpu)
	}
	timed("RuleStore.Reload (all of it, as the daemon)", func() {
		if _, err := store.Reload(); err != nil {
			t.Fatal(err)
		}
	})
	if cpu != nil {
		pprof.StopCPUProfile()
		cpu.Close()
		hp, err := os.Create(filepath.Join(os.Getenv("REDIRECTD_SCALE_PROFILE"), "heap.pprof"))
		if err != nil {
			t.Fatal(err)
		}
		runtime.GC()
		pprof.Lookup("heap").WriteTo(hp, 0)
		hp.Close()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "load path at %d rules (%d CPUs):\n| step | took | heap retained | per rule |\n|---|---|---|---|\n", n, runtime.NumCPU())
	for _, s := range steps {
		fmt.Fprintf(&b, "| %s | %v | %.0f MiB | %d B |\n", s.name, s.took.Round(time.Millisecond), mib(s.retained), s.retained/int64(n))
	}
	fmt.Fprintf(&b, "index: %d rules; version %x…; heap in use with both sets (step-by-step and the store's) alive: %.0f MiB\n",
		ix.Len(), sum[:6], mib(last-base))
	t.Log("\n" + b.String())
	runtime.KeepAlive(rules)
	runtime.KeepAlive(ix)
	runtime.KeepAlive(store)
}
