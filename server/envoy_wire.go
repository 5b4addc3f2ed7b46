package server

import (
	"context"
	"errors"
	"fmt"
	"unicode/utf8"
	"unsafe"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Envoy sends a CheckRequest for every request it routes, and decoding all
// of it (peers, time, every header into a map, each string copied) was an
// eighth of the daemon's CPU under closed-loop Check at 1M rules, more
// than the lookup. checkInput holds only what Check reads, and
// decodeCheckRequest fills it straight from the wire: one copy of the
// message, whose strings the fields share, instead of a tree of messages.

// checkInput is the part of an Envoy CheckRequest that Check reads.
type checkInput struct {
	// attributes.request.http
	id, method, host, path, scheme, protocol string
	headers                                  map[string]string
	headerMap                                []headerField // header_map, sent instead of headers with encode_raw_headers
	// attributes.context_extensions["intent"]
	intent string
}

// headerField is one entry of header_map (config.core.v3.HeaderValue).
type headerField struct {
	key, value string
	raw        []byte
}

// checkInputOf reads the same fields from a decoded CheckRequest, for
// callers of AuthorizationService.Check that hold one (tests, and programs
// embedding the service).
func checkInputOf(in *authv3.CheckRequest) *checkInput {
	attrs := in.GetAttributes()
	hr := attrs.GetRequest().GetHttp()
	c := &checkInput{
		id: hr.GetId(), method: hr.GetMethod(), host: hr.GetHost(), path: hr.GetPath(),
		scheme: hr.GetScheme(), protocol: hr.GetProtocol(), headers: hr.GetHeaders(),
		intent: attrs.GetContextExtensions()["intent"],
	}
	for _, h := range hr.GetHeaderMap().GetHeaders() {
		c.headerMap = append(c.headerMap, headerField{key: h.GetKey(), value: h.GetValue(), raw: h.GetRawValue()})
	}
	return c
}

// Field numbers, from envoy/service/auth/v3 and envoy/config/core/v3.
const (
	checkRequestAttributes     = 1  // CheckRequest.attributes
	attributesRequest          = 4  // AttributeContext.request
	attributesContextExtension = 10 // AttributeContext.context_extensions
	requestHTTP                = 2  // AttributeContext.Request.http
	httpID                     = 1  // AttributeContext.HttpRequest.id ...
	httpMethod                 = 2
	httpHeaders                = 3
	httpPath                   = 4
	httpHost                   = 5
	httpScheme                 = 6
	httpProtocol               = 10
	httpHeaderMap              = 13
	headerMapHeaders           = 1 // HeaderMap.headers
	headerValueKey             = 1 // HeaderValue.key, .value, .raw_value
	headerValueValue           = 2
	headerValueRaw             = 3
	mapEntryKey                = 1 // every map<string, string> entry
	mapEntryValue              = 2
)

// decodeCheckRequest reads a CheckRequest in wire form into c. It follows
// proto.Unmarshal wherever that succeeds: the last of a repeated scalar
// wins, the parts of a message sent more than once merge, map entries
// missing a key or a value read as "", the last of a repeated map key
// wins, fields with an unexpected wire type are skipped as unknown, and
// every string it keeps must be valid UTF-8 (proto3). It is more lenient
// in one way: the fields it skips are not checked.
//
// b must not change afterwards: c's strings share its bytes.
func decodeCheckRequest(b []byte, c *checkInput) error {
	return eachField(b, func(num protowire.Number, v []byte) error {
		if num != checkRequestAttributes {
			return nil
		}
		return eachField(v, func(num protowire.Number, v []byte) error {
			switch num {
			case attributesRequest:
				return eachField(v, func(num protowire.Number, v []byte) error {
					if num != requestHTTP {
						return nil
					}
					return decodeHTTPRequest(v, c)
				})
			case attributesContextExtension:
				k, val, err := mapEntry(v)
				if err == nil && k == "intent" {
					c.intent = val
				}
				return err
			}
			return nil
		})
	})
}

func decodeHTTPRequest(b []byte, c *checkInput) error {
	return eachField(b, func(num protowire.Number, v []byte) error {
		var dst *string
		switch num {
		case httpID:
			dst = &c.id
		case httpMethod:
			dst = &c.method
		case httpPath:
			dst = &c.path
		case httpHost:
			dst = &c.host
		case httpScheme:
			dst = &c.scheme
		case httpProtocol:
			dst = &c.protocol
		case httpHeaders:
			k, val, err := mapEntry(v)
			if err != nil {
				return err
			}
			if c.headers == nil {
				c.headers = make(map[string]string, 16)
			}
			c.headers[k] = val
			return nil
		case httpHeaderMap:
			return eachField(v, func(num protowire.Number, v []byte) error {
				if num != headerMapHeaders {
					return nil
				}
				var h headerField
				err := eachField(v, func(num protowire.Number, v []byte) (err error) {
					switch num {
					case headerValueKey:
						h.key, err = utf8String(v)
					case headerValueValue:
						h.value, err = utf8String(v)
					case headerValueRaw:
						h.raw = v
					}
					return err
				})
				c.headerMap = append(c.headerMap, h)
				return err
			})
		default:
			return nil
		}
		s, err := utf8String(v)
		*dst = s
		return err
	})
}

// mapEntry reads one map<string, string> entry.
func mapEntry(b []byte) (key, value string, err error) {
	err = eachField(b, func(num protowire.Number, v []byte) (err error) {
		switch num {
		case mapEntryKey:
			key, err = utf8String(v)
		case mapEntryValue:
			value, err = utf8String(v)
		}
		return err
	})
	return key, value, err
}

// eachField calls f with every length-delimited field of the message b, in
// order, and skips the others (every field Check reads is a string, bytes,
// a message or a map entry, all length-delimited).
func eachField(b []byte, f func(num protowire.Number, v []byte) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		if typ == protowire.BytesType {
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return protowire.ParseError(n)
			}
			if err := f(num, v); err != nil {
				return err
			}
			b = b[n:]
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
	}
	return nil
}

var errInvalidUTF8 = errors.New("string field is not valid UTF-8")

// utf8String is b as a string sharing its bytes.
func utf8String(b []byte) (string, error) {
	if !utf8.Valid(b) {
		return "", errInvalidUTF8
	}
	return unsafe.String(unsafe.SliceData(b), len(b)), nil
}

// wireDecoder is a request message that decodes itself from its wire
// form, where serverCodec finds one.
type wireDecoder interface {
	decodeWire(b []byte) error
}

func (c *checkInput) decodeWire(b []byte) error { return decodeCheckRequest(b, c) }

// serverCodec is gRPC's proto codec, except for requests that decode
// themselves: they get one private copy of their bytes (gRPC reuses its
// buffers after Unmarshal returns), which their strings then share. It
// also reports, through a decodeTarget, that a request's bytes did not
// decode (see grpcServer).
type serverCodec struct{ encoding.CodecV2 }

func newServerCodec() serverCodec { return serverCodec{encoding.GetCodecV2(proto.Name)} }

func (c serverCodec) Unmarshal(data mem.BufferSlice, v any) error {
	if t, ok := v.(*decodeTarget); ok {
		// Not returned: gRPC would answer INTERNAL at once.
		t.size = int64(data.Len())
		t.err = c.unmarshal(data, t.msg)
		return nil
	}
	return c.unmarshal(data, v)
}

func (c serverCodec) unmarshal(data mem.BufferSlice, v any) error {
	if d, ok := v.(wireDecoder); ok {
		return d.decodeWire(data.Materialize())
	}
	return c.CodecV2.Unmarshal(data, v)
}

// decodeTarget is what a grpcServer's handlers receive a request into:
// serverCodec decodes into msg and keeps the decoding error here instead
// of returning it, because gRPC answers a codec's error with INTERNAL
// itself, before the handler can choose the code.
type decodeTarget struct {
	msg  any
	size int64 // of the message on the wire
	err  error
}

// recvRequest receives one request into m with recv (a unary handler's
// decoder or a stream's RecvMsg) and returns its size on the wire. Bytes
// that do not decode as m (broken wire format, a string field that is not
// UTF-8) are the caller's mistake: INVALID_ARGUMENT, not INTERNAL, which
// README reserves for server faults (README, "The gRPC API").
func recvRequest(recv func(any) error, m any) (size int64, err error) {
	t := &decodeTarget{msg: m}
	err = recv(t)
	if t.err != nil {
		return t.size, status.Errorf(codes.InvalidArgument, "request is not a valid %s message: %v", messageName(m), t.err)
	}
	return t.size, err
}

// messageName is the protobuf full name of the request type m.
func messageName(m any) string {
	switch m := m.(type) {
	case protoreflect.ProtoMessage:
		return string(m.ProtoReflect().Descriptor().FullName())
	case *checkInput:
		return string((&authv3.CheckRequest{}).ProtoReflect().Descriptor().FullName())
	}
	return fmt.Sprintf("%T", m)
}

// registerAuthorization registers svc as Envoy's ext_authz service
// (envoy.service.auth.v3.Authorization) on s, reading each CheckRequest
// with decodeCheckRequest. s must have been made with serverOptions,
// whose codec does that decoding. Reflection still describes the service
// with Envoy's own descriptors.
func registerAuthorization(s grpc.ServiceRegistrar, svc *AuthorizationService) {
	s.RegisterService(&authorizationDesc, svc)
}

var authorizationDesc = grpc.ServiceDesc{
	ServiceName: authv3.Authorization_ServiceDesc.ServiceName,
	HandlerType: (*authv3.AuthorizationServer)(nil),
	Methods:     []grpc.MethodDesc{{MethodName: "Check", Handler: checkHandler}},
	Metadata:    authv3.Authorization_ServiceDesc.Metadata,
}

// checkHandler is Envoy's generated _Authorization_Check_Handler, with a
// checkInput where that has a CheckRequest.
func checkHandler(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
	in := new(checkInput)
	if err := dec(in); err != nil {
		return nil, err
	}
	s := srv.(*AuthorizationService)
	if interceptor == nil {
		return s.check(ctx, in)
	}
	info := &grpc.UnaryServerInfo{Server: srv, FullMethod: authv3.Authorization_Check_FullMethodName}
	return interceptor(ctx, in, info, func(ctx context.Context, req any) (any, error) {
		return s.check(ctx, req.(*checkInput))
	})
}
