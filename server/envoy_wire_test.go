package server

import (
	"fmt"
	"maps"
	"slices"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// flatInput is a checkInput in a form == can compare: header_map's raw
// values as strings (proto decodes an empty bytes field as empty or nil).
type flatInput struct {
	id, method, host, path, scheme, protocol, intent string
	headers                                          string
	headerMap                                        string
}

func flatten(c *checkInput) flatInput {
	f := flatInput{id: c.id, method: c.method, host: c.host, path: c.path, scheme: c.scheme, protocol: c.protocol, intent: c.intent}
	for _, k := range slices.Sorted(maps.Keys(c.headers)) {
		f.headers += fmt.Sprintf("%q=%q;", k, c.headers[k])
	}
	for _, h := range c.headerMap {
		f.headerMap += fmt.Sprintf("%q=%q/%q;", h.key, h.value, h.raw)
	}
	return f
}

// sameAsProto checks that decodeCheckRequest reads b as proto.Unmarshal
// does, wherever proto.Unmarshal succeeds.
func sameAsProto(t *testing.T, b []byte) {
	t.Helper()
	var want authv3.CheckRequest
	protoErr := proto.Unmarshal(b, &want)
	var got checkInput
	err := decodeCheckRequest(slices.Clone(b), &got)
	if protoErr != nil {
		return // only leniency is allowed here, and no panic
	}
	if err != nil {
		t.Fatalf("proto.Unmarshal reads % x, decodeCheckRequest fails: %v", b, err)
	}
	if g, w := flatten(&got), flatten(checkInputOf(&want)); g != w {
		t.Fatalf("decoded\n%+v\nproto.Unmarshal reads\n%+v", g, w)
	}
}

func marshal(t testing.TB, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// checkRequestSamples are Envoy-shaped requests in wire form: what the
// filter sends by default, with raw headers, with route context, and
// empty.
func checkRequestSamples(t testing.TB) [][]byte {
	raw := envoyCheck("GET", "example.com", "/raw")
	raw.Attributes.Request.Http.Headers = nil
	raw.Attributes.Request.Http.HeaderMap = &corev3.HeaderMap{Headers: []*corev3.HeaderValue{
		{Key: ":authority", RawValue: []byte("example.com")},
		{Key: "Accept", Value: "text/html"},
		{Key: "accept", RawValue: []byte("*/*")},
		{Key: "x-empty"},
	}}
	return [][]byte{
		marshal(t, envoyCheck("GET", "example.com:8443", "/docs/intro?lang=en&lang=de")),
		marshal(t, envoyCheck("POST", "shop.example.net", "/old", withIntent("see_other"), withProtocol("HTTP/2"))),
		marshal(t, envoyCheck("GET", "example.com", "/x", func(in *authv3.CheckRequest) {
			in.Attributes.ContextExtensions = map[string]string{"virtual_host": "main", "intent": "permanent", "": "empty key"}
		})),
		marshal(t, raw),
		marshal(t, &authv3.CheckRequest{}),
		marshal(t, &authv3.CheckRequest{Attributes: &authv3.AttributeContext{}}),
	}
}

// TestDecodeCheckRequestMatchesProto: the fields Check reads come out of
// the wire as proto.Unmarshal reads them, for what Envoy sends and for
// the wire format's corners: a message sent in parts, a repeated scalar,
// repeated and half-empty map entries, a known field with another wire
// type, and bytes after the end.
func TestDecodeCheckRequestMatchesProto(t *testing.T) {
	for i, b := range checkRequestSamples(t) {
		t.Run(fmt.Sprint("sample ", i), func(t *testing.T) { sameAsProto(t, b) })
	}
	str := func(b []byte, num protowire.Number, s string) []byte {
		return protowire.AppendString(protowire.AppendTag(b, num, protowire.BytesType), s)
	}
	msg := func(b []byte, num protowire.Number, m []byte) []byte {
		return protowire.AppendBytes(protowire.AppendTag(b, num, protowire.BytesType), m)
	}
	http := func(m []byte) []byte { // CheckRequest{attributes{request{http: m}}}
		return msg(nil, checkRequestAttributes, msg(nil, attributesRequest, msg(nil, requestHTTP, m)))
	}
	entry := func(k, v string) []byte { return str(str(nil, mapEntryKey, k), mapEntryValue, v) }
	varint := protowire.AppendVarint(protowire.AppendTag(nil, httpHost, protowire.VarintType), 7)
	cases := map[string][]byte{
		"message in two parts": append(http(str(nil, httpHost, "a.example")), http(str(nil, httpPath, "/p"))...),
		"repeated scalar":      http(str(str(nil, httpHost, "first.example"), httpHost, "last.example")),
		"repeated map key":     http(msg(msg(nil, httpHeaders, entry("x-request-id", "1")), httpHeaders, entry("x-request-id", "2"))),
		"entry without value":  http(msg(nil, httpHeaders, str(nil, mapEntryKey, "accept"))),
		"entry without key":    http(msg(nil, httpHeaders, str(nil, mapEntryValue, "v"))),
		"host as a varint":     http(append(varint, str(nil, httpPath, "/v")...)),
		"intent in two parts": msg(msg(nil, checkRequestAttributes, msg(nil, attributesContextExtension, entry("intent", "temporary"))),
			checkRequestAttributes, msg(nil, attributesContextExtension, str(nil, mapEntryKey, "intent"))),
	}
	for name, b := range cases {
		t.Run(name, func(t *testing.T) { sameAsProto(t, b) })
	}
}

// TestDecodeCheckRequestRejects: malformed wire data and invalid UTF-8 in
// a field Check reads fail the decode, as they fail proto.Unmarshal (and
// gRPC then answers INTERNAL, as for any undecodable request).
func TestDecodeCheckRequestRejects(t *testing.T) {
	good := marshal(t, envoyCheck("GET", "example.com", "/docs"))
	badHost := marshal(t, envoyCheck("GET", "example.com", "/docs"))
	i := slices.Index(badHost, 'x') // the first byte of "example.com"
	badHost[i] = 0xff
	for name, b := range map[string][]byte{
		"truncated":           good[:len(good)-3],
		"length past the end": append(protowire.AppendTag(nil, checkRequestAttributes, protowire.BytesType), 0x7f),
		"invalid UTF-8":       badHost,
	} {
		if proto.Unmarshal(b, new(authv3.CheckRequest)) == nil {
			t.Fatalf("%s: proto.Unmarshal accepts it; the case is wrong", name)
		}
		if err := decodeCheckRequest(b, new(checkInput)); err == nil {
			t.Errorf("%s: decoded without an error", name)
		}
	}
}

// FuzzDecodeCheckRequest: on any bytes proto.Unmarshal accepts, the wire
// decoder reads the same fields; on any others it may fail, never panic.
//
//	go test -run '^$' -fuzz FuzzDecodeCheckRequest -fuzztime 60s ./server/
func FuzzDecodeCheckRequest(f *testing.F) {
	for _, b := range checkRequestSamples(f) {
		f.Add(b)
	}
	f.Fuzz(sameAsProto)
}

// BenchmarkDecodeCheckRequest: the wire decoder against proto.Unmarshal on
// the CheckRequest Envoy sends by default (about 400 bytes, eight headers).
func BenchmarkDecodeCheckRequest(b *testing.B) {
	in := marshal(b, envoyCheck("GET", "example.com:8443", "/docs/intro?lang=en&lang=de"))
	b.Run("proto", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var m authv3.CheckRequest
			if err := proto.Unmarshal(in, &m); err != nil {
				b.Fatal(err)
			}
			_ = checkInputOf(&m)
		}
	})
	b.Run("wire", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var c checkInput
			if err := decodeCheckRequest(slices.Clone(in), &c); err != nil { // the copy serverCodec makes
				b.Fatal(err)
			}
		}
	})
}
