package jobs

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/visionserve/visionserve/internal/imageio"
	"github.com/visionserve/visionserve/internal/ocr"
)

// Sentinel errors; the HTTP transport maps them in problemFor.
var (
	// ErrNotFound: no such job for this principal.
	ErrNotFound = errors.New("job not found")
	// ErrNotFinished: the result of a job still running.
	ErrNotFinished = errors.New("job not finished")
	// ErrQueueFull: too many unfinished jobs or stored bytes.
	ErrQueueFull = errors.New("job queue full")
	// ErrTooLarge: more items, pages or bytes than a job may carry.
	ErrTooLarge = errors.New("job too large")
	// ErrBadRequest: a malformed submission.
	ErrBadRequest = errors.New("bad job request")
	// ErrIdempotencyConflict: an Idempotency-Key reused with another request.
	ErrIdempotencyConflict = errors.New("idempotency key reused with a different request")
	// ErrDisabled: jobs are not configured on this server.
	ErrDisabled = errors.New("jobs are not enabled")
	// ErrWebhookDisabled: a webhook was requested but no secret is configured.
	ErrWebhookDisabled = errors.New("webhooks are not enabled")
	// ErrClosed: the manager is shutting down.
	ErrClosed = errors.New("job manager closed")
)

// Error is a client error with a message safe to show.
type Error struct {
	Kind   error
	Detail string
}

func (e *Error) Error() string { return fmt.Sprintf("%v: %s", e.Kind, e.Detail) }

// Unwrap lets errors.Is match Kind.
func (e *Error) Unwrap() error { return e.Kind }

func errorf(kind error, format string, args ...any) error {
	return &Error{Kind: kind, Detail: fmt.Sprintf(format, args...)}
}

// State is a job's lifecycle state.
type State string

// States. A job is queued, then running, then exactly one of the final
// three.
const (
	StateQueued    State = "queued"
	StateRunning   State = "running"
	StateSucceeded State = "succeeded"
	StateFailed    State = "failed" // every page failed
	StateCanceled  State = "canceled"
)

// Terminal reports whether s is final.
func (s State) Terminal() bool {
	return s == StateSucceeded || s == StateFailed || s == StateCanceled
}

var idPattern = regexp.MustCompile(`^job_[0-9a-f]{32}$`)

// ValidID reports whether s has the form of a job id.
func ValidID(s string) bool { return idPattern.MatchString(s) }

func newID(prefix string) string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// OCROptions are the OCR options a job applies to every page.
type OCROptions struct {
	Model    string   `json:"model,omitempty"`
	Version  string   `json:"version,omitempty"`
	Lang     string   `json:"lang,omitempty"`
	Mode     ocr.Mode `json:"mode,omitempty"`
	NoRotate bool     `json:"no_rotate,omitempty"`
}

func (o OCROptions) ocr() ocr.Options {
	return ocr.Options{Model: o.Model, Version: o.Version, Lang: o.Lang, Mode: o.Mode, NoRotate: o.NoRotate}
}

// Kind of an item.
type Kind string

// Item kinds.
const (
	KindImage Kind = "image" // any supported image, a TIFF with all its frames
	KindPDF   Kind = "pdf"
)

// item is one submitted file, as stored.
type item struct {
	Kind     Kind           `json:"kind"`
	Declared imageio.Format `json:"declared,omitempty"`
	Bytes    int64          `json:"bytes"`
	Pages    int            `json:"pages"`
	// PageDPI is the resolution of each PDF page (lowered from the
	// configured DPI for pages that would exceed the pixel limit).
	PageDPI []int `json:"page_dpi,omitempty"`
}

// task is one unit of work and of persistence: an image (all its frames)
// or one PDF page.
type task struct {
	Item int `json:"item"`
	// Page is the 1-based PDF page; 0 for an image.
	Page int `json:"page,omitempty"`
	// Pages is how many result pages the task yields.
	Pages int `json:"pages"`
	// First is the index of its first page in the result.
	First int `json:"first"`
}

// record is a job as persisted.
type record struct {
	ID         string     `json:"id"`
	Owner      string     `json:"owner"`
	State      State      `json:"state"`
	Options    OCROptions `json:"options"`
	WebhookURL string     `json:"webhook_url,omitempty"`
	Items      []item     `json:"items"`
	Tasks      []task     `json:"tasks"`
	InputBytes int64      `json:"input_bytes"`
	Created    time.Time  `json:"created"`
	Updated    time.Time  `json:"updated"`
	Finished   time.Time  `json:"finished,omitzero"`
	Expires    time.Time  `json:"expires,omitzero"`
	PagesTotal int        `json:"pages_total"`
	PagesDone  int        `json:"pages_done"`
	PagesFail  int        `json:"pages_failed"`
	// IdempotencyKey and Fingerprint identify the submission for replays.
	IdempotencyKey string `json:"idempotency_key,omitempty"`
	Fingerprint    string `json:"fingerprint,omitempty"`
	// TraceParent links the job's spans to the submitting request.
	TraceParent string `json:"traceparent,omitempty"`
}

// Status is the public view of a job (GET /v1/jobs/{id}).
type Status struct {
	ID         string     `json:"id"`
	State      State      `json:"state"`
	Progress   Progress   `json:"progress"`
	CreatedAt  time.Time  `json:"created_at"`
	UpdatedAt  time.Time  `json:"updated_at"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`
	ExpiresAt  *time.Time `json:"expires_at,omitempty"`
	Links      Links      `json:"links"`
}

// Progress counts pages.
type Progress struct {
	PagesTotal  int `json:"pages_total"`
	PagesDone   int `json:"pages_done"` // including failed pages
	PagesFailed int `json:"pages_failed"`
}

// Links are the job's URLs.
type Links struct {
	Self   string `json:"self"`
	Result string `json:"result"`
}

func (r *record) status() Status {
	s := Status{
		ID: r.ID, State: r.State,
		Progress:  Progress{PagesTotal: r.PagesTotal, PagesDone: r.PagesDone, PagesFailed: r.PagesFail},
		CreatedAt: r.Created, UpdatedAt: r.Updated,
		Links: Links{Self: "/v1/jobs/" + r.ID, Result: "/v1/jobs/" + r.ID + "/result"},
	}
	if !r.Finished.IsZero() {
		f, e := r.Finished, r.Expires
		s.FinishedAt, s.ExpiresAt = &f, &e
	}
	return s
}

// Result is a finished job's output (GET /v1/jobs/{id}/result).
type Result struct {
	ID    string       `json:"id"`
	State State        `json:"state"`
	Text  string       `json:"text"`
	Pages []PageResult `json:"pages"`
}

// PageResult is one page of the result: recognised, or an error.
type PageResult struct {
	// Index is the page's position in the job, from 0, in submission
	// order (items in order, each item's pages in order).
	Index  int           `json:"index"`
	Source Source        `json:"source"`
	Model  *ocr.ModelRef `json:"model,omitempty"`
	*ocr.Page
	Error *PageError `json:"error,omitempty"`
}

// Source says where a page came from.
type Source struct {
	Item int `json:"item"` // the file, from 0
	Page int `json:"page"` // the page within the file, from 0
}

// PageError is why a page has no text; Type is a problem type URI.
type PageError struct {
	Type   string `json:"type"`
	Detail string `json:"detail"`
}

// taskResult is a task's stored output.
type taskResult struct {
	Pages []PageResult `json:"pages"`
}

// Event is the body of a webhook: the Standard Webhooks envelope around
// the job's status.
type Event struct {
	Type      string    `json:"type"` // job.succeeded, job.failed, job.canceled
	Timestamp time.Time `json:"timestamp"`
	Data      Status    `json:"data"`
}
