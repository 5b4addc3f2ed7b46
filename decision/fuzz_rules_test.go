package decision

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// FuzzParseRules feeds arbitrary bytes to ParseRules: it must never panic;
// whatever it accepts MarshalRules writes back to the same rules through
// the fast path; and wherever the fast path accepts a file, yaml.v3 reads
// the same rules from it.
//
//	go test -run '^$' -fuzz FuzzParseRules -fuzztime 60s ./decision
func FuzzParseRules(f *testing.F) {
	seeds, _ := filepath.Glob(filepath.Join("testdata", "rules", "*"))
	seeds = append(seeds, filepath.Join("..", "deploy", "rules", "example.yaml"))
	for _, file := range seeds {
		if data, err := os.ReadFile(file); err == nil {
			f.Add(data)
		}
	}
	f.Add(MarshalRules(roundTripRules()))
	f.Fuzz(func(t *testing.T, data []byte) {
		if fast, fastLines, ok := parseCanonical(data); ok {
			slow, slowLines, _, problems := parseYAML(data)
			if len(problems) > 0 {
				t.Fatalf("fast path accepted what yaml.v3 rejects: %v", problems)
			}
			if diff := cmp.Diff(slow, fast, cmpopts.EquateEmpty()); diff != "" {
				t.Fatalf("fast path differs from yaml.v3 (-yaml +fast):\n%s", diff)
			}
			if diff := cmp.Diff(slowLines, fastLines, cmpopts.EquateEmpty()); diff != "" {
				t.Fatalf("field lines differ (-yaml +fast):\n%s", diff)
			}
		}
		rules, err := ParseRules("fuzz", data)
		if err != nil {
			return
		}
		out := MarshalRules(rules)
		again, err := ParseRules("marshalled", out)
		if err != nil {
			t.Fatalf("ParseRules(MarshalRules(rules)): %v\n%s", err, out)
		}
		if diff := cmp.Diff(rules, again, ignoreLine); diff != "" {
			t.Fatalf("round trip (-parsed +reparsed):\n%s\n%s", diff, out)
		}
		if _, _, ok := parseCanonical(out); !ok {
			t.Fatalf("MarshalRules output did not take the fast path:\n%s", out)
		}
	})
}
