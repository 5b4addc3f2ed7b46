package server

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// forwardAuthAnswer is what a proxy sees from the forward-auth endpoint.
type forwardAuthAnswer struct {
	Status  int
	Headers map[string]string // every response header
	Body    string
}

func faRedirect(status int, location, cacheControl string, more ...string) forwardAuthAnswer {
	h := map[string]string{"Location": location, "Cache-Control": cacheControl}
	for i := 0; i+1 < len(more); i += 2 {
		h[more[i]] = more[i+1]
	}
	return forwardAuthAnswer{Status: status, Headers: h}
}

var faPass = forwardAuthAnswer{Status: http.StatusOK, Headers: map[string]string{}}

// caddyRequest is the request Caddy's forward_auth sends: its own GET to
// the configured uri, the original Host kept, the original request in
// X-Forwarded-*, and the client's headers copied.
func caddyRequest(method, host, uri string, more ...string) *http.Request {
	r := httptest.NewRequest("GET", ForwardAuthPath, nil)
	r.Host = host
	r.Header.Set("X-Forwarded-Method", method)
	r.Header.Set("X-Forwarded-Uri", uri)
	r.Header.Set("X-Forwarded-Proto", "https")
	r.Header.Set("X-Forwarded-Host", host)
	r.Header.Set("X-Forwarded-For", "203.0.113.9")
	r.Header.Set("User-Agent", "curl/8.5.0")
	r.Header.Set("Accept-Encoding", "gzip")
	for i := 0; i+1 < len(more); i += 2 {
		r.Header.Set(more[i], more[i+1])
	}
	return r
}

// traefikRequest is Traefik's ForwardAuth request: to the configured
// address (its Host is redirectd's), the original in X-Forwarded-*.
func traefikRequest(method, host, uri, address string) *http.Request {
	r := httptest.NewRequest("GET", address, nil)
	r.Host = "redirectd:8080"
	r.Header.Set("X-Forwarded-Method", method)
	r.Header.Set("X-Forwarded-Proto", "http")
	r.Header.Set("X-Forwarded-Host", host)
	r.Header.Set("X-Forwarded-Uri", uri)
	r.Header.Set("X-Forwarded-Port", "80")
	r.Header.Set("X-Forwarded-Server", "traefik-7d9f")
	r.Header.Set("X-Forwarded-For", "203.0.113.9")
	return r
}

// envoyHTTPRequest is Envoy ext_authz http_service's request with
// path_prefix /forward-auth: the original method, Host and target (below
// the prefix), no body, and the headers its allowed_headers let through.
func envoyHTTPRequest(method, host, target string) *http.Request {
	r := httptest.NewRequest(method, "http://placeholder"+ForwardAuthPath+target, nil)
	r.RequestURI = ForwardAuthPath + target // as on the wire, undecoded
	r.Host = host
	r.Header.Set("Content-Length", "0")
	r.Header.Set("X-Forwarded-Proto", "http")
	r.Header.Set("X-Request-Id", "5e1a0d0c-0b4f-4b0e-9d3c-1f2e3d4c5b6a")
	r.Header.Set("X-Envoy-Expected-Rq-Timeout-Ms", "200")
	return r
}

func serveForwardAuth(t *testing.T, h http.Handler, r *http.Request) forwardAuthAnswer {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	a := forwardAuthAnswer{Status: rec.Code, Headers: map[string]string{}, Body: rec.Body.String()}
	for name, values := range rec.Header() {
		a.Headers[name] = strings.Join(values, "\n")
	}
	return a
}

func TestForwardAuth(t *testing.T) {
	passed := &passCount{}
	h := NewForwardAuthHandler(edgeEngine(t), slog.New(slog.DiscardHandler), passed)
	const day = "public, max-age=86400"

	tests := []struct {
		name       string
		r          *http.Request
		want       forwardAuthAnswer
		wantPassed int
	}{
		// Caddy forward_auth.
		{"caddy GET", caddyRequest("GET", "example.com:8443", "/docs/a%20b?tag=x&tag=y"),
			faRedirect(301, "https://docs.example.com/a%20b?tag=x&tag=y", day), 0},
		{"caddy POST keeps its method", caddyRequest("POST", "example.com", "/docs/form"),
			faRedirect(308, "https://docs.example.com/form", day), 0},
		{"caddy HEAD", caddyRequest("HEAD", "example.com", "/docs"),
			faRedirect(301, "https://docs.example.com", day), 0},
		{"caddy HTTP/1.0 client", caddyRequest("GET", "shop.example.net", "/old", "X-Redirectd-Protocol", "HTTP/1.0"),
			faRedirect(302, "/new", "no-store"), 0},
		{"caddy HTTP/2 client as Caddy writes it", caddyRequest("POST", "shop.example.net", "/old", "X-Redirectd-Protocol", "HTTP/2.0", "X-Redirectd-Intent", "permanent"),
			faRedirect(308, "/new", day), 0},
		{"caddy header decides: Vary", caddyRequest("GET", "shop.example.net", "/start", "Accept-Language", "de-CH, de"),
			faRedirect(307, "/de/start", "no-store", "Vary", "Accept-Language"), 0},
		{"caddy miss", caddyRequest("GET", "example.com", "/pricing"), faPass, 0},
		// A pass that consulted a header says so: the page varies on it.
		{"caddy miss after a header condition: Vary", caddyRequest("GET", "example.com", "/start", "Accept-Language", "fr"),
			forwardAuthAnswer{Status: http.StatusOK, Headers: map[string]string{"Vary": "Accept-Language"}}, 0},

		// Conditions on cookies and languages: Caddy copies the client's
		// Cookie and Accept-Language.
		{"caddy cookie decides: Vary Cookie", caddyRequest("GET", "shop.example.net", "/app", "Cookie", "beta=1"),
			faRedirect(307, "/beta/app", "no-store", "Vary", "Cookie"), 0},
		{"caddy cookie in two fields, joined by a semicolon", func() *http.Request {
			r := caddyRequest("GET", "shop.example.net", "/app")
			r.Header.Add("Cookie", "a=1")
			r.Header.Add("Cookie", "beta=1")
			return r
		}(), faRedirect(307, "/beta/app", "no-store", "Vary", "Cookie"), 0},
		{"caddy cookie absent: pass with Vary Cookie", caddyRequest("GET", "shop.example.net", "/app"),
			forwardAuthAnswer{Status: http.StatusOK, Headers: map[string]string{"Vary": "Cookie"}}, 0},
		{"caddy language negotiated", caddyRequest("GET", "shop.example.net", "/", "Accept-Language", "en-US;q=0.8, de;q=0.9"),
			faRedirect(307, "/de/", "no-store", "Vary", "Accept-Language"), 0},
		{"caddy wildcard host: :subdomain", caddyRequest("GET", "eu.acme.tenants.example.com", "/a"),
			faRedirect(307, "https://eu.acme.example.org/a", "no-store"), 0},

		// Traefik ForwardAuth; the intent rides on the address's query.
		{"traefik", traefikRequest("GET", "shop.example.net", "/old?ref=a", ForwardAuthPath),
			faRedirect(307, "/new?ref=a", "no-store"), 0},
		{"traefik intent in the address", traefikRequest("GET", "shop.example.net", "/old", ForwardAuthPath+"?intent=permanent"),
			faRedirect(301, "/new", day), 0},
		{"traefik miss", traefikRequest("GET", "shop.example.net", "/new", ForwardAuthPath), faPass, 0},

		// Envoy http_service: the original request line below the prefix.
		{"envoy http_service", envoyHTTPRequest("GET", "example.com:10000", "/docs/a%20b?x=1&x=2"),
			faRedirect(301, "https://docs.example.com/a%20b?x=1&x=2", day), 0},
		{"envoy http_service POST", envoyHTTPRequest("POST", "shop.example.net", "/old"),
			faRedirect(307, "/new", "no-store"), 0},
		{"envoy http_service %7E undecoded", envoyHTTPRequest("GET", "shop.example.net", "/%7Eann"),
			faRedirect(307, "/people/ann", "no-store"), 0},
		{"envoy http_service root", envoyHTTPRequest("GET", "example.com", "/"), faPass, 0},
		{"envoy http_service query at the root", envoyHTTPRequest("GET", "example.com", "?a=1"), faPass, 0},

		// Requests we cannot read pass (fail open) and are counted.
		{"bad method token", caddyRequest("GE T", "example.com", "/docs"), faPass, 1},
		{"unknown intent word", caddyRequest("GET", "example.com", "/docs", "X-Redirectd-Intent", "forever"), faPass, 1},
		{"unknown protocol", caddyRequest("GET", "example.com", "/docs", "X-Redirectd-Protocol", "SPDY/3"), faPass, 1},
		{"headers over the limit", caddyRequest("GET", "example.com", "/docs", "Cookie", strings.Repeat("a", 17<<10)), faPass, 1},
		{"target over 8 KiB", caddyRequest("GET", "example.com", "/docs/"+strings.Repeat("a", 8<<10)), faPass, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := passed.get("forward_auth")
			if diff := cmp.Diff(tt.want, serveForwardAuth(t, h, tt.r)); diff != "" {
				t.Errorf("answer (-want +got):\n%s", diff)
			}
			if got := passed.get("forward_auth") - before; got != tt.wantPassed {
				t.Errorf("passed unread: %d, want %d", got, tt.wantPassed)
			}
		})
	}
}

// TestMountForwardAuth: both request shapes reach the handler through a
// ServeMux, and the mux never answers with a redirect of its own.
func TestMountForwardAuth(t *testing.T) {
	mux := http.NewServeMux()
	MountForwardAuth(mux, NewForwardAuthHandler(edgeEngine(t), slog.New(slog.DiscardHandler), nil))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	tests := []struct {
		name, method, path string
		header             map[string]string
		wantStatus         int
		wantLocation       string
	}{
		{"caddy at the exact path", "GET", ForwardAuthPath, map[string]string{"X-Forwarded-Method": "GET", "X-Forwarded-Uri": "/old", "X-Forwarded-Host": "a.example"}, 307, "/new"},
		{"caddy at the exact path, miss", "GET", ForwardAuthPath, map[string]string{"X-Forwarded-Method": "GET", "X-Forwarded-Uri": "/x", "X-Forwarded-Host": "a.example"}, 200, ""},
		{"envoy below the path", "DELETE", ForwardAuthPath + "/old", nil, 307, "/new"},
		{"envoy at the root", "GET", ForwardAuthPath + "/", nil, 200, ""},
		{"not ours", "GET", ForwardAuthPath + "x/old", nil, 404, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(tt.method, srv.URL+tt.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range tt.header {
				req.Header.Set(k, v)
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.wantStatus || resp.Header.Get("Location") != tt.wantLocation {
				t.Errorf("%s %s: %d Location %q, want %d %q", tt.method, tt.path, resp.StatusCode, resp.Header.Get("Location"), tt.wantStatus, tt.wantLocation)
			}
			if tt.wantStatus/100 == 3 && resp.ContentLength != 0 {
				t.Errorf("redirect body length %d, want 0", resp.ContentLength)
			}
		})
	}
}

// FuzzForwardAuth: whatever a proxy forwards, the endpoint answers 200 or
// a 3xx with a clean Location, and never an error that would block the
// request.
//
//	go test -run '^$' -fuzz FuzzForwardAuth -fuzztime 30s ./server/
func FuzzForwardAuth(f *testing.F) {
	f.Add("GET", "example.com", "/docs/a%20b?x=1&x=2", "HTTP/1.1", "")
	f.Add("POST", "shop.example.net, proxy", "/old", "HTTP/1.0", "see_other")
	f.Add("GE T", "", "//evil.example/%2e%2e", "SPDY/3", "forever")
	h := NewForwardAuthHandler(edgeEngine(f), slog.New(slog.DiscardHandler), nil)
	f.Fuzz(func(t *testing.T, method, host, uri, protocol, intent string) {
		r := httptest.NewRequest("GET", ForwardAuthPath, nil)
		// Values a proxy could not send (CR, LF) never reach a handler.
		for name, v := range map[string]string{"X-Forwarded-Method": method, "X-Forwarded-Host": host, "X-Forwarded-Uri": uri, "X-Redirectd-Protocol": protocol, "X-Redirectd-Intent": intent} {
			r.Header.Set(name, strings.NewReplacer("\r", "", "\n", "").Replace(v))
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		switch {
		case rec.Code == http.StatusOK:
		case rec.Code >= 300 && rec.Code <= 399:
			if loc := rec.Header().Get("Location"); loc == "" || strings.ContainsAny(loc, "\r\n\x00") {
				t.Fatalf("%d with Location %q", rec.Code, loc)
			}
		default:
			t.Fatalf("status %d", rec.Code)
		}
		if rec.Body.Len() != 0 {
			t.Fatalf("body %q", rec.Body.String())
		}
	})
}
