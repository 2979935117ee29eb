package grpcapi

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/visionserve/visionserve/internal/engine"
	"github.com/visionserve/visionserve/internal/engine/onnx"
	"github.com/visionserve/visionserve/internal/imageio"
	"github.com/visionserve/visionserve/internal/ocr"
	"github.com/visionserve/visionserve/internal/oip"
	"github.com/visionserve/visionserve/internal/sched"
)

// internalMessage is all a client learns of an unexpected failure.
const internalMessage = "internal error; the server log has the details"

// codeFor is the one place where errors become gRPC status codes. It
// mirrors httpapi's problemFor: 404 is NotFound, 400/413/415/422 are
// InvalidArgument (the request must change; retrying will not help), 429
// is ResourceExhausted, 503 is Unavailable, 504 is DeadlineExceeded.
func codeFor(err error) codes.Code {
	switch {
	case err == nil:
		return codes.OK
	case errors.Is(err, oip.ErrModelNotFound), errors.Is(err, oip.ErrVersionNotFound),
		errors.Is(err, ocr.ErrModelNotFound), errors.Is(err, ocr.ErrVersionNotFound):
		return codes.NotFound
	case errors.Is(err, oip.ErrInvalidRequest), errors.Is(err, oip.ErrTooLarge), errors.Is(err, onnx.ErrInvalidInput),
		errors.Is(err, ocr.ErrBadOption), errors.Is(err, imageio.ErrUnsupported), errors.Is(err, imageio.ErrUndecodable),
		errors.Is(err, imageio.ErrTooLarge), errors.Is(err, imageio.ErrUnusable), errors.Is(err, imageio.ErrDecodeTimeout):
		return codes.InvalidArgument
	case errors.Is(err, sched.ErrQueueFull):
		return codes.ResourceExhausted
	case errors.Is(err, sched.ErrDraining), errors.Is(err, engine.ErrPoolClosed):
		return codes.Unavailable
	case errors.Is(err, context.DeadlineExceeded):
		return codes.DeadlineExceeded
	case errors.Is(err, context.Canceled):
		return codes.Canceled
	}
	return codes.Internal
}

// statusFor turns err into the status error a handler returns. Client
// errors carry their message; internal ones a fixed text.
func statusFor(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err // already a status (from gRPC itself)
	}
	code := codeFor(err)
	msg := err.Error()
	var ie *imageio.Error
	switch {
	case code == codes.Internal:
		msg = internalMessage
	case errors.As(err, &ie):
		msg = ie.Detail
	case code == codes.ResourceExhausted:
		msg = "every worker is busy and the queue is full; retry later"
	case code == codes.Unavailable:
		msg = "the server is shutting down; retry on another replica"
	case code == codes.DeadlineExceeded:
		msg = "the request did not complete within its deadline"
	case code == codes.Canceled:
		msg = "the request was cancelled"
	}
	return status.Error(code, msg)
}
