package loadgen

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// WriteTable writes r as the table `redirectctl bench` prints at the end.
func WriteTable(w io.Writer, r *Result) error {
	mode := "closed loop"
	if r.Rate > 0 {
		mode = fmt.Sprintf("fixed rate %.0f/s", r.Rate)
	}
	interrupted := ""
	if r.Interrupted {
		interrupted = " (interrupted)"
	}
	fmt.Fprintf(w, "%s, %s, %d callers, %d connections, %v measured after %v warm-up%s\n\n",
		r.RPC, mode, r.Concurrency, r.Conns, r.Duration.Round(time.Millisecond), r.Warmup, interrupted)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "calls\t%d\t(redirects %d, passes %d)\n", r.Calls, r.Redirects, r.Passes)
	fmt.Fprintf(tw, "throughput\t%.0f\tcalls/s\n", r.Throughput)
	fmt.Fprintf(tw, "errors\t%d\t%s\n", r.Failed(), errorList(r.Errors))
	if r.Rate > 0 {
		fmt.Fprintf(tw, "behind schedule\t%d\tsent >1 ms after their scheduled time: too few callers, a saturated client CPU, or a machine stall\n", r.Behind)
		if r.Unsent > 0 {
			fmt.Fprintf(tw, "unsent\t%d\tscheduled but never sent: the generator was still behind when the run stopped\n", r.Unsent)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "latency (ms)\tp50\tp90\tp99\tp99.9\tmax\tmean\t")
	for _, row := range []struct {
		name string
		s    Summary
	}{{"from schedule", r.Latency}, {"service", r.Service}, {"generator stalls", r.Stalls}} {
		s := row.s
		fmt.Fprintf(tw, "%s\t%.3f\t%.3f\t%.3f\t%.3f\t%.3f\t%.3f\t\n", row.name,
			msf(s.P50), msf(s.P90), msf(s.P99), msf(s.P999), msf(s.Max), msf(s.Mean))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintln(w, "\ngenerator stalls: how much longer than 1 ms the generator's own 1 ms sleeps took;\nthis machine's hiccups, which every call in flight shares")
	return err
}

func errorList(errs map[string]uint64) string {
	var parts []string
	for _, code := range slices.Sorted(maps.Keys(errs)) {
		parts = append(parts, fmt.Sprintf("%s %d", code, errs[code]))
	}
	return strings.Join(parts, ", ")
}
