package ocr

import (
	"context"
	"errors"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/visionserve/visionserve/internal/engine"
	"github.com/visionserve/visionserve/internal/imageio"
	"github.com/visionserve/visionserve/internal/tracing"
)

// Failure reasons: the bounded values of the failure-reason span attribute.
const (
	ReasonUnsupported     = "unsupported_format"
	ReasonUndecodable     = "undecodable"
	ReasonTooLarge        = "too_large"
	ReasonUnusable        = "unusable"
	ReasonDecodeTimeout   = "decode_timeout"
	ReasonModelNotFound   = "model_not_found"
	ReasonVersionNotFound = "version_not_found"
	ReasonBadOption       = "bad_option"
	ReasonCanceled        = "canceled"
	ReasonDeadline        = "deadline_exceeded"
	ReasonShuttingDown    = "shutting_down"
	ReasonEngine          = "engine_error"
)

// FailureReason names err's cause from a fixed set; anything unknown is
// ReasonEngine.
func FailureReason(err error) string {
	switch {
	case errors.Is(err, imageio.ErrUnsupported):
		return ReasonUnsupported
	case errors.Is(err, imageio.ErrUndecodable):
		return ReasonUndecodable
	case errors.Is(err, imageio.ErrTooLarge):
		return ReasonTooLarge
	case errors.Is(err, imageio.ErrUnusable):
		return ReasonUnusable
	case errors.Is(err, imageio.ErrDecodeTimeout):
		return ReasonDecodeTimeout
	case errors.Is(err, ErrModelNotFound):
		return ReasonModelNotFound
	case errors.Is(err, ErrVersionNotFound):
		return ReasonVersionNotFound
	case errors.Is(err, ErrBadOption):
		return ReasonBadOption
	case errors.Is(err, engine.ErrPoolClosed):
		return ReasonShuttingDown
	case errors.Is(err, context.DeadlineExceeded):
		return ReasonDeadline
	case errors.Is(err, context.Canceled):
		return ReasonCanceled
	}
	return ReasonEngine
}

func modelAttrs(ref ModelRef) []attribute.KeyValue {
	return []attribute.KeyValue{tracing.AttrModelName.String(ref.Name), tracing.AttrModelVersion.String(ref.Version)}
}

// stage starts the span of one pipeline stage; page < 0 leaves the page
// attribute out.
func (s *Service) stage(ctx context.Context, name string, m *Model, page int) (context.Context, trace.Span) {
	attrs := modelAttrs(m.Ref)
	if page >= 0 {
		attrs = append(attrs, tracing.AttrPage.Int(page))
	}
	return s.cfg.Tracer.Start(ctx, name, trace.WithAttributes(attrs...))
}

func endStage(span trace.Span, err error) {
	if err != nil {
		tracing.Fail(span, FailureReason(err), err)
	}
	span.End()
}
