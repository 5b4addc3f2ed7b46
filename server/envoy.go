package server

import (
	"context"
	"errors"
	"log/slog"
	"math/bits"
	"strings"
	"sync/atomic"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"

	"github.com/redirectd/redirectd/decision"
)

// PassCounter is told of every edge-proxy request an adapter passed on
// without a decision because it could not read it (README "Envoy":
// never blocked, always counted). adapter is "envoy" or "forward_auth".
// *Metrics is one.
type PassCounter interface {
	PassedUnparsable(adapter string)
}

var _ PassCounter = (*Metrics)(nil)

// AuthorizationService answers Envoy's ext_authz Check
// (envoy.service.auth.v3.Authorization) with redirect decisions. It only
// translates: CheckRequest to decision.Request, Decision to CheckResponse.
type AuthorizationService struct {
	authv3.UnimplementedAuthorizationServer
	edge edgeDecider
}

var _ authv3.AuthorizationServer = (*AuthorizationService)(nil)

// NewAuthorizationService returns the ext_authz service deciding with e.
// passed may be nil. Register it with authv3.RegisterAuthorizationServer;
// the daemon registers it with registerAuthorization, which reads each
// request straight from the wire.
func NewAuthorizationService(e *Engine, log *slog.Logger, passed PassCounter) *AuthorizationService {
	return &AuthorizationService{edge: edgeDecider{adapter: "envoy", engine: e, counter: passed, log: log}}
}

// okResponse lets the request through untouched. It is never modified, so
// every pass shares it (protobuf messages are safe for concurrent reads
// and marshalling).
var okResponse = &authv3.CheckResponse{
	Status:       &rpcstatus.Status{Code: int32(codes.OK)},
	HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{}},
}

// Check decides one request Envoy is about to route. A redirect is a
// "denial" to Envoy: PERMISSION_DENIED with a denied_response that Envoy
// sends to the client as is (status, headers, empty body). No match, and
// any request we cannot read, answers OK: a redirect service must never
// block traffic.
func (s *AuthorizationService) Check(ctx context.Context, in *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	return s.check(ctx, checkInputOf(in))
}

// check is Check on the fields it reads, however they were decoded: by
// registerAuthorization's handler from the wire, or from a CheckRequest.
func (s *AuthorizationService) check(ctx context.Context, in *checkInput) (*authv3.CheckResponse, error) {
	headers := in.headers
	if len(headers) == 0 && len(in.headerMap) > 0 {
		headers = rawHeaders(in.headerMap)
	}
	requestID := headers["x-request-id"]
	if requestID == "" {
		requestID = in.id
	}

	req := decision.Request{
		Method: firstNonEmpty(in.method, headers[":method"]),
		Scheme: firstNonEmpty(in.scheme, headers[":scheme"]),
		// Host or :authority as the client sent it, port included; the
		// engine drops the port and lower-cases it.
		Host: firstNonEmpty(in.host, headers[":authority"], headers["host"]),
		// The request target exactly as on the request line, query
		// included and nothing decoded: the engine normalises it once,
		// the same way for every adapter.
		Target:   firstNonEmpty(in.path, headers[":path"]),
		Protocol: in.protocol,
		Headers:  headers,
	}
	if in.intent != "" {
		intent, err := decision.ParseIntent(in.intent)
		if err != nil {
			s.edge.pass(ctx, requestID, "route context_extensions", err)
			return okResponse, nil
		}
		req.Intent = intent
	}

	d, ok := s.edge.decide(ctx, requestID, &req)
	switch {
	case !ok:
		return okResponse, nil
	case !d.Redirect:
		return passResponse(&d), nil
	}
	return deniedResponse(&d), nil
}

// passResponse lets the request through. When the decision consulted
// request headers (README "Rules", headers), the upstream's response
// varies on them too: Vary is added to it, after any Vary it has
// (APPEND_IF_EXISTS_OR_ADD: Vary is a list, RFC 9110 section 12.5.5).
func passResponse(d *decision.Decision) *authv3.CheckResponse {
	if len(d.Headers) == 0 {
		return okResponse
	}
	add := make([]*corev3.HeaderValueOption, len(d.Headers))
	for i, h := range d.Headers {
		add[i] = &corev3.HeaderValueOption{
			Header:       &corev3.HeaderValue{Key: h.Name, Value: h.Value},
			AppendAction: corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD,
		}
	}
	return &authv3.CheckResponse{
		Status:       okResponse.Status,
		HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{ResponseHeadersToAdd: add}},
	}
}

// deniedResponse carries the redirect. OVERWRITE_IF_EXISTS_OR_ADD: a
// Location or Cache-Control already on Envoy's local reply must be
// replaced, never doubled (RFC 9110 section 10.2.2: one Location).
func deniedResponse(d *decision.Decision) *authv3.CheckResponse {
	headers := make([]*corev3.HeaderValueOption, len(d.Headers))
	for i, h := range d.Headers {
		headers[i] = &corev3.HeaderValueOption{
			Header:       &corev3.HeaderValue{Key: h.Name, Value: h.Value},
			AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
		}
	}
	return &authv3.CheckResponse{
		Status: &rpcstatus.Status{Code: int32(codes.PermissionDenied)},
		HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
			Status:  &typev3.HttpStatus{Code: typev3.StatusCode(d.Status)},
			Headers: headers,
		}},
	}
}

// rawHeaders reads header_map, which Envoy sends instead of headers when
// the filter sets encode_raw_headers. Repeated names are joined by
// decision.JoinFields.
func rawHeaders(hs []headerField) map[string]string {
	m := make(map[string]string, len(hs))
	for _, h := range hs {
		k := strings.ToLower(h.key)
		v := string(h.raw)
		if v == "" {
			v = h.value
		}
		if prev, ok := m[k]; ok {
			v = decision.JoinFields(k, []string{prev, v})
		}
		m[k] = v
	}
	return m
}

func firstNonEmpty(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

// edgeDecider is what the edge adapters (Envoy Check, forward-auth) share
// around the one engine call: a request they cannot decide is passed on,
// never blocked, and counted and logged. A misconfigured route sends the
// same bad request many times a second, so that log is sampled: the 1st,
// 2nd, 4th, 8th... pass is logged, with the running count.
type edgeDecider struct {
	adapter string // "envoy" or "forward_auth", as in metrics and logs
	engine  *Engine
	counter PassCounter // may be nil
	log     *slog.Logger
	n       atomic.Uint64
}

// decide asks the engine about req; ok is false when the request was
// passed on without a decision. Decisions are logged at debug with the
// proxy's request id.
func (e *edgeDecider) decide(ctx context.Context, requestID string, req *decision.Request) (d decision.Decision, ok bool) {
	d, err := e.engine.Decide(req)
	if err != nil {
		e.pass(ctx, requestID, "request", err)
		return d, false
	}
	if e.log.Enabled(ctx, slog.LevelDebug) {
		e.log.LogAttrs(ctx, slog.LevelDebug, "edge decision",
			slog.String("adapter", e.adapter), slog.String("request_id", requestID),
			slog.String("method", req.Method), slog.String("host", req.Host), slog.String("target", req.Target),
			slog.Bool("redirect", d.Redirect), slog.Int("status", d.Status), slog.String("rule", d.RuleID))
	}
	return d, true
}

// pass counts a request let through unread because what could not be read.
func (e *edgeDecider) pass(ctx context.Context, requestID, what string, err error) {
	n := e.n.Add(1)
	if e.counter != nil {
		e.counter.PassedUnparsable(e.adapter)
	}
	if bits.OnesCount64(n) != 1 {
		return
	}
	level := slog.LevelWarn
	var re *decision.RequestError
	if !errors.As(err, &re) && what == "request" {
		level = slog.LevelError // not the client's fault: a server problem
	}
	e.log.LogAttrs(ctx, level, "request passed on without a redirect decision",
		slog.String("adapter", e.adapter), slog.String("request_id", requestID),
		slog.String("unreadable", what), slog.String("error", err.Error()),
		slog.Uint64("passes_so_far", n))
}
