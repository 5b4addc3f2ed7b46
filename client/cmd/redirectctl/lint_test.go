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
			name: "errors come with the warnings found beside them", args: []string{"testdata/mixed-rules.yaml", "testdata/mixed-rules.jsonl"}, wantCode: 1,
			wantLines: []string{
				`testdata/mixed-rules.yaml:4: warning: rule "a-to-b": to: redirect chain`,
				`testdata/mixed-rules.yaml:10: rule "loop": to: redirects to itself`,
				`testdata/mixed-rules.yaml:16: warning: rule "forever": cache_max_age: `,
				"testdata/mixed-rules.yaml: rejected: 4 rules, 1 error, 2 warnings",
				`testdata/mixed-rules.jsonl:2: rule "not-a-redirect": status: 404`,
				`testdata/mixed-rules.jsonl:3: warning: rule "forever": cache_max_age: `,
				"testdata/mixed-rules.jsonl: rejected: 0 rules, 1 error, 1 warning",
			},
		},
		{
			name: "ended rules and long cache lifetimes warn", args: []string{"--now", "2026-12-10T00:00:00Z", "testdata/lifecycle-rules.yaml"}, wantCode: 0,
			wantLines: []string{
				`testdata/lifecycle-rules.yaml:7: warning: rule "summer-sale": active_until: ended at 2026-09-01T00:00:00Z and no longer matches; remove it (redirectctl stats --expired lists such rules)`,
				`testdata/lifecycle-rules.yaml:25: warning: rule "forever": cache_max_age: 315360000 seconds (3650d) is more than a year (RFC 2616 section 14.21's ceiling for Expires)`,
				"testdata/lifecycle-rules.yaml: ok: 5 rules, 0 errors, 2 warnings",
			},
			wantNot: []string{"winter-sale", "try-v2", "moved"},
		},
		{
			name: "a window that has not ended yet does not warn", args: []string{"--now", "2026-08-31T23:59:59Z", "testdata/lifecycle-rules.yaml"}, wantCode: 0,
			wantLines: []string{"testdata/lifecycle-rules.yaml: ok: 5 rules, 0 errors, 1 warning"},
			wantNot:   []string{"summer-sale"},
		},
		{
			name: "lifecycle errors, with file and field lines", args: []string{"testdata/lifecycle-bad-rules.yaml"}, wantCode: 1,
			wantLines: []string{
				`testdata/lifecycle-bad-rules.yaml:6: rule "moved": promote_after: needs since`,
				`testdata/lifecycle-bad-rules.yaml:11: rule "reversed": active_until: 2026-12-01T00:00:00Z is not after active_from 2027-01-01T00:00:00Z`,
				`testdata/lifecycle-bad-rules.yaml:15: rule "dry-run": mode: unknown mode "dry-run"; accepted: enforce, shadow`,
				"testdata/lifecycle-bad-rules.yaml: rejected: 0 rules, 3 errors, 0 warnings",
			},
		},
		{
			name: "bad --now", args: []string{"--now", "tomorrow", "testdata/lifecycle-rules.yaml"}, wantCode: 2,
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
