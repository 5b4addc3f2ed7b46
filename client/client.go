// Package client is the Go client of redirectd: typed calls to the
// DecisionService, a convenience Redirect for absolute URLs, an http.Handler
// middleware that lets a Go web application answer redirects itself. Local
// runs the same calls against a DecisionService in this process.
package client

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/url"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	redirectv1 "github.com/redirectd/redirectd/proto/redirect/v1"
)

// MaxBatch is the number of requests one DecideBatch call carries at most
// (the API's limit); DecideBatch splits longer lists into several calls.
const MaxBatch = redirectv1.MaxBatch

// Client calls a redirectd DecisionService over one gRPC connection. It is
// safe for concurrent use; create one per target and share it.
type Client struct {
	conn    *grpc.ClientConn
	rpc     redirectv1.DecisionServiceClient
	timeout time.Duration
}

// Option configures New.
type Option func(*settings)

type settings struct {
	creds    credentials.TransportCredentials
	timeout  time.Duration
	dialOpts []grpc.DialOption
}

// WithInsecure makes the connection plaintext, without TLS. Use it for a
// redirectd on loopback or in development only: anyone on the path can read
// and change the answers, and so send your users anywhere.
func WithInsecure() Option {
	return func(s *settings) { s.creds = insecure.NewCredentials() }
}

// WithTLS makes the connection use TLS with cfg (set Certificates for mTLS,
// RootCAs for a private CA). Without WithInsecure or WithTLS, New uses TLS
// with the system's roots.
func WithTLS(cfg *tls.Config) Option {
	return func(s *settings) { s.creds = credentials.NewTLS(cfg) }
}

// WithTimeout sets the deadline of a call whose context has none. Zero (the
// default) leaves calls without a deadline of their own.
func WithTimeout(d time.Duration) Option {
	return func(s *settings) { s.timeout = d }
}

// WithDialOptions passes further options to grpc.NewClient (interceptors,
// keepalive, a custom dialer, ...). They are applied after the transport
// security chosen by WithInsecure or WithTLS.
func WithDialOptions(opts ...grpc.DialOption) Option {
	return func(s *settings) { s.dialOpts = append(s.dialOpts, opts...) }
}

// New returns a Client for target, a gRPC target such as "localhost:50051"
// or "dns:///redirectd.internal:50051". It does not connect yet: the first
// call does, so New fails only on bad options.
func New(target string, opts ...Option) (*Client, error) {
	s := settings{creds: credentials.NewTLS(&tls.Config{MinVersion: tls.VersionTLS12})}
	for _, o := range opts {
		o(&s)
	}
	if s.timeout < 0 {
		return nil, fmt.Errorf("client: timeout %v is negative", s.timeout)
	}
	dialOpts := append([]grpc.DialOption{grpc.WithTransportCredentials(s.creds)}, s.dialOpts...)
	conn, err := grpc.NewClient(target, dialOpts...)
	if err != nil {
		return nil, fmt.Errorf("client: target %q: %w", target, err)
	}
	return &Client{conn: conn, rpc: redirectv1.NewDecisionServiceClient(conn), timeout: s.timeout}, nil
}

// Local returns a Client that calls svc in this process instead of over a
// connection. Given redirectv1.NewDecisionService over a *decision.Index
// built from a rules file, it answers exactly as a daemon serving that file
// would (the daemon serves the same translation over the same library),
// with no daemon: redirectctl --rules, tests of a rule set.
func Local(svc redirectv1.DecisionServiceServer) *Client {
	return &Client{rpc: localService{svc}}
}

// localService presents a DecisionServiceServer as a DecisionServiceClient.
type localService struct {
	svc redirectv1.DecisionServiceServer
}

func (l localService) Decide(ctx context.Context, in *redirectv1.DecideRequest, _ ...grpc.CallOption) (*redirectv1.DecideResponse, error) {
	return l.svc.Decide(ctx, in)
}

func (l localService) DecideBatch(ctx context.Context, in *redirectv1.DecideBatchRequest, _ ...grpc.CallOption) (*redirectv1.DecideBatchResponse, error) {
	return l.svc.DecideBatch(ctx, in)
}

// Close closes the connection; calls in flight fail.
func (c *Client) Close() error {
	if c.conn == nil { // Local: nothing to close
		return nil
	}
	return c.conn.Close()
}

// withDeadline applies the default timeout to a context without a deadline.
func (c *Client) withDeadline(ctx context.Context) (context.Context, context.CancelFunc) {
	if c.timeout > 0 {
		if _, ok := ctx.Deadline(); !ok {
			return context.WithTimeout(ctx, c.timeout)
		}
	}
	return ctx, func() {}
}

// Decide asks for the decision on one request. Bad input comes back as a
// gRPC status error with code InvalidArgument naming the field.
func (c *Client) Decide(ctx context.Context, req *redirectv1.DecideRequest) (*redirectv1.DecideResponse, error) {
	ctx, cancel := c.withDeadline(ctx)
	defer cancel()
	return c.rpc.Decide(ctx, req)
}

// DecideBatch decides many requests and returns one result per request, in
// order; an invalid request gets a result carrying its error, not a failed
// call. Lists longer than MaxBatch are sent as several calls, each with the
// default timeout.
func (c *Client) DecideBatch(ctx context.Context, reqs []*redirectv1.DecideRequest) ([]*redirectv1.DecideResult, error) {
	results := make([]*redirectv1.DecideResult, 0, len(reqs))
	for start := 0; start < len(reqs); start += MaxBatch {
		part := reqs[start:min(start+MaxBatch, len(reqs))]
		resp, err := c.decideBatch(ctx, part)
		if err != nil {
			return nil, err
		}
		if len(resp.GetResults()) != len(part) {
			return nil, fmt.Errorf("client: DecideBatch answered %d results for %d requests", len(resp.GetResults()), len(part))
		}
		results = append(results, resp.GetResults()...)
	}
	return results, nil
}

func (c *Client) decideBatch(ctx context.Context, reqs []*redirectv1.DecideRequest) (*redirectv1.DecideBatchResponse, error) {
	ctx, cancel := c.withDeadline(ctx)
	defer cancel()
	return c.rpc.DecideBatch(ctx, &redirectv1.DecideBatchRequest{Requests: reqs})
}

// Redirect asks for the decision on method and an absolute URL such as
// "https://example.com/docs/x?y=1": the URL gives scheme, host and path with
// query (a fragment is dropped, as a browser never sends it).
func (c *Client) Redirect(ctx context.Context, method, rawURL string) (*redirectv1.DecideResponse, error) {
	req, err := RequestFromURL(method, rawURL)
	if err != nil {
		return nil, err
	}
	return c.Decide(ctx, req)
}

// RequestFromURL builds a DecideRequest from method and an absolute URL, as
// Redirect does. A URL that is a bare path ("/docs?x=1") gives a request
// without scheme or host, which only any-host rules can match.
func RequestFromURL(method, rawURL string) (*redirectv1.DecideRequest, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("url %q: %w", rawURL, err)
	}
	absolute := u.Scheme != "" && u.Host != "" && u.Opaque == ""
	bare := u.Scheme == "" && u.Host == "" && strings.HasPrefix(rawURL, "/") && !strings.HasPrefix(rawURL, "//")
	if !absolute && !bare {
		return nil, fmt.Errorf("url %q: want an absolute URL like https://example.com/path, or a path starting with /", rawURL)
	}
	// RequestURI keeps the path as written (percent-encoding included) and
	// gives "/" for "https://example.com", as a browser sends it.
	return &redirectv1.DecideRequest{
		Method: method,
		Scheme: u.Scheme,
		Host:   u.Host,
		Path:   u.RequestURI(),
	}, nil
}
