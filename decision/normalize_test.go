package decision

import (
	"errors"
	"strings"
	"testing"
)

func TestNormalizePath(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", "/"},
		{"/", "/"},
		{"/a/b", "/a/b"},
		{"/a/b/", "/a/b/"},
		{"//a///b//", "/a/b/"},
		{"/a/./b/../c", "/a/c"},
		{"/a/..", "/"},
		{"/../../a", "/a"},
		{"/a/.", "/a/"},
		{"/%7Euser/%41", "/~user/A"},
		{"/a%2fb", "/a%2Fb"},
		{"/a%2Fb", "/a%2Fb"},
		{"/%2e%2E/x", "/x"},
		{"/café", "/caf%C3%A9"},
		{"/a b", "/a%20b"},
		{"/100%", "/100%25"},
		{"/%zz", "/%25zz"},
		{"/a;b=c,d:e@f!$&'()*+", "/a;b=c,d:e@f!$&'()*+"},
		{"/.hidden/..x", "/.hidden/..x"},
	}
	for _, tt := range tests {
		if got := normalizePath(tt.in); got != tt.want {
			t.Errorf("normalizePath(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if got := normalizePath(normalizePath(tt.in)); got != tt.want {
			t.Errorf("normalizePath is not idempotent on %q: %q", tt.in, got)
		}
	}
}

// TestRequestErrors checks each RequestError names its field, including the
// size limits that are awkward to write as YAML cases.
func TestRequestErrors(t *testing.T) {
	ix, _, err := Build([]Rule{{ID: "a", Path: "/a", To: "/b"}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	long := "/" + strings.Repeat("a", maxTargetBytes)
	tests := []struct {
		name  string
		req   Request
		field string
	}{
		{"no method", Request{Target: "/a"}, "method"},
		{"method with space", Request{Method: "G T", Target: "/a"}, "method"},
		{"method with colon", Request{Method: "GET:", Target: "/a"}, "method"},
		{"no path", Request{Method: "GET"}, "path"},
		{"relative path", Request{Method: "GET", Target: "a"}, "path"},
		{"ftp absolute form", Request{Method: "GET", Target: "ftp://h/a"}, "path"},
		{"path over 8 KiB", Request{Method: "GET", Target: long}, "path"},
		{"DEL in path", Request{Method: "GET", Target: "/a\x7f"}, "path"},
		{"NUL in path", Request{Method: "GET", Target: "/a\x00"}, "path"},
		{"host over 255 bytes", Request{Method: "GET", Host: strings.Repeat("a", 256), Target: "/a"}, "host"},
		{"host with slash", Request{Method: "GET", Host: "a/b", Target: "/a"}, "host"},
		{"host IPv6 unclosed", Request{Method: "GET", Host: "[::1", Target: "/a"}, "host"},
		{"protocol", Request{Method: "GET", Target: "/a", Protocol: "HTTP/9"}, "protocol"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ix.Decide(&tt.req, testNow)
			var re *RequestError
			if !errors.As(err, &re) || re.Field != tt.field {
				t.Fatalf("error = %v, want a RequestError on %q", err, tt.field)
			}
			if re.Message == "" {
				t.Fatal("empty message")
			}
		})
	}
	// Exactly 8 KiB is accepted.
	ok := "/" + strings.Repeat("a", maxTargetBytes-1)
	if _, err := ix.Decide(&Request{Method: "GET", Target: ok}, testNow); err != nil {
		t.Fatalf("8 KiB path: %v", err)
	}
	// IPv6 literal with port is a valid host.
	if _, err := ix.Decide(&Request{Method: "GET", Host: "[::1]:8080", Target: "/a"}, testNow); err != nil {
		t.Fatalf("IPv6 host: %v", err)
	}
}

// TestAbsoluteFormHost checks which host an absolute-form target is decided
// for against what a browser's WHATWG URL parser reads from the same
// string: where the two could differ (a '\' before the path, which the
// URL standard reads as '/' for http and https, or an empty authority,
// whose extra slashes a browser skips) the target is refused instead, so
// a rule for one host can never answer a request a browser sends to
// another (README, "Request normalisation").
func TestAbsoluteFormHost(t *testing.T) {
	tests := []struct {
		target string
		host   string // "" = refused as a RequestError on "path"
		path   string
	}{
		{`https://good.com/old`, "good.com", "/old"},
		{`HTTPS://GOOD.COM:8443/old?q=1`, "good.com", "/old"},
		{`https://good.com`, "good.com", "/"},
		{`https://good.com?x`, "good.com", "/"},
		// Userinfo: the host follows the last '@', as in a browser.
		{`https://evil.com@good.com/old`, "good.com", "/old"},
		{`https://good.com@evil.com/old`, "evil.com", "/old"},
		{`https://a@b@good.com/old`, "good.com", "/old"},
		// A percent-encoded '\' is userinfo to a browser too.
		{`https://good.com%5C@evil.com/old`, "evil.com", "/old"},
		// '@' after the authority is path, query or fragment.
		{`https://good.com/@evil.com/old`, "good.com", "/@evil.com/old"},
		{`https://good.com?@evil.com/old`, "good.com", "/"},
		{`https://good.com#@evil.com/old`, "good.com", "/"},
		// A browser reads '\' as '/': the host is good.com, where a plain
		// split at '/' reads evil.com. Refused.
		{`https://good.com\@evil.com/old`, "", ""},
		{`http://good.com\@evil.com/old`, "", ""},
		{`https://good.com:443\@evil.com/old`, "", ""},
		{`https://good.com\\evil.com/old`, "", ""},
		{`https://\evil.com/old`, "", ""},
		{`https://[::1]\@evil.com/old`, "", ""},
		{`https:\\evil.com/old`, "", ""},
		{`https:/\evil.com/old`, "", ""},
		// Empty authority: a browser skips the slashes and goes to evil.com.
		{`https:///evil.com/old`, "", ""},
		{`https://`, "", ""},
		{`https://?x`, "", ""},
		// Not http(s).
		{`javascript://good.com/%0aalert(1)`, "", ""},
		{`//evil.com/old`, "", "//"}, // origin-form: a path, host from the Host field
	}
	for _, tt := range tests {
		t.Run(tt.target, func(t *testing.T) {
			r, err := parseRequest(&Request{Method: "GET", Target: tt.target})
			switch {
			case tt.path == "//":
				if err != nil || r.host != "" || r.path != "/evil.com/old" {
					t.Fatalf("host %q path %q err %v; want no host and path /evil.com/old", r.host, r.path, err)
				}
			case tt.host == "":
				if err == nil || err.Field != "path" {
					t.Fatalf("decided for host %q path %q (err %v); want a RequestError on path", r.host, r.path, err)
				}
			default:
				if err != nil {
					t.Fatalf("refused: %v; want host %q", err, tt.host)
				}
				if r.host != tt.host || r.path != tt.path {
					t.Fatalf("host %q path %q; want host %q path %q", r.host, r.path, tt.host, tt.path)
				}
			}
		})
	}
}
