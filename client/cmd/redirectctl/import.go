package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/redirectd/redirectd/client/convert"
	"github.com/redirectd/redirectd/decision"
)

// importers are the formats import reads, by --from name.
var importers = map[string]func(string, io.Reader) ([]decision.Rule, []decision.Problem, error){
	"netlify": convert.ImportNetlify,
	"csv":     convert.ImportCSV,
}

// runImport converts a foreign redirects file into a rules file. Lines that
// cannot be converted, or that redirectd would reject once converted (a
// cycle across lines), are reported on stderr as FILE:LINE: reason; the
// rest is written, and the exit status is 0, unless --strict (any line not
// converted exits 1 and writes nothing) or nothing could be converted.
func runImport(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("import", "--from netlify|csv [--format yaml|json|jsonl] [-o OUT] [--strict] FILE", stderr)
	from := fs.String("from", "", "format of FILE: netlify (a _redirects file) or csv (a Cloudflare Bulk Redirects CSV)")
	out := fs.String("o", "", "write the rules file to this `file` (default: stdout)")
	formatFlag := fs.String("format", "", formatUsage)
	strict := fs.Bool("strict", false, "exit 1 and write nothing when any line cannot be converted")
	files, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	imp, ok := importers[*from]
	if !ok {
		return usagef("--from %q: accepted: netlify, csv", *from)
	}
	if len(files) != 1 {
		return usagef("want one FILE to convert; got %d arguments", len(files))
	}
	format, err := rulesFormat(*formatFlag, *out)
	if err != nil {
		return err
	}
	file := files[0]
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	rules, skipped, err := imp(file, f)
	if err != nil {
		return err
	}
	for _, p := range skipped {
		fmt.Fprintln(stderr, p.String())
	}

	// The rules must load as the daemon loads them: a cycle across lines or
	// a capture the path does not define is only seen by Build. Such rules
	// are left out like any other line that cannot be converted.
	rules, rejected, warnings, err := convert.Loadable(rules, decision.Options{})
	for _, p := range rejected {
		fmt.Fprintln(stderr, inFile(p, file).String())
	}
	for _, w := range warnings {
		fmt.Fprintln(stderr, inFile(w, file).String())
	}
	notConverted := len(skipped) + len(rejected)
	fmt.Fprintf(stderr, "%s: %s converted, %s not converted\n", file, plural(len(rules), "rule"), plural(notConverted, "line"))
	switch {
	case err != nil:
		return fmt.Errorf("the converted rules would not load in redirectd; nothing written: %w", err)
	case *strict && notConverted > 0:
		fmt.Fprintln(stderr, "--strict: nothing written")
		return errFailed
	case len(rules) == 0 && notConverted > 0:
		fmt.Fprintln(stderr, "no line could be converted; nothing written")
		return errFailed
	}
	header := fmt.Sprintf("# Converted from %s (%s) by redirectctl import: %s, %s not converted.\n",
		file, *from, plural(len(rules), "rule"), plural(notConverted, "line"))
	return writeRulesFile(*out, stdout, format, header, rules)
}

// inFile names file in a problem about a converted rule: the rule's line is
// the line it came from.
func inFile(p decision.Problem, file string) decision.Problem {
	if p.File == "" {
		p.File = file
	}
	return p
}

// formatUsage is the usage of the --format flag of the commands that
// write rules files.
const formatUsage = "rules-file `format` to write: yaml, json or jsonl (default: from the -o name, see README \"Rules files\"; yaml on stdout)"

// rulesFormat is the format a command writes its rules file in: --format
// when given, else the one the -o name says. A --format the name
// contradicts is refused: redirectd reads a file in the format its name
// says, so such a file would not load.
func rulesFormat(flag, out string) (decision.Format, error) {
	if flag == "" {
		return decision.FormatOf(out), nil
	}
	f, err := decision.ParseFormat(flag)
	if err != nil {
		return f, usagef("--format: %v", err)
	}
	if out != "" && decision.FormatOf(out) != f {
		return f, usagef("--format %v, but redirectd reads %s as %v; name the file *.%v", f, out, decision.FormatOf(out), f)
	}
	return f, nil
}

// writeRulesFile writes rules in format f to the file named out, or to
// stdout when out is empty. header, a comment, goes before YAML only: JSON
// has no comments.
func writeRulesFile(out string, stdout io.Writer, f decision.Format, header string, rules []decision.Rule) error {
	write := func(w io.Writer) error {
		if f == decision.FormatYAML && header != "" {
			if _, err := io.WriteString(w, header); err != nil {
				return err
			}
		}
		return decision.WriteRules(w, f, decision.RuleSeq(rules))
	}
	if out == "" {
		return write(stdout)
	}
	file, err := os.Create(out)
	if err != nil {
		return err
	}
	err = write(file)
	if cerr := file.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", out, err)
	}
	return nil
}

// writeOutput writes data to the file named out, or to stdout when out is
// empty.
func writeOutput(out string, stdout io.Writer, data []byte) error {
	if out == "" {
		_, err := stdout.Write(data)
		return err
	}
	return os.WriteFile(out, data, 0o644)
}
