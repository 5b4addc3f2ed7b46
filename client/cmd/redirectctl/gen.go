package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/redirectd/redirectd/client/accesslog"
	"github.com/redirectd/redirectd/decision"
	"github.com/redirectd/redirectd/decision/rulegen"
)

// runGen writes a generated rule set (and optionally a request stream for
// it): the data every benchmark and load test uses. The output depends on
// the flags only, so "gen --rules 1000000 --seed 1" is the same file on
// every machine.
func runGen(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("gen", "--rules N [--mix exact=0.8,prefix=0.15,pattern=0.05] [--hosts H] [--seed S] [--format yaml|json|jsonl] [-o FILE] [--requests M --hit 0.9 --requests-out FILE [--requests-format F]]", stderr)
	n := fs.Int("rules", 0, "number of `rules` to generate")
	mixFlag := fs.String("mix", rulegen.DefaultMix.String(), "fraction of each match kind (normalised to sum 1)")
	hosts := fs.Int("hosts", 1, "number of hosts the rules are scoped to; 0 makes every rule apply to any host")
	seed := fs.Int64("seed", 1, "seed: the same flags give the same output")
	out := fs.String("o", "", "write the rules file to this `file` (default: stdout)")
	formatFlag := fs.String("format", "", formatUsage)
	nreq := fs.Int("requests", 0, "also generate this many requests (needs --requests-out)")
	hit := fs.Float64("hit", 0.9, "fraction of requests that match a rule (0..1)")
	reqOut := fs.String("requests-out", "", "write the requests to this `file`, in --requests-format")
	reqFormatFlag := fs.String("requests-format", "jsonl", "format of --requests-out: "+accesslog.Names()+" (jsonl is what bench reads; the others are access logs for diff)")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	switch {
	case len(pos) > 0:
		return usagef("unexpected argument %q", pos[0])
	case *n <= 0:
		return usagef("--rules %d: want a positive number of rules", *n)
	case *hosts < 0:
		return usagef("--hosts %d: want 0 or more", *hosts)
	case *nreq < 0:
		return usagef("--requests %d: want 0 or more", *nreq)
	case *nreq > 0 && *reqOut == "":
		return usagef("--requests needs --requests-out FILE (stdout carries the rules)")
	case *nreq == 0 && *reqOut != "":
		return usagef("--requests-out needs --requests M")
	case !(*hit >= 0 && *hit <= 1):
		return usagef("--hit %v: want a fraction between 0 and 1", *hit)
	}
	reqFormat, err := accesslog.ParseFormat(*reqFormatFlag)
	if err != nil {
		return usagef("--requests-format: %v", err)
	}
	mix, err := rulegen.ParseMix(*mixFlag)
	if err != nil {
		return usagef("--%v", err)
	}
	format, err := rulesFormat(*formatFlag, *out)
	if err != nil {
		return err
	}

	start := time.Now()
	rules := rulegen.Rules(rulegen.Config{N: *n, Mix: mix, Hosts: *hosts, Seed: *seed})
	var kinds [4]int
	for i := range rules {
		kinds[rules[i].Match]++
	}
	if err := writeRulesFile(*out, stdout, format, "", rules); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "%s (%d exact, %d prefix, %d pattern) on %s in %v\n",
		plural(len(rules), "rule"), kinds[decision.MatchExact], kinds[decision.MatchPrefix], kinds[decision.MatchPattern],
		plural(*hosts, "host"), time.Since(start).Round(time.Millisecond))
	if *nreq == 0 {
		return nil
	}

	start = time.Now()
	reqs := rulegen.Requests(rules, rulegen.RequestConfig{N: *nreq, Hit: *hit, Seed: *seed})
	f, err := os.Create(*reqOut)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	err = writeRequestLog(w, reqFormat, reqs)
	if err == nil {
		err = w.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", *reqOut, err)
	}
	fmt.Fprintf(stderr, "%s (hit fraction %v) to %s in %v\n", plural(len(reqs), "request"), *hit, *reqOut, time.Since(start).Round(time.Millisecond))
	return nil
}

// logStart is when a generated access log begins; its lines are 10 ms
// apart, so the same flags give the same log.
var logStart = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)

// writeRequestLog writes reqs as a request stream or as an access log
// (which names no scheme; a common or combined one no host either).
func writeRequestLog(w io.Writer, f accesslog.Format, reqs []decision.Request) error {
	var b []byte
	for i := range reqs {
		b = accesslog.Append(b[:0], f, &reqs[i], logStart.Add(time.Duration(i)*10*time.Millisecond))
		if _, err := w.Write(b); err != nil {
			return err
		}
	}
	return nil
}
