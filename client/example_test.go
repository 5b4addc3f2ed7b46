package client_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"time"

	"google.golang.org/grpc"

	"github.com/redirectd/redirectd/client"
	"github.com/redirectd/redirectd/decision"
	redirectv1 "github.com/redirectd/redirectd/proto/redirect/v1"
)

// exampleRules is the rule set the examples' redirectd serves.
const exampleRules = `
rules:
  - id: docs-moved
    host: example.com
    path: /docs
    match: prefix
    to: https://docs.example.com
    intent: permanent
  - id: old-blog
    path: /blog
    to: /news
`

// exampleService is the DecisionService over exampleRules: the API's
// translation over the decision library, as redirectd serves them.
func exampleService() redirectv1.DecisionServiceServer {
	rules, err := decision.ParseRules("rules.yaml", []byte(exampleRules))
	if err != nil {
		log.Fatal(err)
	}
	store := decision.NewStore(decision.Options{})
	c, err := store.Replace(rules)
	if err != nil {
		log.Fatal(err)
	}
	c.Commit(decision.Info{Version: 1, Source: "example"})
	return redirectv1.NewDecisionService(func(req *decision.Request) (decision.Decision, error) {
		return store.Index().Decide(req, time.Now())
	})
}

// startRedirectd serves exampleRules with that DecisionService on a
// loopback port, as `redirectd --rules` would.
func startRedirectd() (addr string, stop func()) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	s := grpc.NewServer()
	redirectv1.RegisterDecisionServiceServer(s, exampleService())
	go s.Serve(lis)
	return lis.Addr().String(), s.Stop
}

func ExampleClient_Redirect() {
	addr, stop := startRedirectd()
	defer stop()

	// Plaintext is for a redirectd on loopback; use client.WithTLS elsewhere.
	c, err := client.New(addr, client.WithInsecure(), client.WithTimeout(5*time.Second))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	for _, call := range []struct{ method, url string }{
		{"GET", "https://example.com/docs/guide?lang=en"},
		{"POST", "https://example.com/docs/upload"},
		{"GET", "https://example.com/pricing"},
	} {
		resp, err := c.Redirect(context.Background(), call.method, call.url)
		if err != nil {
			log.Fatal(err)
		}
		if !resp.GetRedirect() {
			fmt.Println(call.method, call.url, "→ no redirect")
			continue
		}
		fmt.Println(call.method, call.url, "→", resp.GetStatusCode(), resp.GetLocation(), "|", resp.GetCache().GetCacheControl())
	}
	// Output:
	// GET https://example.com/docs/guide?lang=en → 301 https://docs.example.com/guide?lang=en | public, max-age=86400
	// POST https://example.com/docs/upload → 308 https://docs.example.com/upload | public, max-age=86400
	// GET https://example.com/pricing → no redirect
}

func ExampleClient_Decide() {
	addr, stop := startRedirectd()
	defer stop()
	c, err := client.New(addr, client.WithInsecure())
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	// An HTTP/1.0 client does not know 307; it gets 302 and, for a POST,
	// follows up with GET (RFC 9110 section 15.4.3).
	resp, err := c.Decide(context.Background(), &redirectv1.DecideRequest{
		Method:   "POST",
		Scheme:   "https",
		Host:     "shop.example",
		Path:     "/blog?page=2",
		Protocol: "HTTP/1.0",
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(resp.GetStatusCode(), resp.GetLocation(), resp.GetFollowUpMethod(), resp.GetRuleId())
	for _, h := range resp.GetHeaders() {
		fmt.Printf("%s: %s\n", h.GetName(), h.GetValue())
	}
	// Output:
	// 302 /news?page=2 GET old-blog
	// Location: /news?page=2
	// Cache-Control: no-store
}

func ExampleClient_Middleware() {
	addr, stop := startRedirectd()
	defer stop()
	c, err := client.New(addr, client.WithInsecure())
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "the page "+r.URL.Path)
	})
	handler := c.Middleware(app,
		client.WithErrorHandler(func(r *http.Request, err error) {
			log.Printf("redirectd: %v (request passed on)", err)
		}),
		// Generous for a busy test machine; in production keep the 200ms
		// default or less: a slow redirectd must not slow every page.
		client.WithDecideTimeout(5*time.Second),
	)
	site := httptest.NewServer(handler)
	defer site.Close()

	// Show redirects instead of following them.
	browser := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, path := range []string{"/blog", "/about"} {
		resp, err := browser.Get(site.URL + path)
		if err != nil {
			log.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Printf("%s → %d Location=%q body=%q\n", path, resp.StatusCode, resp.Header.Get("Location"), body)
	}
	// Output:
	// /blog → 307 Location="/news" body=""
	// /about → 200 Location="" body="the page /about"
}

func ExampleLocal() {
	// Local answers like a server holding the same rules, without one: the
	// DecisionService redirectd serves runs in this process.
	c := client.Local(exampleService())
	req, err := client.RequestFromURL("GET", "https://example.com/docs")
	if err != nil {
		log.Fatal(err)
	}
	resp, err := c.Decide(context.Background(), req)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(resp.GetStatusCode(), resp.GetLocation(), resp.GetRuleId())
	// Output:
	// 301 https://docs.example.com docs-moved
}
