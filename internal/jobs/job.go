package jobs

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"time"

	"github.com/visionserve/visionserve/internal/imageio"
	"github.com/visionserve/visionserve/internal/jobs/store"
	"github.com/visionserve/visionserve/internal/ocr"
)

// Sentinel errors; the HTTP transport maps them in problemFor.
var (
	// ErrNotFound: no such job for this principal.
	ErrNotFound = store.ErrNotFound
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
	// ErrUnavailable: the shared job store cannot be reached (retry).
	ErrUnavailable = store.ErrUnavailable
	// ErrTooManyUploads: the principal's tenant, or the server, is
	// reading as many submissions as it may at once.
	ErrTooManyUploads = errors.New("too many job uploads")
	// ErrNoResult: the pages of a result asked for were not read (they
	// failed, or a canceled job stopped before them), and the format has
	// nothing to show.
	ErrNoResult = errors.New("no result for these pages")
	// ErrInputsDeleted: a format shows a finished job's page images and
	// its input files are no longer stored (jobs.keep_inputs is off, or
	// they were evicted under jobs.max_kept_bytes).
	ErrInputsDeleted = errors.New("job inputs deleted")
	// ErrUploadTooSlow: a submission's upload fell below
	// jobs.min_upload_rate. It is a read deadline (os.ErrDeadlineExceeded)
	// of its own kind, so readers pass it on as they pass deadlines.
	ErrUploadTooSlow = fmt.Errorf("job upload too slow: %w", os.ErrDeadlineExceeded)
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
type State = store.State

// States. A job is queued, then running, then exactly one of the final
// three.
const (
	StateQueued    = store.StateQueued
	StateRunning   = store.StateRunning
	StateSucceeded = store.StateSucceeded
	StateFailed    = store.StateFailed // every page failed
	StateCanceled  = store.StateCanceled
)

var idPattern = regexp.MustCompile(`^job_[0-9a-f]{32}$`)

// ValidID reports whether s has the form of a job id.
func ValidID(s string) bool { return idPattern.MatchString(s) }

// Owner is who submits a job: the principal, which alone may see it, and
// its tenant, whose share of the queue it counts against.
type Owner struct {
	ID     string
	Tenant string
}

// share is the key of the owner's share: its tenant, or, for a principal
// without one, itself.
func (o Owner) share() string {
	if o.Tenant != "" {
		return "tenant:" + o.Tenant
	}
	return "principal:" + o.ID
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

// plan is what a job's tasks need to run, stored with the job (the
// store's Plan): the options, the files and the tasks over them.
type plan struct {
	Options OCROptions `json:"options"`
	Items   []item     `json:"items"`
	Tasks   []task     `json:"tasks"`
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

func statusOf(j *store.Job) Status {
	s := Status{
		ID: j.ID, State: j.State,
		Progress:  Progress{PagesTotal: j.PagesTotal, PagesDone: j.PagesDone, PagesFailed: j.PagesFailed},
		CreatedAt: j.Created, UpdatedAt: j.Updated,
		Links: Links{Self: "/v1/jobs/" + j.ID, Result: "/v1/jobs/" + j.ID + "/result"},
	}
	if !j.Finished.IsZero() {
		f, e := j.Finished, j.Expires
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

// Event is the body of a webhook: the Standard Webhooks envelope around
// the job's status.
type Event struct {
	Type      string    `json:"type"` // job.succeeded, job.failed, job.canceled
	Timestamp time.Time `json:"timestamp"`
	Data      Status    `json:"data"`
}
