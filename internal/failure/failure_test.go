package failure_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"google.golang.org/grpc/codes"

	"github.com/visionserve/visionserve/internal/engine/batch"
	"github.com/visionserve/visionserve/internal/face"
	"github.com/visionserve/visionserve/internal/failure"
	"github.com/visionserve/visionserve/internal/gallery"
	"github.com/visionserve/visionserve/internal/imageio"
	"github.com/visionserve/visionserve/internal/modelrepo"
	"github.com/visionserve/visionserve/internal/ocr"
	"github.com/visionserve/visionserve/internal/oip"
	"github.com/visionserve/visionserve/internal/review"
	"github.com/visionserve/visionserve/internal/sched"
)

func TestClassify(t *testing.T) {
	wrap := func(err error) error { return fmt.Errorf("context: %w", err) }
	for _, tc := range []struct {
		err    error
		kind   string
		status int
		code   codes.Code
		retry  bool
	}{
		{wrap(ocr.ErrModelNotFound), "model-not-found", 404, codes.NotFound, false},
		{fmt.Errorf("%w (%w)", modelrepo.ErrNoReadyVersion, ocr.ErrVersionNotFound), "model-not-ready", 503, codes.Unavailable, true},
		{&modelrepo.Error{Reason: "untrusted_key"}, "model-load-failed", 422, codes.FailedPrecondition, false},
		{&imageio.Error{Kind: imageio.ErrUnsupported, Detail: "PDF"}, "unsupported-media-type", 415, codes.InvalidArgument, false},
		{&imageio.Error{Kind: imageio.ErrUndecodable, Detail: "x"}, "undecodable-image", 400, codes.InvalidArgument, false},
		{&imageio.Error{Kind: imageio.ErrTooLarge, Detail: "x"}, "too-large", 413, codes.ResourceExhausted, false},
		{&imageio.Error{Kind: imageio.ErrDecodeTimeout, Detail: "x"}, "unusable-image", 422, codes.InvalidArgument, false},
		{wrap(oip.ErrTooLarge), "too-large", 413, codes.ResourceExhausted, false},
		{wrap(face.ErrNoFace), "no-face", 422, codes.InvalidArgument, false},
		{wrap(face.ErrDisabled), "not-enabled", 501, codes.Unimplemented, false},
		{gallery.ErrGalleryNotFound, "gallery-not-found", 404, codes.NotFound, false},
		{wrap(gallery.ErrLimit), "limit-reached", 409, codes.FailedPrecondition, false},
		{&face.EmbedderError{Gallery: "g", Held: "sha256:a"}, "embedder-not-loaded", 409, codes.FailedPrecondition, false},
		{&gallery.MismatchError{Gallery: "g", Held: "sha256:a", Model: "sha256:b"}, "embedder-mismatch", 409, codes.FailedPrecondition, false},
		{wrap(gallery.ErrUnavailable), "store-unavailable", 503, codes.Unavailable, true},
		{wrap(&os.PathError{Op: "write", Path: "/var/lib/visionserve/galleries.db", Err: syscall.ENOSPC}), "insufficient-storage", 507, codes.ResourceExhausted, false},
		{wrap(&os.PathError{Op: "write", Path: "/var/lib/visionserve/jobs.db", Err: syscall.EDQUOT}), "insufficient-storage", 507, codes.ResourceExhausted, false},
		{fmt.Errorf("gallery store: %w", &pgconn.PgError{Code: "53100", Message: "could not extend file"}), "insufficient-storage", 507, codes.ResourceExhausted, false},
		{wrap(review.ErrInvalid), "bad-request", 400, codes.InvalidArgument, false},
		{review.ErrNotFound, "review-not-found", 404, codes.NotFound, false},
		{wrap(review.ErrLimit), "limit-reached", 409, codes.FailedPrecondition, false},
		{review.ErrDisabled, "not-enabled", 501, codes.Unimplemented, false},
		{wrap(review.ErrUnavailable), "store-unavailable", 503, codes.Unavailable, true},
		{batch.ErrQueueFull, "queue-full", 429, codes.ResourceExhausted, true},
		{sched.ErrDraining, "shutting-down", 503, codes.Unavailable, true},
		{wrap(context.DeadlineExceeded), "deadline-exceeded", 504, codes.DeadlineExceeded, false},
		{wrap(context.Canceled), "client-closed", failure.StatusClientClosed, codes.Canceled, false},
		// A core error that also wraps a context error is the core error.
		{fmt.Errorf("%w: %w", imageio.ErrDecodeTimeout, context.DeadlineExceeded), "unusable-image", 422, codes.InvalidArgument, false},
	} {
		c, ok := failure.Classify(tc.err)
		if !ok || c.Kind != tc.kind || c.Status != tc.status || c.Code != tc.code || (c.RetryAfter > 0) != tc.retry {
			t.Errorf("%v: %+v, %v; want %s %d %v retry=%v", tc.err, c, ok, tc.kind, tc.status, tc.code, tc.retry)
		}
	}
	if c, _ := failure.Classify(&imageio.Error{Kind: imageio.ErrUndecodable, Detail: "truncated PNG"}); c.Detail != "truncated PNG" {
		t.Errorf("an image error's detail is %q", c.Detail)
	}
	c, ok := failure.Classify(errors.New("open /secret/path: permission denied"))
	if ok || c != failure.Internal || c.Detail != failure.InternalDetail {
		t.Errorf("an undeclared error: %+v, %v", c, ok)
	}
}
