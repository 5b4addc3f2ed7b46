package decision

import (
	"os"
	"path/filepath"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
)

// FuzzParseRules feeds arbitrary bytes to ParseRules as each format: it
// must never panic, and whatever it accepts WriteRules writes back to the
// same rules, as the format's reference decoder reads them too.
//
//	go test -run '^$' -fuzz FuzzParseRules -fuzztime 60s ./decision
func FuzzParseRules(f *testing.F) {
	seeds, _ := filepath.Glob(filepath.Join("testdata", "rules", "*"))
	seeds = append(seeds, filepath.Join("..", "deploy", "rules", "example.yaml"))
	for _, file := range seeds {
		if data, err := os.ReadFile(file); err == nil {
			f.Add(data, uint8(FormatOf(file)))
		}
	}
	for _, format := range formats {
		f.Add(writeRules(f, format, roundTripRules()), uint8(format))
	}
	f.Fuzz(func(t *testing.T, data []byte, format uint8) {
		fm := Format(format % 3)
		file := "fuzz." + fm.String()
		rules, err := ParseRules(file, data)
		if err != nil {
			return
		}
		out := writeRules(t, fm, rules)
		again, err := ParseRules(file, out)
		if err != nil {
			t.Fatalf("ParseRules(WriteRules(rules)): %v\n%s", err, out)
		}
		if diff := cmp.Diff(rules, again, ignoreLine); diff != "" {
			t.Fatalf("round trip (-parsed +reparsed):\n%s\n%s", diff, out)
		}
		if msg := disagreesWithReference(fm, rules, out); msg != "" {
			t.Fatal(msg)
		}
	})
}

// FuzzMarshalRules builds a rule from arbitrary strings and writes it in
// each format: the format's reference decoder (yaml.v3, encoding/json)
// must read back exactly the strings written, whether or not the rule is
// valid; a valid rule must also read back through ParseRules.
//
//	go test -run '^$' -fuzz FuzzMarshalRules -fuzztime 60s ./decision
func FuzzMarshalRules(f *testing.F) {
	f.Add("docs", "example.com", "/docs", "https://docs.example.com", uint8(1), uint8(1), "GET", "utm_*", "accept-language", "de*")
	f.Add("1", "", `/p/(?P<id>\d+)`, "/items/${id}?x=$1", uint8(3), uint8(0), "", "", "", "")
	f.Add(`"q" #`, "*.example.org", "/a: b/:x/*", "/:x/:splat#f", uint8(2), uint8(3), "POST", "a,b", "x", "{y}")
	f.Add("yes", "on", "/a", "/b", uint8(0), uint8(0), "GET", "utm?", "accept-language", "de?")
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
		for _, s := range []string{id, host, path, to, method, strip, header, glob} {
			if !utf8.ValidString(s) {
				return // no format can hold it; checkRule refuses it
			}
		}
		valid := true
		for _, p := range checkRule(&r) {
			valid = valid && p.Severity != SeverityError
		}
		for _, format := range formats {
			out := writeRules(t, format, []Rule{r})
			if msg := disagreesWithReference(format, []Rule{r}, out); msg != "" {
				t.Fatal(msg)
			}
			if !valid {
				continue
			}
			got, err := ParseRules("written."+format.String(), out)
			if err != nil {
				t.Fatalf("ParseRules(WriteRules(valid rule)): %v\n%s", err, out)
			}
			if diff := cmp.Diff([]Rule{r}, got, ignoreLine); diff != "" {
				t.Fatalf("round trip (-want +got):\n%s\n%s", diff, out)
			}
		}
	})
}
