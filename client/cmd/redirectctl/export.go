package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/redirectd/redirectd/client/convert"
	"github.com/redirectd/redirectd/decision"
)

// exporters are the formats export writes, by --to name.
var exporters = map[string]func(io.Writer, []decision.Rule) ([]decision.Problem, error){
	"netlify": convert.ExportNetlify,
	"csv":     convert.ExportCSV,
}

// runExport writes a rules file in a foreign format (--to), or in another
// of redirectd's own formats (--format, or the -o name). Rules a foreign
// format cannot express are left out and reported on stderr as
// RULES_FILE:LINE: rule "id": reason; details it drops are warnings. Exit
// status 0, unless --strict and a rule was left out (exit 1, nothing
// written).
func runExport(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("export", "--to netlify|csv | --format yaml|json|jsonl [--host HOST] [-o OUT] [--strict] RULES_FILE", stderr)
	to := fs.String("to", "", "foreign format to write: netlify (a _redirects file) or csv (a Cloudflare Bulk Redirects CSV)")
	formatFlag := fs.String("format", "", formatUsage)
	out := fs.String("o", "", "write to this `file` (default: stdout)")
	strict := fs.Bool("strict", false, "exit 1 and write nothing when any rule cannot be exported")
	host := fs.String("host", "", "write rules for any host as rules for this `host` (a Cloudflare source URL needs one)")
	files, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(files) != 1 {
		return usagef("want one RULES_FILE to export; got %d arguments", len(files))
	}
	// A rules file out: --format, or an -o name redirectd reads by.
	own := *formatFlag != "" || *to == "" && *out != "" && slices.Contains([]string{".yaml", ".yml", ".json", ".jsonl"}, strings.ToLower(filepath.Ext(*out)))
	exp, ok := exporters[*to]
	switch {
	case own && *to != "":
		return usagef("--to %s and --format: give one (--to for a foreign format, --format for a rules file)", *to)
	case !own && *to == "":
		return usagef("want --to netlify|csv, --format yaml|json|jsonl, or -o a *.yaml, *.json or *.jsonl name")
	case !own && !ok:
		return usagef("--to %q: accepted: netlify, csv (and --format yaml, json, jsonl for a rules file)", *to)
	}
	var format decision.Format
	if own {
		if format, err = rulesFormat(*formatFlag, *out); err != nil {
			return err
		}
	}
	file := files[0]
	data, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	rules, err := decision.ParseRules(file, data)
	if err != nil {
		return err
	}
	if *host != "" {
		for i := range rules {
			if rules[i].Host == "" {
				rules[i].Host = strings.ToLower(*host)
			}
		}
	}
	if own {
		fmt.Fprintf(stderr, "%s: %s written as %v\n", file, plural(len(rules), "rule"), format)
		return writeRulesFile(*out, stdout, format, "", rules)
	}
	var buf bytes.Buffer
	problems, err := exp(&buf, rules)
	if err != nil {
		return err
	}
	left := map[string]bool{}
	warnings := 0
	for _, p := range problems {
		fmt.Fprintln(stderr, inFile(p, file).String())
		if p.Severity == decision.SeverityError {
			left[p.RuleID] = true
		} else {
			warnings++
		}
	}
	fmt.Fprintf(stderr, "%s: %s exported, %s left out, %s\n", file,
		plural(len(rules)-len(left), "rule"), plural(len(left), "rule"), plural(warnings, "warning"))
	if *strict && len(left) > 0 {
		fmt.Fprintln(stderr, "--strict: nothing written")
		return errFailed
	}
	return writeOutput(*out, stdout, buf.Bytes())
}
