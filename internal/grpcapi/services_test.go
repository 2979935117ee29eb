package grpcapi

import (
	"bytes"
	"context"
	"net"
	"slices"
	"strings"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/descriptorpb"

	"github.com/visionserve/visionserve/internal/imageio"
	"github.com/visionserve/visionserve/internal/ocr"
	"github.com/visionserve/visionserve/internal/oip"
	"github.com/visionserve/visionserve/internal/sched"
	pb "github.com/visionserve/visionserve/proto/inference"
	v1 "github.com/visionserve/visionserve/proto/visionserve/v1"
)

// dial serves s on an in-memory listener and connects to it.
func dial(t *testing.T, s *Server) *grpc.ClientConn {
	t.Helper()
	ln := bufconn.Listen(1 << 20)
	go s.Serve(ln)
	t.Cleanup(func() { s.Stop(context.Background()) })
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return ln.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(64<<20)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// The requests a transport refuses before the core runs: options outside
// their values, a declared type that is not an image, images and messages
// over their bounds, face calls without face recognition. No engine is
// loaded: the core's model source is never reached.
func TestRefusedBeforeTheCore(t *testing.T) {
	cfg := ocr.DefaultConfig()
	cfg.Limits = imageio.Limits{MaxBytes: 1000}
	s := New(Config{
		OCR:             ocr.NewService(cfg, nil, nil, nil, nil),
		MaxMessageBytes: 2*1000 + 64<<10,
		OIPMessageBytes: 1000 + 64<<10,
	})
	s.SetServing(true)
	conn := dial(t, s)
	ocrc, faces, infer := v1.NewOCRClient(conn), v1.NewFacesClient(conn), pb.NewGRPCInferenceServiceClient(conn)
	ctx := context.Background()
	png := []byte("\x89PNG\r\n\x1a\n")
	for _, tc := range []struct {
		name   string
		call   func() error
		code   codes.Code
		inText string
	}{
		{"bad mode", func() error {
			_, err := ocrc.Recognize(ctx, &v1.RecognizeRequest{Image: png, Mode: "para"})
			return err
		},
			codes.InvalidArgument, `mode="para"`},
		{"bad rotate", func() error {
			_, err := ocrc.Recognize(ctx, &v1.RecognizeRequest{Image: png, Rotate: "on"})
			return err
		},
			codes.InvalidArgument, `rotate="on"`},
		{"bad dewarp", func() error {
			_, err := ocrc.Recognize(ctx, &v1.RecognizeRequest{Image: png, Dewarp: "sideways"})
			return err
		},
			codes.InvalidArgument, `dewarp="sideways"`},
		{"bad format", func() error {
			_, err := ocrc.Recognize(ctx, &v1.RecognizeRequest{Image: png, Format: "xml"})
			return err
		},
			codes.InvalidArgument, `format="xml"`},
		{"not an image type", func() error {
			_, err := ocrc.Recognize(ctx, &v1.RecognizeRequest{Image: png, ContentType: "application/pdf"})
			return err
		}, codes.InvalidArgument, "application/pdf"},
		{"image over max_bytes", func() error {
			_, err := ocrc.Recognize(ctx, &v1.RecognizeRequest{Image: bytes.Repeat([]byte{1}, 1001)})
			return err
		}, codes.ResourceExhausted, "the limit is 1000"},
		{"message over the receive limit", func() error {
			_, err := ocrc.Recognize(ctx, &v1.RecognizeRequest{Image: make([]byte, 3000+64<<10)})
			return err
		}, codes.ResourceExhausted, ""},
		{"inference message over its bound", func() error {
			_, err := infer.ModelInfer(ctx, &pb.ModelInferRequest{ModelName: "m", RawInputContents: [][]byte{make([]byte, 1500+64<<10)}})
			return err
		}, codes.ResourceExhausted, "the limit is"},
		{"faces off", func() error { _, err := faces.Detect(ctx, &v1.DetectRequest{Image: png}); return err },
			codes.Unimplemented, "face recognition is not enabled"},
		{"galleries off", func() error { _, err := faces.CreateGallery(ctx, &v1.CreateGalleryRequest{Gallery: "g"}); return err },
			codes.Unimplemented, "face recognition is not enabled"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := status.Convert(tc.call())
			if st.Code() != tc.code || !strings.Contains(st.Message(), tc.inText) || strings.Contains(st.Message(), "\n") {
				t.Errorf("%v %q; want %v containing %q", st.Code(), st.Message(), tc.code, tc.inText)
			}
		})
	}
	health := healthpb.NewHealthClient(conn)
	for svc, want := range map[string]healthpb.HealthCheckResponse_ServingStatus{
		v1.OCR_ServiceDesc.ServiceName:   healthpb.HealthCheckResponse_SERVING,
		v1.Faces_ServiceDesc.ServiceName: healthpb.HealthCheckResponse_NOT_SERVING, // no face recognition
	} {
		if h, err := health.Check(ctx, &healthpb.HealthCheckRequest{Service: svc}); err != nil || h.GetStatus() != want {
			t.Errorf("health of %s: %v %v, want %v", svc, h, err, want)
		}
	}
}

// A call refused by admission control carries the scheduler's estimate,
// as RetryInfo and as a retry-after trailer.
func TestAdmissionRetryAdvice(t *testing.T) {
	sch := sched.New(1, 1, nil)
	sch.Drain()
	conn := dial(t, New(Config{OCR: ocr.NewService(ocr.DefaultConfig(), nil, nil, nil, nil), Scheduler: sch}))
	var trailer metadata.MD
	_, err := v1.NewOCRClient(conn).Recognize(context.Background(), &v1.RecognizeRequest{}, grpc.Trailer(&trailer))
	st := status.Convert(err)
	if st.Code() != codes.Unavailable {
		t.Fatalf("a draining server: %v", err)
	}
	var info *errdetails.RetryInfo
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			info = ri
		}
	}
	if info == nil || info.GetRetryDelay().AsDuration() != sch.RetryAfter() {
		t.Errorf("RetryInfo %v, want %v", info, sch.RetryAfter())
	}
	if got := trailer.Get("retry-after"); len(got) != 1 || got[0] == "" || got[0] == "0" {
		t.Errorf("retry-after trailer %q", got)
	}
}

// Reflection describes the OCR and Faces services with everything their
// messages import, so grpcurl can call them with no .proto at hand.
func TestReflectionDescribesTheServices(t *testing.T) {
	conn := dial(t, New(Config{}))
	stream, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer stream.CloseSend()
	ask := func(req *reflectionpb.ServerReflectionRequest) *reflectionpb.ServerReflectionResponse {
		t.Helper()
		if err := stream.Send(req); err != nil {
			t.Fatal(err)
		}
		resp, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	var names []string
	for _, s := range ask(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}).GetListServicesResponse().GetService() {
		names = append(names, s.GetName())
	}
	for _, want := range []string{"visionserve.v1.OCR", "visionserve.v1.Faces", "inference.GRPCInferenceService", "grpc.health.v1.Health"} {
		if !slices.Contains(names, want) {
			t.Errorf("reflection lists %v, not %s", names, want)
		}
	}
	// The server sends each file once per stream: the second service's
	// answer leaves out what the first already sent.
	var got []string
	for _, symbol := range []string{"visionserve.v1.OCR", "visionserve.v1.Faces"} {
		files := ask(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_FileContainingSymbol{FileContainingSymbol: symbol}}).
			GetFileDescriptorResponse().GetFileDescriptorProto()
		for _, b := range files {
			var fd descriptorpb.FileDescriptorProto
			if err := proto.Unmarshal(b, &fd); err != nil {
				t.Fatal(err)
			}
			got = append(got, fd.GetName())
		}
	}
	slices.Sort(got)
	if want := []string{"visionserve/v1/faces.proto", "visionserve/v1/geometry.proto", "visionserve/v1/ocr.proto"}; !slices.Equal(got, want) {
		t.Errorf("reflection sent %v, want %v", got, want)
	}
}

// recordSource is an OCR model source that records what a request asked
// for and serves nothing.
type recordSource struct{ sel ocr.Selector }

func (r *recordSource) Acquire(sel ocr.Selector) (*ocr.Model, func(), error) {
	r.sel = sel
	return nil, nil, ocr.ErrModelNotFound
}

// Recognize routes as /v1/ocr does: the version field wins over the
// x-model-version metadata (the query parameter over the header), the
// routing_key field over the sticky header's metadata, and neither counts
// when sticky routing is off.
func TestRecognizeRouting(t *testing.T) {
	for _, tc := range []struct {
		name   string
		sticky string
		req    *v1.RecognizeRequest
		md     []string
		want   ocr.Selector
	}{
		{"fields", "X-Routing-Key", &v1.RecognizeRequest{Model: "m", Version: "2", Lang: "eng", RoutingKey: "k"}, nil,
			ocr.Selector{Name: "m", Version: "2", Lang: "eng", Key: "k"}},
		{"metadata", "X-Routing-Key", &v1.RecognizeRequest{}, []string{"x-model-version", "3", "x-routing-key", "tenant-a"},
			ocr.Selector{Version: "3", Key: "tenant-a"}},
		{"fields win", "X-Routing-Key", &v1.RecognizeRequest{Version: "2", RoutingKey: "k"}, []string{"x-model-version", "3", "x-routing-key", "tenant-a"},
			ocr.Selector{Version: "2", Key: "k"}},
		{"another sticky header", "X-Tenant", &v1.RecognizeRequest{}, []string{"x-routing-key", "no", "x-tenant", "acme"},
			ocr.Selector{Key: "acme"}},
		{"sticky routing off", "", &v1.RecognizeRequest{RoutingKey: "k"}, []string{"x-routing-key", "tenant-a"},
			ocr.Selector{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := &recordSource{}
			conn := dial(t, New(Config{OCR: ocr.NewService(ocr.DefaultConfig(), src, nil, nil, nil), StickyHeader: tc.sticky}))
			ctx := context.Background()
			if tc.md != nil {
				ctx = metadata.NewOutgoingContext(ctx, metadata.Pairs(tc.md...))
			}
			tc.req.Image = []byte("x")
			if _, err := v1.NewOCRClient(conn).Recognize(ctx, tc.req); status.Code(err) != codes.NotFound {
				t.Fatalf("Recognize: %v", err)
			}
			if src.sel != tc.want {
				t.Errorf("selector %+v, want %+v", src.sel, tc.want)
			}
		})
	}
}

// ModelReady on a model or version that is not served answers ready:
// false, as Triton does and as the REST route's 404 means to the
// protocol's clients.
func TestModelReadyOfAnUnknownModel(t *testing.T) {
	models, err := oip.NewStaticModels()
	if err != nil {
		t.Fatal(err)
	}
	conn := dial(t, New(Config{OIP: oip.NewService(oip.Config{}, models, nil)}))
	client := pb.NewGRPCInferenceServiceClient(conn)
	for _, req := range []*pb.ModelReadyRequest{{Name: "nope"}, {Name: "nope", Version: "3"}} {
		r, err := client.ModelReady(context.Background(), req)
		if err != nil || r.GetReady() {
			t.Errorf("ModelReady(%v) = %v, %v; want ready: false", req, r, err)
		}
	}
}
