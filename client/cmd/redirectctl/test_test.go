package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestTestCommand(t *testing.T) {
	addr := startRedirectd(t, testRules)
	passOutput := strings.Join([]string{
		"PASS  docs moved, GET keeps the path and query",
		"PASS  docs moved, POST keeps its method and body",
		"PASS  HTTP/1.0 client gets 302 for a temporary redirect",
		"PASS  request intent overrides the rule's",
		"PASS  signup form answered with see other",
		"PASS  German speakers start in German",
		"PASS  docsearch is not under /docs",
		"PASS  a path must start with a slash",
		"8 passed, 0 failed",
	}, "\n") + "\n"
	failOutput := strings.Join([]string{
		"PASS  docs moved",
		"FAIL  blog expected permanent, but the rule is temporary (testdata/cases-fail.yaml:9)",
		"      status: want 301, got 307",
		"FAIL  pricing expected to move, but no rule matches (testdata/cases-fail.yaml:17)",
		"      redirect: want true, got false (no rule matched)",
		"1 passed, 2 failed",
	}, "\n") + "\n"

	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout string
	}{
		{"passing cases offline", []string{"testdata/cases-pass.yaml", "--rules", testRules}, 0, passOutput},
		{"passing cases on a server", []string{"testdata/cases-pass.yaml", "--server", addr}, 0, passOutput},
		{"failing cases offline", []string{"testdata/cases-fail.yaml", "--rules", testRules}, 1, failOutput},
		{"failing cases on a server", []string{"--server", addr, "testdata/cases-fail.yaml"}, 1, failOutput},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := cli(t, append([]string{"test"}, tt.args...)...)
			if code != tt.wantCode {
				t.Errorf("exit %d, want %d; stderr:\n%s", code, tt.wantCode, stderr)
			}
			if diff := cmp.Diff(tt.wantStdout, stdout); diff != "" {
				t.Errorf("stdout (-want +got):\n%s", diff)
			}
		})
	}
}

func TestTestCommandRejectsBadCasesFile(t *testing.T) {
	code, stdout, stderr := cli(t, "test", "testdata/cases-bad.yaml", "--rules", testRules)
	if code != 1 || stdout != "" {
		t.Errorf("exit %d, stdout %q; want 1 and no cases run", code, stdout)
	}
	for _, want := range []string{
		`testdata/cases-bad.yaml:5: cases[0] (unknown request field).request: unknown field "methd"; accepted: headers, host, intent, method, path, protocol, scheme, url`,
		"testdata/cases-bad.yaml:13: cases[1] (wrong type).expect.status: cannot unmarshal",
		`testdata/cases-bad.yaml:20: cases[2]: unknown field "comment"; accepted: expect, name, request`,
		"testdata/cases-bad.yaml:15: cases[2]: name is required",
		"testdata/cases-bad.yaml:18: cases[2].expect: redirect: false cannot go with status",
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
}

func TestParseCasesErrors(t *testing.T) {
	tests := []struct {
		name, yaml, wantErr string
	}{
		{"empty file", "", "no cases"},
		{"not a list", "name: x\n", "cases.yaml:1: want a YAML list of cases"},
		{"case not a mapping", "- just a string\n", "cases.yaml:1: cases[0]: want a mapping"},
		{"no request", "- name: a\n  expect: {status: 301}\n", "cases.yaml:1: cases[0] (a): request is required"},
		{"no expect", "- name: a\n  request: {url: /x}\n", "cases.yaml:1: cases[0] (a): expect is required"},
		{"empty expect", "- name: a\n  request: {url: /x}\n  expect: {}\n", "cases.yaml:3: cases[0] (a).expect: empty"},
		{"url and path", "- name: a\n  request: {url: /x, path: /y}\n  expect: {status: 301}\n", "cases.yaml:2: cases[0] (a).request: give url, or path"},
		{"no url or path", "- name: a\n  request: {method: GET}\n  expect: {status: 301}\n", "cases.yaml:2: cases[0] (a).request: url or path is required"},
		{"bad url", "- name: a\n  request: {url: example.com}\n  expect: {status: 301}\n", `cases.yaml:2: cases[0] (a).request.url "example.com": want an absolute URL`},
		{"bad intent", "- name: a\n  request: {url: /x, intent: forever}\n  expect: {status: 301}\n", `cases.yaml:2: cases[0] (a).request.intent: unknown intent "forever"`},
		{"error with status", "- name: a\n  request: {url: /x}\n  expect: {error: path, status: 301}\n", "cases.yaml:3: cases[0] (a).expect: error expects the request to be rejected"},
		{"duplicate name", "- name: a\n  request: {url: /x}\n  expect: {status: 301}\n- name: a\n  request: {url: /y}\n  expect: {status: 301}\n", `cases.yaml:4: cases[1]: name "a" is already used at line 1`},
		{"key twice", "- name: a\n  name: b\n  request: {url: /x}\n  expect: {status: 301}\n", "cases.yaml:2: cases[0].name: given twice"},
		{"syntax", "- name: [a\n", "cases.yaml: yaml:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseCases("cases.yaml", []byte(tt.yaml))
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

// TestTestCommandExpectError: a case may require a request to be rejected;
// it fails when the request is accepted.
func TestTestCommandExpectError(t *testing.T) {
	file := filepath.Join(t.TempDir(), "cases.yaml")
	cases := "- name: accepted though an error was expected\n  request: {url: /blog}\n  expect: {error: method}\n" +
		"- name: rejected for another reason\n  request: {path: nope}\n  expect: {error: method}\n" +
		"- name: rejected though a redirect was expected\n  request: {path: nope}\n  expect: {status: 301}\n"
	if err := os.WriteFile(file, []byte(cases), 0o644); err != nil {
		t.Fatal(err)
	}
	code, stdout, _ := cli(t, "test", file, "--rules", testRules)
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	for _, want := range []string{
		`      error: want one containing "method", got a decision (redirect: true)`,
		`      error: want one containing "method", got "requests[1].path`,
		"      request rejected: requests[2].path",
		"0 passed, 3 failed",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, stdout)
		}
	}
}
