package main

import (
	"net"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const testRules = "testdata/rules.yaml"

func TestDecideOffline(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{
			name: "permanent GET",
			args: []string{"GET", "https://example.com/docs/guide?lang=en"},
			want: "301 Moved Permanently → https://docs.example.com/guide?lang=en (rule docs-moved)\n" +
				"Cache-Control: public, max-age=86400\n" +
				"follow-up: GET\n",
		},
		{
			name: "permanent POST keeps method and body",
			args: []string{"POST", "https://example.com/docs/upload"},
			want: "308 Permanent Redirect → https://docs.example.com/upload (rule docs-moved)\n" +
				"Cache-Control: public, max-age=86400\n" +
				"follow-up: POST, body re-sent\n",
		},
		{
			name: "see other drops the body",
			args: []string{"POST", "https://example.com/signup"},
			want: "303 See Other → /register (rule signup)\n" +
				"Cache-Control: no-store\n" +
				"follow-up: GET, body dropped\n",
		},
		{
			name: "HTTP/1.0 and intent flag",
			args: []string{"--protocol", "HTTP/1.0", "--intent", "temporary", "POST", "https://example.com/docs/x"},
			want: "302 Found → https://docs.example.com/x (rule docs-moved)\n" +
				"Cache-Control: no-store\n" +
				"follow-up: GET, body dropped\n",
		},
		{
			name: "header rule adds Vary",
			args: []string{"-H", "Accept-Language: de-CH", "GET", "https://example.com/start"},
			want: "307 Temporary Redirect → /de/start (rule german)\n" +
				"Cache-Control: no-store\n" +
				"Vary: Accept-Language\n" +
				"follow-up: GET\n",
		},
		{
			name: "no match",
			args: []string{"GET", "https://example.com/docsearch"},
			want: "no redirect: pass the request on\n",
		},
	}
	// The same rules as YAML, JSON and JSON Lines answer alike.
	for _, rules := range []string{testRules, "testdata/rules.json", "testdata/rules.jsonl"} {
		for _, tt := range tests {
			t.Run(rules+"/"+tt.name, func(t *testing.T) {
				code, stdout, stderr := cli(t, append([]string{"decide", "--rules", rules}, tt.args...)...)
				if code != 0 {
					t.Fatalf("exit %d, stderr:\n%s", code, stderr)
				}
				if diff := cmp.Diff(tt.want, stdout); diff != "" {
					t.Errorf("stdout (-want +got):\n%s", diff)
				}
			})
		}
	}
}

func TestDecideExplain(t *testing.T) {
	code, stdout, stderr := cli(t, "decide", "--rules", testRules, "--explain", "GET", "https://EXAMPLE.com./docs/a/../b")
	if code != 0 {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr)
	}
	for _, want := range []string{
		"301 Moved Permanently → https://docs.example.com/b (rule docs-moved)",
		`explain: host "example.com", path "/docs/b"`,
		"applied  docs-moved",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, stdout)
		}
	}
}

// TestDecideServerAndOfflineAgree: --server and --rules are two backends of
// one code path, so the same rules give byte-identical output.
func TestDecideServerAndOfflineAgree(t *testing.T) {
	addr := startRedirectd(t, testRules)
	for _, args := range [][]string{
		{"GET", "https://example.com/docs/guide?lang=en"},
		{"--json", "POST", "https://example.com/docs/upload"},
		{"--json", "--explain", "GET", "https://example.com/blog?page=2"},
		{"--explain", "-H", "accept-language: de", "GET", "https://example.com/start"},
		{"--json", "GET", "https://example.com/nothing"},
		{"--protocol", "HTTP/1.0", "POST", "/blog"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			codeS, server, errS := cli(t, append([]string{"decide", "--server", addr}, args...)...)
			codeO, offline, errO := cli(t, append([]string{"decide", "--rules", testRules}, args...)...)
			if codeS != 0 || codeO != 0 {
				t.Fatalf("exit %d (server) and %d (offline); stderr:\n%s\n%s", codeS, codeO, errS, errO)
			}
			if diff := cmp.Diff(offline, server); diff != "" {
				t.Errorf("output (-offline +server):\n%s", diff)
			}
			if server == "" {
				t.Error("no output")
			}
		})
	}
}

func TestDecideErrors(t *testing.T) {
	addr := startRedirectd(t, testRules)
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := dead.Addr().String()
	dead.Close()

	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStderr string
	}{
		{"bad method offline", []string{"--rules", testRules, "G@T", "/x"}, 1, "invalid request: method"},
		{"bad method on the server", []string{"--server", addr, "G@T", "/x"}, 1, "invalid request: method"},
		{"server down", []string{"--server", deadAddr, "GET", "/x"}, 1, "unavailable (is it running?"},
		{"both backends", []string{"--server", addr, "--rules", testRules, "GET", "/x"}, 2, "--server and --rules exclude each other"},
		{"bad rules file", []string{"--rules", "testdata/bad-rules.yaml", "GET", "/x"}, 1, "bad-rules.yaml:6:"},
		{"missing rules file", []string{"--rules", "testdata/nothing.yaml", "GET", "/x"}, 1, "no such file"},
		{"bad intent", []string{"--rules", testRules, "--intent", "forever", "GET", "/x"}, 2, `unknown intent "forever"`},
		{"bad header", []string{"--rules", testRules, "-H", "no colon", "GET", "/x"}, 2, "want 'name: value'"},
		{"relative URL", []string{"--rules", testRules, "GET", "example.com/x"}, 2, "want an absolute URL"},
		{"bad clock", []string{"--rules", testRules, "--now", "yesterday", "GET", "/x"}, 2, "--now"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := cli(t, append([]string{"decide"}, tt.args...)...)
			if code != tt.wantCode {
				t.Errorf("exit %d, want %d; stdout:\n%s", code, tt.wantCode, stdout)
			}
			if !strings.Contains(stderr, tt.wantStderr) {
				t.Errorf("stderr lacks %q:\n%s", tt.wantStderr, stderr)
			}
		})
	}
}
