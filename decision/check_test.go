package decision

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"
)

// okRule is a valid rule each case changes one thing of.
func okRule(change func(r *Rule)) Rule {
	r := Rule{ID: "r1", Path: "/old", To: "/new", Line: 7}
	if change != nil {
		change(&r)
	}
	return r
}

func TestCheckRule(t *testing.T) {
	tests := []struct {
		name string
		rule Rule
		want []string // Problem.String() of each problem, in order
	}{
		{"valid exact", okRule(nil), nil},
		{"valid everything", okRule(func(r *Rule) {
			r.Host, r.Match, r.Path, r.To = "*.example.org", MatchPattern, "/blog/:year/:slug/*", "https://example.com/:year/:slug/:splat?from=blog#top"
			r.Intent, r.Status, r.Methods = IntentPermanent, 308, []string{"GET", "HEAD", "PROPFIND"}
			r.Query, r.QueryStrip, r.CaseInsensitive, r.TrailingSlash = QueryDrop, []string{"utm_*", "fbclid"}, true, TrailingSlashStrict
			r.Headers = map[string]string{"accept-language": "de*", "x-empty": ""}
			r.CacheMaxAge, r.Since = new(time.Hour), time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
		}), nil},
		{"valid regex", okRule(func(r *Rule) {
			r.Match, r.Path, r.To = MatchRegex, `/p/(?P<id>[0-9]+)/(.*)`, "https://example.com:8443/items/${id}/$2?x=$$1"
		}), nil},
		{"valid url with IPv6 host", okRule(func(r *Rule) { r.To = "http://[2001:db8::1]:8080/x" }), nil},

		{"missing id", okRule(func(r *Rule) { r.ID = "" }),
			[]string{`7: id: missing; every rule needs a unique id, such as docs-moved`}},
		{"id with space", okRule(func(r *Rule) { r.ID = "a b" }),
			[]string{`7: rule "a b": id: "a b" contains a space; accepted: letters, digits and punctuation without spaces, such as docs-moved`}},
		{"id with control character", okRule(func(r *Rule) { r.ID = "a\x00" }),
			[]string{`7: rule "a\x00": id: contains the control character U+0000`}},

		{"missing path", okRule(func(r *Rule) { r.Path = "" }),
			[]string{`7: rule "r1": path: missing; accepted: an absolute path such as /docs (or a regex for match: regex)`}},
		{"relative path", okRule(func(r *Rule) { r.Path = "old" }),
			[]string{`7: rule "r1": path: "old" does not start with '/'; accepted: an absolute path such as /docs`}},
		{"path with query", okRule(func(r *Rule) { r.Path = "/old?x=1" }),
			[]string{`7: rule "r1": path: "/old?x=1" contains '?' or '#'; rules match the path only, without query or fragment`}},
		{"path with dot segments", okRule(func(r *Rule) { r.Path = "/a/../b//c/" }),
			[]string{`7: rule "r1": path: "/a/../b//c/" has dot segments or '//'; request paths are normalised before matching, so it could never match; write "/b/c/"`}},
		{"path too long", okRule(func(r *Rule) { r.Path = "/" + strings.Repeat("a", 8192) }),
			[]string{`7: rule "r1": path: is 8193 bytes long; accepted: at most 8192 (longer request paths are refused)`}},
		{"prefix with trailing slash warns", okRule(func(r *Rule) { r.Match, r.Path = MatchPrefix, "/docs/" }),
			[]string{`7: warning: rule "r1": path: prefix "/docs/" ends with '/'; prefixes match whole segments and trailing_slash is ignore, so it means "/docs" (matching it and everything under it); write that, or set trailing_slash: strict to leave out "/docs" itself`}},
		{"prefix with trailing slash, strict", okRule(func(r *Rule) {
			r.Match, r.Path, r.TrailingSlash = MatchPrefix, "/docs/", TrailingSlashStrict
		}), nil},
		{"prefix root", okRule(func(r *Rule) { r.Match, r.Path = MatchPrefix, "/" }), nil},

		{"pattern star not last", okRule(func(r *Rule) { r.Match, r.Path = MatchPattern, "/a/*/b" }),
			[]string{`7: rule "r1": path: pattern "/a/*/b" has '*' before the last segment; '*' is accepted only as the whole last segment (captured as :splat)`}},
		{"pattern star inside segment", okRule(func(r *Rule) { r.Match, r.Path = MatchPattern, "/a/b*" }),
			[]string{`7: rule "r1": path: pattern "/a/b*" has '*' inside the segment "b*"; '*' is accepted only as the whole last segment (captured as :splat)`}},
		{"pattern bad name", okRule(func(r *Rule) { r.Match, r.Path = MatchPattern, "/a/:1x" }),
			[]string{`7: rule "r1": path: pattern "/a/:1x" has the parameter ":1x"; accepted: ':' then a letter or '_' then letters, digits or '_', as the whole segment, such as /blog/:year/:slug`}},
		{"pattern duplicate name", okRule(func(r *Rule) { r.Match, r.Path = MatchPattern, "/:a/:a" }),
			[]string{`7: rule "r1": path: pattern "/:a/:a" uses the parameter :a twice; each name may appear once`}},
		{"pattern splat as name", okRule(func(r *Rule) { r.Match, r.Path = MatchPattern, "/:splat" }),
			[]string{`7: rule "r1": path: pattern "/:splat" uses :splat as a parameter; that name is kept for what a trailing '*' captures`}},
		{"pattern unknown capture in to", okRule(func(r *Rule) { r.Match, r.Path, r.To = MatchPattern, "/blog/:slug", "/posts/:name" }),
			[]string{`7: rule "r1": to: :name refers to a capture the path does not define; accepted: :slug`}},
		{"pattern splat without star", okRule(func(r *Rule) { r.Match, r.Path, r.To = MatchPattern, "/blog", "/posts/:splat" }),
			[]string{`7: rule "r1": to: :splat refers to a capture the path does not define; the path defines none`}},

		{"bad regex", okRule(func(r *Rule) { r.Match, r.Path = MatchRegex, "/a/(b" }),
			[]string{"7: rule \"r1\": path: is not a valid RE2 regular expression: missing closing ): `/a/(b`"}},
		{"regex lookahead", okRule(func(r *Rule) { r.Match, r.Path = MatchRegex, "/a(?=b)" }),
			[]string{"7: rule \"r1\": path: is not a valid RE2 regular expression: invalid or unsupported Perl syntax: `(?=`"}},
		{"regex with ^", okRule(func(r *Rule) { r.Match, r.Path = MatchRegex, "^/old/(.*)$" }),
			[]string{`7: rule "r1": path: regex "^/old/(.*)$" does not start with '/'; it is matched against the whole path (anchored for you), so write it from the leading '/' without ^ or $, and use case_insensitive: true rather than (?i)`}},
		{"regex with too many groups", okRule(func(r *Rule) { r.Match, r.Path = MatchRegex, "/"+strings.Repeat("(a)", 16) }),
			[]string{`7: rule "r1": path: regex has 16 capture groups; accepted: at most 15`}},
		{"pattern with too many captures", okRule(func(r *Rule) { r.Match, r.Path = MatchPattern, "/:a/:b/:c/:d/:e/:f/:g/:h/:i/:j/:k/:l/:m/:n/:o/*" }),
			[]string{`7: rule "r1": path: pattern "/:a/:b/:c/:d/:e/:f/:g/:h/:i/:j/:k/:l/:m/:n/:o/*" has 16 captures; accepted: at most 15`}},
		{"regex unknown group number", okRule(func(r *Rule) { r.Match, r.Path, r.To = MatchRegex, "/a/(.*)", "/b/$2" }),
			[]string{`7: rule "r1": to: $2 refers to a capture the path does not define; accepted: ${1}`}},
		{"regex unknown group name", okRule(func(r *Rule) { r.Match, r.Path, r.To = MatchRegex, "/a/(?P<x>.*)", "/b/${y}" }),
			[]string{`7: rule "r1": to: ${y} refers to a capture the path does not define; accepted: ${1}, ${x}`}},
		{"regex $1x is a name, as in regexp.Expand", okRule(func(r *Rule) { r.Match, r.Path, r.To = MatchRegex, "/a/(.*)", "/b/$1x" }),
			[]string{`7: rule "r1": to: $1x refers to a capture the path does not define; accepted: ${1}`}},
		{"capture in host, regex", okRule(func(r *Rule) { r.Match, r.Path, r.To = MatchRegex, "/(.*)", "https://$1.example.com/" }),
			[]string{`7: rule "r1": to: the capture $1 is in the scheme or host of "https://$1.example.com/"; captures may appear only in the path, query or fragment (open-redirect guard)`}},
		{"capture in scheme, regex", okRule(func(r *Rule) { r.Match, r.Path, r.To = MatchRegex, "/(?P<s>https?)/(.*)", "${s}://example.com/$2" }),
			[]string{`7: rule "r1": to: the capture ${s} is in the scheme or host of "${s}://example.com/$2"; captures may appear only in the path, query or fragment (open-redirect guard)`}},
		{"capture in host, pattern", okRule(func(r *Rule) { r.Match, r.Path, r.To = MatchPattern, "/go/:site/*", "https://:site/:splat" }),
			[]string{`7: rule "r1": to: the capture :site is in the scheme or host of "https://:site/:splat"; captures may appear only in the path, query or fragment (open-redirect guard)`}},

		{"missing to", okRule(func(r *Rule) { r.To = "" }),
			[]string{`7: rule "r1": to: missing; accepted: an absolute http or https URL such as https://example.com/new, or an absolute path such as /new`}},
		{"to with CRLF", okRule(func(r *Rule) { r.To = "/new\r\nSet-Cookie: a=b" }),
			[]string{`7: rule "r1": to: contains CR or LF, which would split the Location header (response splitting); accepted: an absolute http or https URL such as https://example.com/new, or an absolute path such as /new`}},
		{"to with tab", okRule(func(r *Rule) { r.To = "/new\tx" }),
			[]string{`7: rule "r1": to: contains the control character U+0009; accepted: an absolute http or https URL such as https://example.com/new, or an absolute path such as /new`}},
		{"to with space", okRule(func(r *Rule) { r.To = "/a b" }),
			[]string{`7: rule "r1": to: "/a b" contains a space; write it percent-encoded as %20`}},
		{"to starting with //", okRule(func(r *Rule) { r.To = "//evil.example/" }),
			[]string{`7: rule "r1": to: "//evil.example/" starts with "//", which browsers read as another host (open redirect); accepted: an absolute http or https URL such as https://example.com/new, or an absolute path such as /new`}},
		{"to with backslash", okRule(func(r *Rule) { r.To = `/\evil.example` }),
			[]string{`7: rule "r1": to: "/\\evil.example" contains a backslash, which browsers read as '/' (so /\host is an open redirect); write '/' or %5C`}},
		{"to non-ASCII", okRule(func(r *Rule) { r.To = "/café" }),
			[]string{`7: rule "r1": to: "/café" contains the non-ASCII character 'é'; a Location is ASCII (RFC 9110 section 10.2.2), so write it percent-encoded as %C3%A9`}},
		{"to relative", okRule(func(r *Rule) { r.To = "new" }),
			[]string{`7: rule "r1": to: "new" is neither an absolute path nor an absolute URL; accepted: an absolute http or https URL such as https://example.com/new, or an absolute path such as /new`}},
		{"to javascript", okRule(func(r *Rule) { r.To = "javascript://x/%0aalert(1)" }),
			[]string{`7: rule "r1": to: "javascript://x/%0aalert(1)" has the scheme "javascript"; only http and https are redirect targets; accepted: an absolute http or https URL such as https://example.com/new, or an absolute path such as /new`}},
		{"to upper-case scheme", okRule(func(r *Rule) { r.To = "HTTPS://example.com/" }),
			[]string{`7: rule "r1": to: "HTTPS://example.com/" has the scheme "HTTPS"; write it lower-case; accepted: an absolute http or https URL such as https://example.com/new, or an absolute path such as /new`}},
		{"to without host", okRule(func(r *Rule) { r.To = "https:///x" }),
			[]string{`7: rule "r1": to: "https:///x" has no host; accepted: an absolute http or https URL such as https://example.com/new, or an absolute path such as /new`}},
		{"to with userinfo", okRule(func(r *Rule) { r.To = "https://example.com@evil.example/" }),
			[]string{`7: rule "r1": to: "https://example.com@evil.example/" has user information (user@host), which hides the real host from a reader; accepted: an absolute http or https URL such as https://example.com/new, or an absolute path such as /new`}},
		{"to with bad port", okRule(func(r *Rule) { r.To = "https://example.com:99999/" }),
			[]string{`7: rule "r1": to: "https://example.com:99999/" has the invalid port "99999" (ports are 1 to 65535); accepted: an absolute http or https URL such as https://example.com/new, or an absolute path such as /new`}},

		{"bad status", okRule(func(r *Rule) { r.Status = 404 }),
			[]string{`7: rule "r1": status: 404 is not a redirect status; accepted: 301, 302, 303, 307, 308 (or omit it to choose from the intent)`}},
		{"lower-case method", okRule(func(r *Rule) { r.Methods = []string{"get"} }),
			[]string{`7: rule "r1": methods: "get" is not upper-case; method names are case-sensitive (RFC 9110 section 9.1), write "GET"`}},
		{"invalid method", okRule(func(r *Rule) { r.Methods = []string{"GE T"} }),
			[]string{`7: rule "r1": methods: "GE T" is not a method name; accepted: HTTP method tokens such as GET, HEAD, POST (RFC 9110 section 9)`}},
		{"duplicate method", okRule(func(r *Rule) { r.Methods = []string{"GET", "GET"} }),
			[]string{`7: rule "r1": methods: "GET" is listed twice`}},

		{"host with port", okRule(func(r *Rule) { r.Host = "example.com:8080" }),
			[]string{`7: rule "r1": host: "example.com:8080" has a port; the port is dropped from request hosts before matching, so write the host name only`}},
		{"host with scheme", okRule(func(r *Rule) { r.Host = "https://example.com" }),
			[]string{`7: rule "r1": host: "https://example.com" has a scheme; write the host name only; accepted: a lower-case host name such as www.example.com, a wildcard such as *.example.com, or no host for any host`}},
		{"host with path", okRule(func(r *Rule) { r.Host = "example.com/docs" }),
			[]string{`7: rule "r1": host: "example.com/docs" has a path; write the host name only; accepted: a lower-case host name such as www.example.com, a wildcard such as *.example.com, or no host for any host`}},
		{"host upper-case", okRule(func(r *Rule) { r.Host = "Example.com" }),
			[]string{`7: rule "r1": host: "Example.com" has upper-case letters; host names are compared in lower case, so write "example.com"`}},
		{"host trailing dot", okRule(func(r *Rule) { r.Host = "example.com." }),
			[]string{`7: rule "r1": host: "example.com." ends with a dot; the trailing dot is dropped from request hosts before matching, so write "example.com"`}},
		{"host star alone", okRule(func(r *Rule) { r.Host = "*" }),
			[]string{`7: rule "r1": host: "*" is not a host; omit host to match any host`}},
		{"host star inside", okRule(func(r *Rule) { r.Host = "www.*.example.com" }),
			[]string{`7: rule "r1": host: "www.*.example.com": '*' is accepted only as the whole first label, as in *.example.com; accepted: a lower-case host name such as www.example.com, a wildcard such as *.example.com, or no host for any host`}},
		{"host empty label", okRule(func(r *Rule) { r.Host = "a..b" }),
			[]string{`7: rule "r1": host: "a..b" has an empty label; accepted: a lower-case host name such as www.example.com, a wildcard such as *.example.com, or no host for any host`}},
		{"host non-ASCII", okRule(func(r *Rule) { r.Host = "bücher.example" }),
			[]string{`7: rule "r1": host: "bücher.example" has non-ASCII characters; write the punycode (xn--) form; accepted: a lower-case host name such as www.example.com, a wildcard such as *.example.com, or no host for any host`}},

		{"bad query_strip glob", okRule(func(r *Rule) { r.QueryStrip = []string{"utm_[", ""} }),
			[]string{
				`7: rule "r1": query_strip: "utm_[" is not a valid glob (* ? [a-z] \x); accepted: parameter names or globs such as utm_*`,
				`7: rule "r1": query_strip: empty entry; accepted: parameter names or globs such as utm_* or fbclid`,
			}},
		{"bad headers", okRule(func(r *Rule) {
			r.Headers = map[string]string{"Accept-Language": "de", "x y": "a", "cookie": `z\`}
		}), []string{
			`7: rule "r1": headers: "Accept-Language" is not lower-case; request header names are compared lower-case, write "accept-language"`,
			`7: rule "r1": headers: cookie: value "z\\" ends with a '\' that quotes nothing; accepted: a glob such as de* where * is any text, ? one character and \ quotes the next (empty = header absent or empty)`,
			`7: rule "r1": headers: "x y" is not a header name; accepted: lower-case header names such as accept-language`,
		}},
		{"bad conditions", okRule(func(r *Rule) {
			r.Has = []Condition{{Type: "cookies", Key: "a"}, {Type: "header", Key: ""}, {Type: "cookie", Key: "a b"}, {Type: "query", Key: "q", Value: ptr(`x\`)}}
			r.Missing = []Condition{{Type: "header", Key: "x:y"}}
		}), []string{
			`7: rule "r1": has: [0]: unknown type "cookies"; accepted: {type: header|cookie|query, key: a name, value: an optional glob with * and ?}`,
			`7: rule "r1": has: [1]: empty key; accepted: {type: header|cookie|query, key: a name, value: an optional glob with * and ?}`,
			`7: rule "r1": has: [2]: "a b" is not a cookie name; accepted: a name without spaces, ';', '=' or quotes (RFC 6265 section 4.1.1)`,
			`7: rule "r1": has: [3]: value "x\\" ends with a '\' that quotes nothing; accepted: a glob where * is any text, ? one character and \ quotes the next`,
			`7: rule "r1": missing: [0]: "x:y" is not a header name; accepted: a header name such as x-beta (RFC 9110 section 5.1)`,
		}},
		{"good conditions", okRule(func(r *Rule) {
			r.Has = []Condition{{Type: "cookie", Key: "beta", Value: ptr("1")}, {Type: "header", Key: "X-Beta"}, {Type: "query", Key: "a b", Value: ptr("*")}}
			r.Missing = []Condition{{Type: "header", Key: "x-no"}}
			r.Languages = []string{"en", "de", "fr-CH", "zh-Hant-TW", "x-klingon"}
		}), nil},
		{"bad languages", okRule(func(r *Rule) { r.Languages = []string{"*", "e", "en_US", "de", "DE", "de-x", "toolonglanguage"} }),
			[]string{
				`7: rule "r1": languages: "*" is not a language; list the tags the rule serves (a request's * selects the first); accepted: language tags such as en, de, fr-CH, zh-Hant (RFC 5646)`,
				`7: rule "r1": languages: "e" is not a language tag; accepted: language tags such as en, de, fr-CH, zh-Hant (RFC 5646)`,
				`7: rule "r1": languages: "en_US" is not a language tag; accepted: language tags such as en, de, fr-CH, zh-Hant (RFC 5646)`,
				`7: rule "r1": languages: "DE" is listed twice (tags are compared case-insensitively)`,
				`7: rule "r1": languages: "de-x" is not a language tag; accepted: language tags such as en, de, fr-CH, zh-Hant (RFC 5646)`,
				`7: rule "r1": languages: "toolonglanguage" is not a language tag; accepted: language tags such as en, de, fr-CH, zh-Hant (RFC 5646)`,
			}},
		{":lang without languages", okRule(func(r *Rule) { r.To = "/:lang/" }),
			[]string{`7: rule "r1": to: "/:lang/" uses :lang, the tag that languages selects, but the rule has no languages; add languages: [en, de, ...]`}},
		{":lang with languages", okRule(func(r *Rule) { r.To, r.Languages = "/:lang/", []string{"en"} }), nil},
		{":lang both capture and language", okRule(func(r *Rule) {
			r.Path, r.Match, r.To, r.Languages = "/:lang/x", MatchPattern, "/:lang/y", []string{"en"}
		}), []string{`7: rule "r1": to: "/:lang/y": :lang is both a capture of the path and the language negotiated; rename the path's parameter`}},
		{":subdomain without wildcard", okRule(func(r *Rule) { r.Host, r.To = "example.com", "https://:subdomain.example.org/" }),
			[]string{`7: rule "r1": to: "https://:subdomain.example.org/" uses :subdomain, the labels a wildcard host's * matched, but host "example.com" is not a wildcard such as *.example.com`}},
		{":subdomain leading labels", okRule(func(r *Rule) {
			r.Host, r.To = "*.example.com", "https://:subdomain.example.org:8443/:subdomain?s=:subdomain"
		}), nil},
		{":subdomain before a public suffix", okRule(func(r *Rule) { r.Host, r.To = "*.example.com", "https://:subdomain.co.uk/" }),
			[]string{`7: rule "r1": to: "https://:subdomain.co.uk/": :subdomain is followed by "co.uk", a public suffix, so the labels would choose whose site it is; put it before a registrable domain such as example.org (open-redirect guard)`}},
		{":subdomain as the whole host", okRule(func(r *Rule) { r.Host, r.To = "*.example.com", "https://:subdomain/" }),
			[]string{`7: rule "r1": to: "https://:subdomain/": :subdomain may stand in the host only once, as its leading labels followed by a domain, such as https://:subdomain.example.org/ (open-redirect guard)`}},
		{":subdomain inside the host", okRule(func(r *Rule) { r.Host, r.To = "*.example.com", "https://a.:subdomain.example.org/" }),
			[]string{`7: rule "r1": to: "https://a.:subdomain.example.org/": :subdomain may stand in the host only once, as its leading labels followed by a domain, such as https://:subdomain.example.org/ (open-redirect guard)`}},
		{":subdomain in user information", okRule(func(r *Rule) { r.Host, r.To = "*.example.com", "https://:subdomain@example.org/" }),
			[]string{`7: rule "r1": to: "https://:subdomain@example.org/": :subdomain may stand in the host only once, as its leading labels followed by a domain, such as https://:subdomain.example.org/ (open-redirect guard)`}},
		{":subdomain twice in the host", okRule(func(r *Rule) { r.Host, r.To = "*.example.com", "https://:subdomain.:subdomain.example.org/" }),
			[]string{`7: rule "r1": to: "https://:subdomain.:subdomain.example.org/": :subdomain may stand in the host only once, as its leading labels followed by a domain, such as https://:subdomain.example.org/ (open-redirect guard)`}},
		{"negative cache_max_age", okRule(func(r *Rule) { r.CacheMaxAge = new(-time.Second) }),
			[]string{`7: rule "r1": cache_max_age: -1 is negative; accepted: a number of seconds >= 0 (0: not cacheable)`}},
		{"sub-second cache_max_age", okRule(func(r *Rule) { r.CacheMaxAge = new(1500 * time.Millisecond) }),
			[]string{`7: rule "r1": cache_max_age: 1.5s is not a whole number of seconds; Cache-Control max-age counts seconds (RFC 9111 section 1.2.2)`}},
		{"cache_max_age 0 is no-store, not unset", okRule(func(r *Rule) { r.CacheMaxAge = new(time.Duration(0)) }), nil},
		{"cache_max_age of a year", okRule(func(r *Rule) { r.CacheMaxAge = new(MaxAdvisedCacheAge) }), nil},
		{"cache_max_age over a year warns", okRule(func(r *Rule) { r.CacheMaxAge = new(MaxAdvisedCacheAge + time.Second) }),
			[]string{`7: warning: rule "r1": cache_max_age: 31536001 seconds (365d1s) is more than a year (RFC 2616 section 14.21's ceiling for Expires): clients keep the redirect that long and it cannot be taken back; redirectd refuses more than --max-cache-age (one year by default)`}},
		{"valid lifecycle", okRule(func(r *Rule) {
			r.Intent, r.Since, r.PromoteAfter = IntentPermanent, time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), 30*day
			r.ActiveFrom, r.ActiveUntil, r.Mode = r.Since, r.Since.Add(time.Second), ModeShadow
		}), nil},
		{"window that closes before it opens", okRule(func(r *Rule) {
			r.ActiveFrom, r.ActiveUntil = time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC), time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
		}), []string{`7: rule "r1": active_until: 2026-12-01T00:00:00Z is not after active_from 2026-12-02T00:00:00Z, so the rule would never match; accepted: a time after active_from`}},
		{"empty window", okRule(func(r *Rule) {
			r.ActiveFrom = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
			r.ActiveUntil = r.ActiveFrom
		}), []string{`7: rule "r1": active_until: 2026-12-01T00:00:00Z is not after active_from 2026-12-01T00:00:00Z, so the rule would never match; accepted: a time after active_from`}},
		{"active_until out of range", okRule(func(r *Rule) { r.ActiveUntil = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) }),
			[]string{`7: rule "r1": active_until: year 10000 is out of range; accepted: an RFC 3339 time such as 2026-11-01T00:00:00Z`}},
		{"mode out of range", okRule(func(r *Rule) { r.Mode = 9 }),
			[]string{`7: rule "r1": mode: Mode(9) is not a mode; accepted: enforce, shadow`}},
		{"promote_after on a temporary rule", okRule(func(r *Rule) { r.Since, r.PromoteAfter = time.Now(), day }),
			[]string{`7: rule "r1": promote_after: the rule is not permanent, so there is nothing to promote; accepted on rules with intent: permanent (or status 301 or 308)`}},
		{"promote_after on a permanent intent pinned to 302", okRule(func(r *Rule) { r.Intent, r.Status, r.Since, r.PromoteAfter = IntentPermanent, 302, time.Now(), day }),
			[]string{`7: rule "r1": promote_after: the rule is not permanent, so there is nothing to promote; accepted on rules with intent: permanent (or status 301 or 308)`}},
		{"promote_after on a pinned 301", okRule(func(r *Rule) { r.Status, r.Since, r.PromoteAfter = 301, time.Now(), day }), nil},
		{"promote_after without since", okRule(func(r *Rule) { r.Intent, r.PromoteAfter = IntentPermanent, 30*day }),
			[]string{`7: rule "r1": promote_after: needs since, the time its 30d of temporary answers count from; add since with the rule's creation time, such as since: 2026-12-01T00:00:00Z (the admin API sets it when it creates a rule)`}},
		{"negative promote_after", okRule(func(r *Rule) { r.Intent, r.Since, r.PromoteAfter = IntentPermanent, time.Now(), -time.Hour }),
			[]string{`7: rule "r1": promote_after: -1h0m0s is negative; accepted: a duration such as 30d`}},
		{"enums out of range", okRule(func(r *Rule) { r.Match, r.Intent, r.Query, r.TrailingSlash = 9, 9, 9, 9 }),
			[]string{
				`7: rule "r1": match: MatchKind(9) is not a match kind; accepted: exact, prefix, pattern, regex`,
				`7: rule "r1": intent: Intent(9) is not an intent; accepted: permanent, temporary, see_other`,
				`7: rule "r1": query: QueryPolicy(9) is not a query policy; accepted: keep, drop`,
				`7: rule "r1": trailing_slash: TrailingSlash(9) is not a trailing-slash policy; accepted: ignore, strict`,
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.rule
			got := problemStrings(checkRule(&r))
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("checkRule problems:\n got: %q\nwant: %q", got, tt.want)
			}
		})
	}
}

func TestCheckIDs(t *testing.T) {
	tests := []struct {
		name  string
		rules []Rule
		want  []string
	}{
		{"unique", []Rule{{ID: "a", Line: 2}, {ID: "b", Line: 5}}, nil},
		{"duplicate names the first line", []Rule{{ID: "a", Line: 2}, {ID: "b", Line: 5}, {ID: "a", Line: 9}, {ID: "a", Line: 12}},
			[]string{
				`9: rule "a": id: duplicate id, first used at line 2; every rule needs its own id`,
				`12: rule "a": id: duplicate id, first used at line 2; every rule needs its own id`,
			}},
		{"duplicate without lines names the index", []Rule{{ID: "x"}, {ID: "x"}},
			[]string{`rule "x": id: duplicate id, first used at rules[0]; every rule needs its own id`}},
		{"missing ids are checkRule's", []Rule{{}, {}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := problemStrings(checkIDs(tt.rules))
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("checkIDs problems:\n got: %q\nwant: %q", got, tt.want)
			}
		})
	}
}

func problemStrings(ps []Problem) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.String())
	}
	return out
}

// TestDuplicateIDsSplit: a set large enough to be split over several maps
// reports the same duplicates, in file order, as one map would.
func TestDuplicateIDsSplit(t *testing.T) {
	rules := make([]Rule, 100_000)
	for i := range rules {
		rules[i] = Rule{ID: fmt.Sprintf("r%d", i%90_000), Line: i + 1}
	}
	rules[99_999].ID, rules[5].ID = "", ""
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(3))
	var got [][2]int
	for at, first := range duplicateIDs(rules) {
		got = append(got, [2]int{at, first})
	}
	if len(got) != 9_998 {
		t.Fatalf("%d duplicates, want 9,998", len(got))
	}
	for j, d := range got {
		if d[1] != d[0]-90_000 || j > 0 && d[0] <= got[j-1][0] {
			t.Fatalf("duplicate %d is (%d, first %d); want file order, each first used 90,000 rules before", j, d[0], d[1])
		}
	}
}

// TestEndedWarnings: a rule has ended from its active_until on, and only
// rules with one can end.
func TestEndedWarnings(t *testing.T) {
	until := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	rules := []Rule{
		{ID: "open", Path: "/a", To: "/b", Line: 2},
		{ID: "over", Path: "/c", To: "/d", ActiveUntil: until, Line: 3},
		{ID: "future", Path: "/e", To: "/f", ActiveUntil: until.Add(time.Second), Line: 4},
	}
	got := problemStrings(EndedWarnings(RuleSeq(rules), until))
	want := []string{`3: warning: rule "over": active_until: ended at 2026-12-01T00:00:00Z and no longer matches; remove it (redirectctl stats --expired lists such rules)`}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("EndedWarnings:\n got: %q\nwant: %q", got, want)
	}
	if ps := EndedWarnings(RuleSeq(rules), until.Add(-time.Nanosecond)); len(ps) != 0 {
		t.Errorf("EndedWarnings a moment before active_until = %v, want none", ps)
	}
}

// TestParseDuration: Go durations with whole days in front, and back.
func TestParseDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"30d": 30 * day, "1d12h": 36 * time.Hour, "12h": 12 * time.Hour, "90m": 90 * time.Minute, "0d": 0, "1d0.5h": day + 30*time.Minute,
	} {
		got, err := parseDuration(in)
		if err != nil || got != want {
			t.Errorf("parseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
		if back, err := parseDuration(formatDuration(got)); err != nil || back != got {
			t.Errorf("parseDuration(formatDuration(%v) = %q) = %v, %v", got, formatDuration(got), back, err)
		}
	}
	for _, in := range []string{"", "d", "30", "1 month", "-1d", "1d-1h", "1y", "1dd", "99999999999d"} {
		if d, err := parseDuration(in); err == nil {
			t.Errorf("parseDuration(%q) = %v, want an error", in, d)
		}
	}
}

func ptr(s string) *string { return &s }
