package main

import (
	"strings"
	"testing"
)

func TestLint(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		wantCode int
		// wantLines must each appear, in this order, as the start of a line.
		wantLines []string
		wantNot   []string
	}{
		{
			name: "good file", args: []string{testRules}, wantCode: 0,
			wantLines: []string{"testdata/rules.yaml: ok: 4 rules, 0 errors, 0 warnings"},
		},
		{
			name: "good files in JSON and JSON Lines", args: []string{"testdata/rules.json", "testdata/rules.jsonl"}, wantCode: 0,
			wantLines: []string{"testdata/rules.json: ok: 4 rules, 0 errors, 0 warnings", "testdata/rules.jsonl: ok: 4 rules, 0 errors, 0 warnings"},
		},
		{
			name: "JSON Lines errors, every one with its line", args: []string{"testdata/bad-rules.jsonl"}, wantCode: 1,
			wantLines: []string{
				`testdata/bad-rules.jsonl:2: rule "not-a-redirect": status: 404`,
				`testdata/bad-rules.jsonl:3: rule "typo": too: unknown field "too" (did you mean to?)`,
				"testdata/bad-rules.jsonl: rejected: 0 rules, 2 errors, 0 warnings",
			},
		},
		{
			name: "warnings only pass", args: []string{"testdata/warn-rules.yaml"}, wantCode: 0,
			wantLines: []string{
				`testdata/warn-rules.yaml:3: warning: rule "a-to-b": to: `,
				"testdata/warn-rules.yaml: ok: 2 rules, 0 errors, 1 warning",
			},
		},
		{
			name: "strict fails on warnings", args: []string{"--strict", "testdata/warn-rules.yaml"}, wantCode: 1,
			wantLines: []string{"testdata/warn-rules.yaml: ok: 2 rules, 0 errors, 1 warning"},
		},
		{
			name: "parse errors, every one with its line", args: []string{"testdata/bad-rules.yaml"}, wantCode: 1,
			wantLines: []string{
				`testdata/bad-rules.yaml:6: rule "not-a-redirect": status: 404`,
				`testdata/bad-rules.yaml:9: rule "typo": too: unknown field "too"`,
				"testdata/bad-rules.yaml: rejected: 0 rules, 2 errors, 0 warnings",
			},
		},
		{
			name: "build errors: self-redirect and cycle", args: []string{"testdata/loop-rules.yaml"}, wantCode: 1,
			wantLines: []string{
				`testdata/loop-rules.yaml:3: rule "loop": to: `,
				`testdata/loop-rules.yaml:6: rule "ping": to: `,
				"testdata/loop-rules.yaml: rejected: 3 rules, 2 errors, 0 warnings",
			},
			wantNot: []string{": warning:"},
		},
		{
			name: "several files, one bad", args: []string{testRules, "testdata/bad-rules.yaml"}, wantCode: 1,
			wantLines: []string{"testdata/rules.yaml: ok:", "testdata/bad-rules.yaml: rejected:"},
		},
		{
			name: "missing file", args: []string{"testdata/nothing.yaml"}, wantCode: 1,
			wantLines: []string{"testdata/nothing.yaml: open testdata/nothing.yaml: no such file", "testdata/nothing.yaml: rejected:"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := cli(t, append([]string{"lint"}, tt.args...)...)
			if code != tt.wantCode {
				t.Errorf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.wantCode, stdout, stderr)
			}
			assertLines(t, stdout, tt.wantLines)
			for _, not := range tt.wantNot {
				if strings.Contains(stdout, not) {
					t.Errorf("stdout has %q:\n%s", not, stdout)
				}
			}
		})
	}
}

func TestLintNeedsAFile(t *testing.T) {
	if code, _, stderr := cli(t, "lint"); code != 2 || !strings.Contains(stderr, "want at least one rules FILE") {
		t.Errorf("exit %d, stderr %q; want 2 and a usage message", code, stderr)
	}
}

// assertLines checks that each prefix starts a line of out, in order.
func assertLines(t *testing.T, out string, prefixes []string) {
	t.Helper()
	lines := strings.Split(out, "\n")
	at := 0
	for _, p := range prefixes {
		found := false
		for at < len(lines) {
			line := lines[at]
			at++
			if strings.HasPrefix(line, p) {
				found = true
				break
			}
		}
		if !found {
			t.Errorf("output lacks a line starting %q (after the previous ones):\n%s", p, out)
			return
		}
	}
}
