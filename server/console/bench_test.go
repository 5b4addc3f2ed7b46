package console

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/redirectd/redirectd/decision"
	"github.com/redirectd/redirectd/decision/rulegen"
)

// BenchmarkSearchPage renders one search page through the handler: a
// substring no rule has (the whole set is scanned: the worst case), one
// most rules have (the page fills at once), and the id-order listing; and
// a rule page with the rules that lead to it (a scan of the set too).
// README "Web console" records the figure at 1M rules.
func BenchmarkSearchPage(b *testing.B) {
	for _, n := range []int{10_000, 1_000_000} {
		ix, _, err := decision.Build(rulegen.Rules(rulegen.Config{N: n, Hosts: 100, Seed: 1}), decision.Options{})
		if err != nil {
			b.Fatal(err)
		}
		c, err := New(staticBackend{ix}, Options{})
		if err != nil {
			b.Fatal(err)
		}
		var first string
		for id := range ix.IDs("") {
			first = id
			break
		}
		for _, q := range []string{"/rules?q=no-rule-has-this&field=any", "/rules?q=/&field=path", "/rules?", "/rules/" + first + "?in=1"} {
			b.Run(fmt.Sprintf("rules=%d/%s", n, q), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					w := httptest.NewRecorder()
					c.ServeHTTP(w, httptest.NewRequest("GET", q, nil))
					if w.Code != http.StatusOK {
						b.Fatalf("status %d", w.Code)
					}
				}
			})
		}
	}
}
