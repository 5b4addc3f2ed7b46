package decision

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
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
			`bad_cache_max_age.yaml:5: rule "moved": cache_max_age: "1y" is not a duration; accepted: a number of seconds such as 86400, or a duration such as 24h, 90m or 7d`,
		}},
		{"bad_header.yaml", []string{
			`bad_header.yaml:6: rule "german": headers: "Accept-Language" is not lower-case; request header names are compared lower-case, write "accept-language"`,
		}},
		{"bad_conditions.yaml", []string{
			`bad_conditions.yaml:6: rule "beta": has: [0]: unknown type "cookies"; accepted: {type: header|cookie|query, key: a name, value: an optional glob with * and ?}`,
			`bad_conditions.yaml:6: rule "beta": has: [1]: empty key; accepted: {type: header|cookie|query, key: a name, value: an optional glob with * and ?}`,
			`bad_conditions.yaml:8: rule "beta": missing: [0]: "a;b" is not a cookie name; accepted: a name without spaces, ';', '=' or quotes (RFC 6265 section 4.1.1)`,
			`bad_conditions.yaml:9: rule "beta": languages: "de_DE" is not a language tag; accepted: language tags such as en, de, fr-CH, zh-Hant (RFC 5646)`,
			`bad_conditions.yaml:9: rule "beta": languages: "EN" is listed twice (tags are compared case-insensitively)`,
		}},
		{"bad_condition_field.yaml", []string{
			`bad_condition_field.yaml:6: rule "beta": has: unknown condition field "valu"; accepted: type, key, value`,
			`bad_condition_field.yaml:7: rule "beta": missing: must be a list, found a mapping; accepted: a list of {type: header|cookie|query, key: a name, value: an optional glob with * and ?}`,
		}},
		{"bad_json_conditions.json", []string{
			`bad_json_conditions.json:3: rule "beta": has: [0]: value must be a text value in quotes, found 1`,
			`bad_json_conditions.json:4: rule "gamma": to: "/:lang/" uses :lang, the tag that languages selects, but the rule has no languages; add languages: [en, de, ...]`,
			`bad_json_conditions.json:5: rule "gamma": missing: [0]: "x y" is not a header name; accepted: a header name such as x-beta (RFC 9110 section 5.1)`,
			`bad_json_conditions.json:7: rule "delta": has: [0]: unknown condition field "valu"; accepted: type, key, value`,
		}},
		{"bad_intent.yaml", []string{
			`bad_intent.yaml:5: rule "moved": intent: unknown intent "forever"; accepted: permanent, temporary, see_other`,
		}},
		{"bad_json_open_redirect.json", []string{
			`bad_json_open_redirect.json:7: rule "escape": to: "/\\evil.example/" contains a backslash, which browsers read as '/' (so /\host is an open redirect); write '/' or %5C`,
		}},
		{"bad_json_status.json", []string{
			`bad_json_status.json:7: rule "moved": status: must be a whole number, found "301"; accepted: 301, 302, 303, 307, 308 (or omit it to choose from the intent)`,
		}},
		{"bad_json_unknown_field.json", []string{
			`bad_json_unknown_field.json:3: rule "b": intnet: unknown field "intnet" (did you mean intent?); accepted: id, host, path, match, to, intent, status, methods, query, query_strip, case_insensitive, trailing_slash, headers, has, missing, languages, cache_max_age, since, active_from, active_until, mode, promote_after`,
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
		{"bad_mode.yaml", []string{
			`bad_mode.yaml:5: rule "trial": mode: unknown mode "dry-run"; accepted: enforce, shadow`,
		}},
		{"bad_active_until.yaml", []string{
			`bad_active_until.yaml:5: rule "sale": active_until: "2027-01-01" is not an RFC 3339 time; accepted: a time such as 2026-11-01T00:00:00Z`,
		}},
		{"bad_promote_after.yaml", []string{
			`bad_promote_after.yaml:7: rule "moved": promote_after: "1 month" is not a duration; accepted: a duration such as 30d, 12h or 1d12h`,
		}},
		{"promote_after_without_since.yaml", []string{
			`promote_after_without_since.yaml:6: rule "moved": promote_after: needs since, the time its 30d of temporary answers count from; add since with the rule's creation time, such as since: 2026-12-01T00:00:00Z (the admin API sets it when it creates a rule)`,
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
			`negative_cache_max_age.yaml:5: rule "moved": cache_max_age: -60 is negative; accepted: a number of seconds >= 0 (0: not cacheable)`,
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
			`syntax_error.yaml:4: not valid YAML: mapping values are not allowed in this context`,
		}},
		{"top_level_list.yaml", []string{
			`top_level_list.yaml:1: the top level is a list; put the rules under a rules: key (rules:\n  - id: ...)`,
		}},
		{"two_documents.yaml", []string{
			`two_documents.yaml:5: a second YAML document (after ---); accepted: one document with rules:`,
		}},
		{"unknown_field.yaml", []string{
			`unknown_field.yaml:5: rule "docs-moved": stauts: unknown field "stauts" (did you mean status?); accepted: id, host, path, match, to, intent, status, methods, query, query_strip, case_insensitive, trailing_slash, headers, has, missing, languages, cache_max_age, since, active_from, active_until, mode, promote_after`,
		}},
		{"several_problems.jsonl", []string{
			"several_problems.jsonl:4: id: must be a text value in quotes, found 7",
			`several_problems.jsonl:4: stauts: unknown field "stauts" (did you mean status?); accepted: id, host, path, match, to, intent, status, methods, query, query_strip, case_insensitive, trailing_slash, headers, has, missing, languages, cache_max_age, since, active_from, active_until, mode, promote_after`,
			`several_problems.jsonl:5: rule "c": path: given twice in one rule`,
			`several_problems.jsonl:7: rule "a": intent: unknown intent "forever"; accepted: permanent, temporary, see_other`,
			`several_problems.jsonl:7: rule "a": id: duplicate id, first used at line 2; every rule needs its own id`,
			`several_problems.jsonl:8: rule "d": case_insensitive: must be true or false, found "yes"`,
			`several_problems.jsonl:8: rule "d": query_strip: must be a list of texts such as ["GET", "HEAD"], found "utm_*"`,
			`several_problems.jsonl:9: rule "e": text after the rule object; accepted: one rule object per line`,
			`several_problems.jsonl:10: rule "g": not valid JSON: unexpected EOF`,
		}},
		{"several_problems.json", []string{
			`several_problems.json:8: rule "x": methods: must be a list of texts such as ["GET", "HEAD"], found 3 in the list`,
			`several_problems.json:9: rule "x": headers: "x-a" given twice`,
			`several_problems.json:10: rule "x": cache_max_age: "1y" is not a duration; accepted: a number of seconds such as 86400, or a duration such as 24h, 90m or 7d`,
			`several_problems.json:12: rule "ok": id: duplicate id, first used at line 3; every rule needs its own id`,
		}},
		{"top_level_list.json", []string{
			`top_level_list.json:1: the top level is a list; put the rules under a "rules" key: {"rules": [ ... ]}`,
		}},
		{"unknown_top_level.json", []string{
			`unknown_top_level.json:1: unknown top-level field "version"; accepted: rules`,
		}},
		{"two_documents.json", []string{
			`two_documents.json:2: text after the top-level object; accepted: one object {"rules": [ ... ]}`,
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
	for _, file := range []string{"empty.yaml", "comments_only.yaml", "empty_rules.yaml", "null_rules.yaml",
		"empty.json", "empty_rules.json", "empty.jsonl", "comments_only.jsonl"} {
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

// TestParseRulesYAMLAndJSON reads the same rules written as YAML, JSON
// and JSON Lines: the same values, and lines that point into each file.
func TestParseRulesYAMLAndJSON(t *testing.T) {
	want := []Rule{
		{ID: "docs", Host: "example.com", Path: "/docs", Match: MatchPrefix, To: "https://docs.example.com",
			Intent: IntentPermanent, Methods: []string{"GET", "HEAD"}},
		{ID: "blog", Match: MatchPattern, Path: "/blog/:year/*", To: "/news/:year/:splat", Query: QueryDrop,
			QueryStrip: []string{"utm_*"}, Headers: map[string]string{"accept-language": "de*"},
			CacheMaxAge: new(24 * time.Hour), Since: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)},
		{ID: "home", Path: "/", To: "/:lang/",
			Has:       []Condition{{Type: "cookie", Key: "beta", Value: ptr("1")}, {Type: "header", Key: "X-Env"}},
			Missing:   []Condition{{Type: "query", Key: "nolang"}},
			Languages: []string{"en", "de", "fr-CH"}},
	}
	for _, tt := range []struct {
		file  string
		lines []int
	}{
		{"valid.yaml", []int{3, 10, 20}},
		{"valid.json", []int{3, 12, 23}},
		{"valid.jsonl", []int{2, 4, 5}},
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

// TestParseRulesLimits: the limits hold in every format.
func TestParseRulesLimits(t *testing.T) {
	for _, format := range []Format{FormatYAML, FormatJSON, FormatJSONL} {
		file := "big." + format.String()
		data := writeRules(t, format, roundTripRules()[:3])
		tests := []struct {
			name               string
			maxBytes, maxRules int
			want               string
		}{
			{"too many bytes", len(data) - 1, 10,
				fmt.Sprintf("%s: the file is %d bytes; accepted: at most %d (0 MiB)", file, len(data), len(data)-1)},
			{"too many rules", len(data), 2, file + ": the file has 3 rules; accepted: at most 2"},
			{"at the limits", len(data), 3, ""},
		}
		for _, tt := range tests {
			t.Run(file+"/"+tt.name, func(t *testing.T) {
				_, _, err := parseRules(file, data, tt.maxBytes, tt.maxRules)
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
}

// TestParseRulesWarningLines: a warning comes back from parseRules with
// the file and the line of its field, in every format, also when the rule
// object spans lines.
func TestParseRulesWarningLines(t *testing.T) {
	for _, tt := range []struct{ file, data string }{
		{"w.yaml", "rules:\n  - id: a\n    match: prefix\n    to: /b\n    path: /docs/\n"},
		{"w.json", "{\"rules\": [\n {\"id\": \"a\",\n  \"match\": \"prefix\",\n  \"to\": \"/b\",\n  \"path\": \"/docs/\"}]}"},
		{"w.jsonl", "#\n\n\n\n{\"id\": \"a\", \"match\": \"prefix\", \"to\": \"/b\", \"path\": \"/docs/\"}\n"},
	} {
		rules, warns, err := parseRules(tt.file, []byte(tt.data), MaxRulesFileBytes, MaxRules)
		if err != nil || len(rules) != 1 {
			t.Fatalf("%s: %d rules, %v", tt.file, len(rules), err)
		}
		if len(warns) != 1 || warns[0].File != tt.file || warns[0].Line != 5 || warns[0].Field != "path" || warns[0].Severity != SeverityWarning {
			t.Errorf("%s: warnings %+v; want one about path on line 5", tt.file, warns)
		}
	}
}

// TestJSONLinesInPieces reads a JSON Lines file big enough to be split
// into pieces decoded at once, with comments, blank lines, CRLF ends and
// problems spread over it: rules and problems must be exactly those of
// reading it as one piece.
func TestJSONLinesInPieces(t *testing.T) {
	rules := genRules(60_000)
	data := writeRules(t, FormatJSONL, rules)
	var b bytes.Buffer
	for i, line := range bytes.SplitAfter(data, []byte("\n")) {
		switch {
		case i%997 == 0:
			b.WriteString("# a comment\n\n  \t\n")
		case i%4999 == 0:
			line = bytes.Replace(line, []byte(`"to":`), []byte(`"tow":`), 1)
		case i%7919 == 0:
			line = bytes.Replace(line, []byte("\n"), []byte("\r\n"), 1)
		}
		b.Write(line)
	}
	b.WriteString(`{"id":"r1","path":"/dup","to":"/x"}` + "\n")
	data = b.Bytes()
	if len(data) <= splitBytes {
		t.Fatalf("a %d-byte file is not split; the test wants it split", len(data))
	}
	if pieces := splitLines(data, 4); len(pieces) != 4 {
		t.Fatalf("split into %d pieces, want 4", len(pieces))
	}
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	one := parseJSONL(data) // one piece: GOMAXPROCS is 1 here
	for _, n := range []int{2, 3, 7} {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(n))
		got := parseJSONL(data)
		if reflect.DeepEqual(one.rules, got.rules) && reflect.DeepEqual(one.problems, got.problems) {
			continue // cmp.Diff takes seconds over 60,000 rules; it only explains a difference
		}
		if diff := cmp.Diff(one.rules, got.rules, cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("GOMAXPROCS %d: rules differ from one piece (-one +pieces):\n%s", n, diff)
		}
		if diff := cmp.Diff(one.problems, got.problems); diff != "" {
			t.Fatalf("GOMAXPROCS %d: problems differ from one piece (-one +pieces):\n%s", n, diff)
		}
	}
	if len(one.problems) < 10 {
		t.Fatalf("%d problems; the file was made to have more", len(one.problems))
	}
	_, err := ParseRules("big.jsonl", data)
	var re *RulesError
	if !errors.As(err, &re) || re.Problems[len(re.Problems)-1].Field != "id" {
		t.Fatalf("ParseRules: %v; want the problems and the duplicate id last", err)
	}
}

// TestParsedRulesOwnTheirText overwrites the file's bytes after parsing:
// no rule may change, in any format, because callers reuse or drop the
// buffer.
func TestParsedRulesOwnTheirText(t *testing.T) {
	rules := genRules(3000)
	rules[5].Methods, rules[6].Headers = []string{"GET"}, map[string]string{"x-a": "b*"}
	rules[7].To = "https://example.com/q?a=\"1\"&b=%C3%A9" // quoted, escaped
	for _, format := range []Format{FormatYAML, FormatJSON, FormatJSONL} {
		data := writeRules(t, format, rules)
		file := "r." + format.String()
		got, err := ParseRules(file, data)
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		want, _ := ParseRules(file, bytes.Clone(data))
		for i := range data {
			data[i] = 'x'
		}
		if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("%s: rules changed with the file's bytes (-before +after):\n%s", file, diff)
		}
	}
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

// TestMaxCacheAge: a store with Options.MaxCacheAge (the daemon's
// --max-cache-age) refuses a longer cache_max_age in every format and
// through Put, naming file, line, rule and field; without the option the
// same file loads with a warning at the field's line (what lint shows).
func TestMaxCacheAge(t *testing.T) {
	const refused = `rule "forever": cache_max_age: 315360000 seconds (3650d) is more than this server accepts: at most 31536000 seconds (365d), set by redirectd --max-cache-age; a cached redirect cannot be taken back before it expires`
	limit := Options{MaxCacheAge: MaxAdvisedCacheAge}
	// The refusal names the rule's line (compile sees rules, not fields),
	// the warning its field's.
	for file, line := range map[string][2]int{"long_cache_max_age.yaml": {6, 10}, "long_cache_max_age.jsonl": {2, 2}} {
		t.Run(file, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata", "rules", file))
			if err != nil {
				t.Fatal(err)
			}
			_, _, err = LoadRules(file, data, limit)
			if want := fmt.Sprintf("%s:%d: %s", file, line[0], refused); err == nil || err.Error() != want {
				t.Errorf("LoadRules with MaxCacheAge = %v\nwant %s", err, want)
			}
			_, warns, err := LoadRules(file, data, Options{})
			if err != nil {
				t.Fatalf("LoadRules without MaxCacheAge: %v", err)
			}
			if got := problemStrings(warns); len(got) != 1 || !strings.HasPrefix(got[0], fmt.Sprintf("%s:%d: warning: rule \"forever\": cache_max_age: 315360000 seconds (3650d) is more than a year", file, line[1])) {
				t.Errorf("warnings without MaxCacheAge = %q, want one about forever's cache_max_age", got)
			}
		})
	}
	s := NewStore(limit)
	c, err := s.Replace(nil)
	if err != nil {
		t.Fatal(err)
	}
	c.Commit(Info{})
	if _, err := s.Put(Rule{ID: "forever", Path: "/old", To: "/new", CacheMaxAge: new(10 * MaxAdvisedCacheAge), Line: 3}); err == nil ||
		err.Error() != "3: "+refused {
		t.Errorf("Put = %v, want %s", err, refused)
	}
	c, err = s.Put(Rule{ID: "year", Path: "/old", To: "/new", CacheMaxAge: new(MaxAdvisedCacheAge)})
	if err != nil {
		t.Fatalf("Put of a year: %v", err)
	}
	c.Abort()
}
