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
		if fast, fastLines, ok := parseCanonical(data, 2); ok {
			if msg := disagreesWithYAML(data, fast, fastLines); msg != "" {
				t.Fatal(msg)
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
		if _, _, ok := parseCanonical(out, 2); !ok {
			t.Fatalf("MarshalRules output did not take the fast path:\n%s", out)
		}
	})
}

// FuzzMarshalRules builds rules from arbitrary strings: for every valid one
// MarshalRules must round-trip through the fast path; for any rule at all,
// where the fast path reads MarshalRules' output, yaml.v3 must agree.
//
//	go test -run '^$' -fuzz FuzzMarshalRules -fuzztime 60s ./decision
func FuzzMarshalRules(f *testing.F) {
	f.Add("docs", "example.com", "/docs", "https://docs.example.com", uint8(1), uint8(1), "GET", "utm_*", "accept-language", "de*")
	f.Add("1", "", `/p/(?P<id>\d+)`, "/items/${id}?x=$1", uint8(3), uint8(0), "", "", "", "")
	f.Add(`"q" #`, "*.example.org", "/a: b/:x/*", "/:x/:splat#f", uint8(2), uint8(3), "POST", "a,b", "x", "{y}")
	f.Fuzz(func(t *testing.T, id, host, path, to string, match, intent uint8, method, strip, header, glob string) {
		r := Rule{ID: id, Host: host, Path: path, To: to, Match: MatchKind(match % 4), Intent: Intent(intent % 4)}
		if method != "" {
			r.Methods = []string{method}
		}
		if strip != "" {
			r.QueryStrip = []string{strip}
		}
		if header != "" {
			r.Headers = map[string]string{header: glob}
		}
		out := MarshalRules([]Rule{r})
		fast, _, fastOK := parseCanonical(out, 2)
		if fastOK {
			slow, _, _, problems := parseYAML(out)
			if len(problems) > 0 {
				t.Fatalf("fast path accepted what yaml.v3 rejects: %v\n%s", problems, out)
			}
			if diff := cmp.Diff(slow, fast, cmpopts.EquateEmpty()); diff != "" {
				t.Fatalf("fast path differs from yaml.v3 (-yaml +fast):\n%s\n%s", diff, out)
			}
		}
		for _, p := range checkRule(&r) {
			if p.Severity == SeverityError {
				return
			}
		}
		if !fastOK {
			t.Fatalf("MarshalRules output of a valid rule did not take the fast path:\n%s", out)
		}
		got, err := ParseRules("marshalled", out)
		if err != nil {
			t.Fatalf("ParseRules(MarshalRules(valid rule)): %v\n%s", err, out)
		}
		if diff := cmp.Diff([]Rule{r}, got, ignoreLine); diff != "" {
			t.Fatalf("round trip (-want +got):\n%s\n%s", diff, out)
		}
	})
}
