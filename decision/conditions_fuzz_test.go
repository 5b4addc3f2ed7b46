package decision

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzValueGlob holds valueGlob to a reference: the glob translated into
// an anchored regexp ('*' → .*, '?' → ., '\x' and every other character
// literal) and matched by Go's regexp.
//
//	go test -run x -fuzz FuzzValueGlob -fuzztime 60s ./decision/
func FuzzValueGlob(f *testing.F) {
	for _, seed := range [][2]string{
		{"*beta=1*", "xbeta=10"}, {"de*", "de-CH"}, {`\*[a]`, "*[a]"}, {"a?c", "aéc"}, {"*/1.?", "x/y/1.5"},
		{"**a*", "ba"}, {"", ""}, {"?", ""}, {`a\?`, "a?"}, {"*a*b", "aab"},
	} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, glob, s string) {
		if checkGlob(glob) != "" || !utf8.ValidString(s) {
			return
		}
		var expr strings.Builder
		expr.WriteString(`(?s)\A`)
		for i := 0; i < len(glob); i++ {
			switch c := glob[i]; c {
			case '*':
				expr.WriteString(".*")
			case '?':
				expr.WriteString(".")
			case '\\':
				i++
				_, n := utf8.DecodeRuneInString(glob[i:])
				expr.WriteString(regexp.QuoteMeta(glob[i : i+n]))
				i += n - 1
			default:
				_, n := utf8.DecodeRuneInString(glob[i:])
				expr.WriteString(regexp.QuoteMeta(glob[i : i+n]))
				i += n - 1
			}
		}
		expr.WriteString(`\z`)
		want := regexp.MustCompile(expr.String()).MatchString(s)
		if got := valueGlob(glob, s); got != want {
			t.Fatalf("valueGlob(%q, %q) = %v, regexp %s says %v", glob, s, got, expr.String(), want)
		}
	})
}

// FuzzCookies holds the Cookie reader to net/http's: for every header
// net/http.ParseCookie accepts (RFC 6265 section 4.2.1), the pairs are
// the same, in order, except that spaces around an unquoted value are not
// part of it here (RFC 6265 section 5.2 trims them; net/http keeps a
// leading one).
//
//	go test -run x -fuzz FuzzCookies -fuzztime 60s ./decision/
func FuzzCookies(f *testing.F) {
	for _, seed := range []string{"a=b; beta=1", `beta="1"`, "a=1;b=2", "x=; y=z", "a=b=c"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, header string) {
		ref, err := http.ParseCookie(header)
		if err != nil {
			return
		}
		var got []string
		for name, value := range cookies(header) {
			got = append(got, name+"="+value)
		}
		var want []string
		for _, c := range ref {
			v := c.Value
			if !c.Quoted {
				v = strings.Trim(v, " \t\r\n")
			}
			want = append(want, c.Name+"="+v)
		}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Fatalf("cookies(%q) = %q, net/http reads %q", header, got, want)
		}
	})
}

// fuzzConditionRules decide by host captures, conditions and languages.
var fuzzConditionRules = []Rule{
	{ID: "tenant", Host: "*.example.com", Path: "/", Match: MatchPrefix, To: "https://:subdomain.example.org/:lang", Languages: []string{"en", "de-CH"}},
	{ID: "tenant-any", Host: "*.example.com", Path: "/", Match: MatchPrefix, To: "https://:subdomain.example.org/",
		Has: []Condition{{Type: ConditionCookie, Key: "beta"}}, Missing: []Condition{{Type: ConditionQuery, Key: "stay"}}},
	{ID: "lang", Path: "/l/:x", Match: MatchPattern, To: "/:lang/:x", Languages: []string{"fr", "x-pirate"}},
}

// FuzzConditions: whatever the host, cookies, languages and target, a
// Location built with :subdomain names a host under example.org, and one
// built with :lang holds a tag of the rule.
//
//	go test -run x -fuzz FuzzConditions -fuzztime 60s ./decision/
func FuzzConditions(f *testing.F) {
	ix, _, err := Build(fuzzConditionRules, Options{})
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range [][4]string{
		{"a.example.com", "/x", "beta=1", "de-CH"},
		{"evil.com%2f.example.com", "/", "", "*"},
		{"a.b@evil", "/", "beta=", ""},
		{"A_B.example.com:80", "/?stay", "beta=1", "en;q=0"},
		{"", "/l/y", "", "x-pirate, fr;q=0"},
	} {
		f.Add(seed[0], seed[1], seed[2], seed[3])
	}
	f.Fuzz(func(t *testing.T, host, target, cookie, acceptLanguage string) {
		req := &Request{Method: "GET", Host: host, Target: target, Headers: map[string]string{"cookie": cookie, "accept-language": acceptLanguage}}
		d, err := ix.Decide(req, testNow)
		if err != nil || !d.Redirect {
			return
		}
		switch d.RuleID {
		case "tenant", "tenant-any":
			u, err := url.Parse(d.Location)
			if err != nil {
				t.Fatalf("Location %q: %v", d.Location, err)
			}
			labels, ok := strings.CutSuffix(u.Host, ".example.org")
			if u.Scheme != "https" || !ok || !dnsLabels(labels) || u.User != nil {
				t.Fatalf("host %q: Location %q names another site", host, d.Location)
			}
		case "lang":
			if !strings.HasPrefix(d.Location, "/fr/") && !strings.HasPrefix(d.Location, "/x-pirate/") {
				t.Fatalf("Accept-Language %q: Location %q", acceptLanguage, d.Location)
			}
		}
	})
}
