package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/visionserve/visionserve/internal/auth"
	"github.com/visionserve/visionserve/internal/failure"
	"github.com/visionserve/visionserve/internal/jobs"
	"github.com/visionserve/visionserve/internal/pace"
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
const StatusClientClosed = failure.StatusClientClosed

// errDeadline marks a request that ran out of its server-side deadline.
var errDeadline = errors.New("request deadline exceeded")

// problemFor is the one place where errors become HTTP statuses. Every
// handler returns errors and lets writeError call it. The transport's own
// errors (credentials, rate limits, jobs, malformed bodies) are decided
// here; the core's come from failure.Classify, which grpcapi reads too.
func problemFor(err error) (p Problem, retryAfter time.Duration) {
	problem := func(status int, kind, detail string) Problem {
		return Problem{Type: problemBase + kind, Title: http.StatusText(status), Status: status, Detail: detail}
	}
	var maxBytes *http.MaxBytesError
	var bad *badRequest
	var limited *ratelimit.LimitError
	switch {
	case errors.Is(err, auth.ErrUnauthenticated):
		return problem(http.StatusUnauthorized, "unauthenticated", err.Error()+"; send Authorization: Bearer <API key or JWT> or X-API-Key"), 0
	case errors.Is(err, auth.ErrForbidden):
		return problem(http.StatusForbidden, "forbidden", err.Error()), 0
	case errors.As(err, &limited):
		return problem(http.StatusTooManyRequests, "rate-limited", limited.Error()), limited.RetryAfter
	case errors.Is(err, jobs.ErrNotFound):
		return problem(http.StatusNotFound, "job-not-found", "no such job (jobs are visible to the principal that submitted them, until their retention ends)"), 0
	case errors.Is(err, jobs.ErrNotFinished):
		return problem(http.StatusConflict, "job-not-finished", jobDetail(err)), 0
	case errors.Is(err, jobs.ErrNoResult):
		return problem(http.StatusUnprocessableEntity, "job-page-not-read", jobDetail(err)), 0
	case errors.Is(err, jobs.ErrInputsDeleted):
		return problem(http.StatusConflict, "job-inputs-deleted", jobDetail(err)), 0
	case errors.Is(err, jobs.ErrQueueFull):
		return problem(http.StatusTooManyRequests, "jobs-queue-full", jobDetail(err)), 30 * time.Second
	case errors.Is(err, jobs.ErrTooLarge):
		return problem(http.StatusRequestEntityTooLarge, "too-large", jobDetail(err)), 0
	case errors.Is(err, jobs.ErrBadRequest), errors.Is(err, jobs.ErrWebhookDisabled):
		return problem(http.StatusBadRequest, "bad-request", jobDetail(err)), 0
	case errors.Is(err, jobs.ErrIdempotencyConflict):
		return problem(http.StatusUnprocessableEntity, "idempotency-key-reused", jobDetail(err)), 0
	case errors.Is(err, jobs.ErrDisabled):
		return problem(http.StatusNotImplemented, "jobs-disabled", "asynchronous jobs are not enabled on this server (set jobs.dir, or jobs.store: postgres)"), 0
	case errors.Is(err, jobs.ErrTooManyUploads):
		return problem(http.StatusTooManyRequests, "too-many-uploads", jobDetail(err)), 5 * time.Second
	case errors.Is(err, jobs.ErrUploadTooSlow):
		return problem(http.StatusRequestTimeout, "upload-too-slow", jobDetail(err)), 0
	case errors.Is(err, jobs.ErrUnavailable):
		return problem(http.StatusServiceUnavailable, "jobs-store-unavailable", "the job store cannot be reached; retry after the delay in Retry-After"), 5 * time.Second
	case errors.Is(err, jobs.ErrClosed):
		return problem(http.StatusServiceUnavailable, "shutting-down", "the server is shutting down; retry on another replica"), time.Second
	case errors.As(err, &bad):
		return problem(http.StatusBadRequest, "bad-request", bad.msg), 0
	case errors.Is(err, errContentEncoding):
		return problem(http.StatusUnsupportedMediaType, "unsupported-content-encoding",
			"request bodies are read as sent: send it without Content-Encoding (images and PDFs are compressed already)"), 0
	case errors.Is(err, pace.ErrTooSlow):
		return problem(http.StatusRequestTimeout, "request-timeout", "the request body arrived slower than the server's minimum upload rate"), 0
	case errors.Is(err, sched.ErrShareFull):
		return problem(http.StatusTooManyRequests, "too-many-uploads",
			"this client's request bodies being read or waiting take its share of the server's memory for bodies; retry after the delay in Retry-After"), time.Second
	case errors.Is(err, sched.ErrMemoryFull):
		return problem(http.StatusTooManyRequests, "body-memory-full",
			"the server's memory for request bodies is in use; retry after the delay in Retry-After"), time.Second
	case errors.As(err, &maxBytes):
		return problem(http.StatusRequestEntityTooLarge, "too-large", fmt.Sprintf("request body exceeds the limit of %d bytes", maxBytes.Limit)), 0
	case errors.Is(err, errDeadline):
		return problem(http.StatusGatewayTimeout, "deadline-exceeded", "the request did not complete within the server's deadline"), 0
	}
	c, _ := failure.Classify(err)
	if hint, ok := httpHints[c.Kind]; ok {
		c.Detail = hint
	}
	p = problem(c.Status, c.Kind, c.Detail)
	p.Reason = c.Reason
	return p, c.RetryAfter
}

// httpHints replace the detail of failures whose remedy is an HTTP call
// or header.
var httpHints = map[string]string{
	"gallery-not-found": "no gallery has that name; create it with PUT /v1/galleries/{gallery}",
	"queue-full":        "every worker is busy and the queue is full; retry after the delay in Retry-After",
}

// jobDetail returns the client-facing detail of a jobs error.
func jobDetail(err error) string {
	var je *jobs.Error
	if errors.As(err, &je) {
		return je.Detail
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
