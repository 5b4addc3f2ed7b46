package main

import (
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
			name: "netlify", args: []string{"import", "--from", "netlify", netlifyFixture}, wantRules: 15,
			wantStderr: []string{
				netlifyFixture + ":30: status 200 is a rewrite",
				netlifyFixture + ":39: condition Country=au,nz",
				netlifyFixture + ": 15 rules converted, 15 lines not converted",
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
