package client_test

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/redirectd/redirectd/client"
)

// BenchmarkMiddleware measures what the middleware adds to a request: one
// Decide round trip to a loopback redirectd (real engine), beside the bare
// application handler in the same run.
func BenchmarkMiddleware(b *testing.B) {
	addr, stop := startRedirectd()
	defer stop()
	c, err := client.New(addr, client.WithInsecure())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	withRedirects := c.Middleware(app, client.WithDecideTimeout(5*time.Second))

	for _, bm := range []struct {
		name    string
		handler http.Handler
		path    string
		want    int
	}{
		{"bare-handler", app, "/about", http.StatusNoContent},
		{"middleware-pass", withRedirects, "/about", http.StatusNoContent},
		{"middleware-redirect", withRedirects, "/blog", http.StatusTemporaryRedirect},
	} {
		b.Run(bm.name, func(b *testing.B) {
			b.ReportAllocs()
			req := httptest.NewRequest("GET", bm.path, nil)
			req.Header.Set("User-Agent", "bench")
			req.Header.Set("Accept-Language", "en")
			for b.Loop() {
				rec := httptest.NewRecorder()
				bm.handler.ServeHTTP(rec, req)
				if rec.Code != bm.want {
					b.Fatalf("status %d, want %d", rec.Code, bm.want)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "µs/request")
		})
	}
}
