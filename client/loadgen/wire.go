package loadgen

import (
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
)

// The generator encodes each request once, before the run, and reads one
// field of each answer without decoding the rest. It usually shares a
// machine with the server it measures, and every CPU-µs it spends is one
// the server does not get. Encoding an Envoy-shaped CheckRequest for every
// call and decoding the CheckResponse cost the generator 65 CPU-µs per call
// against 39 for a health check; the server's own share of a Check was
// 47 µs. So the generator's Envoy proto work, not the server, set most of
// the gap between Check and the health floor.
//
// The calls still go out as the protobuf bytes a real client sends, with
// the content type "application/grpc+proto".

// encoded is a request message in its wire form.
type encoded []byte

// answer is the one varint the generator reads from a response: the field
// at path (field numbers, outer message first). It stays 0 when the field
// is absent, as a proto3 scalar at its default is.
type answer struct {
	path  []protowire.Number
	value uint64
}

// wireCodec sends encoded requests as they are and reads answers.
type wireCodec struct{}

// wire is the call option that makes a call use wireCodec.
var wire = grpc.ForceCodecV2(wireCodec{})

func (wireCodec) Name() string { return "proto" }

func (wireCodec) Marshal(v any) (mem.BufferSlice, error) {
	m, ok := v.(encoded)
	if !ok {
		return nil, fmt.Errorf("loadgen: cannot send %T", v)
	}
	// A SliceBuffer is never returned to a pool, so the same bytes go out
	// on every call that sends this request, from any caller.
	return mem.BufferSlice{mem.SliceBuffer(m)}, nil
}

func (wireCodec) Unmarshal(data mem.BufferSlice, v any) error {
	a, ok := v.(*answer)
	if !ok {
		return fmt.Errorf("loadgen: cannot decode into %T", v)
	}
	if len(a.path) == 0 { // a call whose answer is not read
		return nil
	}
	var b []byte
	if len(data) == 1 {
		b = data[0].ReadOnlyData()
	} else {
		b = data.Materialize()
	}
	value, _, err := varintAt(b, a.path)
	if err != nil {
		return fmt.Errorf("loadgen: malformed response: %w", err)
	}
	a.value = value
	return nil
}

// varintAt reads the varint field at path in the encoded message b, with
// protobuf's merge rules: the last occurrence of a scalar wins, and a
// nested message may come in several parts, whose fields merge. found is
// false when no part holds the field.
func varintAt(b []byte, path []protowire.Number) (value uint64, found bool, err error) {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return 0, false, protowire.ParseError(n)
		}
		b = b[n:]
		if num == path[0] {
			switch {
			case len(path) == 1 && typ == protowire.VarintType:
				v, n := protowire.ConsumeVarint(b)
				if n < 0 {
					return 0, false, protowire.ParseError(n)
				}
				value, found = v, true
			case len(path) > 1 && typ == protowire.BytesType:
				m, n := protowire.ConsumeBytes(b)
				if n < 0 {
					return 0, false, protowire.ParseError(n)
				}
				v, ok, err := varintAt(m, path[1:])
				if err != nil {
					return 0, false, err
				}
				if ok {
					value, found = v, true
				}
			}
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return 0, false, protowire.ParseError(n)
		}
		b = b[n:]
	}
	return value, found, nil
}
