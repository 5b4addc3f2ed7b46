package client_test

import (
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/redirectd/redirectd/client"
	redirectv1 "github.com/redirectd/redirectd/proto/redirect/v1"
)

// fakeDecisions is a DecisionService that answers what a test tells it to
// and records what it was asked, so tests can check what the client and
// the middleware send. Tests against the real engine are in example_test.go.
type fakeDecisions struct {
	redirectv1.UnimplementedDecisionServiceServer
	answer func(*redirectv1.DecideRequest) (*redirectv1.DecideResponse, error)

	mu      sync.Mutex
	asked   []*redirectv1.DecideRequest
	batches int
}

func (f *fakeDecisions) Decide(ctx context.Context, req *redirectv1.DecideRequest) (*redirectv1.DecideResponse, error) {
	f.mu.Lock()
	f.asked = append(f.asked, req)
	f.mu.Unlock()
	return f.answer(req)
}

func (f *fakeDecisions) DecideBatch(ctx context.Context, in *redirectv1.DecideBatchRequest) (*redirectv1.DecideBatchResponse, error) {
	f.mu.Lock()
	f.batches++
	f.mu.Unlock()
	out := &redirectv1.DecideBatchResponse{}
	for _, req := range in.GetRequests() {
		resp, err := f.answer(req)
		if err != nil {
			out.Results = append(out.Results, &redirectv1.DecideResult{Outcome: &redirectv1.DecideResult_Error{Error: err.Error()}})
			continue
		}
		out.Results = append(out.Results, &redirectv1.DecideResult{Outcome: &redirectv1.DecideResult_Response{Response: resp}})
	}
	return out, nil
}

func (f *fakeDecisions) last(t *testing.T) *redirectv1.DecideRequest {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.asked) == 0 {
		t.Fatal("redirectd was not asked")
	}
	return f.asked[len(f.asked)-1]
}

// startFake serves f on a loopback port and returns a plaintext Client.
func startFake(t *testing.T, f *fakeDecisions, opts ...client.Option) *client.Client {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	redirectv1.RegisterDecisionServiceServer(s, f)
	go s.Serve(lis)
	t.Cleanup(s.Stop)
	c, err := client.New(lis.Addr().String(), append([]client.Option{client.WithInsecure()}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// moved answers every request with a 301 to https://new.example/ + path.
func moved(req *redirectv1.DecideRequest) (*redirectv1.DecideResponse, error) {
	if req.GetPath() == "" {
		return nil, status.Error(codes.InvalidArgument, "path: required")
	}
	loc := "https://new.example" + req.GetPath()
	return &redirectv1.DecideResponse{
		Redirect: true, StatusCode: 301, Location: loc, FollowUpMethod: "GET", RuleId: "moved",
		Cache: &redirectv1.CacheAdvice{Cacheable: true, CacheControl: "public, max-age=86400"},
		Headers: []*redirectv1.Header{
			{Name: "Location", Value: loc},
			{Name: "Cache-Control", Value: "public, max-age=86400"},
		},
	}, nil
}

func TestRequestFromURL(t *testing.T) {
	tests := []struct {
		url     string
		want    *redirectv1.DecideRequest
		wantErr string
	}{
		{url: "https://example.com/docs/x?y=1&z=%26", want: &redirectv1.DecideRequest{Method: "GET", Scheme: "https", Host: "example.com", Path: "/docs/x?y=1&z=%26"}},
		{url: "http://example.com:8080", want: &redirectv1.DecideRequest{Method: "GET", Scheme: "http", Host: "example.com:8080", Path: "/"}},
		{url: "https://example.com/a%2Fb#frag", want: &redirectv1.DecideRequest{Method: "GET", Scheme: "https", Host: "example.com", Path: "/a%2Fb"}},
		{url: "https://example.com/p?", want: &redirectv1.DecideRequest{Method: "GET", Scheme: "https", Host: "example.com", Path: "/p?"}},
		{url: "/old?x=1", want: &redirectv1.DecideRequest{Method: "GET", Path: "/old?x=1"}},
		{url: "example.com/docs", wantErr: "want an absolute URL"},
		{url: "//example.com/docs", wantErr: "want an absolute URL"},
		{url: "mailto:a@example.com", wantErr: "want an absolute URL"},
		{url: "", wantErr: "want an absolute URL"},
		{url: "https://exa mple.com/", wantErr: "invalid character"},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			got, err := client.RequestFromURL("GET", tt.url)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got, protocmp.Transform()); diff != "" {
				t.Errorf("request (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRedirectSendsSplitURL(t *testing.T) {
	f := &fakeDecisions{answer: moved}
	c := startFake(t, f)
	resp, err := c.Redirect(context.Background(), "POST", "https://example.com/old?a=1")
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetStatusCode() != 301 || resp.GetLocation() != "https://new.example/old?a=1" {
		t.Errorf("answer = %d %s, want 301 https://new.example/old?a=1", resp.GetStatusCode(), resp.GetLocation())
	}
	want := &redirectv1.DecideRequest{Method: "POST", Scheme: "https", Host: "example.com", Path: "/old?a=1"}
	if diff := cmp.Diff(want, f.last(t), protocmp.Transform()); diff != "" {
		t.Errorf("sent (-want +got):\n%s", diff)
	}
}

func TestDecideBatchSplitsAtServerLimit(t *testing.T) {
	f := &fakeDecisions{answer: moved}
	c := startFake(t, f)
	reqs := make([]*redirectv1.DecideRequest, client.MaxBatch+2)
	for i := range reqs {
		reqs[i] = &redirectv1.DecideRequest{Method: "GET", Path: "/p" + strings.Repeat("x", i%3)}
	}
	reqs[client.MaxBatch+1].Path = "" // invalid: its slot carries the error
	results, err := c.DecideBatch(context.Background(), reqs)
	if err != nil {
		t.Fatal(err)
	}
	if len(results) != len(reqs) {
		t.Fatalf("%d results for %d requests", len(results), len(reqs))
	}
	if f.batches != 2 {
		t.Errorf("%d DecideBatch calls, want 2 for %d requests", f.batches, len(reqs))
	}
	for _, i := range []int{0, 1, 2, client.MaxBatch} {
		if want := "https://new.example" + reqs[i].GetPath(); results[i].GetResponse().GetLocation() != want {
			t.Errorf("results[%d] location = %q, want %q (order kept)", i, results[i].GetResponse().GetLocation(), want)
		}
	}
	if e := results[client.MaxBatch+1].GetError(); !strings.Contains(e, "path: required") {
		t.Errorf("last result error = %q, want the request's error", e)
	}
}

func TestTimeoutAppliesWithoutCallerDeadline(t *testing.T) {
	slow := func(req *redirectv1.DecideRequest) (*redirectv1.DecideResponse, error) {
		time.Sleep(500 * time.Millisecond)
		return &redirectv1.DecideResponse{}, nil
	}
	c := startFake(t, &fakeDecisions{answer: slow}, client.WithTimeout(50*time.Millisecond))
	// Without the default deadline the call would succeed after 500ms.
	_, err := c.Decide(context.Background(), &redirectv1.DecideRequest{Method: "GET", Path: "/"})
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("error = %v, want DeadlineExceeded", err)
	}
}

func TestNewRejectsNegativeTimeout(t *testing.T) {
	if _, err := client.New("localhost:50051", client.WithInsecure(), client.WithTimeout(-time.Second)); err == nil || !strings.Contains(err.Error(), "negative") {
		t.Fatalf("error = %v, want one about the negative timeout", err)
	}
}
