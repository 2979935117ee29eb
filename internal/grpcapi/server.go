package grpcapi

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"runtime/debug"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/tap"

	"github.com/visionserve/visionserve/internal/face"
	"github.com/visionserve/visionserve/internal/metrics"
	"github.com/visionserve/visionserve/internal/ocr"
	"github.com/visionserve/visionserve/internal/oip"
	"github.com/visionserve/visionserve/internal/sched"
	pb "github.com/visionserve/visionserve/proto/inference"
	v1 "github.com/visionserve/visionserve/proto/visionserve/v1"
)

// Config is what the transport needs from the process.
type Config struct {
	OIP *oip.Service
	OCR *ocr.Service
	// Face is the face core; nil: the Faces methods answer Unimplemented,
	// as the HTTP face routes answer 501.
	Face *face.Service
	// StickyHeader names the HTTP header of sticky version routing
	// (repository.sticky_header); RecognizeRequest.routing_key, or request
	// metadata of that name, carries its value. "": sticky routing is off.
	StickyHeader string
	// Scheduler admits inference calls (sched.Scheduler.Admit).
	Scheduler *sched.Scheduler
	// RequestTimeout bounds each inference call (a client deadline that
	// is sooner wins).
	RequestTimeout time.Duration
	// MaxMessageBytes bounds a message while it is received (before and
	// after inflation): the largest a method takes (Verify's two images),
	// gRPC's one receive limit. Once received, and
	// before it is parsed, a message is held to its method's own bound
	// (images: the core's max_bytes each plus Envelope; ModelInfer:
	// OIPMessageBytes; any other message: Envelope), by the server's
	// codec.
	MaxMessageBytes int
	// OIPMessageBytes bounds a ModelInfer request; 0: no bound beyond
	// MaxMessageBytes.
	OIPMessageBytes int
	// MaxStreams bounds concurrent calls per connection (default 256).
	MaxStreams uint32
	Metrics    *metrics.Serving // may be nil
	Log        *slog.Logger
	// Taps run in order when a call's headers arrive, before its message
	// is read, each with the context the previous one returned:
	// authentication (auth.Authenticator.TapHandle), then rate limits
	// (ratelimit.Limiter.TapHandle). A call one refuses never has its
	// message received, inflated or parsed; it ends with the refusal's
	// status (statusFor) and is counted in
	// visionserve_grpc_refused_calls_total.
	Taps []tap.ServerInHandle
	// Unary and Stream run after the metrics interceptor and before
	// admission (the rate limiter's, which free its slots).
	Unary  []grpc.UnaryServerInterceptor
	Stream []grpc.StreamServerInterceptor
	// TLS, when set, is the listener's TLS configuration (tlsconf).
	TLS *tls.Config
}

// Server is the gRPC server of the public gRPC listener.
type Server struct {
	cfg    Config
	log    *slog.Logger
	grpc   *grpc.Server
	health *health.Server
	codec  *boundedCodec
}

// admitted lists the methods that do inference: they pass admission
// control and get the request timeout. They are the counterparts of the
// HTTP routes marked Admit.
var admitted = map[string]bool{
	pb.GRPCInferenceService_ModelInfer_FullMethodName: true,
	v1.OCR_Recognize_FullMethodName:                   true,
	v1.Faces_Detect_FullMethodName:                    true,
	v1.Faces_Verify_FullMethodName:                    true,
	v1.Faces_Enroll_FullMethodName:                    true,
	v1.Faces_Identify_FullMethodName:                  true,
}

// New builds the server with the inference, OCR, face, health and
// reflection services.
func New(cfg Config) *Server {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 30 * time.Second
	}
	if cfg.MaxStreams == 0 {
		cfg.MaxStreams = 256
	}
	s := &Server{cfg: cfg, log: cfg.Log.With("component", "grpc"), health: health.NewServer()}
	var ocrBytes, faceBytes int64
	if cfg.OCR != nil {
		ocrBytes = cfg.OCR.Limits().MaxBytes
	}
	if cfg.Face != nil {
		faceBytes = cfg.Face.Limits().MaxBytes
	}
	s.codec = newBoundedCodec(ocrBytes, faceBytes, cfg.OIPMessageBytes)
	unary := append(append([]grpc.UnaryServerInterceptor{s.observe, s.refuseOversized}, cfg.Unary...), s.admit)
	stream := append([]grpc.StreamServerInterceptor{s.refuseOversizedStream}, cfg.Stream...)
	opts := []grpc.ServerOption{
		grpc.ForceServerCodecV2(s.codec),
		grpc.ChainUnaryInterceptor(unary...),
		grpc.ChainStreamInterceptor(stream...),
		grpc.MaxConcurrentStreams(cfg.MaxStreams),
	}
	if len(cfg.Taps) > 0 {
		opts = append(opts, grpc.InTapHandle(s.tap))
	}
	if cfg.TLS != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(cfg.TLS)))
	}
	if cfg.MaxMessageBytes > 0 {
		opts = append(opts, grpc.MaxRecvMsgSize(cfg.MaxMessageBytes))
	}
	s.grpc = grpc.NewServer(opts...)
	pb.RegisterGRPCInferenceServiceServer(s.grpc, &inference{oip: cfg.OIP})
	v1.RegisterOCRServer(s.grpc, &ocrService{ocr: cfg.OCR, sticky: cfg.StickyHeader})
	v1.RegisterFacesServer(s.grpc, &faceService{face: cfg.Face})
	healthpb.RegisterHealthServer(s.grpc, s.health)
	reflection.Register(s.grpc)
	s.SetServing(false)
	return s
}

// Serve accepts connections on ln until Stop.
func (s *Server) Serve(ln net.Listener) error { return s.grpc.Serve(ln) }

// SetServing sets the health status of the server ("") and of each
// service: SERVING when ready, NOT_SERVING while starting or draining.
// visionserve.v1.Faces is NOT_SERVING throughout without face recognition.
func (s *Server) SetServing(ok bool) {
	st := healthpb.HealthCheckResponse_NOT_SERVING
	if ok {
		st = healthpb.HealthCheckResponse_SERVING
	}
	s.health.SetServingStatus("", st)
	s.health.SetServingStatus(pb.GRPCInferenceService_ServiceDesc.ServiceName, st)
	s.health.SetServingStatus(v1.OCR_ServiceDesc.ServiceName, st)
	if s.cfg.Face == nil {
		st = healthpb.HealthCheckResponse_NOT_SERVING
	}
	s.health.SetServingStatus(v1.Faces_ServiceDesc.ServiceName, st)
}

// Stop drains: health turns NOT_SERVING, calls in flight finish until ctx
// ends, then the remaining connections are closed.
func (s *Server) Stop(ctx context.Context) error {
	s.SetServing(false)
	done := make(chan struct{})
	go func() {
		s.grpc.GracefulStop()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.grpc.Stop()
		<-done
		return fmt.Errorf("grpc: calls still running at the shutdown deadline: %w", ctx.Err())
	}
}

// observe counts and times every call and turns a panic into Internal.
func (s *Server) observe(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
	start := time.Now()
	defer func() {
		if v := recover(); v != nil {
			s.log.Error("panic serving call", "method", info.FullMethod, "panic", v, "stack", string(debug.Stack()))
			resp, err = nil, status.Error(codes.Internal, internalMessage)
		}
		code := status.Code(err)
		if s.cfg.Metrics != nil {
			s.cfg.Metrics.ObserveGRPC(info.FullMethod, code.String(), time.Since(start))
		}
		level := slog.LevelDebug
		if code == codes.Internal || code == codes.Unknown {
			level = slog.LevelWarn
		}
		s.log.Log(ctx, level, "call", "method", info.FullMethod, "code", code.String(), "duration", time.Since(start))
	}()
	resp, err = handler(ctx, req)
	out := s.errorFor(ctx, err)
	if status.Code(out) == codes.Internal {
		if _, isStatus := status.FromError(err); !isStatus {
			s.log.ErrorContext(ctx, "call failed", "method", info.FullMethod, "err", err)
		}
	}
	return resp, out
}

// tap runs the configured tap handles and counts the calls they refuse:
// they end before any interceptor runs, so observe never sees them. gRPC
// ends a call refused here with the status returned (code, message and
// details, such as RetryInfo) in its response headers, and resets the
// stream so the client stops sending its message.
func (s *Server) tap(ctx context.Context, info *tap.Info) (context.Context, error) {
	for _, h := range s.cfg.Taps {
		var err error
		if ctx, err = h(ctx, info); err != nil {
			st, _ := statusFor(err)
			if s.cfg.Metrics != nil {
				s.cfg.Metrics.RefusedGRPC(st.Code())
			}
			s.log.Debug("call refused before its message was read", "method", info.FullMethodName, "code", st.Code().String())
			return nil, st.Err()
		}
	}
	return ctx, nil
}

// admit applies admission control and the request timeout to inference.
func (s *Server) admit(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if !admitted[info.FullMethod] {
		return handler(ctx, req)
	}
	if s.cfg.Scheduler != nil {
		ticket, err := s.cfg.Scheduler.Admit()
		if err != nil {
			return nil, err
		}
		defer ticket.Done()
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
	defer cancel()
	return handler(ctx, req)
}
