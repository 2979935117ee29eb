package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/visionserve/visionserve/internal/auth"
	"github.com/visionserve/visionserve/internal/engine"
	"github.com/visionserve/visionserve/internal/engine/onnx"
	"github.com/visionserve/visionserve/internal/face"
	"github.com/visionserve/visionserve/internal/gallery"
	"github.com/visionserve/visionserve/internal/imageio"
	"github.com/visionserve/visionserve/internal/jobs"
	"github.com/visionserve/visionserve/internal/ocr"
	"github.com/visionserve/visionserve/internal/oip"
	"github.com/visionserve/visionserve/internal/ratelimit"
	"github.com/visionserve/visionserve/internal/sched"
)

// Problem is an RFC 9457 problem document, the body of every error
// response. Type is a stable URI per kind of failure that clients may
// branch on; Detail is for humans.
type Problem struct {
	Type     string `json:"type"`
	Title    string `json:"title"`
	Status   int    `json:"status"`
	Detail   string `json:"detail,omitempty"`
	Instance string `json:"instance,omitempty"`
	// Error repeats Detail on the Open Inference Protocol's routes (/v2),
	// whose clients read an error response's "error" member.
	Error string `json:"error,omitempty"`
	// Reason is the bounded failure reason of a model version that could
	// not be loaded (digest_mismatch, untrusted_key, ...).
	Reason string `json:"reason,omitempty"`
}

const problemBase = "https://visionserve.dev/problems/"

// StatusClientClosed is logged and counted (never sent: nobody is
// listening) when the client went away before the answer, as nginx does.
const StatusClientClosed = 499

// errDeadline marks a request that ran out of its server-side deadline.
var errDeadline = errors.New("request deadline exceeded")

// problemFor is the one place where errors become HTTP statuses. Every
// handler returns errors and lets writeError call it.
func problemFor(err error) (p Problem, retryAfter time.Duration) {
	status, kind := http.StatusInternalServerError, "internal"
	detail := "internal error; the server log has the details"
	if status, kind, detail, reason, retry, ok := modelProblem(err); ok {
		return Problem{Type: problemBase + kind, Title: http.StatusText(status), Status: status, Detail: detail, Reason: reason}, retry
	}
	var maxBytes *http.MaxBytesError
	var bad *badRequest
	var limited *ratelimit.LimitError
	switch {
	case errors.Is(err, auth.ErrUnauthenticated):
		status, kind, detail = http.StatusUnauthorized, "unauthenticated", err.Error()+"; send Authorization: Bearer <API key or JWT> or X-API-Key"
	case errors.Is(err, auth.ErrForbidden):
		status, kind, detail = http.StatusForbidden, "forbidden", err.Error()
	case errors.As(err, &limited):
		status, kind, detail = http.StatusTooManyRequests, "rate-limited", limited.Error()
		retryAfter = limited.RetryAfter
	case errors.Is(err, jobs.ErrNotFound):
		status, kind, detail = http.StatusNotFound, "job-not-found", "no such job (jobs are visible to the principal that submitted them, until their retention ends)"
	case errors.Is(err, jobs.ErrNotFinished):
		status, kind, detail = http.StatusConflict, "job-not-finished", jobDetail(err)
	case errors.Is(err, jobs.ErrQueueFull):
		status, kind, detail = http.StatusTooManyRequests, "jobs-queue-full", jobDetail(err)
		retryAfter = 30 * time.Second
	case errors.Is(err, jobs.ErrTooLarge):
		status, kind, detail = http.StatusRequestEntityTooLarge, "too-large", jobDetail(err)
	case errors.Is(err, jobs.ErrBadRequest), errors.Is(err, jobs.ErrWebhookDisabled):
		status, kind, detail = http.StatusBadRequest, "bad-request", jobDetail(err)
	case errors.Is(err, jobs.ErrIdempotencyConflict):
		status, kind, detail = http.StatusUnprocessableEntity, "idempotency-key-reused", jobDetail(err)
	case errors.Is(err, jobs.ErrDisabled):
		status, kind, detail = http.StatusNotImplemented, "jobs-disabled", "asynchronous jobs are not enabled on this server (jobs.dir is not set)"
	case errors.Is(err, jobs.ErrClosed):
		status, kind, detail = http.StatusServiceUnavailable, "shutting-down", "the server is shutting down; retry on another replica"
		retryAfter = time.Second
	case errors.As(err, &bad):
		status, kind, detail = http.StatusBadRequest, "bad-request", bad.msg
	case errors.As(err, &maxBytes):
		status, kind = http.StatusRequestEntityTooLarge, "too-large"
		detail = fmt.Sprintf("request body exceeds the limit of %d bytes", maxBytes.Limit)
	case errors.Is(err, imageio.ErrUnsupported):
		status, kind, detail = http.StatusUnsupportedMediaType, "unsupported-media-type", inputDetail(err)
	case errors.Is(err, imageio.ErrUndecodable):
		status, kind, detail = http.StatusBadRequest, "undecodable-image", inputDetail(err)
	case errors.Is(err, imageio.ErrTooLarge):
		status, kind, detail = http.StatusRequestEntityTooLarge, "too-large", inputDetail(err)
	case errors.Is(err, imageio.ErrUnusable), errors.Is(err, imageio.ErrDecodeTimeout):
		status, kind, detail = http.StatusUnprocessableEntity, "unusable-image", inputDetail(err)
	case errors.Is(err, ocr.ErrBadOption):
		status, kind, detail = http.StatusBadRequest, "bad-request", err.Error()
	case errors.Is(err, ocr.ErrModelNotFound), errors.Is(err, ocr.ErrVersionNotFound),
		errors.Is(err, oip.ErrModelNotFound), errors.Is(err, oip.ErrVersionNotFound):
		status, kind, detail = http.StatusNotFound, "model-not-found", err.Error()
	case errors.Is(err, oip.ErrInvalidRequest), errors.Is(err, onnx.ErrInvalidInput):
		status, kind, detail = http.StatusBadRequest, "bad-request", err.Error()
	case errors.Is(err, oip.ErrTooLarge):
		status, kind, detail = http.StatusRequestEntityTooLarge, "too-large", err.Error()
	case errors.Is(err, face.ErrBadOption), errors.Is(err, gallery.ErrInvalidName):
		status, kind, detail = http.StatusBadRequest, "bad-request", err.Error()
	case errors.Is(err, face.ErrNoFace):
		status, kind, detail = http.StatusUnprocessableEntity, "no-face", err.Error()
	case errors.Is(err, face.ErrDisabled):
		status, kind, detail = http.StatusNotImplemented, "not-enabled", err.Error()+"; see docs/faces.md"
	case errors.Is(err, gallery.ErrGalleryNotFound):
		status, kind, detail = http.StatusNotFound, "gallery-not-found", "no gallery has that name; create it with PUT /v1/galleries/{gallery}"
	case errors.Is(err, gallery.ErrSubjectNotFound):
		status, kind, detail = http.StatusNotFound, "subject-not-found", "the gallery has no faces for that subject"
	case errors.Is(err, gallery.ErrLimit):
		status, kind, detail = http.StatusConflict, "limit-reached", err.Error()
	case errors.Is(err, gallery.ErrUnavailable):
		status, kind, detail = http.StatusServiceUnavailable, "store-unavailable", "the gallery database cannot be reached; retry later"
		retryAfter = time.Second
	case errors.Is(err, gallery.ErrClosed):
		status, kind, detail = http.StatusServiceUnavailable, "shutting-down", "the server is shutting down; retry on another replica"
		retryAfter = time.Second
	case errors.Is(err, sched.ErrQueueFull):
		status, kind = http.StatusTooManyRequests, "queue-full"
		detail = "every worker is busy and the queue is full; retry after the delay in Retry-After"
		retryAfter = time.Second
	case errors.Is(err, sched.ErrDraining), errors.Is(err, engine.ErrPoolClosed):
		status, kind, detail = http.StatusServiceUnavailable, "shutting-down", "the server is shutting down; retry on another replica"
		retryAfter = time.Second
	case errors.Is(err, errDeadline):
		status, kind = http.StatusGatewayTimeout, "deadline-exceeded"
		detail = "the request did not complete within the server's deadline"
	case errors.Is(err, context.Canceled):
		status, kind, detail = StatusClientClosed, "client-closed", "the client closed the request"
	}
	return Problem{Type: problemBase + kind, Title: http.StatusText(status), Status: status, Detail: detail}, retryAfter
}

// jobDetail returns the client-facing detail of a jobs error.
func jobDetail(err error) string {
	var je *jobs.Error
	if errors.As(err, &je) {
		return je.Detail
	}
	return err.Error()
}

// inputDetail returns the client-facing detail of an input error.
func inputDetail(err error) string {
	var ie *imageio.Error
	if errors.As(err, &ie) {
		return ie.Detail
	}
	return err.Error()
}

// badRequest is a malformed request (query, form); its message is safe to
// show to the client.
type badRequest struct{ msg string }

func (b *badRequest) Error() string { return b.msg }

func badRequestf(format string, args ...any) error {
	return &badRequest{msg: fmt.Sprintf(format, args...)}
}

// writeProblem sends p as application/problem+json.
func writeProblem(w http.ResponseWriter, r *http.Request, p Problem, retryAfter time.Duration) {
	if p.Status == StatusClientClosed {
		return // nobody to answer
	}
	if p.Title == "" {
		p.Title = http.StatusText(p.Status)
	}
	p.Instance = r.URL.Path
	if strings.HasPrefix(r.URL.Path, "/v2/") || r.URL.Path == "/v2" {
		p.Error = p.Detail
		if p.Error == "" {
			p.Error = p.Title
		}
	}
	h := w.Header()
	h.Set("Content-Type", "application/problem+json")
	h.Set("Cache-Control", "no-store")
	if retryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(int(retryAfter.Round(time.Second)/time.Second)))
	}
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p)
}
