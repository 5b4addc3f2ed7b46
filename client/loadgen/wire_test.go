package loadgen

import (
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	redirectv1 "github.com/redirectd/redirectd/proto/redirect/v1"
)

// TestAnswerReadsWhatProtoDecodes: the one field the generator reads of
// each answer is the value proto.Unmarshal finds, whether the field is set,
// at its default, or comes after other fields; and a truncated answer is an
// error, not a quiet zero.
func TestAnswerReadsWhatProtoDecodes(t *testing.T) {
	denied := &authv3.CheckResponse{
		Status: &rpcstatus.Status{Code: int32(codes.PermissionDenied), Message: "redirect"},
		HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
			Status:  &typev3.HttpStatus{Code: typev3.StatusCode_MovedPermanently},
			Headers: []*corev3.HeaderValueOption{{Header: &corev3.HeaderValue{Key: "location", Value: "https://example.com/new"}}},
		}},
	}
	cases := []struct {
		name string
		msg  proto.Message
		path []protowire.Number
		want func(proto.Message) uint64
	}{
		{"check denied", denied, checkStatusCode, checkCode},
		{"check ok", &authv3.CheckResponse{Status: &rpcstatus.Status{}}, checkStatusCode, checkCode},
		{"check without status", &authv3.CheckResponse{}, checkStatusCode, checkCode},
		{"decide redirect", &redirectv1.DecideResponse{Redirect: true, StatusCode: 308, Location: "/x"}, decideRedirect, decideValue},
		{"decide pass", &redirectv1.DecideResponse{RuleId: "none"}, decideRedirect, decideValue},
	}
	for _, c := range cases {
		b, err := proto.Marshal(c.msg)
		if err != nil {
			t.Fatal(err)
		}
		a := &answer{path: c.path}
		if err := (wireCodec{}).Unmarshal(mem.BufferSlice{mem.SliceBuffer(b)}, a); err != nil {
			t.Errorf("%s: %v", c.name, err)
		} else if want := c.want(c.msg); a.value != want {
			t.Errorf("%s: read %d, proto decodes %d", c.name, a.value, want)
		}
		if len(b) > 1 {
			if err := (wireCodec{}).Unmarshal(mem.BufferSlice{mem.SliceBuffer(b[:len(b)-1])}, &answer{path: c.path}); err == nil {
				t.Errorf("%s: a truncated answer read without an error", c.name)
			}
		}
	}
}

// TestAnswerMergesMessageParts: a nested message sent in two parts merges,
// as proto.Unmarshal merges it: a later part without the field keeps the
// earlier value, and a later value wins.
func TestAnswerMergesMessageParts(t *testing.T) {
	part := func(m proto.Message) []byte {
		b, err := proto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for _, parts := range [][]*authv3.CheckResponse{
		{{Status: &rpcstatus.Status{Code: 7}}, {Status: &rpcstatus.Status{Message: "later part, no code"}}},
		{{Status: &rpcstatus.Status{Code: 7}}, {Status: &rpcstatus.Status{Code: 3}}},
	} {
		var b []byte
		for _, p := range parts {
			b = append(b, part(p)...)
		}
		var merged authv3.CheckResponse
		if err := proto.Unmarshal(b, &merged); err != nil {
			t.Fatal(err)
		}
		v, found, err := varintAt(b, checkStatusCode)
		if err != nil || !found || v != uint64(merged.GetStatus().GetCode()) {
			t.Errorf("read %d (found %v, %v), proto decodes %d", v, found, err, merged.GetStatus().GetCode())
		}
	}
}

func checkCode(m proto.Message) uint64 {
	return uint64(m.(*authv3.CheckResponse).GetStatus().GetCode())
}

func decideValue(m proto.Message) uint64 {
	if m.(*redirectv1.DecideResponse).GetRedirect() {
		return 1
	}
	return 0
}
