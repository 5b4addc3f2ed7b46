package convert_test

import (
	"io"
	"os"
	"strings"
	"testing"

	"github.com/redirectd/redirectd/client/convert"
	"github.com/redirectd/redirectd/decision"
)

// fuzzImport checks what must hold for any input: no panic, every converted
// rule has a unique id, a path from "/" and a line inside the file, every
// problem names a line, exporting the rules does not fail, and the rules
// import writes parse back.
func fuzzImport(f *testing.F, fixture string, imp importFunc, exp exportFunc) {
	data, err := os.ReadFile(fixture)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(string(data))
	for _, line := range strings.Split(string(data), "\n") {
		f.Add(line)
	}
	f.Fuzz(func(t *testing.T, in string) {
		rules, skipped, err := imp("fuzz", strings.NewReader(in))
		if err != nil {
			return // a read error or an unreadable header: nothing converted
		}
		lines := strings.Count(in, "\n") + 1
		ids := map[string]bool{}
		for _, r := range rules {
			if ids[r.ID] {
				t.Fatalf("duplicate id %q", r.ID)
			}
			ids[r.ID] = true
			if !strings.HasPrefix(r.Path, "/") || r.Line < 1 || r.Line > lines {
				t.Fatalf("rule %+v: want a path from / and a line within 1..%d", r, lines)
			}
		}
		for _, p := range skipped {
			if p.Line < 1 || p.Line > lines || p.Message == "" {
				t.Fatalf("problem %+v: want a line within 1..%d and a message", p, lines)
			}
		}
		if _, err := exp(io.Discard, rules); err != nil {
			t.Fatalf("export: %v", err)
		}
		// What import writes (the rules Build accepts) loads back from the
		// rules file.
		kept, _, _, err := convert.Loadable(rules, decision.Options{})
		if err != nil {
			t.Fatalf("Loadable: %v", err)
		}
		if _, err := decision.ParseRules("fuzz.yaml", decision.MarshalRules(kept)); err != nil {
			t.Fatalf("rules import would write do not parse: %v", err)
		}
	})
}

func FuzzImportNetlify(f *testing.F) {
	fuzzImport(f, "testdata/netlify_redirects", convert.ImportNetlify, convert.ExportNetlify)
}

func FuzzImportCSV(f *testing.F) {
	fuzzImport(f, "testdata/cloudflare.csv", convert.ImportCSV, convert.ExportCSV)
}
