package client_test

import (
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/redirectd/redirectd/client"
	redirectv1 "github.com/redirectd/redirectd/proto/redirect/v1"
)

// page is the application behind the middleware.
var page = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	w.Header().Set("Content-Type", "text/plain")
	io.WriteString(w, "page "+r.Method)
})

// noFollow is an HTTP client that shows redirects instead of following them.
var noFollow = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// byPath redirects /old/... with the status the path names and passes the rest.
func byPath(req *redirectv1.DecideRequest) (*redirectv1.DecideResponse, error) {
	switch {
	case strings.HasPrefix(req.GetPath(), "/old"):
		return moved(req)
	case strings.HasPrefix(req.GetPath(), "/form"):
		return &redirectv1.DecideResponse{
			Redirect: true, StatusCode: 308, Location: "/form2", FollowUpMethod: req.GetMethod(), FollowUpKeepsBody: true,
			Cache:   &redirectv1.CacheAdvice{Cacheable: true, CacheControl: "public, max-age=300"},
			Headers: []*redirectv1.Header{{Name: "Location", Value: "/form2"}, {Name: "Cache-Control", Value: "public, max-age=300"}, {Name: "Vary", Value: "Accept-Language"}},
		}, nil
	case strings.HasPrefix(req.GetPath(), "/varies"):
		// A pass after a header condition: Vary alone.
		return &redirectv1.DecideResponse{Headers: []*redirectv1.Header{{Name: "Vary", Value: "Accept-Language"}}}, nil
	}
	return &redirectv1.DecideResponse{}, nil
}

func TestMiddlewareAnswers(t *testing.T) {
	c := startFake(t, &fakeDecisions{answer: byPath})
	var errs []error
	// A generous timeout: a loaded CI machine must not turn answers into
	// fail-open passes.
	site := httptest.NewServer(c.Middleware(page, client.WithDecideTimeout(10*time.Second),
		client.WithErrorHandler(func(_ *http.Request, err error) { errs = append(errs, err) })))
	defer site.Close()

	tests := []struct {
		name, method, path string
		wantStatus         int
		wantHeaders        map[string]string // "" = must be absent
		wantBody           string
	}{
		{
			name: "redirect", method: "GET", path: "/old/a?x=1", wantStatus: 301,
			wantHeaders: map[string]string{"Location": "https://new.example/old/a?x=1", "Cache-Control": "public, max-age=86400", "Vary": ""},
		},
		{
			name: "redirect HEAD", method: "HEAD", path: "/old/a", wantStatus: 301,
			wantHeaders: map[string]string{"Location": "https://new.example/old/a"},
		},
		{
			name: "POST keeps the answer", method: "POST", path: "/form", wantStatus: 308,
			wantHeaders: map[string]string{"Location": "/form2", "Cache-Control": "public, max-age=300", "Vary": "Accept-Language"},
		},
		{
			name: "pass", method: "GET", path: "/current", wantStatus: 200, wantBody: "page GET",
			wantHeaders: map[string]string{"Location": ""},
		},
		{
			name: "pass POST", method: "POST", path: "/current", wantStatus: 200, wantBody: "page POST",
		},
		{
			name: "pass that consulted a header varies on it", method: "GET", path: "/varies", wantStatus: 200, wantBody: "page GET",
			wantHeaders: map[string]string{"Vary": "Accept-Language", "Location": "", "Cache-Control": ""},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(tt.method, site.URL+tt.path, strings.NewReader("a=1"))
			if err != nil {
				t.Fatal(err)
			}
			resp, err := noFollow.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.wantStatus {
				t.Errorf("status = %d, want %d", resp.StatusCode, tt.wantStatus)
			}
			for name, want := range tt.wantHeaders {
				if got := resp.Header.Get(name); got != want {
					t.Errorf("%s = %q, want %q", name, got, want)
				}
			}
			if string(body) != tt.wantBody {
				t.Errorf("body = %q, want %q (a redirect has an empty body)", body, tt.wantBody)
			}
		})
	}
	if len(errs) > 0 {
		t.Errorf("error handler called: %v", errs)
	}
}

// TestMiddlewareFailsOpen: when redirectd is down, slow or refuses the
// request, the application answers and the error handler hears of it.
func TestMiddlewareFailsOpen(t *testing.T) {
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := dead.Addr().String()
	dead.Close() // nothing listens there any more

	deadClient, err := client.New(deadAddr, client.WithInsecure())
	if err != nil {
		t.Fatal(err)
	}
	defer deadClient.Close()
	slow := startFake(t, &fakeDecisions{answer: func(*redirectv1.DecideRequest) (*redirectv1.DecideResponse, error) {
		time.Sleep(time.Second)
		return &redirectv1.DecideResponse{Redirect: true, StatusCode: 301, Location: "/late"}, nil
	}})
	refusing := startFake(t, &fakeDecisions{answer: func(*redirectv1.DecideRequest) (*redirectv1.DecideResponse, error) {
		return nil, status.Error(codes.InvalidArgument, "path: control character")
	}})

	broken := startFake(t, &fakeDecisions{answer: func(*redirectv1.DecideRequest) (*redirectv1.DecideResponse, error) {
		return &redirectv1.DecideResponse{Redirect: true, StatusCode: 0, Location: "/x"}, nil
	}})

	tests := []struct {
		name     string
		client   *client.Client
		opts     []client.MiddlewareOption
		wantCode codes.Code // codes.Unknown: not a gRPC error
	}{
		{"dead server", deadClient, []client.MiddlewareOption{client.WithDecideTimeout(10 * time.Second)}, codes.Unavailable},
		{"timeout", slow, []client.MiddlewareOption{client.WithDecideTimeout(50 * time.Millisecond)}, codes.DeadlineExceeded},
		{"refused request", refusing, []client.MiddlewareOption{client.WithDecideTimeout(10 * time.Second)}, codes.InvalidArgument},
		{"redirect without a 3xx status", broken, []client.MiddlewareOption{client.WithDecideTimeout(10 * time.Second)}, codes.Unknown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var (
				mu   sync.Mutex
				errs []error
			)
			opts := append(tt.opts, client.WithErrorHandler(func(_ *http.Request, err error) {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}))
			site := httptest.NewServer(tt.client.Middleware(page, opts...))
			defer site.Close()
			resp, err := noFollow.Get(site.URL + "/old/a")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || string(body) != "page GET" {
				t.Errorf("answer = %d %q, want the page (fail open)", resp.StatusCode, body)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(errs) != 1 || status.Code(errs[0]) != tt.wantCode {
				t.Errorf("errors reported = %v, want one with code %v", errs, tt.wantCode)
			}
		})
	}
}

// TestMiddlewareDescribesRequest checks what redirectd is asked for.
func TestMiddlewareDescribesRequest(t *testing.T) {
	tests := []struct {
		name  string
		opts  []client.MiddlewareOption
		build func() *http.Request
		want  *redirectv1.DecideRequest
	}{
		{
			name: "HTTP/1.1 plain, credentials not sent",
			build: func() *http.Request {
				r := httptest.NewRequest("GET", "/a%2Fb?x=1&x=2", nil) // Host example.com
				r.Header.Set("Authorization", "Bearer secret")
				r.Header.Set("Cookie", "session=secret")
				r.Header.Add("Accept-Language", "de")
				r.Header.Add("Accept-Language", "en;q=0.5")
				return r
			},
			want: &redirectv1.DecideRequest{
				Method: "GET", Scheme: "http", Host: "example.com", Path: "/a%2Fb?x=1&x=2", Protocol: "HTTP/1.1",
				Headers: map[string]string{"accept-language": "de, en;q=0.5"},
			},
		},
		{
			name: "TLS and HTTP/2",
			build: func() *http.Request {
				r := httptest.NewRequest("POST", "/form", nil)
				r.Host = "example.com:8443"
				r.ProtoMajor, r.ProtoMinor, r.TLS = 2, 0, &tls.ConnectionState{}
				return r
			},
			want: &redirectv1.DecideRequest{Method: "POST", Scheme: "https", Host: "example.com:8443", Path: "/form", Protocol: "HTTP/2", Headers: map[string]string{}},
		},
		{
			name: "HTTP/1.0, X-Forwarded-Proto ignored unless trusted",
			build: func() *http.Request {
				r := httptest.NewRequest("GET", "/", nil)
				r.ProtoMajor, r.ProtoMinor = 1, 0
				r.Header.Set("X-Forwarded-Proto", "https")
				return r
			},
			opts: []client.MiddlewareOption{client.WithHeaders("x-none")},
			want: &redirectv1.DecideRequest{Method: "GET", Scheme: "http", Host: "example.com", Path: "/", Protocol: "HTTP/1.0", Headers: map[string]string{}},
		},
		{
			name: "trusted X-Forwarded-Proto, selected headers, intent",
			build: func() *http.Request {
				r := httptest.NewRequest("GET", "/", nil)
				r.Header.Set("X-Forwarded-Proto", "https")
				r.Header.Set("Accept-Language", "fr")
				r.Header.Set("User-Agent", "test")
				return r
			},
			opts: []client.MiddlewareOption{
				client.WithTrustedForwardedProto(), client.WithHeaders("accept-language"),
				client.WithIntent(redirectv1.Intent_INTENT_SEE_OTHER),
			},
			want: &redirectv1.DecideRequest{
				Method: "GET", Scheme: "https", Host: "example.com", Path: "/", Protocol: "HTTP/1.1",
				Intent: redirectv1.Intent_INTENT_SEE_OTHER, Headers: map[string]string{"accept-language": "fr"},
			},
		},
		{
			name: "handler called without RequestURI",
			build: func() *http.Request {
				r := httptest.NewRequest("GET", "http://example.com/p?q=1", nil)
				r.RequestURI = ""
				return r
			},
			want: &redirectv1.DecideRequest{Method: "GET", Scheme: "http", Host: "example.com", Path: "/p?q=1", Protocol: "HTTP/1.1", Headers: map[string]string{}},
		},
	}
	f := &fakeDecisions{answer: byPath}
	c := startFake(t, f)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := append([]client.MiddlewareOption{client.WithDecideTimeout(10 * time.Second)}, tt.opts...)
			c.Middleware(page, opts...).ServeHTTP(httptest.NewRecorder(), tt.build())
			if diff := cmp.Diff(tt.want, f.last(t), protocmp.Transform()); diff != "" {
				t.Errorf("DecideRequest (-want +got):\n%s", diff)
			}
		})
	}
}
