package server

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/redirectd/redirectd/decision"
)

// ForwardAuthPath is where the forward-auth endpoint is mounted on the
// HTTP listener (--http-addr, :8080 by default).
const ForwardAuthPath = "/forward-auth"

// Headers an edge proxy may add to the forward-auth request to tell what
// the X-Forwarded-* set cannot: the client's HTTP version (the status
// table differs for HTTP/1.0) and the intent for the route.
const (
	headerProtocol = "X-Redirectd-Protocol" // "HTTP/1.0", "HTTP/1.1", "HTTP/2"; Caddy's {http.request.proto} works as is
	headerIntent   = "X-Redirectd-Intent"   // permanent | temporary | see_other
)

// maxForwardedHeaderBytes bounds the request headers copied into a
// decision; a request over it is passed on unread. Proxies cap headers
// near here too (nginx: 8 KiB per line, Envoy: 60 KiB in all).
const maxForwardedHeaderBytes = 16 << 10

// ForwardAuthHandler answers HTTP forward-auth requests with redirect
// decisions, for proxies that ask an HTTP service before routing:
//
//   - Caddy forward_auth and Traefik ForwardAuth send a request of their
//     own carrying the original request in X-Forwarded-Method,
//     X-Forwarded-Proto, X-Forwarded-Host and X-Forwarded-Uri;
//   - Envoy's ext_authz http_service sends the original method and Host,
//     with the original target appended to its path_prefix (set it to
//     ForwardAuthPath).
//
// A redirect answers its 3xx status with exactly the decision's headers
// (Location, Cache-Control, Vary) and an empty body; the proxy returns
// that to the client as is, since it is not 2xx. No match answers 200 and
// the proxy carries on; when the decision consulted request headers, the
// 200 carries Vary naming them, for the proxy to copy onto the response. A request we cannot read answers 200 too (fail
// open) and is counted.
type ForwardAuthHandler struct {
	edge edgeDecider
}

// NewForwardAuthHandler returns the forward-auth handler deciding with e.
// passed may be nil. Mount it with MountForwardAuth.
func NewForwardAuthHandler(e *Engine, log *slog.Logger, passed PassCounter) http.Handler {
	return &ForwardAuthHandler{edge: edgeDecider{adapter: "forward_auth", engine: e, counter: passed, log: log}}
}

// MountForwardAuth serves h at ForwardAuthPath (Caddy, Traefik) and below
// it (Envoy http_service with path_prefix ForwardAuthPath). Both patterns
// are needed: with only the subtree one, ServeMux would answer a request
// for ForwardAuthPath itself with its own redirect to ForwardAuthPath+"/".
func MountForwardAuth(mux *http.ServeMux, h http.Handler) {
	mux.Handle(ForwardAuthPath, h)
	mux.Handle(ForwardAuthPath+"/", h)
}

func (h *ForwardAuthHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	requestID := r.Header.Get("X-Request-Id")
	req, err := forwardedRequest(r)
	if err != nil {
		h.edge.pass(ctx, requestID, "forwarded request", err)
		w.WriteHeader(http.StatusOK)
		return
	}
	d, ok := h.edge.decide(ctx, requestID, &req)
	if !ok {
		w.WriteHeader(http.StatusOK)
		return
	}
	// A pass carries Vary when the decision consulted request headers:
	// the proxy copies it onto the response (README "Caddy (and Traefik):
	// forward-auth").
	out := w.Header()
	for _, hd := range d.Headers {
		out.Set(hd.Name, hd.Value)
	}
	if !d.Redirect {
		w.WriteHeader(http.StatusOK)
		return
	}
	w.WriteHeader(d.Status)
}

// forwardedRequest reads the original request out of a forward-auth
// request, in either shape the type comment describes.
func forwardedRequest(r *http.Request) (decision.Request, error) {
	var req decision.Request
	intentWord := r.Header.Get(headerIntent)
	if uri := r.Header.Get("X-Forwarded-Uri"); uri != "" {
		// Caddy, Traefik: the request line is the proxy's own; its query
		// may carry the intent (Traefik cannot add a header to the
		// forward-auth request: address .../forward-auth?intent=permanent).
		req.Method = firstNonEmpty(r.Header.Get("X-Forwarded-Method"), r.Method)
		req.Host = firstNonEmpty(firstListElement(r.Header.Get("X-Forwarded-Host")), r.Host)
		req.Target = uri
		if intentWord == "" {
			intentWord = r.URL.Query().Get("intent")
		}
	} else {
		// Envoy http_service: the request line is the original one below
		// the mount path, undecoded.
		req.Method = r.Method
		req.Host = r.Host
		target := r.RequestURI
		if !strings.HasPrefix(target, "/") { // absolute-form
			target = r.URL.RequestURI()
		}
		target = strings.TrimPrefix(target, ForwardAuthPath)
		if target == "" || target[0] == '?' {
			target = "/" + target
		}
		req.Target = target
	}
	req.Scheme = strings.ToLower(firstListElement(r.Header.Get("X-Forwarded-Proto")))
	req.Protocol = r.Header.Get(headerProtocol)
	if intentWord != "" {
		intent, err := decision.ParseIntent(intentWord)
		if err != nil {
			return req, fmt.Errorf("%s: %w", headerIntent, err)
		}
		req.Intent = intent
	}
	headers, err := decisionHeaders(r.Header)
	if err != nil {
		return req, err
	}
	req.Headers = headers
	return req, nil
}

// decisionHeaders copies the request headers for rules that match on
// them: lower-case names, repeated fields joined by decision.JoinFields.
func decisionHeaders(h http.Header) (map[string]string, error) {
	size := 0
	for name, values := range h {
		size += len(name)
		for _, v := range values {
			size += len(v)
		}
	}
	if size > maxForwardedHeaderBytes {
		return nil, errors.New("request headers over 16 KiB")
	}
	m := make(map[string]string, len(h))
	for name, values := range h {
		m[strings.ToLower(name)] = decision.JoinFields(name, values)
	}
	return m, nil
}

// firstListElement is the first element of a comma-separated header such
// as X-Forwarded-Host "a.example, proxy.internal": the one the client
// asked for.
func firstListElement(v string) string {
	first, _, _ := strings.Cut(v, ",")
	return strings.TrimSpace(first)
}
