package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/redirectd/redirectd/decision"
	"github.com/redirectd/redirectd/decision/rulegen"
)

const (
	netlifyFixture = "../../convert/testdata/netlify_redirects"
	csvFixture     = "../../convert/testdata/cloudflare.csv"
)

func TestImportCommand(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantRules  int      // rules on stdout (or in -o), -1 when nothing is written
		wantStderr []string // substrings
	}{
		{
			name: "netlify", args: []string{"import", "--from", "netlify", netlifyFixture}, wantRules: 16,
			wantStderr: []string{
				netlifyFixture + ":30: status 200 is a rewrite",
				netlifyFixture + ":39: condition Country=au,nz",
				netlifyFixture + ": 16 rules converted, 14 lines not converted",
			},
		},
		{
			name: "csv", args: []string{"import", csvFixture, "--from", "csv"}, wantRules: 26,
			wantStderr: []string{csvFixture + ":22: source example.com/contacts is already on line 1", "26 rules converted, 11 lines not converted"},
		},
		{
			name: "strict", args: []string{"import", "--strict", "--from", "netlify", netlifyFixture}, wantCode: 1, wantRules: -1,
			wantStderr: []string{":51: from \"/a-:id\"", "--strict: nothing written"},
		},
		{name: "unknown format", args: []string{"import", "--from", "apache", netlifyFixture}, wantCode: 2, wantRules: -1, wantStderr: []string{`--from "apache": accepted: netlify, csv`}},
		{name: "no file", args: []string{"import", "--from", "csv"}, wantCode: 2, wantRules: -1, wantStderr: []string{"want one FILE"}},
		{name: "missing file", args: []string{"import", "--from", "csv", "nope.csv"}, wantCode: 1, wantRules: -1, wantStderr: []string{"nope.csv"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := cli(t, tt.args...)
			if code != tt.wantCode {
				t.Errorf("exit %d, want %d; stderr:\n%s", code, tt.wantCode, stderr)
			}
			for _, s := range tt.wantStderr {
				if !strings.Contains(stderr, s) {
					t.Errorf("stderr lacks %q:\n%s", s, stderr)
				}
			}
			if tt.wantRules < 0 {
				if stdout != "" {
					t.Errorf("stdout %q, want nothing written", stdout)
				}
				return
			}
			rules, err := decision.ParseRules("stdout", []byte(stdout))
			if err != nil {
				t.Fatalf("output does not parse as a rules file: %v\n%s", err, stdout)
			}
			if len(rules) != tt.wantRules {
				t.Errorf("%d rules written, want %d", len(rules), tt.wantRules)
			}
		})
	}
}

func TestImportLeavesOutWhatWouldNotLoad(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "_redirects")
	// Each line alone parses; lines 1 and 2 loop, line 3 uses a capture its
	// path does not define.
	if err := os.WriteFile(file, []byte("/a /b 301\n/b /a 301\n/y/:id /z/:other 302\n/ok /fine\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := cli(t, "import", "--from", "netlify", file)
	if code != 0 {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr)
	}
	for _, s := range []string{file + ":1: rule \"netlify-L1\": to: redirect cycle", file + ":3: rule \"netlify-L3\"", "2 rules converted, 2 lines not converted"} {
		if !strings.Contains(stderr, s) {
			t.Errorf("stderr lacks %q:\n%s", s, stderr)
		}
	}
	rules, err := decision.ParseRules("stdout", []byte(stdout))
	if err != nil || len(rules) != 2 || rules[0].ID != "netlify-L2" || rules[1].ID != "netlify-L4" {
		t.Errorf("written rules %v (%v), want netlify-L2 and netlify-L4", rules, err)
	}
	if code, stdout, _ := cli(t, "import", "--strict", "--from", "netlify", file); code != 1 || stdout != "" {
		t.Errorf("--strict: exit %d, stdout %q; want 1, nothing written", code, stdout)
	}
}

func TestExportCommand(t *testing.T) {
	dir := t.TempDir()
	rulesFile := filepath.Join(dir, "rules.yaml")
	rules := []decision.Rule{
		{ID: "moved", Host: "example.com", Path: "/old", To: "https://example.com/new", Status: 301},
		{ID: "docs", Host: "example.com", Path: "/docs", Match: decision.MatchPrefix, To: "https://docs.example.com", Status: 308},
		{ID: "rx", Path: "/p/([0-9]+)", Match: decision.MatchRegex, To: "/product/$1", Status: 301},
	}
	if err := os.WriteFile(rulesFile, decision.MarshalRules(rules), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "_redirects")
	code, stdout, stderr := cli(t, "export", "--to", "netlify", rulesFile, "-o", out)
	if code != 0 || stdout != "" {
		t.Fatalf("exit %d, stdout %q, stderr:\n%s", code, stdout, stderr)
	}
	for _, s := range []string{rulesFile + ":", `rule "rx": match: regular expressions have no Netlify equivalent`, "2 rules exported, 1 rule left out, 0 warnings"} {
		if !strings.Contains(stderr, s) {
			t.Errorf("stderr lacks %q:\n%s", s, stderr)
		}
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	want := "https://example.com/old   https://example.com/new              301!\n" +
		"https://example.com/docs    https://docs.example.com         308!\n" +
		"https://example.com/docs/*  https://docs.example.com/:splat  308!\n"
	if got := string(data); strings.Join(strings.Fields(got), " ") != strings.Join(strings.Fields(want), " ") {
		t.Errorf("exported:\n%s\nwant:\n%s", got, want)
	}

	code, stdout, _ = cli(t, "export", "--strict", "--to", "csv", rulesFile)
	if code != 1 || stdout != "" {
		t.Errorf("--strict with a rule left out: exit %d, stdout %q; want 1 and nothing written", code, stdout)
	}
	code, stdout, _ = cli(t, "export", "--to", "csv", rulesFile)
	if code != 0 || !strings.HasPrefix(stdout, "example.com/old,https://example.com/new,301,TRUE,FALSE,FALSE,FALSE\n") {
		t.Errorf("csv: exit %d, stdout:\n%s", code, stdout)
	}

	// --host gives any-host rules the host a Cloudflare source URL needs.
	anyHost := filepath.Join(dir, "any.yaml")
	if err := os.WriteFile(anyHost, []byte("rules:\n  - id: a\n    path: /a\n    to: https://example.net/a\n    status: 302\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr = cli(t, "export", "--to", "csv", "--host", "WWW.Example.com", anyHost)
	want = "www.example.com/a,https://example.net/a,302,TRUE,FALSE,FALSE,FALSE\nwww.example.com/a/,https://example.net/a,302,TRUE,FALSE,FALSE,FALSE\n"
	if code != 0 || stdout != want {
		t.Errorf("--host: exit %d, stdout:\n%s\nwant:\n%s\nstderr: %s", code, stdout, want, stderr)
	}
}

func TestGenCommand(t *testing.T) {
	dir := t.TempDir()
	rulesA, rulesB := filepath.Join(dir, "a.yaml"), filepath.Join(dir, "b.yaml")
	reqs := filepath.Join(dir, "reqs.jsonl")
	args := []string{"gen", "--rules", "2000", "--mix", "exact=0.5,prefix=0.25,pattern=0.25", "--hosts", "3", "--seed", "7"}
	code, _, stderr := cli(t, append(args, "-o", rulesA, "--requests", "500", "--hit", "0.8", "--requests-out", reqs)...)
	if code != 0 || !strings.Contains(stderr, "2000 rules (1000 exact, 500 prefix, 500 pattern) on 3 hosts") {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr)
	}
	if code, _, stderr := cli(t, append(args, "-o", rulesB)...); code != 0 {
		t.Fatalf("second run: exit %d: %s", code, stderr)
	}
	a, _ := os.ReadFile(rulesA)
	b, _ := os.ReadFile(rulesB)
	if len(a) == 0 || string(a) != string(b) {
		t.Error("the same flags wrote different rules files")
	}
	rules, err := decision.ParseRules(rulesA, a)
	if err != nil || len(rules) != 2000 {
		t.Fatalf("rules file: %d rules, %v", len(rules), err)
	}
	want := rulegen.Rules(rulegen.Config{N: 2000, Mix: rulegen.Mix{Exact: 0.5, Prefix: 0.25, Pattern: 0.25}, Hosts: 3, Seed: 7})
	if diff := cmp.Diff(want, rules, cmpopts.IgnoreFields(decision.Rule{}, "Line"), cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("rules file differs from rulegen.Rules (-want +got):\n%s", diff)
	}
	f, err := os.Open(reqs)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, err := rulegen.ReadRequests(reqs, f)
	if err != nil || len(got) != 500 {
		t.Fatalf("requests file: %d requests, %v", len(got), err)
	}

	for _, bad := range [][]string{
		{"gen"},
		{"gen", "--rules", "10", "--mix", "exact=1,regex=1"},
		{"gen", "--rules", "10", "--requests", "5"},
		{"gen", "--rules", "10", "--requests", "5", "--requests-out", reqs, "--hit", "1.5"},
	} {
		if code, _, stderr := cli(t, bad...); code != 2 {
			t.Errorf("%q: exit %d, want 2 (usage); stderr %s", bad, code, stderr)
		}
	}
}

// readJSONLines reads a JSON Lines file with encoding/json, the reference
// decoder: one object per line.
func readJSONLines(t *testing.T, data []byte) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("line %q is not a JSON object: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

// TestWriteCommandsFormats: gen, import and export write each rules-file
// format by --format or by the -o name, and refuse a --format the name
// contradicts.
func TestWriteCommandsFormats(t *testing.T) {
	dir := t.TempDir()
	want := rulegen.Rules(rulegen.Config{N: 300, Mix: rulegen.DefaultMix, Hosts: 2, Seed: 3})
	gen := []string{"gen", "--rules", "300", "--hosts", "2", "--seed", "3"}
	imp := []string{"import", "--from", "netlify", netlifyFixture}
	exp := []string{"export", testRules}
	ignoreLine := cmp.Options{cmpopts.IgnoreFields(decision.Rule{}, "Line"), cmpopts.EquateEmpty()}
	testRulesParsed := func() []decision.Rule {
		data, _ := os.ReadFile(testRules)
		rules, err := decision.ParseRules(testRules, data)
		if err != nil {
			t.Fatal(err)
		}
		return rules
	}()
	tests := []struct {
		name   string
		args   []string
		out    string // -o, "" for stdout
		format decision.Format
		want   []decision.Rule // nil: only the count is known
		count  int
	}{
		{"gen --format jsonl", append(gen, "--format", "jsonl"), "", decision.FormatJSONL, want, 300},
		{"gen -o x.jsonl", gen, "gen.jsonl", decision.FormatJSONL, want, 300},
		{"gen -o x.json", gen, "gen.json", decision.FormatJSON, want, 300},
		{"gen --format yaml -o x.yaml", append(gen, "--format", "yaml"), "gen.yaml", decision.FormatYAML, want, 300},
		{"import --format jsonl", append(imp, "--format", "jsonl"), "", decision.FormatJSONL, nil, 16},
		{"import -o x.jsonl", imp, "imp.jsonl", decision.FormatJSONL, nil, 16},
		{"import --format json", append(imp, "--format", "json"), "", decision.FormatJSON, nil, 16},
		{"export --format jsonl", append(exp, "--format", "jsonl"), "", decision.FormatJSONL, testRulesParsed, 4},
		{"export -o x.json", exp, "exp.json", decision.FormatJSON, testRulesParsed, 4},
		{"export -o x.yml", exp, "exp.yml", decision.FormatYAML, testRulesParsed, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := tt.args
			if tt.out != "" {
				args = append(append([]string{}, args...), "-o", filepath.Join(dir, tt.out))
			}
			code, stdout, stderr := cli(t, args...)
			if code != 0 {
				t.Fatalf("exit %d, stderr:\n%s", code, stderr)
			}
			data := []byte(stdout)
			if tt.out != "" {
				var err error
				if data, err = os.ReadFile(filepath.Join(dir, tt.out)); err != nil {
					t.Fatal(err)
				}
			}
			rules, err := decision.ParseRules("written."+tt.format.String(), data)
			if err != nil {
				t.Fatalf("output does not parse as %v: %v\n%.500s", tt.format, err, data)
			}
			if len(rules) != tt.count {
				t.Errorf("%d rules written, want %d", len(rules), tt.count)
			}
			if tt.want != nil {
				if diff := cmp.Diff(tt.want, rules, ignoreLine); diff != "" {
					t.Errorf("rules written (-want +got):\n%s", diff)
				}
			}
			switch tt.format {
			case decision.FormatJSONL:
				if objs := readJSONLines(t, data); len(objs) != tt.count || objs[0]["id"] != rules[0].ID {
					t.Errorf("encoding/json read %d objects, the first %v", len(objs), objs[0])
				}
			case decision.FormatJSON:
				var doc struct{ Rules []map[string]any }
				if err := json.Unmarshal(data, &doc); err != nil || len(doc.Rules) != tt.count {
					t.Errorf("encoding/json read %d rules, %v", len(doc.Rules), err)
				}
			}
		})
	}

	for _, bad := range []struct {
		args []string
		msg  string
	}{
		{append(gen, "--format", "json", "-o", filepath.Join(dir, "x.jsonl")), "--format json, but redirectd reads"},
		{append(gen, "--format", "toml"), `unknown format "toml"; accepted: yaml, json, jsonl`},
		{append(imp, "--format", "yaml", "-o", filepath.Join(dir, "x.json")), "name the file *.yaml"},
		{append(exp, "--format", "jsonl", "--to", "csv"), "give one"},
		{exp, "want --to netlify|csv, --format yaml|json|jsonl"},
	} {
		code, _, stderr := cli(t, bad.args...)
		if code != 2 || !strings.Contains(stderr, bad.msg) {
			t.Errorf("%q: exit %d, stderr %q; want 2 and %q", bad.args, code, stderr, bad.msg)
		}
	}
}
