package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestEnvoyConfig(t *testing.T) {
	rules := filepath.Join(t.TempDir(), "rules.yaml")
	os.WriteFile(rules, []byte(`rules:
  - {id: a, path: /a, to: /b, has: [{type: cookie, key: beta}], missing: [{type: header, key: X-Skip}]}
  - {id: b, path: /, to: "/:lang/", languages: [en, de]}
  - {id: c, path: /c, to: /d, headers: {x-old: "1"}, has: [{type: query, key: q}]}
`), 0o644)
	code, stdout, stderr := cli(t, "envoy-config", "--rules", rules)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	want := `allowed_headers:
  patterns:
  - exact: accept-language
  - exact: cookie
  - exact: x-old
  - exact: x-request-id
  - exact: x-skip
`
	if _, body, _ := strings.Cut(stdout, "\n"); body != want {
		t.Errorf("output:\n%s\nwant after the comment line:\n%s", stdout, want)
	}

	if code, _, stderr := cli(t, "envoy-config"); code != 2 || !strings.Contains(stderr, "want --rules FILE") {
		t.Errorf("without --rules: exit %d, %s", code, stderr)
	}
	if code, _, stderr := cli(t, "envoy-config", "--rules", "testdata/bad-rules.yaml"); code != 1 || !strings.Contains(stderr, `bad-rules.yaml:6: rule "not-a-redirect": status`) {
		t.Errorf("bad rules: exit %d, %s", code, stderr)
	}
}
