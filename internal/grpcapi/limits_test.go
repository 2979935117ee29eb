package grpcapi

import (
	"bytes"
	"context"
	"net"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/mem"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/visionserve/visionserve/internal/imageio"
	"github.com/visionserve/visionserve/internal/ocr"
	"github.com/visionserve/visionserve/internal/oip"
	pb "github.com/visionserve/visionserve/proto/inference"
	v1 "github.com/visionserve/visionserve/proto/visionserve/v1"
)

// parseCounter is the proto codec under boundedCodec, counting the
// messages it parses by type: a message it never sees was never parsed.
type parseCounter struct {
	encoding.CodecV2
	mu     sync.Mutex
	parsed map[protoreflect.FullName]int
}

func (p *parseCounter) Unmarshal(data mem.BufferSlice, v any) error {
	p.mu.Lock()
	p.parsed[v.(proto.Message).ProtoReflect().Descriptor().FullName()]++
	p.mu.Unlock()
	return p.CodecV2.Unmarshal(data, v)
}

func (p *parseCounter) count(m proto.Message) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.parsed[m.ProtoReflect().Descriptor().FullName()]
}

// countParses puts a parseCounter under s's codec; call it before Serve.
func countParses(s *Server) *parseCounter {
	p := &parseCounter{CodecV2: s.codec.CodecV2, parsed: map[protoreflect.FullName]int{}}
	s.codec.CodecV2 = p
	return p
}

// serveTCP serves s on 127.0.0.1:0 and returns the address.
func serveTCP(t testing.TB, s *Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(ln)
	t.Cleanup(func() { s.Stop(context.Background()) })
	return ln.Addr().String()
}

func dialTCP(t testing.TB, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(256<<20)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// A message over its method's bound, though under the server's receive
// limit, is refused before it is parsed, with ResourceExhausted naming
// the bound and its setting; the same methods parse a message within
// their bounds. Health and reflection (a stream) work through the codec.
func TestMessageOverItsMethodBoundIsNotParsed(t *testing.T) {
	ocfg := ocr.DefaultConfig()
	ocfg.Limits = imageio.Limits{MaxBytes: 1000}
	s := New(Config{
		OCR:             ocr.NewService(ocfg, nil, nil, nil, nil),
		OIP:             oip.NewService(oip.Config{}, nil, nil),
		MaxMessageBytes: 4 * Envelope,
		OIPMessageBytes: 1000 + Envelope,
	})
	s.SetServing(true)
	parses := countParses(s)
	conn := dialTCP(t, serveTCP(t, s))
	ocrc, infer := v1.NewOCRClient(conn), pb.NewGRPCInferenceServiceClient(conn)
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		msg     proto.Message
		call    func() error
		code    codes.Code
		inText  string
		parsed  int
		refused bool
	}{
		{"image within its bound", &v1.RecognizeRequest{},
			func() error {
				_, err := ocrc.Recognize(ctx, &v1.RecognizeRequest{Image: make([]byte, 1001)})
				return err
			},
			codes.ResourceExhausted, "the limit is 1000", 1, false}, // parsed, then the image's own bound
		{"image message over its bound", &v1.RecognizeRequest{},
			func() error {
				_, err := ocrc.Recognize(ctx, &v1.RecognizeRequest{Image: make([]byte, 1000+Envelope)})
				return err
			},
			codes.ResourceExhausted, "limits.max_bytes", 1, true},
		{"inference within its bound", &pb.ModelInferRequest{},
			func() error {
				_, err := infer.ModelInfer(ctx, &pb.ModelInferRequest{ModelName: "m", RawInputContents: [][]byte{make([]byte, 1000)}})
				return err
			},
			codes.InvalidArgument, "no inputs", 1, false},
		{"inference over its bound", &pb.ModelInferRequest{},
			func() error {
				_, err := infer.ModelInfer(ctx, &pb.ModelInferRequest{ModelName: "m", RawInputContents: [][]byte{make([]byte, 1000+Envelope)}})
				return err
			},
			codes.ResourceExhausted, "limits.max_bytes", 1, true},
		{"metadata over 64 KiB", &pb.ModelMetadataRequest{},
			func() error {
				_, err := infer.ModelMetadata(ctx, &pb.ModelMetadataRequest{Name: strings.Repeat("m", Envelope+1)})
				return err
			},
			codes.ResourceExhausted, "64 KiB", 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := status.Convert(tc.call())
			if st.Code() != tc.code || !strings.Contains(st.Message(), tc.inText) {
				t.Errorf("%v %q; want %v containing %q", st.Code(), st.Message(), tc.code, tc.inText)
			}
			if tc.refused && !strings.Contains(st.Message(), string(tc.msg.ProtoReflect().Descriptor().FullName())) {
				t.Errorf("%q does not name the message", st.Message())
			}
			if n := parses.count(tc.msg); n != tc.parsed {
				t.Errorf("%d %T parsed so far, want %d", n, tc.msg, tc.parsed)
			}
		})
	}

	if _, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
		t.Errorf("health: %v", err)
	}
	// A stream's messages are bounded too, and the stream works within it.
	refl, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	list := &reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}
	if err := refl.Send(list); err != nil {
		t.Fatal(err)
	}
	if resp, err := refl.Recv(); err != nil || len(resp.GetListServicesResponse().GetService()) == 0 {
		t.Fatalf("reflection: %v %v", resp, err)
	}
	huge := &reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_FileContainingSymbol{
		FileContainingSymbol: string(bytes.Repeat([]byte("x"), Envelope+1))}}
	if err := refl.Send(huge); err != nil {
		t.Fatal(err)
	}
	if _, err := refl.Recv(); status.Code(err) != codes.ResourceExhausted {
		t.Errorf("a reflection request over 64 KiB: %v, want ResourceExhausted", err)
	}
	if n := parses.count(huge); n != 1 {
		t.Errorf("%d reflection requests parsed, want the one within its bound", n)
	}
}
