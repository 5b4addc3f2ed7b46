package decision

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// ignoreLine compares rules as a file states them: Line is where, not what.
var ignoreLine = cmp.Options{cmpopts.IgnoreFields(Rule{}, "Line"), cmpopts.EquateEmpty()}

// TestParseRulesRejects reads one fixture per problem and asserts the exact
// messages, each with file, line and field.
func TestParseRulesRejects(t *testing.T) {
	tests := []struct {
		file string
		want []string
	}{
		{"alias.yaml", []string{
			`alias.yaml:2: YAML anchors and aliases (&name, *name) are not accepted; write the value out`,
			`alias.yaml:6: YAML anchors and aliases (&name, *name) are not accepted; write the value out`,
		}},
		{"bad_bool.yaml", []string{
			`bad_bool.yaml:5: rule "moved": case_insensitive: must be true or false, found "yes"`,
		}},
		{"bad_cache_max_age.yaml", []string{
			`bad_cache_max_age.yaml:5: rule "moved": cache_max_age: "1d" is not a duration; accepted: a number of seconds such as 86400, or a duration such as 24h or 90m`,
		}},
		{"bad_header.yaml", []string{
			`bad_header.yaml:6: rule "german": headers: "Accept-Language" is not lower-case; request header names are compared lower-case, write "accept-language"`,
		}},
		{"bad_intent.yaml", []string{
			`bad_intent.yaml:5: rule "moved": intent: unknown intent "forever"; accepted: permanent, temporary, see_other`,
		}},
		{"bad_json_open_redirect.json", []string{
			`bad_json_open_redirect.json:7: rule "escape": to: "/\\evil.example/" contains a backslash, which browsers read as '/' (so /\host is an open redirect); write '/' or %5C`,
		}},
		{"bad_json_status.json", []string{
			`bad_json_status.json:7: rule "moved": status: must be a number, found "301"; accepted: 301, 302, 303, 307, 308 (or omit it to choose from the intent)`,
		}},
		{"bad_json_unknown_field.json", []string{
			`bad_json_unknown_field.json:3: rule "b": intnet: unknown field "intnet" (did you mean intent?); accepted: id, host, path, match, to, intent, status, methods, query, query_strip, case_insensitive, trailing_slash, headers, cache_max_age, since`,
		}},
		{"bad_match.yaml", []string{
			`bad_match.yaml:4: rule "moved": match: unknown match "glob"; accepted: exact, prefix, pattern, regex`,
		}},
		{"bad_pattern.yaml", []string{
			`bad_pattern.yaml:4: rule "blog": path: pattern "/blog/*/:slug" has '*' before the last segment; '*' is accepted only as the whole last segment (captured as :splat)`,
		}},
		{"bad_query.yaml", []string{
			`bad_query.yaml:5: rule "moved": query: unknown query policy "merge"; accepted: keep, drop`,
		}},
		{"bad_query_strip.yaml", []string{
			`bad_query_strip.yaml:5: rule "moved": query_strip: "utm_[" is not a valid glob (* ? [a-z] \x); accepted: parameter names or globs such as utm_*`,
		}},
		{"bad_regex.yaml", []string{
			"bad_regex.yaml:4: rule \"posts\": path: is not a valid RE2 regular expression: missing closing ): `/posts/(\\d+`",
		}},
		{"bad_since.yaml", []string{
			`bad_since.yaml:6: rule "moved": since: "2026-13-01" is not an RFC 3339 time; accepted: a time such as 2026-11-01T00:00:00Z`,
		}},
		{"bad_status.yaml", []string{
			`bad_status.yaml:5: rule "gone": status: 404 is not a redirect status; accepted: 301, 302, 303, 307, 308 (or omit it to choose from the intent)`,
		}},
		{"bad_trailing_slash.yaml", []string{
			`bad_trailing_slash.yaml:5: rule "moved": trailing_slash: unknown trailing_slash "always"; accepted: ignore, strict`,
		}},
		{"capture_in_host.yaml", []string{
			`capture_in_host.yaml:5: rule "tenant": to: the capture $1 is in the scheme or host of "https://$1.example.com/$2"; captures may appear only in the path, query or fragment (open-redirect guard)`,
		}},
		{"crlf_target.yaml", []string{
			`crlf_target.yaml:4: rule "split": to: contains CR or LF, which would split the Location header (response splitting); accepted: an absolute http or https URL such as https://example.com/new, or an absolute path such as /new`,
		}},
		{"dup_field.yaml", []string{
			`dup_field.yaml:5: rule "docs-moved": path: given twice in one rule (first at line 3)`,
		}},
		{"dup_id.yaml", []string{
			`dup_id.yaml:8: rule "docs-moved": id: duplicate id, first used at line 2; every rule needs its own id`,
		}},
		{"host_with_port.yaml", []string{
			`host_with_port.yaml:3: rule "moved": host: "example.com:8080" has a port; the port is dropped from request hosts before matching, so write the host name only`,
		}},
		{"lowercase_method.yaml", []string{
			`lowercase_method.yaml:5: rule "moved": methods: "get" is not upper-case; method names are case-sensitive (RFC 9110 section 9.1), write "GET"`,
		}},
		{"methods_not_list.yaml", []string{
			`methods_not_list.yaml:5: rule "moved": methods: must be a list such as [a, b], found "GET"`,
		}},
		{"missing_id.yaml", []string{
			`missing_id.yaml:2: id: missing; every rule needs a unique id, such as docs-moved`,
		}},
		{"missing_to.yaml", []string{
			`missing_to.yaml:2: rule "moved": to: missing; accepted: an absolute http or https URL such as https://example.com/new, or an absolute path such as /new`,
		}},
		{"negative_cache_max_age.yaml", []string{
			`negative_cache_max_age.yaml:5: rule "moved": cache_max_age: -60 is negative; accepted: a number of seconds >= 0`,
		}},
		{"open_redirect.yaml", []string{
			`open_redirect.yaml:4: rule "anywhere": to: "//evil.example/phish" starts with "//", which browsers read as another host (open redirect); accepted: an absolute http or https URL such as https://example.com/new, or an absolute path such as /new`,
		}},
		{"relative_path.yaml", []string{
			`relative_path.yaml:3: rule "moved": path: "old" does not start with '/'; accepted: an absolute path such as /docs`,
		}},
		{"rule_not_mapping.yaml", []string{
			`rule_not_mapping.yaml:2: rules[0] is "/old /new 301"; each rule is a mapping of field: value (id, path, to, ...)`,
		}},
		{"rules_not_list.yaml", []string{
			`rules_not_list.yaml:2: rules: must be a list of rules, found a mapping`,
		}},
		{"several_problems.yaml", []string{
			`several_problems.yaml:6: rule "one": status: 200 is not a redirect status; accepted: 301, 302, 303, 307, 308 (or omit it to choose from the intent)`,
			`several_problems.yaml:9: rule "two": to: "javascript:alert(1)" is neither an absolute path nor an absolute URL; accepted: an absolute http or https URL such as https://example.com/new, or an absolute path such as /new`,
			`several_problems.yaml:10: rule "one": id: duplicate id, first used at line 3; every rule needs its own id`,
			`several_problems.yaml:13: rule "one": methods: "post" is not upper-case; method names are case-sensitive (RFC 9110 section 9.1), write "POST"`,
		}},
		{"status_not_number.yaml", []string{
			`status_not_number.yaml:5: rule "gone": status: must be a number, found "moved"; accepted: 301, 302, 303, 307, 308 (or omit it to choose from the intent)`,
		}},
		{"syntax_error.yaml", []string{
			`syntax_error.yaml:4: not valid YAML or JSON: mapping values are not allowed in this context`,
		}},
		{"top_level_list.yaml", []string{
			`top_level_list.yaml:1: the top level is a list; put the rules under a rules: key (rules:\n  - id: ...)`,
		}},
		{"two_documents.yaml", []string{
			`two_documents.yaml:5: a second YAML document (after ---); accepted: one document with rules:`,
		}},
		{"unknown_field.yaml", []string{
			`unknown_field.yaml:5: rule "docs-moved": stauts: unknown field "stauts" (did you mean status?); accepted: id, host, path, match, to, intent, status, methods, query, query_strip, case_insensitive, trailing_slash, headers, cache_max_age, since`,
		}},
		{"unknown_top_level.yaml", []string{
			`unknown_top_level.yaml:1: unknown top-level field "version"; accepted: rules`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata", "rules", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			rules, err := ParseRules(tt.file, data)
			var rerr *RulesError
			if !errors.As(err, &rerr) {
				t.Fatalf("ParseRules = %d rules, %v; want a *RulesError", len(rules), err)
			}
			if rules != nil {
				t.Errorf("ParseRules returned %d rules with an error; want none", len(rules))
			}
			got := problemStrings(rerr.Problems)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("problems (-want +got):\n%s", diff)
			}
			for _, p := range rerr.Problems {
				if p.File != tt.file || p.Line == 0 || p.Severity != SeverityError {
					t.Errorf("problem %+v: want File %q, a line and severity error", p, tt.file)
				}
			}
		})
	}
}

func TestParseRulesEmpty(t *testing.T) {
	for _, file := range []string{"empty.yaml", "comments_only.yaml", "empty_rules.yaml", "null_rules.yaml"} {
		t.Run(file, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata", "rules", file))
			if err != nil {
				t.Fatal(err)
			}
			rules, err := ParseRules(file, data)
			if err != nil || len(rules) != 0 {
				t.Errorf("ParseRules = %v, %v; want no rules and no error", rules, err)
			}
		})
	}
}

// TestParseRulesYAMLAndJSON reads the same rules written as YAML and as
// JSON: the same values, and lines that point into each file.
func TestParseRulesYAMLAndJSON(t *testing.T) {
	want := []Rule{
		{ID: "docs", Host: "example.com", Path: "/docs", Match: MatchPrefix, To: "https://docs.example.com",
			Intent: IntentPermanent, Methods: []string{"GET", "HEAD"}},
		{ID: "blog", Match: MatchPattern, Path: "/blog/:year/*", To: "/news/:year/:splat", Query: QueryDrop,
			QueryStrip: []string{"utm_*"}, Headers: map[string]string{"accept-language": "de*"},
			CacheMaxAge: 24 * time.Hour, Since: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)},
	}
	for _, tt := range []struct {
		file  string
		lines []int
	}{
		{"valid.yaml", []int{3, 10}},
		{"valid.json", []int{3, 12}},
	} {
		t.Run(tt.file, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata", "rules", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			got, err := ParseRules(tt.file, data)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, got, ignoreLine); diff != "" {
				t.Errorf("rules (-want +got):\n%s", diff)
			}
			for i, r := range got {
				if i < len(tt.lines) && r.Line != tt.lines[i] {
					t.Errorf("rule %s: Line = %d, want %d", r.ID, r.Line, tt.lines[i])
				}
			}
		})
	}
}

// roundTripRules are valid rules with every field and strings that need
// quoting in YAML.
func roundTripRules() []Rule {
	since := time.Date(2026, 11, 1, 12, 30, 0, 123456789, time.FixedZone("", 2*3600))
	return []Rule{
		{ID: "plain", Path: "/old", To: "/new"},
		{ID: "every-field", Host: "*.example.org", Path: "/blog/:year/*", Match: MatchPattern,
			To: "https://example.com/:year/:splat?from=blog#top", Intent: IntentSeeOther, Status: 303,
			Methods: []string{"GET", "HEAD", "POST"}, Query: QueryDrop, QueryStrip: []string{"utm_*", "fbclid", "a,b"},
			CaseInsensitive: true, TrailingSlash: TrailingSlashStrict,
			Headers:     map[string]string{"accept-language": "de*", "x-empty": "", "x-colon": "a:b", "cookie": "{x}"},
			CacheMaxAge: 90 * time.Minute, Since: since},
		{ID: "regex", Path: `/p/(?P<id>\d+)/(.*)`, Match: MatchRegex, To: "/items/${id}/$2", Intent: IntentPermanent},
		{ID: "404", Path: "/true", To: "/null"},
		{ID: "true", Path: "/a", To: "/b#c"},
		{ID: "yes", Path: "/a: b", To: "/x:"},
		{ID: `"quoted"'id'#not-a-comment`, Path: "/café/ü x", To: "/caf%C3%A9", Host: "xn--bcher-kva.example"},
		{ID: "-dash", Path: "/[x]", To: "/{y}", Intent: IntentTemporary, Status: 302},
		{ID: "_underscore", Path: "/prefix/", Match: MatchPrefix, To: "/p", TrailingSlash: TrailingSlashStrict, Status: 301},
		{ID: "~", Path: "/", Match: MatchPrefix, To: "https://[2001:db8::1]:8443/"},
		{ID: "@at", Path: "/a", To: "/b", Headers: map[string]string{"x": `back\slash "q"`}},
		{ID: "unicode-lines", Path: "/a\u2028b\u2029c\ufeffd", To: "/x"},
	}
}

func TestMarshalRulesRoundTrip(t *testing.T) {
	rules := roundTripRules()
	for i := range rules {
		if ps := checkRule(&rules[i]); len(ps) > 0 {
			t.Fatalf("fixture rule %q is not valid: %v", rules[i].ID, ps)
		}
	}
	data := MarshalRules(rules)
	got, err := ParseRules("marshalled", data)
	if err != nil {
		t.Fatalf("ParseRules(MarshalRules(rules)): %v\n%s", err, data)
	}
	if diff := cmp.Diff(rules, got, ignoreLine); diff != "" {
		t.Errorf("round trip (-want +got):\n%s\n%s", diff, data)
	}
	// Canonical output takes the fast path, and yaml.v3 agrees with it.
	fast, _, ok := parseCanonical(data, 4)
	if !ok {
		t.Fatalf("MarshalRules output did not take the fast path:\n%s", data)
	}
	slow, _, _, problems := parseYAML(data)
	if len(problems) > 0 {
		t.Fatalf("yaml.v3 path: %v", problems)
	}
	if diff := cmp.Diff(slow, fast, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("fast path differs from yaml.v3 (-yaml +fast):\n%s", diff)
	}
	if again := MarshalRules(got); !bytes.Equal(again, data) {
		t.Errorf("MarshalRules is not stable:\n%s\nthen\n%s", data, again)
	}
}

func TestMarshalRulesCanonical(t *testing.T) {
	tests := []struct {
		name  string
		rules []Rule
		want  string
	}{
		{"empty", nil, "rules: []\n"},
		{"defaults left out", []Rule{{ID: "a", Path: "/a", To: "/b", Line: 9}},
			"rules:\n  - id: a\n    path: /a\n    to: /b\n"},
		{"design order", []Rule{{
			ID: "docs-moved", Host: "example.com", Path: "/docs", Match: MatchPrefix, To: "https://docs.example.com",
			Intent: IntentPermanent, Status: 308, Methods: []string{"GET", "HEAD"}, Query: QueryDrop,
			QueryStrip: []string{"utm_*", "fbclid"}, CaseInsensitive: true, TrailingSlash: TrailingSlashStrict,
			Headers: map[string]string{"b": "2", "a": "1"}, CacheMaxAge: 86400 * time.Second,
			Since: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC),
		}}, `rules:
  - id: docs-moved
    host: example.com
    path: /docs
    match: prefix
    to: https://docs.example.com
    intent: permanent
    status: 308
    methods: [GET, HEAD]
    query: drop
    query_strip: [utm_*, fbclid]
    case_insensitive: true
    trailing_slash: strict
    headers: {a: "1", b: "2"}
    cache_max_age: 86400
    since: 2026-11-01T00:00:00Z
`},
		{"quoting", []Rule{{ID: "1", Path: "/a\\d", Match: MatchRegex, To: "/b: c", Intent: IntentTemporary}},
			"rules:\n  - id: \"1\"\n    path: /a\\d\n    match: regex\n    to: \"/b: c\"\n    intent: temporary\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(MarshalRules(tt.rules)); got != tt.want {
				t.Errorf("MarshalRules:\n%s\nwant:\n%s", got, tt.want)
			}
		})
	}
}

func TestParseRulesLimits(t *testing.T) {
	data := MarshalRules(roundTripRules()[:3])
	tests := []struct {
		name               string
		maxBytes, maxRules int
		want               string
	}{
		{"too many bytes", len(data) - 1, 10,
			fmt.Sprintf("big.yaml: the file is %d bytes; accepted: at most %d (0 MiB)", len(data), len(data)-1)},
		{"too many rules", len(data), 2, "big.yaml: the file has 3 rules; accepted: at most 2"},
		{"at the limits", len(data), 3, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := parseRules("big.yaml", data, tt.maxBytes, tt.maxRules)
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tt.want {
				t.Errorf("parseRules error = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestParseRulesFastPathAgrees runs both readers over every fixture: where
// the fast path accepts a file, yaml.v3 must read the same rules from it.
func TestParseRulesFastPathAgrees(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "rules", "*"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	fastCount := 0
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		fast, fastLines, ok := parseCanonical(data, 4)
		if !ok {
			continue
		}
		fastCount++
		if msg := disagreesWithYAML(data, fast, fastLines); msg != "" {
			t.Errorf("%s: %s", file, msg)
		}
	}
	if fastCount < 10 {
		t.Errorf("only %d fixtures took the fast path; the comparison covers too little", fastCount)
	}
}

// disagreesWithYAML says how yaml.v3 reads data differently from the fast
// path's rules and field lines, or "" when it reads the same.
func disagreesWithYAML(data []byte, fast []Rule, fastLines []fieldLines) string {
	slow, slowLines, _, problems := parseYAML(data)
	if len(problems) > 0 {
		return fmt.Sprintf("fast path accepted what yaml.v3 rejects: %v", problems)
	}
	if diff := cmp.Diff(slow, fast, cmpopts.EquateEmpty()); diff != "" {
		return "fast path differs from yaml.v3 (-yaml +fast):\n" + diff
	}
	if diff := cmp.Diff(slowLines, fastLines, cmpopts.EquateEmpty()); diff != "" {
		return "field lines differ (-yaml +fast):\n" + diff
	}
	return ""
}

// genRules makes n valid rules of the mix a large site has: mostly exact,
// some prefix and pattern, a few hosts.
func genRules(n int) []Rule {
	hosts := []string{"", "example.com", "www.example.com", "*.example.org"}
	rules := make([]Rule, n)
	for i := range rules {
		r := Rule{ID: fmt.Sprintf("r%d", i), Host: hosts[i%len(hosts)],
			Path: fmt.Sprintf("/old/section-%d/page-%d", i%97, i), To: fmt.Sprintf("https://example.com/new/%d", i)}
		switch i % 20 {
		case 0, 1, 2:
			r.Match, r.Intent = MatchPrefix, IntentPermanent
		case 3:
			r.Match, r.Path, r.To = MatchPattern, fmt.Sprintf("/blog-%d/:slug/*", i), "/posts/:slug/:splat"
		}
		rules[i] = r
	}
	return rules
}

func TestGenRulesRoundTrip(t *testing.T) {
	rules := genRules(1000)
	got, err := ParseRules("gen", MarshalRules(rules))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(rules, got, ignoreLine); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
}

// BenchmarkParseRules reads a generated canonical file (the fast path) and
// the same rules as JSON (the yaml.v3 path).
func BenchmarkParseRules(b *testing.B) {
	for _, n := range []int{100_000, 1_000_000} {
		rules := genRules(n)
		canonical := MarshalRules(rules)
		var js bytes.Buffer
		js.WriteString("{\"rules\": [\n")
		for i, r := range rules {
			if i > 0 {
				js.WriteString(",\n")
			}
			fmt.Fprintf(&js, `{"id": %q, "host": %q, "path": %q, "to": %q}`, r.ID, r.Host, r.Path, r.To)
		}
		js.WriteString("\n]}\n")
		for _, in := range []struct {
			name string
			data []byte
		}{{"canonical", canonical}, {"json", js.Bytes()}} {
			if in.name == "json" && n > 100_000 {
				continue // yaml.v3 node trees at 1M rules: many seconds and GBs
			}
			b.Run(fmt.Sprintf("%s/rules=%d", in.name, n), func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(len(in.data)))
				for b.Loop() {
					if _, err := ParseRules("bench", in.data); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/rule")
			})
		}
	}
}

func BenchmarkMarshalRules(b *testing.B) {
	for _, n := range []int{100_000, 1_000_000} {
		rules := genRules(n)
		b.Run(fmt.Sprintf("rules=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			var size int
			for b.Loop() {
				size = len(MarshalRules(rules))
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/rule")
			b.ReportMetric(float64(size)/float64(n), "bytes/rule")
		})
	}
}

// TestParseCanonicalInPieces reads a file big enough to be split into
// pieces parsed on their own goroutines, with blank lines and comments at
// the cuts' neighbourhood, and wants what yaml.v3 reads: the same rules,
// lines and field lines.
func TestParseCanonicalInPieces(t *testing.T) {
	rules := genRules(30000)
	rules[7].Methods, rules[9].QueryStrip = []string{"GET", "HEAD"}, []string{"utm_*"}
	var data []byte
	for i, line := range bytes.SplitAfter(MarshalRules(rules), []byte("\n")) {
		data = append(data, line...)
		if i%997 == 0 { // every few hundred rules: a blank line and a comment
			data = append(data, "\n  # a comment\n"...)
		}
	}
	if pieces := splitRules(data, []byte("  - "), 4); len(pieces) < 2 {
		t.Fatalf("a %d-byte file made %d piece(s); the test wants it split", len(data), len(pieces))
	}
	fast, fastLines, ok := parseCanonical(data, 4)
	if !ok {
		t.Fatal("the fast path refused a canonical file")
	}
	if msg := disagreesWithYAML(data, fast, fastLines); msg != "" {
		t.Error(msg)
	}
	// A rule line the count did not see (here, indented wrongly in the
	// last piece) must fail the fast path, not drop or shift rules.
	bad := bytes.Replace(data, []byte("\n  - id: r29000\n"), []byte("\n   - id: r29000\n"), 1)
	if _, _, ok := parseCanonical(bad, 2); ok {
		t.Error("the fast path accepted a misindented rule")
	}
}

// TestParsedRulesOwnTheirText overwrites the file's bytes after parsing:
// no rule may change, on either path, because callers reuse or drop the
// buffer (and the fast path keeps text in an arena of its own).
func TestParsedRulesOwnTheirText(t *testing.T) {
	rules := genRules(3000)
	rules[5].Methods, rules[6].Headers = []string{"GET"}, map[string]string{"x-a": "b*"}
	rules[7].To = "https://example.com/q?a=\"1\"&b=%C3%A9" // quoted, escaped
	for name, data := range map[string][]byte{
		"canonical": MarshalRules(rules),
		"json":      []byte(`{"rules": [{"id": "j", "path": "/j", "to": "/k"}]}`),
	} {
		got, err := ParseRules("r", data)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		want, _ := ParseRules("r", bytes.Clone(data))
		for i := range data {
			data[i] = 'x'
		}
		if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("%s: rules changed with the file's bytes (-before +after):\n%s", name, diff)
		}
	}
}
