package convert_test

import (
	"bytes"
	"io"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/redirectd/redirectd/client/convert"
	"github.com/redirectd/redirectd/decision"
	"github.com/redirectd/redirectd/decision/rulegen"
)

type importFunc func(name string, r io.Reader) ([]decision.Rule, []decision.Problem, error)
type exportFunc func(w io.Writer, rules []decision.Rule) ([]decision.Problem, error)

func importFile(t *testing.T, imp importFunc, file string) ([]decision.Rule, []decision.Problem) {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rules, skipped, err := imp(file, f)
	if err != nil {
		t.Fatalf("import %s: %v", file, err)
	}
	return rules, skipped
}

// skippedLines maps each skipped line to its message.
func skippedLines(t *testing.T, file string, ps []decision.Problem) map[int]string {
	t.Helper()
	m := map[int]string{}
	for _, p := range ps {
		if p.File != file || p.Line == 0 || p.Severity != decision.SeverityError {
			t.Errorf("problem %q: want an error with file %s and a line", p, file)
		}
		m[p.Line] = p.Message
	}
	return m
}

func checkSkipped(t *testing.T, got map[int]string, want map[int]string) {
	t.Helper()
	for line, sub := range want {
		msg, ok := got[line]
		if !ok {
			t.Errorf("line %d not reported; want a problem containing %q", line, sub)
		} else if !strings.Contains(msg, sub) {
			t.Errorf("line %d: %q, want it to contain %q", line, msg, sub)
		}
	}
	for line, msg := range got {
		if _, ok := want[line]; !ok {
			t.Errorf("line %d reported unexpectedly: %s", line, msg)
		}
	}
}

func TestImportNetlifyFixture(t *testing.T) {
	const file = "testdata/netlify_redirects"
	rules, skipped := importFile(t, convert.ImportNetlify, file)
	checkSkipped(t, skippedLines(t, file, skipped), map[int]string{
		27: "never applied by Netlify: line 16 (/news/*)",
		30: "status 200 is a rewrite",
		31: "status 200 with an absolute URL is a proxy",
		34: "status 404 serves a page",
		35: "status 410 serves a page",
		39: "condition Country=au,nz cannot be converted: Netlify finds the country from the client's IP address",
		40: "condition Role=admin cannot be converted: Netlify reads roles from the Identity token it verifies",
		43: "query-parameter matching (id=:id)",
		46: "a rule needs a from and a to",
		47: `"30x" after the target is neither a status`,
		48: `from "docs/relative": want a path starting with /`,
		49: "/loop redirects to itself",
		50: "redirects to itself (https://www.example.com/:splat): a client would loop; redirectd rules match http and https alike",
		51: `placeholder inside segment "a-:id"`,
	})
	if len(rules) != 16 {
		t.Errorf("%d rules, want 16", len(rules))
	}
	byID := map[string]decision.Rule{}
	for _, r := range rules {
		byID[r.ID] = r
	}
	want := []decision.Rule{
		{ID: "netlify-L6", Line: 6, Path: "/about-us", To: "/company/about", Intent: decision.IntentPermanent, Status: 301},
		{ID: "netlify-L8", Line: 8, Path: "/contact.php", To: "/company/contact", Intent: decision.IntentPermanent, Status: 308},
		{ID: "netlify-L11", Line: 11, Path: "/shop", To: "/store", Intent: decision.IntentTemporary, Status: 302},
		{ID: "netlify-L13", Line: 13, Path: "/checkout/legacy", To: "/checkout", Intent: decision.IntentSeeOther, Status: 303},
		{ID: "netlify-L16", Line: 16, Path: "/news/*", Match: decision.MatchPattern, To: "/blog/:splat", Intent: decision.IntentPermanent, Status: 301},
		{ID: "netlify-L17", Line: 17, Path: "/blog/:year/:month/:slug", Match: decision.MatchPattern, To: "/articles/:year/:slug", Intent: decision.IntentPermanent, Status: 301},
		{ID: "netlify-L23", Line: 23, Host: "blog.example.com", Path: "/*", Match: decision.MatchPattern, To: "https://www.example.com/blog/:splat", Intent: decision.IntentPermanent, Status: 301},
		{ID: "netlify-L24", Line: 24, Host: "old.example.org", Path: "/pricing", To: "https://www.example.com/pricing", Intent: decision.IntentPermanent, Status: 301},
		{ID: "netlify-L38", Line: 38, Path: "/", To: "/fr/", Intent: decision.IntentTemporary, Status: 302, Languages: []string{"fr"}},
	}
	for _, w := range want {
		if diff := cmp.Diff(w, byID[w.ID]); diff != "" {
			t.Errorf("rule %s (-want +got):\n%s", w.ID, diff)
		}
	}
}

func TestImportCSVFixture(t *testing.T) {
	const file = "testdata/cloudflare.csv"
	rules, skipped := importFile(t, convert.ImportCSV, file)
	checkSkipped(t, skippedLines(t, file, skipped), map[int]string{
		22: "source example.com/contacts is already on line 1",
		23: `status_code "418"`,
		24: `preserve_query_string "YES"`,
		25: "carries a port",
		26: "has a wildcard",
		27: "the URL has no host",
		28: `target_url "/new-relative": want an absolute`,
		29: "a query or fragment cannot be matched",
		30: "example.com/ redirects to itself",
		31: "8 fields; want at most 7",
		32: `bare " in non-quoted-field`,
	})
	if len(rules) != 26 {
		t.Errorf("%d rules, want 26", len(rules))
	}
	byID := map[string]decision.Rule{}
	for _, r := range rules {
		byID[r.ID] = r
	}
	drop, strict := decision.QueryDrop, decision.TrailingSlashStrict
	want := []decision.Rule{
		// Cloudflare's own examples: defaults 301, query dropped.
		{ID: "cf-L1", Line: 1, Host: "example.com", Path: "/contacts", To: "https://example.net/contact-us", Intent: decision.IntentPermanent, Status: 301, Query: drop, TrailingSlash: strict},
		{ID: "cf-L2-subdomains", Line: 2, Host: "*.example.com", Path: "/about", To: "https://example.net/about-us", Intent: decision.IntentPermanent, Status: 301, Query: drop, TrailingSlash: strict},
		{ID: "cf-L4", Line: 4, Host: "www.example.com", Path: "/old-pricing", To: "https://www.example.com/pricing", Intent: decision.IntentPermanent, Status: 308, TrailingSlash: strict},
		// Subpath with suffix: a prefix; without: a pattern ignoring the rest.
		{ID: "cf-L5", Line: 5, Host: "www.example.com", Path: "/blog", Match: decision.MatchPrefix, To: "https://blog.example.com/", Intent: decision.IntentPermanent, Status: 301},
		{ID: "cf-L6", Line: 6, Host: "www.example.com", Path: "/legacy/*", Match: decision.MatchPattern, To: "https://www.example.com/", Intent: decision.IntentPermanent, Status: 301, Query: drop},
		{ID: "cf-L7", Line: 7, Host: "shop.example.com", Path: "/sale", To: "https://shop.example.com/offers?src=sale", Intent: decision.IntentTemporary, Status: 307, TrailingSlash: strict},
		{ID: "cf-L9", Line: 9, Host: "example.com", Path: "/a,b", To: "https://example.com/a-b", Intent: decision.IntentPermanent, Status: 301, Query: drop, TrailingSlash: strict},
		{ID: "cf-L16-subdomains", Line: 16, Host: "*.example.com", Path: "/support", Match: decision.MatchPrefix, To: "https://help.example.com/", Intent: decision.IntentTemporary, Status: 302},
	}
	for _, w := range want {
		if diff := cmp.Diff(w, byID[w.ID]); diff != "" {
			t.Errorf("rule %s (-want +got):\n%s", w.ID, diff)
		}
	}
}

// TestRoundTrip: a file imported, exported and imported again gives the
// same rules (ids and lines aside: they follow the line numbers), and the
// export leaves nothing out.
func TestRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		file string
		imp  importFunc
		exp  exportFunc
	}{
		{"netlify", "testdata/netlify_redirects", convert.ImportNetlify, convert.ExportNetlify},
		{"cloudflare", "testdata/cloudflare.csv", convert.ImportCSV, convert.ExportCSV},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			first, _ := importFile(t, tt.imp, tt.file)
			var out bytes.Buffer
			problems, err := tt.exp(&out, first)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range problems {
				t.Errorf("export of imported rules: %s", p)
			}
			second, skipped, err := tt.imp("exported", &out)
			if err != nil || len(skipped) > 0 {
				t.Fatalf("re-import: %v %v\n%s", err, skipped, out.String())
			}
			ignore := cmpopts.IgnoreFields(decision.Rule{}, "ID", "Line")
			if diff := cmp.Diff(first, second, ignore, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("import → export → import changed the rules (-first +second):\n%s\nexported:\n%s", diff, out.String())
			}
		})
	}
}

// TestImportedRulesSerialise: imported rules survive the rules file
// (MarshalRules → ParseRules) and build without errors.
func TestImportedRulesSerialise(t *testing.T) {
	for _, tc := range []struct {
		file string
		imp  importFunc
	}{
		{"testdata/netlify_redirects", convert.ImportNetlify},
		{"testdata/cloudflare.csv", convert.ImportCSV},
	} {
		rules, _ := importFile(t, tc.imp, tc.file)
		data := decision.MarshalRules(rules)
		back, err := decision.ParseRules("imported.yaml", data)
		if err != nil {
			t.Fatalf("%s: ParseRules(MarshalRules(rules)): %v\n%s", tc.file, err, data)
		}
		if diff := cmp.Diff(rules, back, cmpopts.IgnoreFields(decision.Rule{}, "Line"), cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("%s: rules changed through the rules file (-imported +parsed):\n%s", tc.file, diff)
		}
		if _, _, err := decision.Build(rules, decision.Options{}); err != nil {
			t.Errorf("%s: Build: %v", tc.file, err)
		}
	}
}

// TestImportedRulesDecide checks that imported rules answer as the
// foreign product documents.
func TestImportedRulesDecide(t *testing.T) {
	now := time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		file, method, host, target string
		status                     int
		location                   string // "" = no redirect
	}{
		{"testdata/netlify_redirects", "GET", "www.example.com", "/news/2004/01/10/my-story", 301, "/blog/2004/01/10/my-story"},
		{"testdata/netlify_redirects", "POST", "www.example.com", "/about-us", 301, "/company/about"},
		{"testdata/netlify_redirects", "GET", "www.example.com", "/about-us/?ref=x", 301, "/company/about?ref=x"},
		{"testdata/netlify_redirects", "GET", "www.example.com", "/blog/2019/03/hello", 301, "/articles/2019/hello"},
		{"testdata/netlify_redirects", "GET", "blog.example.com", "/2020/post", 301, "https://www.example.com/blog/2020/post"},
		{"testdata/netlify_redirects", "GET", "www.example.com", "/shop", 302, "/store"},
		{"testdata/netlify_redirects", "GET", "www.example.com", "/authors/c%C3%A9line", 301, "/authors/about-c%C3%A9line"},
		{"testdata/netlify_redirects", "GET", "www.example.com", "/app/dashboard", 0, ""},
		{"testdata/cloudflare.csv", "GET", "example.com", "/contacts?x=1", 301, "https://example.net/contact-us"},
		{"testdata/cloudflare.csv", "GET", "a.b.example.com", "/about", 301, "https://example.net/about-us"},
		{"testdata/cloudflare.csv", "GET", "example.com", "/about/", 0, ""},
		{"testdata/cloudflare.csv", "GET", "www.example.com", "/blog/2020/post?x=1", 301, "https://blog.example.com/2020/post?x=1"},
		{"testdata/cloudflare.csv", "GET", "www.example.com", "/legacy/some/page", 301, "https://www.example.com/"},
		{"testdata/cloudflare.csv", "GET", "www.example.com", "/legacy", 301, "https://www.example.com/"},
		{"testdata/cloudflare.csv", "POST", "shop.example.com", "/sale?a=1", 307, "https://shop.example.com/offers?src=sale&a=1"},
	}
	indexes := map[string]*decision.Index{}
	for _, tt := range tests {
		ix := indexes[tt.file]
		if ix == nil {
			imp := convert.ImportNetlify
			if strings.HasSuffix(tt.file, ".csv") {
				imp = convert.ImportCSV
			}
			rules, _ := importFile(t, imp, tt.file)
			var err error
			if ix, _, err = decision.Build(rules, decision.Options{}); err != nil {
				t.Fatalf("Build %s: %v", tt.file, err)
			}
			indexes[tt.file] = ix
		}
		d, err := ix.Decide(&decision.Request{Method: tt.method, Scheme: "https", Host: tt.host, Target: tt.target}, now)
		if err != nil {
			t.Fatalf("%s %s%s: %v", tt.method, tt.host, tt.target, err)
		}
		got := struct {
			Status   int
			Location string
		}{d.Status, d.Location}
		if !d.Redirect {
			got.Status = 0
		}
		if got.Status != tt.status || got.Location != tt.location {
			t.Errorf("%s: %s %s%s = %d %q, want %d %q", tt.file, tt.method, tt.host, tt.target, got.Status, got.Location, tt.status, tt.location)
		}
	}
}

func TestNetlifyLines(t *testing.T) {
	perm := decision.IntentPermanent
	tests := []struct {
		line    string
		want    *decision.Rule // nil when skipped
		wantMsg string
	}{
		{line: "/a /b", want: &decision.Rule{Path: "/a", To: "/b", Intent: perm, Status: 301}},
		{line: "/a\t\t/b   301!   # moved in 2024", want: &decision.Rule{Path: "/a", To: "/b", Intent: perm, Status: 301}},
		{line: "/a /b?utm=x#top 307", want: &decision.Rule{Path: "/a", To: "/b?utm=x#top", Intent: decision.IntentTemporary, Status: 307}},
		{line: "https://WWW.Example.com /x 301", want: &decision.Rule{Host: "www.example.com", Path: "/", To: "/x", Intent: perm, Status: 301}},
		{line: "/u/:id/* https://people.example.org/:id/:splat", want: &decision.Rule{Path: "/u/:id/*", Match: decision.MatchPattern, To: "https://people.example.org/:id/:splat", Intent: perm, Status: 301}},
		{line: "/a", wantMsg: "a rule needs a from and a to"},
		{line: "/a b=c", wantMsg: `no target: "b=c"`},
		{line: "/admin/* 200! Role=admin", wantMsg: `no target after "/admin/*"`},
		{line: "/search q=:q /find/:q 302", wantMsg: "query-parameter matching (q=:q)"},
		{line: "/a /b 301 Cookie=beta", want: &decision.Rule{Path: "/a", To: "/b", Intent: perm, Status: 301,
			Has: []decision.Condition{{Type: "cookie", Key: "beta"}}}},
		{line: "/ /de/ 302 Language=de,de-AT cookie=beta", want: &decision.Rule{Path: "/", To: "/de/", Intent: decision.IntentTemporary, Status: 302,
			Languages: []string{"de", "de-AT"}, Has: []decision.Condition{{Type: "cookie", Key: "beta"}}}},
		{line: "/a /b 301 Cookie=beta,alpha", wantMsg: "condition Cookie=beta,alpha cannot be converted: Netlify applies the line when any of the cookies is present"},
		{line: "/a /b 301 Language=", wantMsg: "condition Language= cannot be converted: no language after Language="},
		{line: "/a /b 302 Country=us Language=en", wantMsg: "condition Country=us cannot be converted: Netlify finds the country from the client's IP address"},
		{line: "/a /b 302 Cookie=a Cookie=b", wantMsg: "condition Cookie=b cannot be converted: Cookie= given twice"},
		{line: "/a /b 302 Colour=red", wantMsg: "condition Colour=red cannot be converted: not a Netlify condition redirectd knows (Language, Cookie, Country, Role)"},
		{line: "/a /b 300", wantMsg: "status 300 is not a redirect redirectd sends"},
		{line: "/a/*/b /c", wantMsg: "a splat * must be the last segment"},
		{line: "/a* /c", wantMsg: "a splat * must be a whole segment"},
		{line: "/a/: /c", wantMsg: "a placeholder needs a name"},
		{line: "/a?x=1 /c", wantMsg: "a query or fragment in from"},
		{line: "https://ex.com:8080/a /c", wantMsg: "carries a port"},
		{line: "ftp://ex.com/a /c", wantMsg: "want a path starting with / or an http(s) URL"},
		{line: "/blog/* /blog/archive/:splat", wantMsg: "redirects to itself"},
	}
	for _, tt := range tests {
		rules, skipped, err := convert.ImportNetlify("_redirects", strings.NewReader("# header\n\n"+tt.line+"\n"))
		if err != nil {
			t.Fatal(err)
		}
		if tt.want == nil {
			if len(rules) != 0 || len(skipped) != 1 || skipped[0].Line != 3 || !strings.Contains(skipped[0].Message, tt.wantMsg) {
				t.Errorf("%q: rules %v, skipped %v; want one problem on line 3 containing %q", tt.line, rules, skipped, tt.wantMsg)
			}
			continue
		}
		want := *tt.want
		want.ID, want.Line = "netlify-L3", 3
		if len(skipped) != 0 || len(rules) != 1 {
			t.Errorf("%q: rules %v, skipped %v; want one rule", tt.line, rules, skipped)
			continue
		}
		if diff := cmp.Diff(want, rules[0]); diff != "" {
			t.Errorf("%q (-want +got):\n%s", tt.line, diff)
		}
	}
}

func TestNetlifyFirstMatchWins(t *testing.T) {
	in := strings.Join([]string{
		"/a /x",                   // 1
		"/a/ /y",                  // 2: same path as line 1 (trailing slash ignored)
		"/p/:id /z/:id",           // 3
		"/p/42 /special",          // 4: line 3 matches it first
		"https://h.example/q /h1", // 5
		"/q /h2",                  // 6: other hosts still reach it
		"/r /r2",                  // 7
		"https://h.example/r /h3", // 8: line 7 applies to h.example first
		"/p/1/2 /deeper",          // 9: /p/:id does not match two segments
	}, "\n")
	rules, skipped, err := convert.ImportNetlify("_redirects", strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	var lines []int
	for _, p := range skipped {
		lines = append(lines, p.Line)
	}
	sort.Ints(lines)
	if diff := cmp.Diff([]int{2, 4, 8}, lines); diff != "" {
		t.Errorf("skipped lines (-want +got):\n%s\n%v", diff, skipped)
	}
	if len(rules) != 6 {
		t.Errorf("%d rules, want 6", len(rules))
	}
}

func TestCSVRecords(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []decision.Rule
		wantErr string // ImportCSV's error (header)
	}{
		{
			name: "header in another order, BOM, lower-case booleans",
			in:   "\ufeffsource_url,status_code,target_url,subpath_matching,preserve_path_suffix,preserve_query_string\nexample.com/a,302,https://example.com/b,true,true,true\n",
			want: []decision.Rule{{ID: "cf-L2", Line: 2, Host: "example.com", Path: "/a", Match: decision.MatchPrefix, To: "https://example.com/b", Intent: decision.IntentTemporary, Status: 302}},
		},
		{
			name: "two columns, uppercase host, scheme dropped",
			in:   "HTTP://Example.COM/Path,https://example.com/new\n",
			want: []decision.Rule{{ID: "cf-L1", Line: 1, Host: "example.com", Path: "/Path", To: "https://example.com/new", Intent: decision.IntentPermanent, Status: 301, Query: decision.QueryDrop, TrailingSlash: decision.TrailingSlashStrict}},
		},
		{
			name: "root subpath without suffix",
			in:   "old.example.com/,https://www.example.com/,301,TRUE,FALSE,TRUE,FALSE\n",
			want: []decision.Rule{{ID: "cf-L1", Line: 1, Host: "old.example.com", Path: "/*", Match: decision.MatchPattern, To: "https://www.example.com/", Intent: decision.IntentPermanent, Status: 301}},
		},
		{
			name: "header with spaces, as a spreadsheet writes it",
			in:   "Source URL,Target URL,Status Code\nexample.com/x,https://example.com/y,307\n",
			want: []decision.Rule{{ID: "cf-L2", Line: 2, Host: "example.com", Path: "/x", To: "https://example.com/y", Intent: decision.IntentTemporary, Status: 307, Query: decision.QueryDrop, TrailingSlash: decision.TrailingSlashStrict}},
		},
		{name: "unknown header column", in: "source_url,target_url,weight\n", wantErr: `unknown column "weight"`},
		{name: "header without target", in: "source_url,status_code\n", wantErr: "no target_url column"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rules, skipped, err := convert.ImportCSV("list.csv", strings.NewReader(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.HasPrefix(err.Error(), "list.csv:1: header") {
					t.Fatalf("error %v, want list.csv:1: header ... %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || len(skipped) > 0 {
				t.Fatalf("err %v, skipped %v", err, skipped)
			}
			if diff := cmp.Diff(tt.want, rules); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestExportNetlify(t *testing.T) {
	tests := []struct {
		name     string
		rule     decision.Rule
		wantLine string // "" when skipped
		wantMsgs []string
	}{
		{name: "exact pinned", rule: decision.Rule{ID: "a", Path: "/a", To: "/b", Status: 308}, wantLine: "/a  /b  308!"},
		{name: "prefix becomes splat before the query", rule: decision.Rule{ID: "p", Path: "/docs", Match: decision.MatchPrefix, To: "https://docs.example.com/v2?ref=old", Status: 301}, wantLine: "/docs    https://docs.example.com/v2?ref=old         301!\n/docs/*  https://docs.example.com/v2/:splat?ref=old  301!"},
		{name: "host", rule: decision.Rule{ID: "h", Host: "old.example.com", Path: "/", To: "https://new.example.com/", Status: 302}, wantLine: "https://old.example.com/  https://new.example.com/  302!"},
		{name: "unpinned permanent", rule: decision.Rule{ID: "u", Path: "/a", To: "/b", Intent: decision.IntentPermanent}, wantLine: "/a  /b  301!", wantMsgs: []string{"warning: rule \"u\": status: status not pinned: redirectd answers 301 to GET and HEAD but 308"}},
		{name: "unpinned temporary", rule: decision.Rule{ID: "t", Path: "/a", To: "/b"}, wantLine: "/a  /b  302!", wantMsgs: []string{"answers a temporary redirect with 307"}},
		{name: "cache dropped", rule: decision.Rule{ID: "c", Path: "/a", To: "/b", Status: 301, CacheMaxAge: new(time.Hour), Since: time.Unix(0, 0)}, wantLine: "/a  /b  301!", wantMsgs: []string{"cache_max_age: Netlify has no per-rule cache lifetime", "since: Netlify has no permanent-cache ramp"}},
		{name: "regex", rule: decision.Rule{ID: "r", Path: "^/x$", Match: decision.MatchRegex, To: "/y"}, wantMsgs: []string{`rule "r": match: regular expressions have no Netlify equivalent`}},
		{name: "methods", rule: decision.Rule{ID: "m", Path: "/x", To: "/y", Methods: []string{"GET"}}, wantMsgs: []string{"methods: Netlify rules apply to every method"}},
		{name: "headers", rule: decision.Rule{ID: "hd", Path: "/x", To: "/y", Headers: map[string]string{"accept-language": "fr*"}}, wantMsgs: []string{"headers:"}},
		{name: "query strip", rule: decision.Rule{ID: "qs", Path: "/x", To: "/y", QueryStrip: []string{"utm_*"}}, wantMsgs: []string{"query_strip:"}},
		{name: "query drop", rule: decision.Rule{ID: "qd", Path: "/x", To: "/y", Query: decision.QueryDrop}, wantMsgs: []string{"query: a _redirects line has no way to drop"}},
		{name: "case insensitive", rule: decision.Rule{ID: "ci", Path: "/x", To: "/y", CaseInsensitive: true}, wantMsgs: []string{"case_insensitive:"}},
		{name: "strict slash", rule: decision.Rule{ID: "ts", Path: "/x", To: "/y", TrailingSlash: decision.TrailingSlashStrict}, wantMsgs: []string{"trailing_slash:"}},
		{name: "wildcard host", rule: decision.Rule{ID: "w", Host: "*.example.com", Path: "/x", To: "/y"}, wantMsgs: []string{"host: Netlify's from names one host"}},
		{name: "language and cookie", rule: decision.Rule{ID: "lc2", Path: "/", To: "/fr/", Status: 302, Languages: []string{"fr", "fr-CA"}, Has: []decision.Condition{{Type: "cookie", Key: "beta"}}},
			wantLine: "/  /fr/  302!  Language=fr,fr-CA  Cookie=beta"},
		{name: "cookie with a value", rule: decision.Rule{ID: "cv", Path: "/x", To: "/y", Has: []decision.Condition{{Type: "cookie", Key: "beta", Value: ptr("1")}}}, wantMsgs: []string{"has: Netlify's only request condition is one Cookie=name"}},
		{name: "header condition", rule: decision.Rule{ID: "hc", Path: "/x", To: "/y", Has: []decision.Condition{{Type: "header", Key: "x-a"}}}, wantMsgs: []string{"has: Netlify's only request condition"}},
		{name: "two cookies", rule: decision.Rule{ID: "tc", Path: "/x", To: "/y", Has: []decision.Condition{{Type: "cookie", Key: "a"}, {Type: "cookie", Key: "b"}}}, wantMsgs: []string{"has: Netlify's only request condition"}},
		{name: "missing", rule: decision.Rule{ID: "mi", Path: "/x", To: "/y", Missing: []decision.Condition{{Type: "cookie", Key: "a"}}}, wantMsgs: []string{"missing: Netlify has no missing conditions"}},
		{name: ":lang", rule: decision.Rule{ID: "la", Path: "/", To: "/:lang/", Languages: []string{"en"}}, wantMsgs: []string{"to: Netlify has no placeholder for the language chosen"}},
		{name: "literal colon", rule: decision.Rule{ID: "lc", Path: "/a:b", To: "/y"}, wantMsgs: []string{"a literal : or *"}},
		{name: "cache_max_age 0 dropped", rule: decision.Rule{ID: "z", Path: "/a", To: "/b", Status: 301, CacheMaxAge: new(time.Duration(0))}, wantLine: "/a  /b  301!", wantMsgs: []string{"cache_max_age: Netlify has no per-rule cache lifetime"}},
		{name: "shadow", rule: decision.Rule{ID: "sh", Path: "/x", To: "/y", Mode: decision.ModeShadow}, wantMsgs: []string{"mode: Netlify has no shadow rules"}},
		{name: "window", rule: decision.Rule{ID: "win", Path: "/x", To: "/y", ActiveUntil: time.Unix(1e9, 0)}, wantMsgs: []string{"active_until: Netlify has no time windows"}},
		{name: "window start", rule: decision.Rule{ID: "wf", Path: "/x", To: "/y", ActiveFrom: time.Unix(1e9, 0)}, wantMsgs: []string{"active_from: Netlify has no time windows"}},
		{name: "staged", rule: decision.Rule{ID: "st", Path: "/x", To: "/y", Status: 301, Since: time.Unix(0, 0), PromoteAfter: time.Hour}, wantMsgs: []string{"promote_after: Netlify cannot stage a permanent redirect"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			problems, err := convert.ExportNetlify(&out, []decision.Rule{tt.rule})
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.TrimRight(out.String(), "\n"); got != tt.wantLine {
				t.Errorf("output %q, want %q", got, tt.wantLine)
			}
			checkMessages(t, problems, tt.wantMsgs, tt.wantLine == "")
		})
	}
}

func TestExportCSV(t *testing.T) {
	apex := decision.Rule{ID: "apex", Host: "example.com", Path: "/a", To: "https://example.net/a", Status: 301, Query: decision.QueryDrop, TrailingSlash: decision.TrailingSlashStrict}
	sub := apex
	sub.ID, sub.Host = "sub", "*.example.com"
	tests := []struct {
		name     string
		rules    []decision.Rule
		want     string
		wantMsgs []string
		errors   bool // wantMsgs are errors (rules left out)
	}{
		{name: "apex and subdomains merge", rules: []decision.Rule{apex, sub}, want: "example.com/a,https://example.net/a,301,FALSE,TRUE,FALSE,FALSE\n"},
		{name: "subdomains alone", rules: []decision.Rule{sub}, wantMsgs: []string{`rule "sub": host: include_subdomains always includes example.com itself`}, errors: true},
		{name: "exact ignoring slashes is two rows", rules: []decision.Rule{{ID: "e", Host: "example.com", Path: "/a", To: "https://x.example/", Status: 302}},
			want: "example.com/a,https://x.example/,302,TRUE,FALSE,FALSE,FALSE\nexample.com/a/,https://x.example/,302,TRUE,FALSE,FALSE,FALSE\n"},
		{name: "pattern without captures", rules: []decision.Rule{{ID: "p", Host: "example.com", Path: "/old/*", Match: decision.MatchPattern, To: "https://example.com/new", Status: 308}},
			want: "example.com/old,https://example.com/new,308,TRUE,FALSE,TRUE,FALSE\n"},
		{name: "pattern with captures", rules: []decision.Rule{{ID: "pc", Host: "example.com", Path: "/old/:id", Match: decision.MatchPattern, To: "https://example.com/new/:id"}},
			wantMsgs: []string{`only a pattern "/path/*" whose target uses no capture`}, errors: true},
		{name: "see other", rules: []decision.Rule{{ID: "so", Host: "example.com", Path: "/a", To: "https://e.example/", Intent: decision.IntentSeeOther}},
			wantMsgs: []string{"not 303"}, errors: true},
		{name: "any host", rules: []decision.Rule{{ID: "any", Path: "/a", To: "https://e.example/"}}, wantMsgs: []string{"needs a host"}, errors: true},
		{name: "has", rules: []decision.Rule{{ID: "has", Host: "example.com", Path: "/a", To: "https://e.example/", Has: []decision.Condition{{Type: "cookie", Key: "b"}}}},
			wantMsgs: []string{`rule "has": has: Bulk Redirects match the URL only`}, errors: true},
		{name: "languages", rules: []decision.Rule{{ID: "lang", Host: "example.com", Path: "/a", To: "https://e.example/", Languages: []string{"en"}}},
			wantMsgs: []string{`rule "lang": languages: Bulk Redirects match the URL only`}, errors: true},
		{name: "missing", rules: []decision.Rule{{ID: "mis", Host: "example.com", Path: "/a", To: "https://e.example/", Missing: []decision.Condition{{Type: "query", Key: "b"}}}},
			wantMsgs: []string{`rule "mis": missing: Cloudflare has no missing conditions`}, errors: true},
		{name: "relative target", rules: []decision.Rule{{ID: "rel", Host: "example.com", Path: "/a", Match: decision.MatchPrefix, To: "/b", Intent: decision.IntentPermanent}},
			want:     "example.com/a,https://example.com/b,301,TRUE,FALSE,TRUE,TRUE\n",
			wantMsgs: []string{"exported 301", "to: relative target written as https://example.com/b"}},
		{name: "duplicate source", rules: []decision.Rule{apex, func() decision.Rule { r := apex; r.ID = "again"; return r }()},
			want: "example.com/a,https://example.net/a,301,FALSE,FALSE,FALSE,FALSE\n", wantMsgs: []string{`rule "again": path: rule "apex" has the same source`}, errors: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			problems, err := convert.ExportCSV(&out, tt.rules)
			if err != nil {
				t.Fatal(err)
			}
			if out.String() != tt.want {
				t.Errorf("output:\n%s\nwant:\n%s", out.String(), tt.want)
			}
			checkMessages(t, problems, tt.wantMsgs, tt.errors)
		})
	}
}

// checkMessages wants one problem per message, errors or warnings.
func checkMessages(t *testing.T, problems []decision.Problem, want []string, errors bool) {
	t.Helper()
	if len(problems) != len(want) {
		t.Errorf("problems %q, want %d", problems, len(want))
		return
	}
	for i, p := range problems {
		if !strings.Contains(p.String(), want[i]) {
			t.Errorf("problem %q, want it to contain %q", p, want[i])
		}
		if isErr := p.Severity == decision.SeverityError; isErr != errors {
			t.Errorf("problem %q: severity %v", p, p.Severity)
		}
	}
}

func TestLoadable(t *testing.T) {
	in := "/a /b 301\n/b /a 301\n/x/:id https://:id.example.com/ 301\n/y/:id /z/:other 302\n/ok /fine 301\n"
	rules, skipped, err := convert.ImportNetlify("_redirects", strings.NewReader(in))
	if err != nil || len(skipped) != 0 || len(rules) != 5 {
		t.Fatalf("import: %d rules, %v, %v", len(rules), skipped, err)
	}
	kept, rejected, _, err := convert.Loadable(rules, decision.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// A cycle's problem names one rule: removing it breaks the cycle, and
	// the other rule is fine on its own.
	var ids []string
	for _, r := range kept {
		ids = append(ids, r.ID)
	}
	if diff := cmp.Diff([]string{"netlify-L2", "netlify-L5"}, ids); diff != "" {
		t.Errorf("kept (-want +got):\n%s", diff)
	}
	lines := map[int]bool{}
	for _, p := range rejected {
		lines[p.Line] = true
	}
	if diff := cmp.Diff(map[int]bool{1: true, 3: true, 4: true}, lines); diff != "" {
		t.Errorf("rejected lines (-want +got):\n%s\n%v", diff, rejected)
	}
}

// TestExportPreservesDecisions: for generated rules, what an export writes
// and an import reads back decides every request as the original rules do
// — the same Location, or the same miss — for the requests that the
// original rules decide with an exported rule or not at all. (Statuses are
// compared only where the rule pinned one: an unpinned intent has no single
// status in either format; the export warns about it.)
func TestExportPreservesDecisions(t *testing.T) {
	now := time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC)
	rules := rulegen.Rules(rulegen.Config{N: 3000, Hosts: 3, Seed: 5})
	reqs := rulegen.Requests(rules, rulegen.RequestConfig{N: 20000, Hit: 0.8, Seed: 6})
	original, _, err := decision.Build(rules, decision.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		exp  exportFunc
		imp  importFunc
	}{
		{"netlify", convert.ExportNetlify, convert.ImportNetlify},
		{"cloudflare", convert.ExportCSV, convert.ImportCSV},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			problems, err := tt.exp(&out, rules)
			if err != nil {
				t.Fatal(err)
			}
			left := map[string]bool{}
			for _, p := range problems {
				if p.Severity == decision.SeverityError {
					left[p.RuleID] = true
				}
			}
			back, skipped, err := tt.imp("exported", &out)
			if err != nil || len(skipped) > 0 {
				t.Fatalf("re-import: %v %v", err, skipped)
			}
			ix, _, err := decision.Build(back, decision.Options{})
			if err != nil {
				t.Fatal(err)
			}
			pinned := map[string]bool{}
			for _, r := range rules {
				pinned[r.ID] = r.Status != 0
			}
			compared := 0
			for i := range reqs {
				q := reqs[i]
				q.Scheme = "https" // exports make relative targets https://host/...
				want, err := original.Decide(&q, now)
				if err != nil {
					t.Fatal(err)
				}
				if want.Redirect && left[want.RuleID] {
					continue
				}
				got, err := ix.Decide(&q, now)
				if err != nil {
					t.Fatal(err)
				}
				compared++
				wantLoc := want.Location
				if strings.HasPrefix(wantLoc, "/") && tt.name == "cloudflare" {
					wantLoc = "https://" + q.Host + wantLoc
				}
				if got.Redirect != want.Redirect || got.Location != wantLoc || (pinned[want.RuleID] && got.Status != want.Status) {
					t.Fatalf("%s %s%s: original rule %q → %v %d %q; exported and imported → %v %d %q (rule %q)",
						q.Method, q.Host, q.Target, want.RuleID, want.Redirect, want.Status, wantLoc, got.Redirect, got.Status, got.Location, got.RuleID)
				}
			}
			t.Logf("%d of %d requests compared; %d of %d rules left out", compared, len(reqs), len(left), len(rules))
			if compared < len(reqs)/2 {
				t.Errorf("compared only %d of %d requests; %d rules left out", compared, len(reqs), len(left))
			}
		})
	}
}

func ptr(s string) *string { return &s }
