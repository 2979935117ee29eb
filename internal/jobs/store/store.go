package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"net/url"
	"strings"
	"time"

	"github.com/visionserve/visionserve/internal/keys"
)

// Sentinel errors.
var (
	// ErrNotFound: no job (or delivery) with that id.
	ErrNotFound = errors.New("job not found")
	// ErrLimit: storing the job would pass a bound (see LimitError).
	ErrLimit = errors.New("job limit reached")
	// ErrUnavailable wraps failures to reach a shared store (network,
	// server down): a condition to retry, not a bad request.
	ErrUnavailable = errors.New("job store unavailable")
)

// LimitError says which bound a new job would pass; it wraps ErrLimit.
type LimitError struct {
	// Tenant is true for the tenant's share, false for the whole store.
	Tenant bool
	// What is "jobs" (unfinished jobs) or "bytes" (their stored input).
	What string
	// Used is what is held now; Limit the bound.
	Used, Limit int64
}

func (e *LimitError) Error() string {
	who := "all tenants'"
	if e.Tenant {
		who = "the tenant's"
	}
	if e.What == "bytes" {
		return fmt.Sprintf("%s unfinished jobs hold %d bytes of input; the limit is %d", who, e.Used, e.Limit)
	}
	return fmt.Sprintf("%s unfinished jobs number %d, the limit", who, e.Used)
}

// Unwrap lets errors.Is match ErrLimit.
func (e *LimitError) Unwrap() error { return ErrLimit }

// State is a job's lifecycle state.
type State string

// States. A job is queued, then running (from its first claim), then
// exactly one of the final three.
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

// Job is a job's record. The store reads the fields it queries; Plan is
// the caller's, stored and returned as it is.
type Job struct {
	ID string `json:"id"`
	// Owner is the principal that submitted the job: only it may see it.
	Owner string `json:"owner"`
	// Tenant is the key of the share the job counts against and is
	// scheduled under: the principal's tenant, or its id when it has none.
	Tenant string `json:"tenant"`
	State  State  `json:"state"`
	// Tasks is the number of units of work, claimed and recorded one by
	// one; task i's pages are recorded together.
	Tasks       int   `json:"tasks"`
	PagesTotal  int   `json:"pages_total"`
	PagesDone   int   `json:"pages_done"` // including failed pages
	PagesFailed int   `json:"pages_failed"`
	InputBytes  int64 `json:"input_bytes"`
	// IdempotencyKey is unique per owner while the job exists;
	// Fingerprint identifies the request it was given with.
	IdempotencyKey string    `json:"idempotency_key,omitempty"`
	Fingerprint    string    `json:"fingerprint,omitempty"`
	WebhookURL     string    `json:"webhook_url,omitempty"`
	Created        time.Time `json:"created"`
	Updated        time.Time `json:"updated"`
	Finished       time.Time `json:"finished,omitzero"`
	Expires        time.Time `json:"expires,omitzero"`
	// Plan describes the tasks for whoever runs them (opaque JSON).
	Plan json.RawMessage `json:"plan,omitempty"`
}

// Page is one page of a task's result: its position in the job, whether
// it failed, and the caller's encoding of it.
type Page struct {
	Index  int
	Failed bool
	Data   []byte
}

// Claim is a task handed to a worker under a lease. Token names the
// lease; a new claim of the same task gets another.
type Claim struct {
	Job   *Job
	Task  int
	Token string
	Until time.Time
}

// Delivery is a webhook in the outbox, kept until it succeeds or is given
// up. ID is the Webhook-Id: the same on every attempt.
type Delivery struct {
	ID       string    `json:"id"`
	JobID    string    `json:"job_id"`
	URL      string    `json:"url"`
	Body     []byte    `json:"body"`
	Attempts int       `json:"attempts"`
	Next     time.Time `json:"next"`
	Created  time.Time `json:"created"`
	// Token names the lease of a claimed delivery.
	Token string `json:"-"`
}

// Limits bound what unfinished jobs may hold, in all and per tenant.
// Zero means no bound.
type Limits struct {
	MaxJobs        int
	MaxBytes       int64
	TenantMaxJobs  int
	TenantMaxBytes int64
}

// Stats count the unfinished jobs, and the inputs kept for final ones.
type Stats struct {
	Jobs  int
	Bytes int64
	// KeptBytes is the input kept for final jobs (Options.KeepInputs).
	KeptBytes int64
}

// Jobs are the verbs of a job's life as its owner sees it.
type Jobs interface {
	// Create stores j (queued, with j.Tasks tasks to run) and its input
	// files, unless j's owner already has a job under j's idempotency
	// key: that job is returned instead and nothing is stored. A job
	// that would pass lim is refused with a *LimitError.
	Create(ctx context.Context, j *Job, inputs [][]byte, lim Limits) (existing *Job, err error)
	// Get returns a job, or ErrNotFound.
	Get(ctx context.Context, id string) (*Job, error)
	// Idempotent returns owner's job under key, or nil.
	Idempotent(ctx context.Context, owner, key string) (*Job, error)
	// Input returns input file item of job id (inputs are deleted when
	// the job ends, unless Options.KeepInputs keeps them with the job).
	Input(ctx context.Context, id string, item int) ([]byte, error)
	// Pages yields the recorded pages of job id in index order, a few at
	// a time: no transaction stays open while the caller consumes them.
	Pages(ctx context.Context, id string) iter.Seq2[Page, error]
	// Cancel ends an unfinished job as canceled (its inputs deleted, its
	// webhook queued); changed is false for a job already final.
	Cancel(ctx context.Context, id string, now time.Time) (j *Job, changed bool, err error)
	// Delete cancels a job if it is unfinished, then removes it and
	// everything stored under it except a queued webhook.
	Delete(ctx context.Context, id string, now time.Time) (j *Job, canceled bool, err error)
	// Expire deletes the final jobs whose Expires is before now.
	Expire(ctx context.Context, now time.Time) (int, error)
	// Stats counts the unfinished jobs and their stored input, and the
	// input kept for final jobs.
	Stats(ctx context.Context) (Stats, error)
}

// Work hands tasks to workers.
type Work interface {
	// Claim leases the next task to run until now+lease, fairly across
	// tenants; nil when there is none. The job becomes running.
	Claim(ctx context.Context, worker string, now time.Time, lease time.Duration) (*Claim, error)
	// Renew extends worker's leases named by tokens until until; lost
	// are the tokens whose task is no longer this worker's to run
	// (recorded, canceled, or claimed by another after the lease expired).
	Renew(ctx context.Context, worker string, tokens []string, until time.Time) (lost []string, err error)
	// Release gives leased tasks back at once (a worker shutting down).
	Release(ctx context.Context, tokens ...string) error
	// Complete records c's pages with the progress they add, unless the
	// task is recorded already or the job is final (then nothing
	// changes). When they are the job's last, the job ends in the same
	// transaction and is returned: succeeded, or failed when every page
	// failed.
	Complete(ctx context.Context, c *Claim, pages []Page, now time.Time) (finished *Job, err error)
}

// Outbox hands webhook deliveries to workers.
type Outbox interface {
	// ClaimDelivery leases the next due delivery whose destination has
	// fewer than perDestination deliveries leased; nil when none.
	ClaimDelivery(ctx context.Context, worker string, now time.Time, lease time.Duration, perDestination int) (*Delivery, error)
	// NextDelivery returns when the next delivery is due; ok is false
	// when the outbox is empty.
	NextDelivery(ctx context.Context) (next time.Time, ok bool, err error)
	// DeliveryDone removes a delivery (delivered or given up).
	DeliveryDone(ctx context.Context, d *Delivery) error
	// DeliveryRetry records a failed attempt (d.Attempts, d.Next) and
	// releases the lease.
	DeliveryRetry(ctx context.Context, d *Delivery) error
}

// Store is a whole job store.
type Store interface {
	Jobs
	Work
	Outbox
	Close() error
}

// Options configure either store.
type Options struct {
	// Keys seals the payloads at rest (package keys); zero: in clear. A
	// store whose keyring Keys cannot open, or which has a keyring when
	// Keys is zero, does not open.
	Keys keys.Config
	// Codec, when set, replaces the keyring's codec (tests).
	Codec Codec
	// Event returns the webhook body for a job that has just ended
	// (called inside the transaction that ends it, for jobs with a
	// WebhookURL); nil: the job record as JSON.
	Event func(j *Job) ([]byte, error)
	// Retention is how long a final job is kept (its Expires).
	Retention time.Duration
	// KeepInputs keeps a job's input files for as long as the job (until
	// it is deleted or expires), so that its result can be shown with its
	// page images; otherwise they are deleted when the job ends.
	KeepInputs bool
	// MaxKeptBytes bounds the input bytes kept for final jobs, and
	// TenantMaxKeptBytes one tenant's part of them; zero: no bound. When
	// a job's end would pass either, the kept inputs of the oldest final
	// jobs are deleted until it fits: the tenant's own while it is over
	// its share, then anyone's while the whole is over (the ended job's
	// own last, when it alone is too big).
	MaxKeptBytes, TenantMaxKeptBytes int64
	// Evicted, when set, is told how many jobs' kept inputs were deleted
	// to make room, once the transaction that deleted them commits.
	Evicted func(n int)
}

func (o Options) withDefaults() Options {
	if o.Event == nil {
		o.Event = func(j *Job) ([]byte, error) { return json.Marshal(j) }
	}
	if o.Evicted == nil {
		o.Evicted = func(int) {}
	}
	return o
}

// Codec is the one seam every payload passes on its way into and out of
// a store: input files and page results. ref names the payload's place
// ("input/<job>/<item>", "page/<job>/<index>") so that a sealed payload
// is bound to it. A *keys.Ring is one.
type Codec interface {
	Seal(ref string, b []byte) ([]byte, error)
	Open(ref string, b []byte) ([]byte, error)
}

// keyDomain names the job stores' records to package keys.
const keyDomain = "jobs"

// openKeys opens the store's keyring with o.Keys and makes it the codec,
// unless a codec is set.
func (o *Options) openKeys(ctx context.Context, kr keys.Keyring, recs keys.Records) (*keys.Ring, error) {
	if o.Codec != nil {
		return nil, nil
	}
	ring, err := keys.Open(ctx, o.Keys, keys.Store{Domain: keyDomain, Keyring: kr, Records: recs})
	if err != nil {
		return nil, err
	}
	o.Codec = ring
	return ring, nil
}

func inputRef(id string, item int) string { return fmt.Sprintf("input/%s/%d", id, item) }
func pageRef(id string, index int) string { return fmt.Sprintf("page/%s/%d", id, index) }

// end moves j to a final state at now, to be kept for retention, and
// returns the outbox record announcing it (nil without a webhook).
func (o Options) end(j *Job, state State, now time.Time) (*Delivery, error) {
	j.State, j.Updated, j.Finished, j.Expires = state, now, now, now.Add(o.Retention)
	if j.WebhookURL == "" {
		return nil, nil
	}
	body, err := o.Event(j)
	if err != nil {
		return nil, err
	}
	return newDelivery(j, body, now), nil
}

// keptInput is a final job whose inputs are kept.
type keptInput struct {
	id, tenant string
	bytes      int64
}

// fitKept deletes kept inputs until those kept fit the bounds: all is
// every tenant's total and mine tenant's, both counting the job that has
// just ended. While the tenant is over its share its own oldest go, then
// anyone's oldest while the whole is over. oldest returns the oldest
// kept job (of tenant; "": of anyone) not yet dropped, ok false when
// none is left; drop deletes its inputs. It returns the jobs dropped.
func (o Options) fitKept(tenant string, all, mine int64, oldest func(tenant string) (k keptInput, ok bool, err error), drop func(keptInput) error) ([]string, error) {
	var dropped []string
	evict := func(of string) (bool, error) {
		k, ok, err := oldest(of)
		if err != nil || !ok {
			return false, err
		}
		if err := drop(k); err != nil {
			return false, err
		}
		dropped = append(dropped, k.id)
		all -= k.bytes
		if k.tenant == tenant {
			mine -= k.bytes
		}
		return true, nil
	}
	for o.TenantMaxKeptBytes > 0 && mine > o.TenantMaxKeptBytes {
		if ok, err := evict(tenant); err != nil || !ok {
			return dropped, err
		}
	}
	for o.MaxKeptBytes > 0 && all > o.MaxKeptBytes {
		if ok, err := evict(""); err != nil || !ok {
			return dropped, err
		}
	}
	return dropped, nil
}

// overKept reports whether kept totals all and mine (a tenant's) pass
// the bounds.
func (o Options) overKept(all, mine int64) bool {
	return (o.MaxKeptBytes > 0 && all > o.MaxKeptBytes) || (o.TenantMaxKeptBytes > 0 && mine > o.TenantMaxKeptBytes)
}

// finalState is the state of a job all of whose pages are recorded.
func finalState(j *Job) State {
	if j.PagesFailed == j.PagesTotal {
		return StateFailed
	}
	return StateSucceeded
}

// newDelivery is the outbox record announcing j's end.
func newDelivery(j *Job, body []byte, now time.Time) *Delivery {
	return &Delivery{ID: NewID("msg_"), JobID: j.ID, URL: j.WebhookURL, Body: body, Next: now, Created: now}
}

// NewID returns prefix and 32 random hex digits.
func NewID(prefix string) string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// Destination is the key per-destination delivery limits count under:
// the URL's scheme, host and port, lower-cased.
func Destination(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	return strings.ToLower(u.Scheme + "://" + u.Hostname() + ":" + port)
}

// checkLimits refuses a job of bytes for tenant when the unfinished jobs
// (all, and the tenant's) leave no room for it.
func checkLimits(lim Limits, all, tenant Stats, bytes int64) error {
	switch {
	case lim.MaxJobs > 0 && all.Jobs >= lim.MaxJobs:
		return &LimitError{What: "jobs", Used: int64(all.Jobs), Limit: int64(lim.MaxJobs)}
	case lim.TenantMaxJobs > 0 && tenant.Jobs >= lim.TenantMaxJobs:
		return &LimitError{Tenant: true, What: "jobs", Used: int64(tenant.Jobs), Limit: int64(lim.TenantMaxJobs)}
	case lim.MaxBytes > 0 && all.Bytes+bytes > lim.MaxBytes:
		return &LimitError{What: "bytes", Used: all.Bytes, Limit: lim.MaxBytes}
	case lim.TenantMaxBytes > 0 && tenant.Bytes+bytes > lim.TenantMaxBytes:
		return &LimitError{Tenant: true, What: "bytes", Used: tenant.Bytes, Limit: lim.TenantMaxBytes}
	}
	return nil
}
