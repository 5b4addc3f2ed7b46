package server

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/redirectd/redirectd/decision"
	redirectv1 "github.com/redirectd/redirectd/proto/redirect/v1"
)

// Page sizes of ListRules (AIP-158: a size above the maximum is lowered to
// it, not refused).
const (
	defaultListPageSize = 100
	maxListPageSize     = 1000
)

// RuleService is the admin API over a RuleSource (the rules file or
// etcd). Every change goes through RuleSource.Update, so it is durable
// before it is acknowledged.
type RuleService struct {
	redirectv1.UnimplementedRuleServiceServer
	source RuleSource
	store  *RuleStore // source.Rules(): the engine, hits, clock and log
	log    *slog.Logger
}

var _ redirectv1.RuleServiceServer = (*RuleService)(nil)

// NewRuleService returns the admin API for source.
func NewRuleService(source RuleSource) *RuleService {
	return &RuleService{source: source, store: source.Rules(), log: source.Rules().Log}
}

// current is the serving snapshot, or UNAVAILABLE before the first load.
func (s *RuleService) current() (*Snapshot, error) {
	snap := s.store.Engine.Current()
	if snap == nil {
		return nil, s.status(ErrNotReady)
	}
	return snap, nil
}

// GetRule returns one rule by id.
func (s *RuleService) GetRule(_ context.Context, req *redirectv1.GetRuleRequest) (*redirectv1.GetRuleResponse, error) {
	snap, err := s.current()
	if err != nil {
		return nil, err
	}
	if req.GetId() == "" {
		return nil, status.Error(codes.InvalidArgument, "id: required")
	}
	r, ok := snap.Index.Rule(req.GetId())
	if !ok {
		return nil, s.status(notFound(req.GetId()))
	}
	return &redirectv1.GetRuleResponse{Rule: redirectv1.RuleToProto(r), Version: versionToProto(snap.Version)}, nil
}

// ListRules returns a page of rules in id order. The page token is the
// last id of the previous page (base64), so paging stays correct while
// rules are added or removed between pages.
func (s *RuleService) ListRules(_ context.Context, req *redirectv1.ListRulesRequest) (*redirectv1.ListRulesResponse, error) {
	snap, err := s.current()
	if err != nil {
		return nil, err
	}
	size := int(req.GetPageSize())
	switch {
	case size < 0:
		return nil, status.Errorf(codes.InvalidArgument, "page_size: %d is negative; accepted: 0 (means %d) to %d", size, defaultListPageSize, maxListPageSize)
	case size == 0:
		size = defaultListPageSize
	case size > maxListPageSize:
		size = maxListPageSize
	}
	after := ""
	if tok := req.GetPageToken(); tok != "" {
		b, err := base64.RawURLEncoding.DecodeString(tok)
		if err != nil || len(b) == 0 {
			return nil, status.Error(codes.InvalidArgument, "page_token: not a token from a previous ListRules answer")
		}
		after = string(b)
	}
	// One more than asked tells whether another page follows.
	rules := snap.Index.Rules(after, size+1)
	resp := &redirectv1.ListRulesResponse{Version: versionToProto(snap.Version), TotalSize: int32(snap.Index.Len())}
	if len(rules) > size {
		rules = rules[:size]
		resp.NextPageToken = base64.RawURLEncoding.EncodeToString([]byte(rules[size-1].ID))
	}
	resp.Rules = redirectv1.RulesToProto(rules)
	return resp, nil
}

// PutRule creates or replaces one rule. A new rule without since gets the
// current time.
func (s *RuleService) PutRule(ctx context.Context, req *redirectv1.PutRuleRequest) (*redirectv1.PutRuleResponse, error) {
	if req.GetRule() == nil {
		return nil, status.Error(codes.InvalidArgument, "rule: required")
	}
	r, err := redirectv1.RuleFromProto(req.GetRule())
	if err != nil {
		return nil, s.status(err)
	}
	pre, err := precondition(req)
	if err != nil {
		return nil, err
	}
	edit := Edit{Puts: []decision.Rule{r}}
	snap, warnings, err := s.source.Update(ctx, pre, edit)
	if err != nil {
		return nil, s.status(err)
	}
	return &redirectv1.PutRuleResponse{
		Rule:     redirectv1.RuleToProto(edit.Puts[0]),
		Version:  versionToProto(snap.Version),
		Warnings: redirectv1.ProblemsToProto(warnings),
	}, nil
}

// DeleteRule removes one rule.
func (s *RuleService) DeleteRule(ctx context.Context, req *redirectv1.DeleteRuleRequest) (*redirectv1.DeleteRuleResponse, error) {
	id := req.GetId()
	if id == "" {
		return nil, status.Error(codes.InvalidArgument, "id: required")
	}
	pre, err := precondition(req)
	if err != nil {
		return nil, err
	}
	snap, _, err := s.source.Update(ctx, pre, Edit{Deletes: []string{id}})
	if err != nil {
		return nil, s.status(err)
	}
	return &redirectv1.DeleteRuleResponse{Version: versionToProto(snap.Version)}, nil
}

// ApplyRules replaces the whole rule set atomically.
func (s *RuleService) ApplyRules(ctx context.Context, req *redirectv1.ApplyRulesRequest) (*redirectv1.ApplyRulesResponse, error) {
	rules, err := redirectv1.RulesFromProto(req.GetRules())
	if err != nil {
		return nil, s.status(err)
	}
	pre, err := precondition(req)
	if err != nil {
		return nil, err
	}
	snap, warnings, err := s.source.Update(ctx, pre, Edit{Puts: rules, Whole: true})
	if err != nil {
		return nil, s.status(err)
	}
	return &redirectv1.ApplyRulesResponse{Version: versionToProto(snap.Version), Warnings: redirectv1.ProblemsToProto(warnings)}, nil
}

// ValidateRules lints rules, or a rules file, exactly as a load or an
// apply would, and never applies them.
func (s *RuleService) ValidateRules(_ context.Context, req *redirectv1.ValidateRulesRequest) (*redirectv1.ValidateRulesResponse, error) {
	// A store of its own, loaded as the daemon loads a file: its problems
	// name the file and line (README "lint"), and nothing is applied.
	scratch := decision.NewStore(s.store.Engine.Store().Options())
	var c *decision.Change
	var err error
	if len(req.GetFile()) > 0 {
		name := req.GetFileName()
		if name == "" {
			name = "rules.yaml"
		}
		c, err = scratch.ReplaceFile(name, req.GetFile())
	} else {
		var rules []decision.Rule
		if rules, err = redirectv1.RulesFromProto(req.GetRules()); err == nil {
			c, err = scratch.Replace(rules)
		}
	}
	if err == nil {
		c.Abort()
		return &redirectv1.ValidateRulesResponse{Valid: true, Problems: redirectv1.ProblemsToProto(c.Warnings())}, nil
	}
	var rerr *decision.RulesError
	if !errors.As(err, &rerr) {
		return nil, s.status(err)
	}
	return &redirectv1.ValidateRulesResponse{Valid: false, Problems: redirectv1.ProblemsToProto(rerr.All())}, nil
}

// GetRuleStats returns hit counts and last hit times in id order.
func (s *RuleService) GetRuleStats(_ context.Context, req *redirectv1.GetRuleStatsRequest) (*redirectv1.GetRuleStatsResponse, error) {
	snap, err := s.current()
	if err != nil {
		return nil, err
	}
	if s.store.Hits == nil {
		return nil, status.Error(codes.FailedPrecondition, "hit statistics are not collected by this server")
	}
	hits, err := s.store.Hits.Get(req.GetIds())
	if err != nil {
		return nil, s.status(err)
	}
	resp := &redirectv1.GetRuleStatsResponse{Version: versionToProto(snap.Version), Stats: make([]*redirectv1.RuleStats, len(hits))}
	for i, h := range hits {
		st := &redirectv1.RuleStats{RuleId: h.RuleID, Hits: h.Hits}
		if !h.LastHit.IsZero() {
			st.LastHit = timestamppb.New(h.LastHit)
		}
		resp.Stats[i] = st
	}
	return resp, nil
}

// preconditioned is a request that changes rules: PutRule, DeleteRule
// and ApplyRules.
type preconditioned interface {
	GetExpectedVersion() uint64
	GetExpectedHash() string
}

// precondition reads expected_version and expected_hash. A hash is a
// Version.hash: 64 hex digits; anything else could never match, and a
// caller that retried on ABORTED would retry for ever.
func precondition(req preconditioned) (Precondition, error) {
	pre := Precondition{Version: req.GetExpectedVersion(), Hash: req.GetExpectedHash()}
	if pre.Hash != "" {
		if b, err := hex.DecodeString(pre.Hash); err != nil || len(b) != sha256.Size {
			return pre, status.Errorf(codes.InvalidArgument, "expected_hash: %q is not a version hash (64 hex digits, as Version.hash is)", pre.Hash)
		}
	}
	return pre, nil
}

func notFound(id string) error {
	return fmt.Errorf("rule %q: %w", id, ErrRuleNotFound)
}

// status maps a rule-set error to its gRPC status: the one place where the
// admin API decides codes. Problems go into the message, one per line, so
// a person sees file:line and field; unexpected errors are logged and
// answered without their internal text.
func (s *RuleService) status(err error) error {
	var rerr *decision.RulesError
	switch {
	case errors.As(err, &rerr):
		return status.Error(codes.InvalidArgument, "rule set rejected:\n"+rerr.Error())
	case errors.Is(err, ErrRuleNotFound):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, ErrVersionMismatch):
		return status.Error(codes.Aborted, err.Error()+"; read the rules again and retry")
	case errors.Is(err, ErrNotPersistable):
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, ErrNotReady), errors.Is(err, ErrStoreUnavailable):
		return status.Error(codes.Unavailable, err.Error())
	}
	s.log.Error("admin request failed", "error", err)
	return status.Error(codes.Internal, "internal error; the server log has the details")
}

// maxAdminMessage bounds an admin request or answer: ApplyRules with a
// million rules is about 150 MB, far over gRPC's 4 MB default.
const maxAdminMessage = 512 << 20

// adminListenerOptions is the admin listener's message size limit and its
// TLS/mTLS and bearer-token options.
func adminListenerOptions(cfg Config, log *slog.Logger) ([]grpc.ServerOption, error) {
	opts := []grpc.ServerOption{grpc.MaxRecvMsgSize(maxAdminMessage)}
	files := TLSFiles{Cert: cfg.AdminTLSCert, Key: cfg.AdminTLSKey, ClientCA: cfg.AdminClientCA}
	if files.Enabled() {
		tc, err := files.ServerConfig()
		if err != nil {
			return nil, fmt.Errorf("admin listener TLS (--admin-tls-cert, --admin-tls-key, --admin-client-ca): %w", err)
		}
		opts = append(opts, grpc.Creds(credentials.NewTLS(tc)))
	}
	token, err := cfg.adminToken()
	if err != nil {
		return nil, err
	}
	if token != "" {
		opts = append(opts, requireBearerToken(token, log)...)
	}
	return opts, nil
}

// adminToken is the bearer token of the admin listener and the console:
// --admin-token, or read from --admin-token-file; "" when there is none.
func (c Config) adminToken() (string, error) {
	if c.AdminTokenFile == "" {
		return c.AdminToken, nil
	}
	t, err := ReadTokenFile(c.AdminTokenFile)
	if err != nil {
		return "", fmt.Errorf("--admin-token-file: %w", err)
	}
	return t, nil
}
