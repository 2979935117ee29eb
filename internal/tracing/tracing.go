package tracing

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
	"go.opentelemetry.io/otel/trace"
)

// HeaderTraceID is the response header carrying the request's trace id
// (32 lowercase hex digits), to quote in bug reports and find in logs.
const HeaderTraceID = "X-Trace-Id"

// Attribute keys used on visionserve's spans.
const (
	AttrModelName     = attribute.Key("visionserve.model.name")
	AttrModelVersion  = attribute.Key("visionserve.model.version")
	AttrFailureReason = attribute.Key("visionserve.failure_reason") // a bounded enum
	AttrPage          = attribute.Key("visionserve.page")
	AttrJobID         = attribute.Key("visionserve.job.id")
)

// Protocols.
const (
	ProtocolHTTP = "http/protobuf"
	ProtocolGRPC = "grpc"
)

// Config is the tracing section of the configuration file.
type Config struct {
	// Endpoint is the OTLP collector URL, e.g. http://otel-collector:4318
	// (http/protobuf) or http://otel-collector:4317 (grpc); https:// for
	// TLS. Empty: tracing is off (nothing exported).
	Endpoint string `yaml:"endpoint"`
	// Protocol: http/protobuf (default) or grpc.
	Protocol string `yaml:"protocol"`
	// SampleRatio of new traces kept, in [0,1]; a sampled parent's
	// decision is followed. Default 1.
	SampleRatio float64 `yaml:"sample_ratio"`
	// ServiceName is service.name on every span; default visionserve.
	ServiceName string `yaml:"service_name"`
}

// Enabled reports whether spans are exported.
func (c Config) Enabled() bool { return c.Endpoint != "" }

// Validate checks the section.
func (c Config) Validate() error {
	var errs []error
	if c.Endpoint != "" {
		u, err := url.Parse(c.Endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("endpoint %q: use a URL such as http://otel-collector:4318", c.Endpoint))
		}
	}
	switch c.Protocol {
	case "", ProtocolHTTP, ProtocolGRPC:
	default:
		errs = append(errs, fmt.Errorf("protocol %q: use %s or %s", c.Protocol, ProtocolHTTP, ProtocolGRPC))
	}
	if c.SampleRatio < 0 || c.SampleRatio > 1 {
		errs = append(errs, fmt.Errorf("sample_ratio must be in [0,1], got %g", c.SampleRatio))
	}
	return errors.Join(errs...)
}

// Provider is the process's tracing.
type Provider struct {
	tp         *sdktrace.TracerProvider
	tracer     trace.Tracer
	propagator propagation.TextMapPropagator
}

// Options for New.
type Options struct {
	Version string
	// Exporter replaces the OTLP exporter (tests use an in-memory one).
	Exporter sdktrace.SpanExporter
}

// New builds the provider. With no endpoint (and no test exporter) spans
// get IDs but are never sampled nor exported.
func New(ctx context.Context, cfg Config, opts Options) (*Provider, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.ServiceName == "" {
		cfg.ServiceName = "visionserve"
	}
	exp := opts.Exporter
	if exp == nil && cfg.Enabled() {
		var err error
		switch cfg.Protocol {
		case ProtocolGRPC:
			exp, err = otlptracegrpc.New(ctx, otlptracegrpc.WithEndpointURL(cfg.Endpoint))
		default:
			exp, err = otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(cfg.Endpoint))
		}
		if err != nil {
			return nil, fmt.Errorf("tracing exporter: %w", err)
		}
	}
	res := resource.NewWithAttributes(semconv.SchemaURL, semconv.ServiceName(cfg.ServiceName), semconv.ServiceVersion(opts.Version))
	sampler := sdktrace.NeverSample()
	popts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res)}
	if exp != nil {
		sampler = sdktrace.ParentBased(sdktrace.TraceIDRatioBased(cfg.SampleRatio))
		popts = append(popts, sdktrace.WithBatcher(exp))
	}
	popts = append(popts, sdktrace.WithSampler(sampler))
	tp := sdktrace.NewTracerProvider(popts...)
	return &Provider{
		tp:         tp,
		tracer:     tp.Tracer("github.com/visionserve/visionserve"),
		propagator: propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}),
	}, nil
}

// Tracer returns the tracer for visionserve's spans.
func (p *Provider) Tracer() trace.Tracer { return p.tracer }

// Propagator returns the W3C trace-context propagator.
func (p *Provider) Propagator() propagation.TextMapPropagator { return p.propagator }

// ForceFlush exports the spans ended so far.
func (p *Provider) ForceFlush(ctx context.Context) error { return p.tp.ForceFlush(ctx) }

// Shutdown flushes spans not yet exported.
func (p *Provider) Shutdown(ctx context.Context) error { return p.tp.Shutdown(ctx) }

// StartHTTP starts the server span of an HTTP request, continuing a trace
// the client started (traceparent header), and sets X-Trace-Id on w.
func (p *Provider) StartHTTP(w http.ResponseWriter, r *http.Request, route string) (context.Context, trace.Span) {
	ctx := p.propagator.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
	ctx, span := p.tracer.Start(ctx, route, trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(semconv.HTTPRequestMethodKey.String(r.Method), semconv.HTTPRoute(route)))
	if sc := span.SpanContext(); sc.HasTraceID() {
		w.Header().Set(HeaderTraceID, sc.TraceID().String())
	}
	return ctx, span
}

// EndHTTP records the status on the span and ends it.
func EndHTTP(span trace.Span, status int) {
	span.SetAttributes(semconv.HTTPResponseStatusCode(status))
	if status >= 500 {
		span.SetStatus(codes.Error, http.StatusText(status))
	}
	span.End()
}

// Fail marks span failed with a bounded reason.
func Fail(span trace.Span, reason string, err error) {
	span.SetAttributes(AttrFailureReason.String(reason))
	span.SetStatus(codes.Error, reason)
	if err != nil {
		span.RecordError(err, trace.WithTimestamp(time.Now()))
	}
}

// LogHandler adds trace_id and span_id to every record logged with a
// context that carries a span.
func LogHandler(h slog.Handler) slog.Handler { return logHandler{h} }

type logHandler struct{ slog.Handler }

func (h logHandler) Handle(ctx context.Context, r slog.Record) error {
	if sc := trace.SpanContextFromContext(ctx); sc.HasTraceID() {
		r = r.Clone()
		r.AddAttrs(slog.String("trace_id", sc.TraceID().String()))
		if sc.HasSpanID() {
			r.AddAttrs(slog.String("span_id", sc.SpanID().String()))
		}
	}
	return h.Handler.Handle(ctx, r)
}

func (h logHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return logHandler{h.Handler.WithAttrs(as)}
}

func (h logHandler) WithGroup(name string) slog.Handler { return logHandler{h.Handler.WithGroup(name)} }
