package failure

import (
	"context"
	"errors"
	"net/http"
	"syscall"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/visionserve/visionserve/internal/engine"
	"github.com/visionserve/visionserve/internal/engine/onnx"
	"github.com/visionserve/visionserve/internal/face"
	"github.com/visionserve/visionserve/internal/gallery"
	"github.com/visionserve/visionserve/internal/imageio"
	"github.com/visionserve/visionserve/internal/modelrepo"
	"github.com/visionserve/visionserve/internal/ocr"
	"github.com/visionserve/visionserve/internal/oip"
	"github.com/visionserve/visionserve/internal/review"
	"github.com/visionserve/visionserve/internal/sched"
)

// Class is one kind of failure as the transports report it.
type Class struct {
	// Kind is the stable name of the failure: the suffix of the HTTP
	// problem type (undecodable-image, gallery-not-found, ...).
	Kind string
	// Status is the HTTP status and Code the gRPC status code.
	Status int
	Code   codes.Code
	// Detail says what went wrong; it is safe to show to the client
	// (an internal error's is a fixed text).
	Detail string
	// Reason is the bounded failure reason of a model version that could
	// not be loaded (digest_mismatch, untrusted_key, ...); usually empty.
	Reason string
	// RetryAfter, when positive, is when a retry may succeed.
	RetryAfter time.Duration
}

// SchedulerWait reports whether err is a wait the scheduler caused (a full
// queue, a drain): the scheduler's estimate of when a worker frees then
// beats the class's fixed RetryAfter, in both transports.
func SchedulerWait(err error) bool {
	return errors.Is(err, sched.ErrQueueFull) || errors.Is(err, sched.ErrDraining) || errors.Is(err, engine.ErrPoolClosed)
}

// StatusClientClosed is the HTTP status logged and counted (never sent:
// nobody is listening) when the client went away first, as nginx does.
const StatusClientClosed = 499

// InternalDetail is all a client learns of an unexpected failure.
const InternalDetail = "internal error; the server log has the details"

// Internal is the class of an error no core package declared.
var Internal = Class{Kind: "internal", Status: http.StatusInternalServerError, Code: codes.Internal, Detail: InternalDetail}

// The gRPC codes, by HTTP status: 400, 415 and 422 are InvalidArgument
// (the request must change; retrying does not help; 415 is not
// Unimplemented because bytes of no known format, garbage included, are
// 415 too); 413 is ResourceExhausted (as gRPC itself answers a message
// over the size limit), and so are 429 and 507 (the server's storage is
// full); 404 is NotFound; 409 is FailedPrecondition (the state must change
// first); 501 (face recognition not configured) is Unimplemented; 503 is
// Unavailable; 504 is DeadlineExceeded.

// Classify returns the class of err, or Internal and false when no core
// package declared it.
func Classify(err error) (Class, bool) {
	c := func(kind string, status int, code codes.Code, detail string) (Class, bool) {
		return Class{Kind: kind, Status: status, Code: code, Detail: detail}, true
	}
	retry := func(cl Class, ok bool) (Class, bool) {
		cl.RetryAfter = time.Second
		return cl, ok
	}
	var re *modelrepo.Error
	switch {
	case err == nil:
		return Class{}, false
	// A full disk first: whichever store or step hit it, nothing was
	// stored, and only an operator can fix it.
	case diskFull(err):
		return c("insufficient-storage", http.StatusInsufficientStorage, codes.ResourceExhausted,
			"the server's storage is full, so nothing was stored; retry later: an operator must free space first")
	// The model repository first: a version that is not ready also wraps
	// ocr.ErrVersionNotFound (for the OCR core's failure reasons), but
	// the client should retry, not give up.
	case errors.Is(err, modelrepo.ErrModelNotFound), errors.Is(err, modelrepo.ErrVersionNotFound):
		return c("model-not-found", http.StatusNotFound, codes.NotFound, err.Error())
	case errors.Is(err, modelrepo.ErrNoReadyVersion):
		return retry(c("model-not-ready", http.StatusServiceUnavailable, codes.Unavailable, err.Error()+"; retry later"))
	case errors.Is(err, modelrepo.ErrNoRepository):
		return c("no-repository", http.StatusConflict, codes.FailedPrecondition,
			"this server runs without a model repository (serve --models DIR): its models are fixed")
	case errors.Is(err, modelrepo.ErrBadWeights):
		return c("bad-request", http.StatusBadRequest, codes.InvalidArgument, err.Error())
	case errors.Is(err, modelrepo.ErrClosed):
		return retry(shuttingDown())
	case errors.As(err, &re):
		cl, ok := c("model-load-failed", http.StatusUnprocessableEntity, codes.FailedPrecondition, err.Error())
		cl.Reason = string(re.Reason)
		return cl, ok

	case errors.Is(err, imageio.ErrUnsupported):
		return c("unsupported-media-type", http.StatusUnsupportedMediaType, codes.InvalidArgument, imageDetail(err))
	case errors.Is(err, imageio.ErrUndecodable):
		return c("undecodable-image", http.StatusBadRequest, codes.InvalidArgument, imageDetail(err))
	case errors.Is(err, imageio.ErrTooLarge):
		return c("too-large", http.StatusRequestEntityTooLarge, codes.ResourceExhausted, imageDetail(err))
	case errors.Is(err, imageio.ErrUnusable), errors.Is(err, imageio.ErrDecodeTimeout):
		return c("unusable-image", http.StatusUnprocessableEntity, codes.InvalidArgument, imageDetail(err))

	case errors.Is(err, ocr.ErrBadOption):
		return c("bad-request", http.StatusBadRequest, codes.InvalidArgument, err.Error())
	case errors.Is(err, ocr.ErrModelNotFound), errors.Is(err, ocr.ErrVersionNotFound),
		errors.Is(err, oip.ErrModelNotFound), errors.Is(err, oip.ErrVersionNotFound):
		return c("model-not-found", http.StatusNotFound, codes.NotFound, err.Error())
	case errors.Is(err, oip.ErrInvalidRequest), errors.Is(err, onnx.ErrInvalidInput):
		return c("bad-request", http.StatusBadRequest, codes.InvalidArgument, err.Error())
	case errors.Is(err, oip.ErrTooLarge):
		return c("too-large", http.StatusRequestEntityTooLarge, codes.ResourceExhausted, err.Error())

	case errors.Is(err, face.ErrBadOption), errors.Is(err, gallery.ErrInvalidName):
		return c("bad-request", http.StatusBadRequest, codes.InvalidArgument, err.Error())
	case errors.Is(err, face.ErrNoFace):
		return c("no-face", http.StatusUnprocessableEntity, codes.InvalidArgument, err.Error())
	case errors.Is(err, face.ErrDisabled):
		return c("not-enabled", http.StatusNotImplemented, codes.Unimplemented, err.Error()+"; see docs/faces.md")
	case errors.Is(err, gallery.ErrGalleryNotFound):
		return c("gallery-not-found", http.StatusNotFound, codes.NotFound, "no gallery has that name; create it first")
	case errors.Is(err, gallery.ErrSubjectNotFound):
		return c("subject-not-found", http.StatusNotFound, codes.NotFound, "the gallery has no faces for that subject")
	case errors.Is(err, face.ErrEmbedderNotLoaded):
		return c("embedder-not-loaded", http.StatusConflict, codes.FailedPrecondition, err.Error())
	case errors.Is(err, gallery.ErrEmbedderMismatch):
		return c("embedder-mismatch", http.StatusConflict, codes.FailedPrecondition, err.Error())
	case errors.Is(err, gallery.ErrLimit):
		return c("limit-reached", http.StatusConflict, codes.FailedPrecondition, err.Error())
	case errors.Is(err, gallery.ErrUnavailable):
		return retry(c("store-unavailable", http.StatusServiceUnavailable, codes.Unavailable, "the gallery database cannot be reached; retry later"))
	case errors.Is(err, gallery.ErrClosed):
		return retry(shuttingDown())

	case errors.Is(err, review.ErrInvalid):
		return c("bad-request", http.StatusBadRequest, codes.InvalidArgument, err.Error())
	case errors.Is(err, review.ErrNotFound):
		return c("review-not-found", http.StatusNotFound, codes.NotFound, "no review has that id")
	case errors.Is(err, review.ErrLimit):
		return c("limit-reached", http.StatusConflict, codes.FailedPrecondition, err.Error())
	case errors.Is(err, review.ErrDisabled):
		return c("not-enabled", http.StatusNotImplemented, codes.Unimplemented, err.Error()+" (reviews.store); see docs/console.md")
	case errors.Is(err, review.ErrUnavailable):
		return retry(c("store-unavailable", http.StatusServiceUnavailable, codes.Unavailable, "the review database cannot be reached; retry later"))

	case errors.Is(err, sched.ErrQueueFull):
		return retry(c("queue-full", http.StatusTooManyRequests, codes.ResourceExhausted, "every worker is busy and the queue is full; retry later"))
	case errors.Is(err, sched.ErrDraining), errors.Is(err, engine.ErrPoolClosed):
		return retry(shuttingDown())

	// Last: a core error that also wraps a context error says more.
	case errors.Is(err, context.DeadlineExceeded):
		return c("deadline-exceeded", http.StatusGatewayTimeout, codes.DeadlineExceeded, "the request did not complete within its deadline")
	case errors.Is(err, context.Canceled):
		return c("client-closed", StatusClientClosed, codes.Canceled, "the client closed the request")
	}
	return Internal, false
}

// diskFull reports whether err says the server's storage is full: no space
// (ENOSPC) or a quota reached (EDQUOT) on a local file, as bbolt (the
// embedded gallery and job stores) and file writes report them, wrapped in
// an *os.PathError; or PostgreSQL's disk_full (SQLSTATE 53100), which the
// shared stores pass on.
func diskFull(err error) bool {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return true
	}
	var pg interface{ SQLState() string }
	return errors.As(err, &pg) && pg.SQLState() == "53100"
}

func shuttingDown() (Class, bool) {
	return Class{Kind: "shutting-down", Status: http.StatusServiceUnavailable, Code: codes.Unavailable,
		Detail: "the server is shutting down; retry on another replica"}, true
}

// imageDetail is an image error's client-facing detail.
func imageDetail(err error) string {
	var ie *imageio.Error
	if errors.As(err, &ie) {
		return ie.Detail
	}
	return err.Error()
}
