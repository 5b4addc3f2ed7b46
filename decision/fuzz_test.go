package decision

import (
	"net/url"
	"strings"
	"testing"
)

// fuzzRules has every match kind, host scope and Location feature.
var fuzzRules = []Rule{
	{ID: "exact", Path: "/a", To: "/b?x=1"},
	{ID: "exact-host", Host: "example.com", Path: "/a", To: "https://www.example.com/a", Intent: IntentPermanent},
	{ID: "wild", Host: "*.example.com", Path: "/w", Match: MatchPrefix, To: "https://w.example.net/"},
	{ID: "prefix", Path: "/docs", Match: MatchPrefix, To: "https://docs.example.com", QueryStrip: []string{"utm_*"}},
	{ID: "prefix-root", Path: "/r", Match: MatchPrefix, To: "/"},
	{ID: "pattern", Path: "/p/:a/:b", Match: MatchPattern, To: "/q/:b/:a?v=:a"},
	{ID: "splat", Path: "/s/*", Match: MatchPattern, To: "/:splat"},
	{ID: "regex", Path: `/x/(.*)`, Match: MatchRegex, To: "/$1"},
	{ID: "regex-q", Path: `/y/(?P<v>.+)`, Match: MatchRegex, To: "/search?q=${v}"},
	{ID: "ci", Path: "/CI", To: "/lower", CaseInsensitive: true, Query: QueryDrop},
	{ID: "hdr", Path: "/h", To: "/hh", Headers: map[string]string{"x-a": "1*"}},
}

// FuzzDecide: no request makes Decide panic, and every Location is a URI
// reference net/url parses, without control characters, never a
// network-path reference ("//host", an open redirect).
//
//	go test -run x -fuzz FuzzDecide -fuzztime 60s ./decision/
func FuzzDecide(f *testing.F) {
	ix, _, err := Build(fuzzRules, Options{FlattenChains: true})
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range [][3]string{
		{"GET", "example.com", "/a?x=2&y=3"},
		{"GET", "a.example.com", "/w//evil.com"},
		{"POST", "", "/docs/a%2F..%2F/b?utm_x=1&k=v"},
		{"GET", "", "/r//evil.com"},
		{"GET", "", "/r/%2F%2Fevil.com"},
		{"GET", "", "/p/%3F/%23?z"},
		{"GET", "", "/s/../..//x"},
		{"GET", "", "/x//evil.com"},
		{"GET", "", "/y/a&b=c#f"},
		{"HEAD", "EXAMPLE.COM.:80", "https://example.com/a"},
		{"GET", "[::1]:8080", "/ci?a"},
		{"GET", "", "/s/caf\xc3\xa9\xff?\xff=1"},
	} {
		f.Add(seed[0], seed[1], seed[2])
	}
	f.Fuzz(func(t *testing.T, method, host, target string) {
		req := &Request{Method: method, Host: host, Target: target, Headers: map[string]string{"x-a": "1"}, Explain: true}
		d, err := ix.Decide(req, testNow)
		if err != nil || !d.Redirect {
			return
		}
		loc := d.Location
		if strings.HasPrefix(loc, "//") || strings.HasPrefix(loc, `/\`) {
			t.Fatalf("Location %q is a network-path reference", loc)
		}
		for i := 0; i < len(loc); i++ {
			if c := loc[i]; c < 0x20 || c >= 0x7f {
				t.Fatalf("Location %q has byte %#x", loc, c)
			}
		}
		if _, err := url.Parse(loc); err != nil {
			t.Fatalf("Location %q: %v", loc, err)
		}
		if !strings.HasPrefix(loc, "/") && !strings.HasPrefix(loc, "https://") {
			t.Fatalf("Location %q is neither a path nor the rules' https target", loc)
		}
		for _, h := range d.Headers {
			if strings.ContainsAny(h.Value, "\r\n") {
				t.Fatalf("header %s: %q", h.Name, h.Value)
			}
		}
	})
}
