package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"time"

	"github.com/redirectd/redirectd/decision"
)

func runLint(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("lint", "[--strict] [--flatten-chains] [--now TIME] FILE...", stderr)
	strict := fs.Bool("strict", false, "exit 1 on warnings too, not only on errors")
	flatten := fs.Bool("flatten-chains", false, "check as a daemon started with --flatten-chains does")
	now := fs.String("now", "", "warn about the rules that have ended by this time, RFC 3339 (default: the current time)")
	files, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return usagef("want at least one rules FILE")
	}
	clock, err := parseNow(*now)
	if err != nil {
		return err
	}
	failed := false
	for _, file := range files {
		r := lintFile(file, decision.Options{FlattenChains: *flatten}, clock())
		for _, p := range r.problems {
			fmt.Fprintln(stdout, p.String())
		}
		verdict := "ok"
		if r.errors > 0 {
			verdict = "rejected"
		}
		fmt.Fprintf(stdout, "%s: %s: %s, %s, %s\n", file, verdict, plural(r.rules, "rule"), plural(r.errors, "error"), plural(r.warnings, "warning"))
		failed = failed || r.errors > 0 || (*strict && r.warnings > 0)
	}
	if failed {
		return errFailed
	}
	return nil
}

// lintReport is what lint found in one file.
type lintReport struct {
	problems                []decision.Problem // in line order
	rules, errors, warnings int
	seen                    map[decision.Problem]bool
}

// lintFile loads file as the daemon would and collects every problem:
// parse or build errors, or the set's warnings (each at the line of its
// field), and warnings about the rules that have ended by now (README
// "Time windows").
func lintFile(file string, opts decision.Options, now time.Time) lintReport {
	var r lintReport
	data, err := os.ReadFile(file)
	if err != nil {
		r.add(decision.Problem{File: file, Message: err.Error()})
		return r
	}
	ix, warnings, err := decision.LoadRules(file, data, opts)
	if err != nil {
		// A set rejected after it parsed still has rules to count.
		if rules, perr := decision.ParseRules(file, data); perr == nil {
			r.rules = len(rules)
		}
		r.addErr(file, err)
	} else {
		r.rules = ix.Len()
		for _, w := range append(warnings, decision.EndedWarnings(ix.All(), now)...) {
			r.add(w)
		}
	}
	// EndedWarnings knows rules, not files: name the file for a person to
	// open.
	for i := range r.problems {
		if r.problems[i].File == "" {
			r.problems[i].File = file
		}
	}
	sort.SliceStable(r.problems, func(i, j int) bool { return r.problems[i].Line < r.problems[j].Line })
	return r
}

func (r *lintReport) addErr(file string, err error) {
	var rerr *decision.RulesError
	if !errors.As(err, &rerr) {
		r.add(decision.Problem{File: file, Message: err.Error()})
		return
	}
	for _, p := range rerr.All() {
		r.add(p)
	}
}

// add counts p once, however many of the checks report it.
func (r *lintReport) add(p decision.Problem) {
	if r.seen[p] {
		return
	}
	if r.seen == nil {
		r.seen = make(map[decision.Problem]bool)
	}
	r.seen[p] = true
	if p.Severity == decision.SeverityWarning {
		r.warnings++
	} else {
		r.errors++
	}
	r.problems = append(r.problems, p)
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}
