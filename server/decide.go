package server

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/redirectd/redirectd/decision"
	redirectv1 "github.com/redirectd/redirectd/proto/redirect/v1"
)

// MaxBatch is the most requests one DecideBatch call may carry. It bounds
// the work and the response size of a single call.
const MaxBatch = 10_000

// DecisionService is redirect.v1.DecisionService over an Engine. It only
// translates: proto to decision types and back, decision errors to gRPC
// codes. Matching lives in the engine.
type DecisionService struct {
	redirectv1.UnimplementedDecisionServiceServer
	engine *Engine
}

var _ redirectv1.DecisionServiceServer = (*DecisionService)(nil)

// NewDecisionService returns the DecisionService answering from e.
func NewDecisionService(e *Engine) redirectv1.DecisionServiceServer {
	return &DecisionService{engine: e}
}

// Decide answers one request.
func (s *DecisionService) Decide(_ context.Context, in *redirectv1.DecideRequest) (*redirectv1.DecideResponse, error) {
	resp, err := s.decide(in)
	if err != nil {
		return nil, statusError(err)
	}
	return resp, nil
}

// DecideBatch answers each request independently: a bad request yields an
// error string in its slot and does not fail the others.
func (s *DecisionService) DecideBatch(_ context.Context, in *redirectv1.DecideBatchRequest) (*redirectv1.DecideBatchResponse, error) {
	if n := len(in.GetRequests()); n > MaxBatch {
		return nil, statusError(&decision.RequestError{
			Field:   "requests",
			Message: fmt.Sprintf("%d requests in one batch; accepted: at most %d", n, MaxBatch),
		})
	}
	out := &redirectv1.DecideBatchResponse{
		Results: make([]*redirectv1.DecideResult, len(in.GetRequests())),
	}
	for i, req := range in.GetRequests() {
		resp, err := s.decide(req)
		switch {
		case err == nil:
			out.Results[i] = &redirectv1.DecideResult{Outcome: &redirectv1.DecideResult_Response{Response: resp}}
		case isRequestError(err):
			out.Results[i] = &redirectv1.DecideResult{Outcome: &redirectv1.DecideResult_Error{
				Error: fmt.Sprintf("requests[%d].%s", i, err.Error()),
			}}
		default:
			// Not the caller's fault: fail the call rather than hide a
			// server problem inside one slot.
			return nil, statusError(err)
		}
	}
	return out, nil
}

func (s *DecisionService) decide(in *redirectv1.DecideRequest) (*redirectv1.DecideResponse, error) {
	req, err := toDecisionRequest(in)
	if err != nil {
		return nil, err
	}
	d, err := s.engine.Decide(&req)
	if err != nil {
		return nil, err
	}
	return toDecideResponse(&d), nil
}

// toDecisionRequest maps the wire request. Field checks (method token,
// path shape and size, control characters) are the engine's, so Decide,
// Envoy Check and forward-auth reject the same inputs with the same words.
func toDecisionRequest(in *redirectv1.DecideRequest) (decision.Request, error) {
	intent, err := toIntent(in.GetIntent())
	if err != nil {
		return decision.Request{}, err
	}
	return decision.Request{
		Method:   in.GetMethod(),
		Scheme:   in.GetScheme(),
		Host:     in.GetHost(),
		Target:   in.GetPath(),
		Intent:   intent,
		Protocol: in.GetProtocol(),
		Headers:  lowerCaseNames(in.GetHeaders()),
		Explain:  in.GetExplain(),
	}, nil
}

func toIntent(i redirectv1.Intent) (decision.Intent, error) {
	switch i {
	case redirectv1.Intent_INTENT_UNSPECIFIED:
		return decision.IntentUnspecified, nil
	case redirectv1.Intent_INTENT_PERMANENT:
		return decision.IntentPermanent, nil
	case redirectv1.Intent_INTENT_TEMPORARY:
		return decision.IntentTemporary, nil
	case redirectv1.Intent_INTENT_SEE_OTHER:
		return decision.IntentSeeOther, nil
	}
	return decision.IntentUnspecified, &decision.RequestError{
		Field:   "intent",
		Message: fmt.Sprintf("unknown value %d; accepted: INTENT_UNSPECIFIED, INTENT_PERMANENT, INTENT_TEMPORARY, INTENT_SEE_OTHER", int32(i)),
	}
}

// lowerCaseNames returns h with lower-case names. Header names are
// case-insensitive (RFC 9110 section 5.1) and the engine compares them
// lower-cased; h is copied only when a name needs it.
func lowerCaseNames(h map[string]string) map[string]string {
	for name := range h {
		if hasUpper(name) {
			lower := make(map[string]string, len(h))
			for n, v := range h {
				lower[strings.ToLower(n)] = v
			}
			return lower
		}
	}
	return h
}

func hasUpper(s string) bool {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			return true
		}
	}
	return false
}

func toDecideResponse(d *decision.Decision) *redirectv1.DecideResponse {
	resp := &redirectv1.DecideResponse{
		Redirect:          d.Redirect,
		StatusCode:        int32(d.Status),
		Location:          d.Location,
		FollowUpMethod:    d.FollowUpMethod,
		FollowUpKeepsBody: d.FollowUpKeepsBody,
		RuleId:            d.RuleID,
	}
	if d.Redirect {
		resp.Cache = &redirectv1.CacheAdvice{
			Cacheable:    d.Cache.Cacheable,
			CacheControl: d.Cache.CacheControl,
		}
		if d.Cache.Cacheable {
			resp.Cache.MaxAge = durationpb.New(d.Cache.MaxAge)
		}
	}
	if len(d.Headers) > 0 {
		resp.Headers = make([]*redirectv1.Header, len(d.Headers))
		for i, h := range d.Headers {
			resp.Headers[i] = &redirectv1.Header{Name: h.Name, Value: h.Value}
		}
	}
	if d.Explanation != nil {
		resp.Explanation = toExplanation(d.Explanation)
	}
	return resp
}

func toExplanation(x *decision.Explanation) *redirectv1.Explanation {
	out := &redirectv1.Explanation{
		Host:       x.Host,
		Path:       x.Path,
		Candidates: make([]*redirectv1.Candidate, len(x.Candidates)),
	}
	for i, c := range x.Candidates {
		out.Candidates[i] = &redirectv1.Candidate{
			RuleId:  c.RuleID,
			Scope:   c.Scope,
			Match:   c.Match.String(),
			Applied: c.Applied,
			Reason:  c.Reason,
		}
	}
	return out
}

func isRequestError(err error) bool {
	var re *decision.RequestError
	return errors.As(err, &re)
}

// statusError is the one place where errors become gRPC statuses. Errors
// that describe the caller's input keep their text (it names the field and
// what is accepted); anything else becomes INTERNAL with a fixed message,
// so server internals never reach a caller. The original error stays
// available to the logging interceptor through Unwrap.
func statusError(err error) error {
	if err == nil {
		return nil
	}
	var (
		reqErr   *decision.RequestError
		rulesErr *decision.RulesError
	)
	switch {
	case errors.As(err, &reqErr):
		return status.Error(codes.InvalidArgument, reqErr.Error())
	case errors.As(err, &rulesErr):
		return status.Error(codes.InvalidArgument, rulesErr.Error())
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, "request canceled")
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, "deadline exceeded")
	}
	if _, ok := err.(interface{ GRPCStatus() *status.Status }); ok {
		return err // already a deliberate status, not a wrapped one
	}
	return &internalError{err: err}
}

// internalError carries a server-side failure: the caller sees only
// INTERNAL, the log sees the cause.
type internalError struct{ err error }

func (e *internalError) Error() string { return "internal error: " + e.err.Error() }
func (e *internalError) Unwrap() error { return e.err }

// GRPCStatus is what grpc-go sends on the wire for this error.
func (e *internalError) GRPCStatus() *status.Status {
	return status.New(codes.Internal, "internal error; the server log has the details")
}
