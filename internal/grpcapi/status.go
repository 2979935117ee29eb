package grpcapi

import (
	"context"
	"errors"
	"math"
	"strconv"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/visionserve/visionserve/internal/failure"
	"github.com/visionserve/visionserve/internal/ratelimit"
)

// internalMessage is all a client learns of an unexpected failure.
const internalMessage = failure.InternalDetail

// grpcHints replace the message of failures whose remedy is another call.
var grpcHints = map[string]string{
	"gallery-not-found": "no gallery has that name; create it with visionserve.v1.Faces/CreateGallery",
}

// statusFor is the one place where errors become gRPC statuses. The core's
// errors are classified as the HTTP transport classifies them
// (failure.Classify: the code is the counterpart of the HTTP status) with
// the same one-line message; a status from gRPC itself or from the auth
// tap passes through; a rate-limit refusal is ResourceExhausted, as
// HTTP's 429 rate-limited, with its delay. retry is the advice of a
// failure worth retrying later (0: none); statusFor also puts it in the
// status as a google.rpc.RetryInfo detail.
func statusFor(err error) (st *status.Status, retry time.Duration) {
	if err == nil {
		return nil, 0
	}
	if st, ok := status.FromError(err); ok {
		return st, 0
	}
	var limited *ratelimit.LimitError
	if errors.As(err, &limited) {
		return withRetry(status.New(codes.ResourceExhausted, limited.Error()), limited.RetryAfter), limited.RetryAfter
	}
	c, _ := failure.Classify(err)
	msg := c.Detail
	if hint, ok := grpcHints[c.Kind]; ok {
		msg = hint
	}
	return withRetry(status.New(c.Code, msg), c.RetryAfter), c.RetryAfter
}

// withRetry adds a RetryInfo detail to st when retry is positive.
func withRetry(st *status.Status, retry time.Duration) *status.Status {
	if retry <= 0 {
		return st
	}
	if d, err := st.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(retry)}); err == nil {
		return d
	}
	return st
}

// errorFor returns the status error a call ends with. Waits the scheduler
// caused get its estimate of when a worker frees, as HTTP's Retry-After
// does, both as the RetryInfo detail and as a "retry-after" trailer in
// whole seconds.
func (s *Server) errorFor(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	st, retry := statusFor(err)
	if retry > 0 && s.cfg.Scheduler != nil && failure.SchedulerWait(err) {
		retry = s.cfg.Scheduler.RetryAfter()
		st = withRetry(status.New(st.Code(), st.Message()), retry)
	}
	if retry > 0 {
		secs := int(math.Ceil(retry.Seconds()))
		_ = grpc.SetTrailer(ctx, metadata.Pairs("retry-after", strconv.Itoa(max(secs, 1))))
	}
	return st.Err()
}
