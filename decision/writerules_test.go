package decision

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"gopkg.in/yaml.v3"
)

// writeRules is WriteRules into memory.
func writeRules(t testing.TB, f Format, rules []Rule) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := WriteRules(&b, f, RuleSeq(rules)); err != nil {
		t.Fatalf("WriteRules(%v): %v", f, err)
	}
	return b.Bytes()
}

var formats = []Format{FormatYAML, FormatJSON, FormatJSONL}

// roundTripRules are valid rules with every field and strings that need
// quoting in YAML.
func roundTripRules() []Rule {
	since := time.Date(2026, 11, 1, 12, 30, 0, 123456789, time.FixedZone("", 2*3600))
	return []Rule{
		{ID: "plain", Path: "/old", To: "/new"},
		{ID: "every-field", Host: "*.example.org", Path: "/blog/:year/*", Match: MatchPattern,
			To: "https://example.com/:year/:splat?from=blog#top", Intent: IntentSeeOther, Status: 303,
			Methods: []string{"GET", "HEAD", "POST"}, Query: QueryDrop, QueryStrip: []string{"utm_*", "fbclid", "a,b", "utm?", "#x", "-y", "on"},
			CaseInsensitive: true, TrailingSlash: TrailingSlashStrict,
			Headers:     map[string]string{"accept-language": "de?", "x-empty": "", "x-colon": "a:b", "cookie": "{x}", "x-no": "no", "x-num": "0x1F"},
			CacheMaxAge: new(90 * time.Minute), Since: since},
		{ID: "lifecycle", Path: "/l", To: "/m", Intent: IntentPermanent, CacheMaxAge: new(time.Duration(0)), Since: since,
			ActiveFrom: since.Add(time.Hour), ActiveUntil: since.Add(40 * 24 * time.Hour), Mode: ModeShadow, PromoteAfter: 36 * time.Hour},
		{ID: "staged-days", Path: "/s", To: "/t", Status: 308, Since: since, PromoteAfter: 30 * 24 * time.Hour},
		{ID: "regex", Path: `/p/(?P<id>\d+)/(.*)`, Match: MatchRegex, To: "/items/${id}/$2", Intent: IntentPermanent},
		{ID: "404", Path: "/true", To: "/null"},
		{ID: "true", Path: "/a", To: "/b#c"},
		{ID: "yes", Path: "/a: b", To: "/x:"},
		{ID: "Off", Path: "/a", To: "/b?x=1&y=2"},
		{ID: "1:20", Path: "/a", To: "/b"},
		{ID: "2026-01-01", Path: "/a", To: "/b"},
		{ID: "1e3", Path: "/a", To: "/b"},
		{ID: `"quoted"'id'#not-a-comment`, Path: "/café/ü x", To: "/caf%C3%A9", Host: "xn--bcher-kva.example"},
		{ID: "-dash", Path: "/[x]", To: "/{y}", Intent: IntentTemporary, Status: 302},
		{ID: "?q", Path: "/a", To: "/b", QueryStrip: []string{"?", "*", "a?b"}},
		{ID: "_underscore", Path: "/prefix/", Match: MatchPrefix, To: "/p", TrailingSlash: TrailingSlashStrict, Status: 301},
		{ID: "~", Path: "/", Match: MatchPrefix, To: "https://[2001:db8::1]:8443/"},
		{ID: "@at", Path: "/a", To: "/b", Headers: map[string]string{"x": `back\slash "q"`}},
		{ID: "unicode-lines", Path: "/a\u2028b\u2029c\ufeffd", To: "/x"},
		{ID: "conditions", Path: "/", To: "https://:lang.example.org/:lang/", Languages: []string{"en", "fr-CH"},
			Has:     []Condition{{Type: "cookie", Key: "beta", Value: ptr("1")}, {Type: "header", Key: "X-Env"}, {Type: "query", Key: "a: b", Value: ptr("")}},
			Missing: []Condition{{Type: "query", Key: "q", Value: ptr("*?{x}")}, {Type: "header", Key: "no"}}},
		{ID: "émoji-😀", Path: "/ß", To: "/x"},
	}
}

// trickyStrings are strings every writer must keep as they are, in any
// field: YAML indicators and 1.1 words, numbers and times as text,
// non-ASCII and control characters.
var trickyStrings = []string{
	"", "utm?", "de?", "?", "*", "*x", "&a", "!x", "|", ">", "%x", "@x", "`x", "#x", "a #b", "a: b", "a:b", "x:",
	"-", "-x", "- x", "yes", "No", "ON", "off", "y", "N", "null", "~", "Null", "true", "False", "=", "<<",
	"0", "123", "0x1F", "0o17", "1e3", "1_000", ".5", ".inf", ".NaN", "1:20", "2026-01-01", "2026-01-01T00:00:00Z",
	"café", "😀", "\u00a0x", "x\u0085y", "\u2028", "\ufeff", "\x01", "\t", "a\nb", "\r", "\x7f", " x", "x ", `"`, `'`, `\`,
	"{a: b}", "[a]", "a,b", "a]", "}",
}

// trickyRules put each tricky string in every text field; they are
// meant for the reference decoders, not for checkRule.
func trickyRules() []Rule {
	var rules []Rule
	for i, s := range trickyStrings {
		rules = append(rules, Rule{
			ID: s, Host: s, Path: s, To: s, Methods: []string{s, "GET"}, QueryStrip: []string{s},
			Headers: map[string]string{s: s, "x" + strconv.Itoa(i): s},
			Has:     []Condition{{Type: s, Key: s, Value: &trickyStrings[i]}, {Type: s, Key: s}}, Missing: []Condition{{Type: s, Key: s}},
			Languages: []string{s},
		})
	}
	return rules
}

// plainRule is what a rules file states about r, as plain Go values
// (numbers as int64): what a reference decoder must read from the writer's
// output.
func plainRule(r *Rule) map[string]any {
	m := map[string]any{"id": r.ID, "path": r.Path, "to": r.To}
	set := func(name string, v any, present bool) {
		if present {
			m[name] = v
		}
	}
	set("host", r.Host, r.Host != "")
	set("match", r.Match.String(), r.Match != MatchExact)
	set("intent", r.Intent.String(), r.Intent != IntentUnspecified)
	set("status", int64(r.Status), r.Status != 0)
	set("methods", anyList(r.Methods), len(r.Methods) > 0)
	set("query", "drop", r.Query == QueryDrop)
	set("query_strip", anyList(r.QueryStrip), len(r.QueryStrip) > 0)
	set("case_insensitive", true, r.CaseInsensitive)
	set("trailing_slash", "strict", r.TrailingSlash == TrailingSlashStrict)
	headers := map[string]any{}
	for k, v := range r.Headers {
		headers[k] = v
	}
	set("headers", headers, len(r.Headers) > 0)
	conditions := func(list []Condition) []any {
		out := make([]any, len(list))
		for i, c := range list {
			m := map[string]any{"type": c.Type, "key": c.Key}
			if c.Value != nil {
				m["value"] = *c.Value
			}
			out[i] = m
		}
		return out
	}
	set("has", conditions(r.Has), len(r.Has) > 0)
	set("missing", conditions(r.Missing), len(r.Missing) > 0)
	set("languages", anyList(r.Languages), len(r.Languages) > 0)
	if r.CacheMaxAge != nil {
		set("cache_max_age", int64(*r.CacheMaxAge/time.Second), true)
	}
	set("since", r.Since.Format(time.RFC3339Nano), !r.Since.IsZero())
	set("active_from", r.ActiveFrom.Format(time.RFC3339Nano), !r.ActiveFrom.IsZero())
	set("active_until", r.ActiveUntil.Format(time.RFC3339Nano), !r.ActiveUntil.IsZero())
	set("mode", r.Mode.String(), r.Mode != ModeEnforce)
	set("promote_after", formatDuration(r.PromoteAfter), r.PromoteAfter != 0)
	return m
}

func anyList(list []string) []any {
	out := make([]any, len(list))
	for i, s := range list {
		out[i] = s
	}
	return out
}

// plainNumbers makes every number int64, whichever decoder read it.
func plainNumbers(v any) any {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			v[k] = plainNumbers(e)
		}
	case []any:
		for i, e := range v {
			v[i] = plainNumbers(e)
		}
	case int:
		return int64(v)
	case json.Number:
		n, err := v.Int64()
		if err != nil {
			return v.String()
		}
		return n
	}
	return v
}

// referenceRead reads a written rules file with the format's reference
// decoder (yaml.v3, or encoding/json) into plain values: one map per rule.
func referenceRead(f Format, data []byte) ([]any, error) {
	switch f {
	case FormatJSONL:
		var rules []any
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber()
		for dec.More() {
			var r any
			if err := dec.Decode(&r); err != nil {
				return nil, err
			}
			rules = append(rules, plainNumbers(r))
		}
		return rules, nil
	case FormatJSON:
		var doc struct{ Rules []any }
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber()
		err := dec.Decode(&doc)
		return plainNumbers(doc.Rules).([]any), err
	}
	var doc struct{ Rules []any }
	err := yaml.Unmarshal(data, &doc)
	return plainNumbers(doc.Rules).([]any), err
}

// disagreesWithReference says how the format's reference decoder reads
// data differently from the rules it was written from, or "".
func disagreesWithReference(f Format, rules []Rule, data []byte) string {
	got, err := referenceRead(f, data)
	if err != nil {
		return fmt.Sprintf("%v reference decoder: %v\n%s", f, err, data)
	}
	want := make([]any, len(rules))
	for i := range rules {
		want[i] = plainRule(&rules[i])
	}
	if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
		return fmt.Sprintf("%v reference decoder read (-written +read):\n%s\n%s", f, diff, data)
	}
	return ""
}

func TestWriteRulesRoundTrip(t *testing.T) {
	rules := roundTripRules()
	for i := range rules {
		for _, p := range checkRule(&rules[i]) {
			if p.Severity == SeverityError {
				t.Fatalf("fixture rule %q is not valid: %v", rules[i].ID, p)
			}
		}
	}
	for _, f := range formats {
		t.Run(f.String(), func(t *testing.T) {
			data := writeRules(t, f, rules)
			got, err := ParseRules("written."+f.String(), data)
			if err != nil {
				t.Fatalf("ParseRules(WriteRules(rules)): %v\n%s", err, data)
			}
			if diff := cmp.Diff(rules, got, ignoreLine); diff != "" {
				t.Errorf("round trip (-want +got):\n%s\n%s", diff, data)
			}
			if again := writeRules(t, f, got); !bytes.Equal(again, data) {
				t.Errorf("WriteRules is not stable:\n%s\nthen\n%s", data, again)
			}
			if msg := disagreesWithReference(f, rules, data); msg != "" {
				t.Error(msg)
			}
		})
	}
}

// TestWriteRulesReferenceDecoders writes strings that need care in each
// format and reads them back with the reference decoders.
func TestWriteRulesReferenceDecoders(t *testing.T) {
	rules := trickyRules()
	for _, f := range formats {
		if msg := disagreesWithReference(f, rules, writeRules(t, f, rules)); msg != "" {
			t.Error(msg)
		}
	}
}

// TestWriteRulesPyYAML reads the YAML writer's output with PyYAML, a YAML
// 1.1 reader, where python3 has it.
func TestWriteRulesPyYAML(t *testing.T) {
	if err := exec.Command("python3", "-c", "import yaml").Run(); err != nil {
		t.Skipf("python3 with PyYAML (import yaml) is not available: %v", err)
	}
	rules := append(roundTripRules(), trickyRules()...)
	data := writeRules(t, FormatYAML, rules)
	cmd := exec.Command("python3", "-c", `import sys, json, yaml
print(json.dumps(yaml.safe_load(sys.stdin.buffer)))`)
	cmd.Stdin = bytes.NewReader(data)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("PyYAML could not read the YAML writer's output: %v", err)
	}
	// PyYAML's reading, as JSON, is read back with encoding/json.
	if msg := disagreesWithReference(FormatJSON, rules, out); msg != "" {
		t.Error("PyYAML: " + msg)
	}
}

func TestWriteRulesExact(t *testing.T) {
	full := Rule{
		ID: "docs-moved", Host: "example.com", Path: "/docs", Match: MatchPrefix, To: "https://docs.example.com",
		Intent: IntentPermanent, Status: 308, Methods: []string{"GET", "HEAD"}, Query: QueryDrop,
		QueryStrip: []string{"utm_*", "fbclid"}, CaseInsensitive: true, TrailingSlash: TrailingSlashStrict,
		Headers: map[string]string{"b": "2", "a": "1"}, CacheMaxAge: new(86400 * time.Second),
		Has: []Condition{{Type: "cookie", Key: "beta", Value: ptr("1")}}, Missing: []Condition{{Type: "header", Key: "x-no"}},
		Languages: []string{"en", "de"},
		Since:     time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC),
	}
	tests := []struct {
		name   string
		format Format
		rules  []Rule
		want   string
	}{
		{"yaml empty", FormatYAML, nil, "rules: []\n"},
		{"json empty", FormatJSON, nil, "{\"rules\":[]}\n"},
		{"jsonl empty", FormatJSONL, nil, ""},
		{"yaml defaults left out", FormatYAML, []Rule{{ID: "a", Path: "/a", To: "/b", Line: 9}},
			"rules:\n  - id: a\n    path: /a\n    to: /b\n"},
		{"yaml every field in order", FormatYAML, []Rule{full}, `rules:
  - id: docs-moved
    host: example.com
    path: /docs
    match: prefix
    to: https://docs.example.com
    intent: permanent
    status: 308
    methods: [GET, HEAD]
    query: drop
    query_strip: ["utm_*", fbclid]
    case_insensitive: true
    trailing_slash: strict
    headers: {a: "1", b: "2"}
    has: [{type: cookie, key: beta, value: "1"}]
    missing: [{type: header, key: x-no}]
    languages: [en, de]
    cache_max_age: 86400
    since: "2026-11-01T00:00:00Z"
`},
		{"yaml quoting", FormatYAML, []Rule{{ID: "1", Path: "/a\\d", Match: MatchRegex, To: "/b: c", Intent: IntentTemporary, QueryStrip: []string{"utm?"}}},
			"rules:\n  - id: \"1\"\n    path: \"/a\\\\d\"\n    match: regex\n    to: \"/b: c\"\n    intent: temporary\n    query_strip: [\"utm?\"]\n"},
		{"json", FormatJSON, []Rule{{ID: "a", Path: "/a", To: "/b"}, full},
			`{"rules":[` + "\n" + `{"id":"a","path":"/a","to":"/b"},` + "\n" +
				`{"id":"docs-moved","host":"example.com","path":"/docs","match":"prefix","to":"https://docs.example.com","intent":"permanent","status":308,"methods":["GET","HEAD"],"query":"drop","query_strip":["utm_*","fbclid"],"case_insensitive":true,"trailing_slash":"strict","headers":{"a":"1","b":"2"},"has":[{"type":"cookie","key":"beta","value":"1"}],"missing":[{"type":"header","key":"x-no"}],"languages":["en","de"],"cache_max_age":86400,"since":"2026-11-01T00:00:00Z"}` +
				"\n]}\n"},
		{"jsonl", FormatJSONL, []Rule{{ID: "a", Path: "/a", To: "/b&c<d>"}, {ID: "b", Path: "/b", To: "/c", Intent: IntentPermanent, CacheMaxAge: new(time.Hour)}},
			`{"id":"a","path":"/a","to":"/b&c<d>"}` + "\n" + `{"id":"b","path":"/b","to":"/c","intent":"permanent","cache_max_age":3600}` + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(writeRules(t, tt.format, tt.rules)); got != tt.want {
				t.Errorf("WriteRules:\n%s\nwant:\n%s", got, tt.want)
			}
		})
	}
	if got := MarshalRules([]Rule{full}); !bytes.Equal(got, writeRules(t, FormatYAML, []Rule{full})) {
		t.Errorf("MarshalRules differs from WriteRules as YAML:\n%s", got)
	}
}

func TestFormatOf(t *testing.T) {
	for name, want := range map[string]Format{
		"rules.jsonl": FormatJSONL, "/etc/redirectd/R.JSONL": FormatJSONL, "rules.json": FormatJSON,
		"rules.yaml": FormatYAML, "rules.yml": FormatYAML, "rules": FormatYAML, "..data/rules.yaml": FormatYAML,
		"rules.jsonl.tmp-1": FormatYAML,
	} {
		if got := FormatOf(name); got != want {
			t.Errorf("FormatOf(%q) = %v, want %v", name, got, want)
		}
	}
	for _, f := range formats {
		if got, err := ParseFormat(f.String()); got != f || err != nil {
			t.Errorf("ParseFormat(%q) = %v, %v", f.String(), got, err)
		}
	}
	if _, err := ParseFormat("toml"); err == nil || err.Error() != `unknown format "toml"; accepted: yaml, json, jsonl` {
		t.Errorf("ParseFormat(toml) error = %v", err)
	}
}

// TestRuleFieldsTags: the json and yaml tags of ruleFields name the same
// fields, and fieldLines has room for each.
func TestRuleFieldsTags(t *testing.T) {
	if len(ruleFieldNames) != ruleFieldCount {
		t.Fatalf("ruleFields has %d fields; ruleFieldCount says %d", len(ruleFieldNames), ruleFieldCount)
	}
	f := ruleFields{ID: "i", Host: "h", Path: "p", Match: "m", To: "t", Intent: "i", Status: 1, Methods: []string{"m"},
		Query: "q", QueryStrip: []string{"q"}, CaseInsensitive: true, TrailingSlash: "t", Headers: map[string]string{"h": "v"},
		Has: []Condition{{Type: "t"}}, Missing: []Condition{{Type: "t"}}, Languages: []string{"l"},
		CacheMaxAge: []byte("1"), Since: "s", ActiveFrom: "f", ActiveUntil: "u", Mode: "m", PromoteAfter: "p"}
	data, err := json.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	var names map[string]any
	json.Unmarshal(data, &names)
	for _, name := range ruleFieldNames {
		if _, ok := names[name]; !ok {
			t.Errorf("yaml name %q is not a json name of ruleFields", name)
		}
	}
}
