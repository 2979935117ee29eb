package grpcapi

import (
	"context"
	"fmt"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	encproto "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	pb "github.com/visionserve/visionserve/proto/inference"
	v1 "github.com/visionserve/visionserve/proto/visionserve/v1"
)

// Envelope is what a message may hold beside its images or tensors:
// names, options, a content type. It is also the whole bound of the
// messages that carry neither (metadata, galleries, health, reflection).
const Envelope = 64 << 10

// bound is the largest message of one request type, and what a client
// reads in a refusal to know which setting it met.
type bound struct {
	bytes int
	what  string // "limits.max_bytes plus 64 KiB"
}

// boundedCodec is the server's codec: the proto codec, with each received
// message held to its method's bound before it is parsed. gRPC applies
// only its one receive limit (Config.MaxMessageBytes, the largest
// method's) before a message reaches the codec; the request type names
// the method, so the codec applies the method's own bound, and a message
// over it is never parsed into memory of its own.
//
// gRPC reports every codec error as Internal, so a refusal is not an
// error here: the message stays empty and its status waits in refused
// for the interceptor that runs next (refuseOversized,
// refuseOversizedStream), which ends the call with it.
type boundedCodec struct {
	encoding.CodecV2 // the proto codec: Marshal, Name and the parsing
	bounds           map[protoreflect.FullName]bound
	other            bound // every other message type
	refused          sync.Map
}

// newBoundedCodec holds the requests that carry images to their images'
// bounds (ocrBytes, faceBytes: the core's limits.max_bytes, 0 without the
// core), ModelInfer to oipBytes (0: no bound beyond the receive limit)
// and every other message to Envelope.
func newBoundedCodec(ocrBytes, faceBytes int64, oipBytes int) *boundedCodec {
	small := bound{Envelope, "64 KiB for messages without images or tensors"}
	images := func(n int64, count int) bound {
		if n <= 0 {
			return small // the core is off: its methods answer without reading images
		}
		what := "limits.max_bytes plus 64 KiB"
		if count > 1 {
			what = fmt.Sprintf("%d x limits.max_bytes plus 64 KiB", count)
		}
		return bound{count*int(n) + Envelope, what}
	}
	name := func(m proto.Message) protoreflect.FullName { return m.ProtoReflect().Descriptor().FullName() }
	return &boundedCodec{
		CodecV2: encoding.GetCodecV2(encproto.Name),
		other:   small,
		bounds: map[protoreflect.FullName]bound{
			name(&v1.RecognizeRequest{}): images(ocrBytes, 1),
			name(&v1.DetectRequest{}):    images(faceBytes, 1),
			name(&v1.EnrollRequest{}):    images(faceBytes, 1),
			name(&v1.IdentifyRequest{}):  images(faceBytes, 1),
			name(&v1.VerifyRequest{}):    images(faceBytes, 2),
			// 0: no bound but the receive limit.
			name(&pb.ModelInferRequest{}): {oipBytes, "limits.max_bytes plus 64 KiB"},
		},
	}
}

// Unmarshal parses data into v unless it is over v's bound.
func (c *boundedCodec) Unmarshal(data mem.BufferSlice, v any) error {
	m, ok := v.(proto.Message)
	if !ok {
		return c.CodecV2.Unmarshal(data, v)
	}
	name := m.ProtoReflect().Descriptor().FullName()
	b, ok := c.bounds[name]
	if !ok {
		b = c.other
	}
	if n := data.Len(); b.bytes > 0 && n > b.bytes {
		c.refused.Store(v, status.Newf(codes.ResourceExhausted,
			"the %s message is %d bytes; the limit is %d (%s)", name, n, b.bytes, b.what))
		return nil
	}
	return c.CodecV2.Unmarshal(data, v)
}

// take returns, once, the refusal of message v.
func (c *boundedCodec) take(v any) error {
	if st, ok := c.refused.LoadAndDelete(v); ok {
		return st.(*status.Status).Err()
	}
	return nil
}

// refuseOversized ends a unary call whose message the codec refused. It
// is the first interceptor after observe: gRPC runs the interceptors on
// every message the codec returned, so no refusal is left behind.
func (s *Server) refuseOversized(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if err := s.codec.take(req); err != nil {
		return nil, err
	}
	return handler(ctx, req)
}

// refuseOversizedStream does the same for each message of a stream.
func (s *Server) refuseOversizedStream(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	return handler(srv, boundedStream{ss, s.codec})
}

type boundedStream struct {
	grpc.ServerStream
	codec *boundedCodec
}

func (b boundedStream) RecvMsg(m any) error {
	if err := b.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	return b.codec.take(m)
}
