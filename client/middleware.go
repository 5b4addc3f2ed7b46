package client

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/redirectd/redirectd/decision"
	redirectv1 "github.com/redirectd/redirectd/proto/redirect/v1"
)

// DefaultMiddlewareTimeout bounds the middleware's call to redirectd when
// neither WithDecideTimeout nor the Client's WithTimeout sets one: a
// redirect lookup must never hold a page for long (Envoy's ext_authz
// deployments use the same bound).
const DefaultMiddlewareTimeout = 200 * time.Millisecond

// MiddlewareOption configures Middleware.
type MiddlewareOption func(*middleware)

// WithErrorHandler is told of every failed call to redirectd, after the
// request has been passed on (log it, count it). Without it failures are
// silent: the middleware fails open.
func WithErrorHandler(f func(r *http.Request, err error)) MiddlewareOption {
	return func(m *middleware) { m.onError = f }
}

// WithTrustedForwardedProto makes the scheme come from the
// X-Forwarded-Proto header when present. Set it only behind a proxy that
// sets the header itself: a client could otherwise choose the scheme the
// rules see.
func WithTrustedForwardedProto() MiddlewareOption {
	return func(m *middleware) { m.trustForwardedProto = true }
}

// WithHeaders limits the request headers sent to redirectd to names (for
// rules that match on headers). By default every header is sent except
// Authorization, Proxy-Authorization and Cookie: credentials have no place
// in a redirect decision.
func WithHeaders(names ...string) MiddlewareOption {
	return func(m *middleware) {
		m.headers = make([]string, len(names))
		for i, n := range names {
			m.headers[i] = http.CanonicalHeaderKey(n)
		}
	}
}

// WithIntent sends intent with every request, overriding the rules' own
// intent (for example INTENT_SEE_OTHER on a handler that receives forms).
func WithIntent(intent redirectv1.Intent) MiddlewareOption {
	return func(m *middleware) { m.intent = intent }
}

// WithDecideTimeout bounds each call to redirectd; see
// DefaultMiddlewareTimeout.
func WithDecideTimeout(d time.Duration) MiddlewareOption {
	return func(m *middleware) { m.timeout = d }
}

type middleware struct {
	client              *Client
	next                http.Handler
	onError             func(*http.Request, error)
	trustForwardedProto bool
	headers             []string // canonical names; nil = all but credentials
	intent              redirectv1.Intent
	timeout             time.Duration
}

// Middleware asks redirectd about every request before next sees it. On a
// redirect it answers itself: the status and exactly the headers redirectd
// gives (Location, Cache-Control, Vary), with an empty body, whatever the
// method. Otherwise it calls next.
//
// It fails open: when redirectd cannot be reached, answers an error or runs
// past the timeout, the request goes to next and the error goes to the
// WithErrorHandler callback. A missing redirect costs a user one hop to a
// page that may still exist; a failed page costs every user the site.
func (c *Client) Middleware(next http.Handler, opts ...MiddlewareOption) http.Handler {
	m := &middleware{client: c, next: next}
	for _, o := range opts {
		o(m)
	}
	if m.timeout <= 0 {
		m.timeout = c.timeout
	}
	if m.timeout <= 0 {
		m.timeout = DefaultMiddlewareTimeout
	}
	return m
}

func (m *middleware) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), m.timeout)
	resp, err := m.client.Decide(ctx, m.request(r))
	cancel()
	if code := resp.GetStatusCode(); err == nil && resp.GetRedirect() && (code < 300 || code > 399) {
		// Never write what is not a redirect (WriteHeader panics on
		// codes outside 100-999): fail open as for any other error.
		err = fmt.Errorf("redirectd answered a redirect with status %d, not 3xx", code)
	}
	if err != nil || !resp.GetRedirect() {
		// A pass that consulted request headers names them in Vary: the
		// page next writes varies on them as the decision did (RFC 9110
		// section 12.5.5). Added before next runs, so next may add more.
		for _, kv := range resp.GetHeaders() {
			if http.CanonicalHeaderKey(kv.GetName()) == "Vary" {
				w.Header().Add("Vary", kv.GetValue())
			}
		}
		m.next.ServeHTTP(w, r)
		if err != nil && m.onError != nil {
			m.onError(r, err)
		}
		return
	}
	h := w.Header()
	for _, kv := range resp.GetHeaders() {
		h.Del(kv.GetName())
	}
	for _, kv := range resp.GetHeaders() {
		h.Add(kv.GetName(), kv.GetValue())
	}
	w.WriteHeader(int(resp.GetStatusCode()))
}

// request describes r as redirectd expects it.
func (m *middleware) request(r *http.Request) *redirectv1.DecideRequest {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	if m.trustForwardedProto {
		if p := r.Header.Get("X-Forwarded-Proto"); p == "http" || p == "https" {
			scheme = p
		}
	}
	// RequestURI is the target as the client sent it; a handler called
	// directly (tests, http.StripPrefix) may have only r.URL.
	target := r.RequestURI
	if target == "" {
		target = r.URL.RequestURI()
	}
	return &redirectv1.DecideRequest{
		Method:   r.Method,
		Scheme:   scheme,
		Host:     r.Host,
		Path:     target,
		Intent:   m.intent,
		Protocol: protocolName(r.ProtoMajor, r.ProtoMinor),
		Headers:  m.selectHeaders(r.Header),
	}
}

// protocolName gives the protocol words of the DecideRequest; "" when
// unknown, which redirectd treats as HTTP/1.1 or later.
func protocolName(major, minor int) string {
	switch {
	case major == 1 && minor == 0:
		return "HTTP/1.0"
	case major == 1 && minor == 1:
		return "HTTP/1.1"
	case major == 2:
		return "HTTP/2"
	case major == 3:
		return "HTTP/3"
	}
	return ""
}

// selectHeaders lower-cases names and joins repeated fields as
// decision.JoinFields does.
func (m *middleware) selectHeaders(h http.Header) map[string]string {
	out := make(map[string]string)
	add := func(name string, values []string) {
		if len(values) > 0 {
			out[strings.ToLower(name)] = decision.JoinFields(name, values)
		}
	}
	if m.headers != nil {
		for _, name := range m.headers {
			add(name, h[name])
		}
		return out
	}
	for name, values := range h {
		switch name {
		case "Authorization", "Proxy-Authorization", "Cookie":
			continue
		}
		add(name, values)
	}
	return out
}
