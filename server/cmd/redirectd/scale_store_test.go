package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/redirectd/redirectd/decision"
	"github.com/redirectd/redirectd/decision/rulegen"
	redirectv1 "github.com/redirectd/redirectd/proto/redirect/v1"
)

func writeRulesFile(t *testing.T, path string, rules []decision.Rule) {
	t.Helper()
	var b bytes.Buffer
	if err := decision.WriteRules(&b, decision.FormatOf(path), decision.RuleSeq(rules)); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func percentile(ds []time.Duration, p float64) time.Duration {
	ds = slices.Clone(ds)
	slices.Sort(ds)
	return ds[min(len(ds)-1, int(float64(len(ds))*p))]
}

// TestScaleStore measures the in-place rule store at a million rules, as a
// user runs it: the daemon's ready time and RSS on the 1M exact + 100
// prefix set as JSON Lines and as one JSON document; admin puts and
// deletes (one file write each); a reload of the file with 10 rules
// changed; the default mix of `redirectctl gen` as JSON Lines, and a full
// replace of it.
//
//	REDIRECTD_SCALE=1 go test -run 'TestScaleStore$' -v -timeout 30m ./server/cmd/redirectd
func TestScaleStore(t *testing.T) {
	scaleEnabled(t)
	f := newScaleBinaries(t)
	n := envInt("REDIRECTD_SCALE_RULES", 1_000_000)
	rules := rulegen.OldNew(n)
	var report strings.Builder
	fmt.Fprintf(&report, "store scale run: %d exact + 100 prefix rules, load average %s at the start\n\n", n, loadAverage())

	for _, name := range []string{"rules.jsonl", "rules.json"} {
		f.rules = filepath.Join(f.dir, "rules", name)
		writeRulesFile(t, f.rules, rules)
		st, _ := os.Stat(f.rules)
		adminAddr := freeAddr(t)
		d := startDaemon(t, f, strings.TrimSuffix(name, filepath.Ext(name))+"-"+filepath.Ext(name)[1:], nil, "--admin-addr", adminAddr)
		fmt.Fprintf(&report, "%s (%d MiB): ready in %v, VmRSS %.0f MiB, VmHWM %.0f MiB after ready\n\n",
			name, st.Size()>>20, d.readyIn.Round(time.Millisecond), mib(d.rssReady), mib(d.peakReady))
		if name != "rules.jsonl" {
			d.cmd.Process.Kill()
			continue
		}

		conn, err := grpc.NewClient(adminAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		admin := redirectv1.NewRuleServiceClient(conn)
		const writes = 50
		var puts, deletes []time.Duration
		for i := range writes {
			start := time.Now()
			_, err := admin.PutRule(context.Background(), &redirectv1.PutRuleRequest{Rule: &redirectv1.Rule{
				Id: fmt.Sprintf("put-%d", i), Path: fmt.Sprintf("/put/%d", i), To: "/x"}})
			if err != nil {
				t.Fatal(err)
			}
			puts = append(puts, time.Since(start))
		}
		for i := range writes {
			start := time.Now()
			if _, err := admin.DeleteRule(context.Background(), &redirectv1.DeleteRuleRequest{Id: fmt.Sprintf("old-%d", i)}); err != nil {
				t.Fatal(err)
			}
			deletes = append(deletes, time.Since(start))
		}
		conn.Close()
		fmt.Fprintf(&report, "admin writes at %d rules (each one file write of the whole set): put p50 %v, p99 %v, max %v; delete p50 %v, p99 %v, max %v (%d each)\n\n",
			n, percentile(puts, 0.5).Round(time.Millisecond), percentile(puts, 0.99).Round(time.Millisecond), slices.Max(puts).Round(time.Millisecond),
			percentile(deletes, 0.5).Round(time.Millisecond), percentile(deletes, 0.99).Round(time.Millisecond), slices.Max(deletes).Round(time.Millisecond), writes)

		// The file as the daemon wrote it, with ten targets changed,
		// renamed over the rules file.
		data, err := os.ReadFile(f.rules)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 10 {
			old := fmt.Sprintf(`"to":"/new/%d"`, 100+i*(n/10-10))
			if !bytes.Contains(data, []byte(old)) {
				t.Fatalf("the written file has no %s", old)
			}
			data = bytes.Replace(data, []byte(old), []byte(fmt.Sprintf(`"to":"/changed/%d"`, i)), 1)
		}
		staged := filepath.Join(f.dir, "staged.jsonl")
		if err := os.WriteFile(staged, data, 0o644); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		if err := os.Rename(staged, f.rules); err != nil {
			t.Fatal(err)
		}
		took := d.appliedVersion(t, 2+2*writes, 5*time.Minute)
		fmt.Fprintf(&report, "reload of the file with 10 rules changed: applied %v after the rename (debounce 250 ms included); "+
			"read, hash, parse, compare and write took %v as logged\n\n", time.Since(start).Round(time.Millisecond), took.Round(time.Millisecond))
		rss, peak := d.memory(t)
		fmt.Fprintf(&report, "after the writes and the reload: VmRSS %.0f MiB, VmHWM %.0f MiB\n\n", mib(rss), mib(peak))
		d.cmd.Process.Kill()
	}

	// The default mix of `redirectctl gen --rules N --hosts 100 --format
	// jsonl`, then a full replace by another seed's set renamed over it:
	// the peak while both sets are in memory.
	mix := func(seed int64) []decision.Rule {
		return rulegen.Rules(rulegen.Config{N: n, Mix: rulegen.DefaultMix, Hosts: 100, Seed: seed})
	}
	f.rules = filepath.Join(f.dir, "rules", "gen.jsonl")
	writeRulesFile(t, f.rules, mix(1))
	staged := filepath.Join(f.dir, "staged-gen.jsonl")
	writeRulesFile(t, staged, mix(2))
	st, _ := os.Stat(f.rules)
	d := startDaemon(t, f, "gen-jsonl", nil)
	fmt.Fprintf(&report, "gen.jsonl, the default mix (%d MiB): ready in %v, VmRSS %.0f MiB, VmHWM %.0f MiB after ready\n\n",
		st.Size()>>20, d.readyIn.Round(time.Millisecond), mib(d.rssReady), mib(d.peakReady))
	start := time.Now()
	if err := os.Rename(staged, f.rules); err != nil {
		t.Fatal(err)
	}
	took := d.appliedVersion(t, 2, 5*time.Minute)
	rss, peak := d.memory(t)
	fmt.Fprintf(&report, "full replace by another seed's set: applied %v after the rename (took %v as logged); VmRSS %.0f MiB, VmHWM %.0f MiB = %.2f × the RSS at ready\n\n",
		time.Since(start).Round(time.Millisecond), took.Round(time.Millisecond), mib(rss), mib(peak), float64(peak)/float64(d.rssReady))
	d.cmd.Process.Kill()

	fmt.Fprintf(&report, "load average %s at the end\n", loadAverage())
	t.Log("\n" + report.String())
}
