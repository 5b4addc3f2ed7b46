package client

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/redirectd/redirectd/decision"
	redirectv1 "github.com/redirectd/redirectd/proto/redirect/v1"
)

// Offline answers Decide and DecideBatch in process from a rule Index, with
// the same engine and the same answers as a redirectd serving those rules:
// redirectctl uses it for --rules, tests use it to check rules without a
// server. Bad input comes back as an InvalidArgument status error, as from
// the server.
type Offline struct {
	index *decision.Index
	now   func() time.Time
}

// NewOffline answers from ix; now is the clock used for the cache ramp of
// rules with a since time (pass time.Now, or a fixed time for repeatable
// answers).
func NewOffline(ix *decision.Index, now func() time.Time) *Offline {
	return &Offline{index: ix, now: now}
}

// Decide answers one request.
func (o *Offline) Decide(_ context.Context, req *redirectv1.DecideRequest) (*redirectv1.DecideResponse, error) {
	resp, err := o.decide(req)
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	return resp, nil
}

// DecideBatch answers many requests, one result each, in order; an invalid
// request gets a result carrying its error.
func (o *Offline) DecideBatch(_ context.Context, reqs []*redirectv1.DecideRequest) ([]*redirectv1.DecideResult, error) {
	results := make([]*redirectv1.DecideResult, len(reqs))
	for i, req := range reqs {
		resp, err := o.decide(req)
		if err != nil {
			// Same words as the server: the slot's index, then field and reason.
			results[i] = &redirectv1.DecideResult{Outcome: &redirectv1.DecideResult_Error{
				Error: fmt.Sprintf("requests[%d].%s", i, err.Error()),
			}}
			continue
		}
		results[i] = &redirectv1.DecideResult{Outcome: &redirectv1.DecideResult_Response{Response: resp}}
	}
	return results, nil
}

// Close does nothing; it lets Offline stand where a Client does.
func (o *Offline) Close() error { return nil }

func (o *Offline) decide(req *redirectv1.DecideRequest) (*redirectv1.DecideResponse, error) {
	dreq, err := decisionRequest(req)
	if err != nil {
		return nil, err
	}
	d, err := o.index.Decide(&dreq, o.now())
	if err != nil {
		var reqErr *decision.RequestError
		if !errors.As(err, &reqErr) {
			return nil, fmt.Errorf("decide: %w", err)
		}
		return nil, err
	}
	return decideResponse(&d), nil
}

// decisionRequest converts the wire request into the engine's.
func decisionRequest(req *redirectv1.DecideRequest) (decision.Request, error) {
	intent, err := decisionIntent(req.GetIntent())
	if err != nil {
		return decision.Request{}, err
	}
	return decision.Request{
		Method:   req.GetMethod(),
		Scheme:   req.GetScheme(),
		Host:     req.GetHost(),
		Target:   req.GetPath(),
		Intent:   intent,
		Protocol: req.GetProtocol(),
		Headers:  lowerCaseNames(req.GetHeaders()),
		Explain:  req.GetExplain(),
	}, nil
}

func decisionIntent(i redirectv1.Intent) (decision.Intent, error) {
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

// decideResponse converts the engine's decision into the wire response.
func decideResponse(d *decision.Decision) *redirectv1.DecideResponse {
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
	for _, h := range d.Headers {
		resp.Headers = append(resp.Headers, &redirectv1.Header{Name: h.Name, Value: h.Value})
	}
	if e := d.Explanation; e != nil {
		resp.Explanation = &redirectv1.Explanation{Host: e.Host, Path: e.Path}
		for _, c := range e.Candidates {
			resp.Explanation.Candidates = append(resp.Explanation.Candidates, &redirectv1.Candidate{
				RuleId:  c.RuleID,
				Scope:   c.Scope,
				Match:   c.Match.String(),
				Applied: c.Applied,
				Reason:  c.Reason,
			})
		}
	}
	return resp
}

// lowerCaseNames returns h with lower-case names: header names are
// case-insensitive (RFC 9110 section 5.1) and the engine compares them
// lower-cased.
func lowerCaseNames(h map[string]string) map[string]string {
	if len(h) == 0 {
		return h
	}
	out := make(map[string]string, len(h))
	for name, v := range h {
		out[strings.ToLower(name)] = v
	}
	return out
}
