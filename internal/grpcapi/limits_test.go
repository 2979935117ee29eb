package grpcapi

import (
	"bytes"
	"context"
	"encoding/binary"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/tap"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/visionserve/visionserve/internal/auth"
	"github.com/visionserve/visionserve/internal/grpcapi/grpctest"
	"github.com/visionserve/visionserve/internal/imageio"
	"github.com/visionserve/visionserve/internal/metrics"
	"github.com/visionserve/visionserve/internal/ocr"
	"github.com/visionserve/visionserve/internal/oip"
	"github.com/visionserve/visionserve/internal/ratelimit"
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

// rawFrame is msg in a gRPC length-prefixed frame, not compressed.
func rawFrame(msg []byte) []byte {
	frame := make([]byte, 5, 5+len(msg))
	binary.BigEndian.PutUint32(frame[1:], uint32(len(msg)))
	return append(frame, msg...)
}

// limited is a server whose one API key (tenant-less, scope infer) may
// make one call in about a thousand seconds: every later call is over
// its rate for the whole test.
type limited struct {
	srv   *Server
	key   string
	rates *ratelimit.Metrics
}

// limitOptions choose where the rate limit is taken; the benchmark's
// baseline takes it in an interceptor, after the message is read.
type limitOptions struct{ inInterceptor bool }

func newLimited(t testing.TB, o limitOptions) *limited {
	t.Helper()
	key, hash, err := auth.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	a, err := auth.New(auth.Config{APIKeys: []auth.APIKey{{Name: "app", Hash: hash, Scopes: []string{string(auth.ScopeInfer)}}}}, auth.Options{})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	rl := ratelimit.Config{Default: ratelimit.Limit{Rate: 0.001, Burst: 1}}
	rates := ratelimit.NewMetrics(reg, rl)
	l := ratelimit.New(rl, ratelimit.Options{Metrics: rates})
	keyFor := func(ctx context.Context) (ratelimit.Key, bool) {
		p := auth.PrincipalFrom(ctx)
		if p == nil {
			return ratelimit.Key{}, false
		}
		return ratelimit.Key{Principal: p.ID, Tenant: p.Tenant}, true
	}
	ocfg := ocr.DefaultConfig()
	ocfg.Limits = imageio.Limits{MaxBytes: 64 << 20}
	cfg := Config{
		OCR:             ocr.NewService(ocfg, nil, nil, nil, nil),
		MaxMessageBytes: 2*64<<20 + Envelope,
		Metrics:         metrics.NewServing(reg),
		Taps:            []tap.ServerInHandle{a.TapHandle(MethodScopes())},
	}
	if o.inInterceptor {
		// Where the limit was taken before: after gRPC read, inflated and
		// parsed the message.
		cfg.Unary = append(cfg.Unary, func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			k, _ := keyFor(ctx)
			release, err := l.Acquire(k)
			if err != nil {
				return nil, err
			}
			defer release()
			return h(ctx, req)
		})
	} else {
		cfg.Taps = append(cfg.Taps, l.TapHandle(keyFor))
		cfg.Unary = append(cfg.Unary, l.UnaryServerInterceptor())
	}
	s := New(cfg)
	s.SetServing(true)
	return &limited{srv: s, key: key, rates: rates}
}

// A rate-limited caller is refused when its call's headers arrive: its
// message is never received or parsed, the refusal is ResourceExhausted
// with the delay as a RetryInfo detail (what HTTP's Retry-After says),
// and it is counted as a refused call and as a rate-limited request.
// Against a real listener, so that what gRPC does with a status from a
// tap handle is what is tested.
func TestRateLimitedBeforeReading(t *testing.T) {
	lim := newLimited(t, limitOptions{})
	parses := countParses(lim.srv)
	addr := serveTCP(t, lim.srv)
	ocrc := v1.NewOCRClient(dialTCP(t, addr))
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+lim.key)

	// The one call the rate allows: read and parsed (and refused for its option).
	if _, err := ocrc.Recognize(ctx, &v1.RecognizeRequest{Mode: "para"}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("the first call: %v, want InvalidArgument (mode)", err)
	}
	if n := parses.count(&v1.RecognizeRequest{}); n != 1 {
		t.Fatalf("%d messages parsed, want the admitted one", n)
	}

	_, err := ocrc.Recognize(ctx, &v1.RecognizeRequest{Image: make([]byte, 8<<20)})
	st := status.Convert(err)
	if st.Code() != codes.ResourceExhausted || !strings.Contains(st.Message(), "rate limit") {
		t.Fatalf("a call over the rate: %v, want ResourceExhausted (rate limit)", err)
	}
	var retry *errdetails.RetryInfo
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			retry = ri
		}
	}
	if retry == nil || retry.GetRetryDelay().AsDuration() < 900*time.Second {
		t.Errorf("RetryInfo %v, want the rate's delay (about 1000s)", retry)
	}

	// Gzip bombs: 16 MiB messages compressed to about 16 KB. Read, each
	// would be inflated to 16 MiB and parsed into another 16 MiB.
	msg, _ := proto.Marshal(&v1.RecognizeRequest{Image: make([]byte, 16<<20)})
	bomb := grpctest.GzipFrame(msg)
	msg = nil
	client := grpctest.NewClient()
	defer client.Close()
	const bombs = 5
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for i := range bombs {
		code, text, err := client.Call(context.Background(), addr, v1.OCR_Recognize_FullMethodName, bomb, "authorization", "Bearer "+lim.key)
		if err != nil || code != codes.ResourceExhausted {
			t.Fatalf("bomb %d: %v %q %v, want ResourceExhausted", i, code, text, err)
		}
	}
	runtime.ReadMemStats(&after)
	t.Logf("%d rate-limited calls allocated %d KiB", bombs, (after.TotalAlloc-before.TotalAlloc)>>10)
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 16<<20 {
		t.Errorf("%d rate-limited calls allocated %d MiB in the process; they should cost next to nothing", bombs, alloc>>20)
	}
	if n := parses.count(&v1.RecognizeRequest{}); n != 1 {
		t.Errorf("%d messages parsed, want only the admitted one", n)
	}
	if got := testutil.ToFloat64(lim.srv.cfg.Metrics.GRPCRefused.WithLabelValues("rate_limited")); got != 1+bombs {
		t.Errorf("visionserve_grpc_refused_calls_total{reason=rate_limited} = %v, want %d", got, 1+bombs)
	}
	if got := testutil.ToFloat64(lim.rates.Requests.WithLabelValues(ratelimit.OtherTenant, ratelimit.ReasonRate)); got != 1+bombs {
		t.Errorf("visionserve_tenant_requests_total{result=rate_limited} = %v, want %d", got, 1+bombs)
	}
	// Public methods stay open to a caller over its rate.
	if _, err := healthpb.NewHealthClient(dialTCP(t, addr)).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
		t.Errorf("health check over the rate: %v", err)
	}
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
	// Every refusal was taken by its call: none is left behind.
	s.codec.refused.Range(func(k, _ any) bool {
		t.Errorf("a refusal of a %T left in the codec", k)
		return true
	})
}

// BenchmarkRefusedCall measures what a refused call of an 8 MiB message
// costs the process (B/op; the raw client sends a prepared frame and
// allocates little): a rate-limited caller's, with the limit taken in an
// interceptor (as before) and in the tap; and a message over its
// method's bound (4 MiB images) but under the receive limit, refused
// after parsing (the codec's per-method bounds off, as before) and by the
// codec.
func BenchmarkRefusedCall(b *testing.B) {
	msg, err := proto.Marshal(&v1.RecognizeRequest{Image: make([]byte, 8<<20)})
	if err != nil {
		b.Fatal(err)
	}
	frame := rawFrame(msg)
	run := func(b *testing.B, addr string, want codes.Code, md ...string) {
		client := grpctest.NewClient()
		defer client.Close()
		b.SetBytes(int64(len(frame)))
		b.ReportAllocs()
		b.ResetTimer()
		for b.Loop() {
			code, text, err := client.Call(context.Background(), addr, v1.OCR_Recognize_FullMethodName, frame, md...)
			if err != nil || code != want {
				b.Fatalf("%v %q %v, want %v", code, text, err, want)
			}
		}
	}
	for _, tc := range []struct {
		name string
		opts limitOptions
	}{{"rate-limited/interceptor", limitOptions{inInterceptor: true}}, {"rate-limited/tap", limitOptions{}}} {
		b.Run(tc.name, func(b *testing.B) {
			lim := newLimited(b, tc.opts)
			addr := serveTCP(b, lim.srv)
			md := []string{"authorization", "Bearer " + lim.key}
			client := grpctest.NewClient()
			defer client.Close()
			// Spend the one call the rate allows.
			small, _ := proto.Marshal(&v1.RecognizeRequest{Mode: "para"})
			if code, _, err := client.Call(context.Background(), addr, v1.OCR_Recognize_FullMethodName, rawFrame(small), md...); err != nil || code != codes.InvalidArgument {
				b.Fatalf("the first call: %v %v", code, err)
			}
			run(b, addr, codes.ResourceExhausted, md...)
		})
	}
	for _, tc := range []struct {
		name   string
		bounds bool
	}{{"over-method-bound/parsed", false}, {"over-method-bound/codec", true}} {
		b.Run(tc.name, func(b *testing.B) {
			ocfg := ocr.DefaultConfig()
			ocfg.Limits = imageio.Limits{MaxBytes: 4 << 20}
			s := New(Config{OCR: ocr.NewService(ocfg, nil, nil, nil, nil), MaxMessageBytes: 2*4<<20 + Envelope + 1<<20})
			if !tc.bounds {
				s.codec.bounds, s.codec.other = nil, bound{}
			}
			s.SetServing(true)
			run(b, serveTCP(b, s), codes.ResourceExhausted)
		})
	}
}
