package server

import (
	"context"
	"encoding/json"
	"github.com/redirectd/redirectd/decision"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// edgeRules are the rules the edge adapter tests decide against.
const edgeRules = `rules:
  - id: docs-moved
    host: example.com
    path: /docs
    match: prefix
    to: https://docs.example.com
    intent: permanent
  - id: old-page
    path: /old
    to: /new
  - id: tilde-home
    path: /~ann
    to: /people/ann
  - id: german-start
    path: /start
    headers: {accept-language: "de*"}
    to: /de/start
  - id: beta-app
    path: /app
    has: [{type: cookie, key: beta, value: "1"}]
    missing: [{type: query, key: stay}]
    to: /beta/app
  - id: home-lang
    host: shop.example.net
    path: /
    languages: [en, de, fr-CH]
    to: /:lang/
  - id: tenant
    host: "*.tenants.example.com"
    path: /
    match: prefix
    to: https://:subdomain.example.org/
`

// passCount is a PassCounter for tests.
type passCount struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *passCount) PassedUnparsable(adapter string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	c.n[adapter]++
}

func (c *passCount) get(adapter string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[adapter]
}

// edgeEngine is an Engine serving edgeRules, loaded as the daemon loads
// a rules file.
func edgeEngine(t testing.TB) *Engine {
	t.Helper()
	engine := NewEngine(decision.NewStore(decision.Options{}), time.Now)
	store := &RuleStore{Engine: engine, Log: slog.New(slog.DiscardHandler), Now: time.Now}
	if err := store.LoadBytes("edge-rules.yaml", []byte(edgeRules)); err != nil {
		t.Fatalf("edge rules: %v", err)
	}
	return engine
}

// startAuthorization serves the ext_authz service on a real loopback
// listener as the daemon does (serverOptions, registerAuthorization: the
// request read from the wire) and returns Envoy's own generated client
// for it.
func startAuthorization(t *testing.T) (authv3.AuthorizationClient, *passCount, *logBuffer) {
	return startAuthorizationWith(t, func(log *slog.Logger, svc *AuthorizationService) *grpc.Server {
		srv := grpc.NewServer(serverOptions(log)...)
		registerAuthorization(srv, svc)
		return srv
	})
}

// startAuthorizationWith serves the service on the server serve makes.
func startAuthorizationWith(t *testing.T, serve func(*slog.Logger, *AuthorizationService) *grpc.Server) (authv3.AuthorizationClient, *passCount, *logBuffer) {
	t.Helper()
	logs := &logBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	passed := &passCount{}
	srv := serve(log, NewAuthorizationService(edgeEngine(t), log, passed))
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	return authv3.NewAuthorizationClient(dial(t, lis.Addr().String())), passed, logs
}

// envoyCheck builds a CheckRequest with exactly the fields Envoy's
// ext_authz HTTP filter fills for a plaintext HTTP/1.1 listener: the
// peers, the request time, and attributes.request.http with the stream
// id, method, all headers (lower-case, pseudo-headers included), the
// undecoded path with its query, host with its port, scheme, protocol and
// size. Each option edits it.
func envoyCheck(method, host, path string, edits ...func(*authv3.CheckRequest)) *authv3.CheckRequest {
	peer := func(ip string, port uint32) *authv3.AttributeContext_Peer {
		return &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
			SocketAddress: &corev3.SocketAddress{Address: ip, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port}},
		}}}
	}
	in := &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source:      peer("10.1.2.3", 51234),
		Destination: peer("10.1.0.5", 10000),
		Request: &authv3.AttributeContext_Request{
			Time: timestamppb.New(time.Date(2026, 11, 24, 21, 0, 0, 0, time.UTC)),
			Http: &authv3.AttributeContext_HttpRequest{
				Id:     "6094718153486530917",
				Method: method,
				Headers: map[string]string{
					":authority":        host,
					":method":           method,
					":path":             path,
					":scheme":           "http",
					"accept":            "*/*",
					"user-agent":        "curl/8.5.0",
					"x-forwarded-proto": "http",
					"x-request-id":      "d4c3b2a1-0f1e-4d5c-9b8a-7f6e5d4c3b2a",
				},
				Path:     path,
				Host:     host,
				Scheme:   "http",
				Protocol: "HTTP/1.1",
				Size:     0,
			},
		},
	}}
	for _, edit := range edits {
		edit(in)
	}
	return in
}

func withIntent(word string) func(*authv3.CheckRequest) {
	return func(in *authv3.CheckRequest) {
		in.Attributes.ContextExtensions = map[string]string{"intent": word}
	}
}

func withProtocol(p string) func(*authv3.CheckRequest) {
	return func(in *authv3.CheckRequest) { in.Attributes.Request.Http.Protocol = p }
}

func withHeader(name, value string) func(*authv3.CheckRequest) {
	return func(in *authv3.CheckRequest) { in.Attributes.Request.Http.Headers[name] = value }
}

// withRawHeaders sends the headers as header_map, the way Envoy does with
// encode_raw_headers, instead of the headers map: name, raw value, ...
func withRawHeaders(nameValues ...string) func(*authv3.CheckRequest) {
	return func(in *authv3.CheckRequest) {
		h := in.Attributes.Request.Http
		h.Headers = nil
		h.HeaderMap = &corev3.HeaderMap{}
		for i := 0; i+1 < len(nameValues); i += 2 {
			h.HeaderMap.Headers = append(h.HeaderMap.Headers, &corev3.HeaderValue{Key: nameValues[i], RawValue: []byte(nameValues[i+1])})
		}
	}
}

// checkAnswer is what a Check answer tells Envoy, flattened for cmp.
type checkAnswer struct {
	Code    codes.Code
	Status  int               // denied_response status; 0 when OK
	Headers map[string]string // denied_response headers
	Body    string
	// OK answers: response_headers_to_add, each appended to what the
	// upstream sends, and no other header mutation of any kind.
	Added     map[string]string
	Mutations int
}

func readAnswer(t *testing.T, resp *authv3.CheckResponse) checkAnswer {
	t.Helper()
	a := checkAnswer{Code: codes.Code(resp.GetStatus().GetCode())}
	if ok := resp.GetOkResponse(); ok != nil {
		a.Mutations = len(ok.GetHeaders()) + len(ok.GetHeadersToRemove()) + len(ok.GetQueryParametersToSet()) + len(ok.GetQueryParametersToRemove())
		for _, h := range ok.GetResponseHeadersToAdd() {
			if h.GetAppendAction() != corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD {
				t.Errorf("response header %s append_action %s, want APPEND_IF_EXISTS_OR_ADD", h.GetHeader().GetKey(), h.GetAppendAction())
			}
			if a.Added == nil {
				a.Added = map[string]string{}
			}
			a.Added[h.GetHeader().GetKey()] = h.GetHeader().GetValue()
		}
	}
	if d := resp.GetDeniedResponse(); d != nil {
		a.Status = int(d.GetStatus().GetCode())
		a.Body = d.GetBody()
		a.Headers = map[string]string{}
		for _, h := range d.GetHeaders() {
			if h.GetAppendAction() != corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD {
				t.Errorf("header %s append_action %s, want OVERWRITE_IF_EXISTS_OR_ADD", h.GetHeader().GetKey(), h.GetAppendAction())
			}
			if h.GetAppend() != nil {
				t.Errorf("header %s sets the deprecated append field", h.GetHeader().GetKey())
			}
			a.Headers[h.GetHeader().GetKey()] = h.GetHeader().GetValue()
		}
	}
	if a.Code == codes.OK && resp.GetOkResponse() == nil {
		t.Error("OK answer without an ok_response")
	}
	return a
}

func redirect(status int, location, cacheControl string, more ...string) checkAnswer {
	h := map[string]string{"Location": location, "Cache-Control": cacheControl}
	for i := 0; i+1 < len(more); i += 2 {
		h[more[i]] = more[i+1]
	}
	return checkAnswer{Code: codes.PermissionDenied, Status: status, Headers: h}
}

var pass = checkAnswer{Code: codes.OK}

func TestEnvoyCheck(t *testing.T) {
	t.Run("as the daemon serves it", func(t *testing.T) {
		client, passed, _ := startAuthorization(t)
		testEnvoyCheck(t, client, passed)
	})
	// A program embedding the service may register it with Envoy's
	// generated code, on a server of its own: the proto-decoded path.
	t.Run("registered with Envoy's generated code", func(t *testing.T) {
		client, passed, _ := startAuthorizationWith(t, func(_ *slog.Logger, svc *AuthorizationService) *grpc.Server {
			srv := grpc.NewServer()
			authv3.RegisterAuthorizationServer(srv, svc)
			return srv
		})
		testEnvoyCheck(t, client, passed)
	})
}

func testEnvoyCheck(t *testing.T, client authv3.AuthorizationClient, passed *passCount) {
	const day = "public, max-age=86400"

	tests := []struct {
		name       string
		in         *authv3.CheckRequest
		want       checkAnswer
		wantPassed int // requests passed on unread
	}{
		{
			name: "host with port, percent-encoded path, repeated query keys",
			in:   envoyCheck("GET", "example.com:8443", "/docs/a%20b/guide?tag=x&tag=y&q=%26"),
			want: redirect(301, "https://docs.example.com/a%20b/guide?tag=x&tag=y&q=%26", day),
		},
		{
			name: "POST keeps its method: 308 not 301",
			in:   envoyCheck("POST", "example.com", "/docs/form"),
			want: redirect(308, "https://docs.example.com/form", day),
		},
		{
			name: "HEAD",
			in:   envoyCheck("HEAD", "Example.COM.", "/docs"),
			want: redirect(301, "https://docs.example.com", day),
		},
		{
			name: "rule default intent: temporary",
			in:   envoyCheck("GET", "shop.example.net", "/old?from=mail"),
			want: redirect(307, "/new?from=mail", "no-store"),
		},
		{
			name: "route context_extensions intent overrides the rule",
			in:   envoyCheck("GET", "shop.example.net", "/old", withIntent("permanent")),
			want: redirect(301, "/new", day),
		},
		{
			name: "see_other from the route",
			in:   envoyCheck("POST", "shop.example.net", "/old", withIntent("see_other")),
			want: redirect(303, "/new", "no-store"),
		},
		{
			name: "HTTP/1.0 client gets 302 for temporary",
			in:   envoyCheck("GET", "shop.example.net", "/old", withProtocol("HTTP/1.0")),
			want: redirect(302, "/new", "no-store"),
		},
		{
			name: "HTTP/2 as Envoy writes it",
			in:   envoyCheck("GET", "shop.example.net", "/old", withProtocol("HTTP/2")),
			want: redirect(307, "/new", "no-store"),
		},
		{
			name: "undecoded path: %7E is the unreserved ~",
			in:   envoyCheck("GET", "shop.example.net", "/%7Eann"),
			want: redirect(307, "/people/ann", "no-store"),
		},
		{
			name: "a header decided it: Vary",
			in:   envoyCheck("GET", "shop.example.net", "/start", withHeader("accept-language", "de-DE,de;q=0.9")),
			want: redirect(307, "/de/start", "no-store", "Vary", "Accept-Language"),
		},
		{
			name: "host only in :authority",
			in: envoyCheck("GET", "example.com", "/docs/x", func(in *authv3.CheckRequest) {
				in.Attributes.Request.Http.Host = ""
			}),
			want: redirect(301, "https://docs.example.com/x", day),
		},
		{
			name: "headers as header_map (encode_raw_headers)",
			in:   envoyCheck("GET", "shop.example.net", "/start", withRawHeaders(":authority", "shop.example.net", "accept-language", "de")),
			want: redirect(307, "/de/start", "no-store", "Vary", "Accept-Language"),
		},
		{
			name: "a cookie decided it: Vary Cookie",
			in:   envoyCheck("GET", "shop.example.net", "/app", withHeader("cookie", "session=x; beta=1")),
			want: redirect(307, "/beta/app", "no-store", "Vary", "Cookie"),
		},
		{
			// HTTP/2 sends each cookie in a field of its own (RFC 9113
			// section 8.2.3); with encode_raw_headers they arrive apart.
			name: "cookies in several header_map fields",
			in: envoyCheck("GET", "shop.example.net", "/app",
				withRawHeaders(":authority", "shop.example.net", "cookie", "session=x", "cookie", "beta=1")),
			want: redirect(307, "/beta/app", "no-store", "Vary", "Cookie"),
		},
		{
			name: "a cookie with a longer name: pass with Vary Cookie",
			in:   envoyCheck("GET", "shop.example.net", "/app", withHeader("cookie", "xbeta=1")),
			want: checkAnswer{Code: codes.OK, Added: map[string]string{"Vary": "Cookie"}},
		},
		{
			name: "a missing query parameter present: pass with Vary Cookie, none for the query",
			in:   envoyCheck("GET", "shop.example.net", "/app?stay=1", withHeader("cookie", "beta=1")),
			want: checkAnswer{Code: codes.OK, Added: map[string]string{"Vary": "Cookie"}},
		},
		{
			name: "Accept-Language negotiated: :lang",
			in:   envoyCheck("GET", "shop.example.net", "/", withHeader("accept-language", "fr-CH, de;q=0.5")),
			want: redirect(307, "/fr-CH/", "no-store", "Vary", "Accept-Language"),
		},
		{
			name: "Accept-Language refusing the only match: pass with Vary",
			in:   envoyCheck("GET", "shop.example.net", "/", withHeader("accept-language", "de-AT, de;q=0")),
			want: checkAnswer{Code: codes.OK, Added: map[string]string{"Vary": "Accept-Language"}},
		},
		{
			name: "wildcard host: :subdomain",
			in:   envoyCheck("GET", "Acme.tenants.example.com:8080", "/x?y=1"),
			want: redirect(307, "https://acme.example.org/x?y=1", "no-store"),
		},
		{
			name: "wildcard host whose labels are no DNS labels: pass",
			in:   envoyCheck("GET", "a_b.tenants.example.com", "/x"),
			want: pass,
		},
		{name: "no rule matches", in: envoyCheck("GET", "example.com", "/pricing?plan=pro"), want: pass},
		{name: "prefix is whole segments", in: envoyCheck("GET", "example.com", "/docsearch"), want: pass},
		{
			// The upstream's page for /start varies on Accept-Language as
			// the decision did.
			name: "header rule without the header: pass with Vary",
			in:   envoyCheck("GET", "example.com", "/start"),
			want: checkAnswer{Code: codes.OK, Added: map[string]string{"Vary": "Accept-Language"}},
		},
		{
			name: "header rule whose header does not match: pass with Vary",
			in:   envoyCheck("GET", "example.com", "/start", withHeader("accept-language", "fr")),
			want: checkAnswer{Code: codes.OK, Added: map[string]string{"Vary": "Accept-Language"}},
		},
		{
			name:       "unparsable method is passed, never blocked",
			in:         envoyCheck("GE T", "example.com", "/docs"),
			want:       pass,
			wantPassed: 1,
		},
		{
			name:       "control character in the path is passed",
			in:         envoyCheck("GET", "example.com", "/docs/\x01"),
			want:       pass,
			wantPassed: 1,
		},
		{
			name:       "unknown protocol is passed",
			in:         envoyCheck("GET", "example.com", "/docs", withProtocol("SPDY/3")),
			want:       pass,
			wantPassed: 1,
		},
		{
			name:       "unknown intent word on the route is passed",
			in:         envoyCheck("GET", "example.com", "/docs", withIntent("forever")),
			want:       pass,
			wantPassed: 1,
		},
		{
			name:       "empty request (not from Envoy) is passed",
			in:         &authv3.CheckRequest{},
			want:       pass,
			wantPassed: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := passed.get("envoy")
			resp, err := client.Check(context.Background(), tt.in)
			if err != nil {
				t.Fatalf("Check: %v", err)
			}
			if diff := cmp.Diff(tt.want, readAnswer(t, resp)); diff != "" {
				t.Errorf("answer (-want +got):\n%s", diff)
			}
			if got := passed.get("envoy") - before; got != tt.wantPassed {
				t.Errorf("passed unread: %d, want %d", got, tt.wantPassed)
			}
		})
	}
}

// TestEnvoyCheckLogsRequestID: the x-request-id Envoy sends is in the log
// line, so a redirect or a pass can be found from Envoy's access log.
func TestEnvoyCheckLogsRequestID(t *testing.T) {
	client, _, logs := startAuthorization(t)
	tests := []struct {
		name string
		in   *authv3.CheckRequest
		want string // in the same log line as the request id
	}{
		{"redirect", envoyCheck("GET", "example.com", "/docs", withHeader("x-request-id", "rid-redirect")), `"rule":"docs-moved"`},
		{"pass", envoyCheck("GET", "example.com", "/none", withHeader("x-request-id", "rid-pass")), `"redirect":false`},
		{"unparsable", envoyCheck("GE T", "example.com", "/docs", withHeader("x-request-id", "rid-bad")), `"unreadable":"request"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := client.Check(context.Background(), tt.in); err != nil {
				t.Fatal(err)
			}
			id := tt.in.Attributes.Request.Http.Headers["x-request-id"]
			found := false
			for _, line := range strings.Split(logs.String(), "\n") {
				if strings.Contains(line, `"request_id":"`+id+`"`) && strings.Contains(line, tt.want) {
					found = true
				}
			}
			if !found {
				t.Errorf("no log line with request_id %s and %s:\n%s", id, tt.want, logs)
			}
		})
	}
}

// checkJSON is an Envoy-shaped CheckRequest as grpcurl sends it (protojson
// field names), for a route with context_extensions.
const checkJSON = `{
  "attributes": {
    "source": {"address": {"socketAddress": {"address": "10.1.2.3", "portValue": 51234}}},
    "destination": {"address": {"socketAddress": {"address": "10.1.0.5", "portValue": 10000}}},
    "request": {
      "time": "2026-11-24T21:00:00Z",
      "http": {
        "id": "6094718153486530917",
        "method": "POST",
        "headers": {
          ":authority": "shop.example.net:10000",
          ":method": "POST",
          ":path": "/old?utm_source=mail&id=1&id=2",
          ":scheme": "http",
          "content-length": "0",
          "x-forwarded-proto": "http",
          "x-request-id": "grpcurl-1"
        },
        "path": "/old?utm_source=mail&id=1&id=2",
        "host": "shop.example.net:10000",
        "scheme": "http",
        "protocol": "HTTP/1.1"
      }
    },
    "contextExtensions": {"intent": "permanent"}
  }
}`

// TestEnvoyCheckGrpcurl sends Envoy-shaped requests with grpcurl to the
// real daemon, which resolves Envoy's types through server reflection.
func TestEnvoyCheckGrpcurl(t *testing.T) {
	grpcurl, err := exec.LookPath("grpcurl")
	if err != nil {
		t.Skip("grpcurl not on PATH; install with: go install github.com/fullstorydev/grpcurl/cmd/grpcurl@v1.9.4")
	}
	dir := t.TempDir()
	rules := filepath.Join(dir, "rules.yaml")
	if err := os.WriteFile(rules, []byte(edgeRules), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig()
	cfg.Rules = rules
	r := start(t, cfg)

	miss := strings.NewReplacer("/old?", "/elsewhere?").Replace(checkJSON)
	tests := []struct {
		name, body string
		want       checkAnswer
	}{
		{"redirect", checkJSON, redirect(308, "/new?utm_source=mail&id=1&id=2", "public, max-age=86400")},
		{"miss", miss, pass},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, grpcurl, "-plaintext", "-d", tt.body, r.GRPCAddr(), "envoy.service.auth.v3.Authorization/Check")
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("%s: %v\n%s", cmd, err, out)
			}
			if !json.Valid(out) {
				t.Fatalf("grpcurl printed no JSON:\n%s", out)
			}
			var resp authv3.CheckResponse
			if err := protojson.Unmarshal(out, &resp); err != nil {
				t.Fatalf("grpcurl output is not a CheckResponse: %v\n%s", err, out)
			}
			if diff := cmp.Diff(tt.want, readAnswer(t, &resp)); diff != "" {
				t.Errorf("answer (-want +got):\n%s\ngrpcurl printed:\n%s", diff, out)
			}
		})
	}

	// grpcurl list shows the service next to Decide.
	out, err := exec.Command(grpcurl, "-plaintext", r.GRPCAddr(), "list").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "envoy.service.auth.v3.Authorization") {
		t.Errorf("grpcurl list: %v\n%s", err, out)
	}
}

// FuzzEnvoyCheck: whatever Envoy sends, Check never fails the call and
// never blocks: it answers OK, or a 3xx denial whose headers are clean.
//
//	go test -run '^$' -fuzz FuzzEnvoyCheck -fuzztime 30s ./server/
func FuzzEnvoyCheck(f *testing.F) {
	f.Add("GET", "example.com:8443", "/docs/a%20b?x=1&x=1", "HTTP/1.1", "")
	f.Add("POST", "shop.example.net", "/old", "HTTP/1.0", "see_other")
	f.Add("GE T", "", "", "SPDY/3", "forever")
	f.Add("GET", "[::1]:80", "http://example.com/docs?%zz", "HTTP/2", "permanent")
	svc := NewAuthorizationService(edgeEngine(f), slog.New(slog.DiscardHandler), nil)
	f.Fuzz(func(t *testing.T, method, host, path, protocol, intent string) {
		in := envoyCheck(method, host, path, withProtocol(protocol), withIntent(intent))
		resp, err := svc.Check(context.Background(), in)
		if err != nil {
			t.Fatalf("Check failed the call: %v", err)
		}
		switch codes.Code(resp.GetStatus().GetCode()) {
		case codes.OK:
		case codes.PermissionDenied:
			d := resp.GetDeniedResponse()
			if s := d.GetStatus().GetCode(); s < 300 || s > 399 {
				t.Fatalf("denial with status %d", s)
			}
			for _, h := range d.GetHeaders() {
				if strings.ContainsAny(h.GetHeader().GetValue(), "\r\n\x00") {
					t.Fatalf("header %s=%q carries a control character", h.GetHeader().GetKey(), h.GetHeader().GetValue())
				}
			}
		default:
			t.Fatalf("status %v", resp.GetStatus())
		}
	})
}
