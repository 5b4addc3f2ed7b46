package server

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// rawCodec sends a call's request as the given bytes, so a test can put
// on the wire what no generated client would.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return *v.(*[]byte), nil }
func (rawCodec) Unmarshal(data []byte, v any) error {
	*v.(*[]byte) = append([]byte(nil), data...)
	return nil
}
func (rawCodec) Name() string { return "proto" }

// TestUndecodableRequests: request bytes that do not decode, or carry a
// string field that is not UTF-8 (proto3 requires it), are the caller's
// mistake: INVALID_ARGUMENT naming the message, on every kind of handler
// (generated unary, Envoy's wire-decoded Check, server streaming, the
// admin listener), never INTERNAL.
func TestUndecodableRequests(t *testing.T) {
	r := start(t, testConfig())
	public, admin := dial(t, r.GRPCAddr()), dial(t, r.AdminAddr())

	// Decide: field 1 (method) and 4 (path) are strings.
	badUTF8 := []byte("\x0a\x03GET\x22\x03/\xff\xfe")
	truncated := []byte("\x0a\x10GET") // declares 16 bytes, carries 3
	badTag := []byte("\x00\x01")       // field number 0
	// Check: attributes(1) → request(4) → http(2) → path(4) "/\xff".
	checkBadUTF8 := []byte("\x0a\x08\x22\x06\x12\x04\x22\x02/\xff")
	tests := []struct {
		conn    *grpc.ClientConn
		method  string
		stream  bool
		request []byte
		message string
	}{
		{public, "/redirect.v1.DecisionService/Decide", false, badUTF8, "redirect.v1.DecideRequest"},
		{public, "/redirect.v1.DecisionService/Decide", false, truncated, "redirect.v1.DecideRequest"},
		{public, "/redirect.v1.DecisionService/Decide", false, badTag, "redirect.v1.DecideRequest"},
		{public, "/redirect.v1.DecisionService/DecideBatch", false, []byte("\x0a\x05\x0a\x03G\xffT"), "redirect.v1.DecideBatchRequest"},
		{public, "/envoy.service.auth.v3.Authorization/Check", false, checkBadUTF8, "envoy.service.auth.v3.CheckRequest"},
		{public, "/envoy.service.auth.v3.Authorization/Check", false, truncated, "envoy.service.auth.v3.CheckRequest"},
		{public, "/grpc.health.v1.Health/Check", false, []byte("\x0a\x01\xff"), "grpc.health.v1.HealthCheckRequest"},
		{public, "/grpc.health.v1.Health/Watch", true, []byte("\x0a\x01\xff"), "grpc.health.v1.HealthCheckRequest"},
		{admin, "/redirect.v1.RuleService/GetRule", false, truncated, "redirect.v1.GetRuleRequest"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s %q", tt.method, tt.request), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			var err error
			if tt.stream {
				var s grpc.ClientStream
				s, err = tt.conn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true}, tt.method, grpc.ForceCodec(rawCodec{}))
				if err == nil {
					if err = s.SendMsg(&tt.request); err == nil {
						s.CloseSend()
						var resp []byte
						err = s.RecvMsg(&resp)
					}
				}
			} else {
				var resp []byte
				err = tt.conn.Invoke(ctx, tt.method, &tt.request, &resp, grpc.ForceCodec(rawCodec{}))
			}
			st := status.Convert(err)
			if st.Code() != codes.InvalidArgument || !strings.Contains(st.Message(), tt.message) {
				t.Fatalf("answer %v: %q; want InvalidArgument naming %s", st.Code(), st.Message(), tt.message)
			}
		})
	}
}
