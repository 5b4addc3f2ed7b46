package deploy_test

import (
	"testing"
	"time"

	"github.com/redirectd/redirectd/decision"
	"github.com/redirectd/redirectd/deploy"
)

// TestExampleRules: the built-in example parses, builds without errors or
// warnings, shows every match kind and intent, and answers what its
// comments say.
func TestExampleRules(t *testing.T) {
	rules, err := decision.ParseRules(deploy.ExampleRulesName, deploy.ExampleRules)
	if err != nil {
		t.Fatalf("ParseRules: %v", err)
	}
	kinds := map[decision.MatchKind]bool{}
	intents := map[decision.Intent]bool{}
	for _, r := range rules {
		kinds[r.Match] = true
		intents[r.Intent] = true
	}
	for _, k := range []decision.MatchKind{decision.MatchExact, decision.MatchPrefix, decision.MatchPattern, decision.MatchRegex} {
		if !kinds[k] {
			t.Errorf("no example of match %s", k)
		}
	}
	for _, in := range []decision.Intent{decision.IntentUnspecified, decision.IntentPermanent, decision.IntentSeeOther} {
		if !intents[in] {
			t.Errorf("no example of intent %q", in)
		}
	}

	ix, warnings, err := decision.Build(rules, decision.Options{})
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	for _, w := range warnings {
		t.Errorf("Build warning: %s", w)
	}

	now := time.Date(2026, 11, 3, 0, 0, 0, 0, time.UTC) // about-page is two days old
	tests := []struct {
		name                 string
		method, host, target string
		headers              map[string]string
		wantRule             string // "" = no redirect
		wantStatus           int
		wantLocation, wantCC string
		wantFollowUp         string
	}{
		{"prefix keeps the rest and the query", "GET", "example.com", "/docs/intro?lang=en",
			nil, "docs-moved", 301, "https://docs.example.com/intro?lang=en", "public, max-age=86400", "GET"},
		{"prefix on whole segments", "GET", "example.com", "/docsearch", nil, "", 0, "", "", ""},
		{"permanent POST keeps the method", "POST", "example.com", "/docs", nil, "docs-moved", 308, "https://docs.example.com", "public, max-age=86400", "POST"},
		{"exact with the since ramp", "GET", "example.com", "/about-us/", nil, "about-page", 301, "/about", "public, max-age=43200", "GET"},
		{"status pin", "GET", "example.com", "/api/v1/users?page=2", nil, "api-v1-retired", 308, "https://api.example.com/v2/users?page=2", "public, max-age=604800", "GET"},
		{"see_other for a POST", "POST", "example.com", "/signup.php", nil, "old-signup-form", 303, "/signup", "no-store", "GET"},
		{"method filter", "GET", "example.com", "/signup.php", nil, "", 0, "", "", ""},
		{"pattern", "GET", "www.example.com", "/blog/2019/05/hello", nil, "blog-posts", 307, "https://example.com/posts/hello?year=2019", "no-store", "GET"},
		{"splat and query drop", "GET", "www.example.com", "/files/a/b.pdf?x=1", nil, "files-to-cdn", 307, "https://cdn.example.com/a/b.pdf", "no-store", "GET"},
		{"regex, case-insensitive", "GET", "www.example.com", "/P/42/old-name", nil, "product-ids", 301, "/products/42", "public, max-age=86400", "GET"},
		{"language negotiated", "GET", "www.example.com", "/", map[string]string{"accept-language": "de-DE,de;q=0.9"}, "home-language", 307, "/de/", "no-store", "GET"},
		{"language by q-value", "GET", "www.example.com", "/", map[string]string{"accept-language": "de-CH, en;q=0.5"}, "home-language", 307, "/de/", "no-store", "GET"},
		{"language refused by q=0", "GET", "www.example.com", "/", map[string]string{"accept-language": "de;q=0, en;q=0.5"}, "home-language", 307, "/en/", "no-store", "GET"},
		{"no language chosen", "GET", "www.example.com", "/", map[string]string{"accept-language": "ja"}, "", 0, "", "", ""},
		{"cookie condition", "GET", "www.example.com", "/app/x", map[string]string{"cookie": "a=b; beta=1"}, "beta-app", 307, "/beta/app/x", "no-store", "GET"},
		{"missing header present", "GET", "www.example.com", "/app/x", map[string]string{"cookie": "beta=1", "x-beta-opt-out": "1"}, "", 0, "", "", ""},
		{"host capture", "GET", "eu.shop.example.org", "/cart", nil, "shop-domain-moved", 301, "https://eu.shop.example.net/cart", "public, max-age=86400", "GET"},
		{"query_strip and a cached temporary", "GET", "www.example.com", "/spring-sale?utm_source=x&fbclid=y&ref=z", nil, "spring-sale", 307, "/sale?ref=z", "max-age=300", "GET"},
		{"trailing slash strict", "GET", "www.example.com", "/shop/", nil, "shop-index", 307, "/store/", "no-store", "GET"},
		{"trailing slash strict, without", "GET", "www.example.com", "/shop", nil, "", 0, "", "", ""},
		{"wildcard host", "GET", "blog.example.org", "/hello", nil, "org-subdomains", 301, "https://example.com/org/hello", "public, max-age=86400", "GET"},
		{"wildcard excludes the apex", "GET", "example.org", "/hello", nil, "", 0, "", "", ""},
		{"any host", "GET", "shop.example.net:8443", "/.well-known/change-password", nil, "change-password", 307, "https://example.com/account/password", "no-store", "GET"},
		{"a shadow rule answers nothing", "GET", "example.com", "/docs/v3", nil, "docs-moved", 301, "https://docs.example.com/v3", "public, max-age=86400", "GET"},
		{"staged permanence", "GET", "www.example.com", "/catalog", nil, "catalog-moved", 307, "/products", "no-store", "GET"},
		{"before its window", "GET", "www.example.com", "/spring", nil, "", 0, "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := ix.Decide(&decision.Request{Method: tt.method, Host: tt.host, Target: tt.target, Headers: tt.headers}, now)
			if err != nil {
				t.Fatal(err)
			}
			if d.RuleID != tt.wantRule || d.Redirect != (tt.wantRule != "") {
				t.Fatalf("rule %q (redirect %v), want %q", d.RuleID, d.Redirect, tt.wantRule)
			}
			if !d.Redirect {
				return
			}
			if d.Status != tt.wantStatus || d.Location != tt.wantLocation || d.Cache.CacheControl != tt.wantCC || d.FollowUpMethod != tt.wantFollowUp {
				t.Errorf("got %d %q %q follow-up %s, want %d %q %q follow-up %s",
					d.Status, d.Location, d.Cache.CacheControl, d.FollowUpMethod,
					tt.wantStatus, tt.wantLocation, tt.wantCC, tt.wantFollowUp)
			}
		})
	}
	// The shadow rule's answer is reported beside the decision.
	d, err := ix.Decide(&decision.Request{Method: "GET", Host: "example.com", Target: "/docs/v3"}, now)
	if err != nil || len(d.Shadows) != 1 || d.Shadows[0].RuleID != "try-docs-v3" || d.Shadows[0].Location != "https://v3.docs.example.com" {
		t.Errorf("shadow answers %+v, %v; want try-docs-v3's", d.Shadows, err)
	}
}
