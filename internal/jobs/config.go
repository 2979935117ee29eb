package jobs

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/visionserve/visionserve/internal/jobs/store"
	"github.com/visionserve/visionserve/internal/jobs/webhook"
)

// Config configures jobs (the file's jobs section, converted by the
// config package).
type Config struct {
	// Store is StoreEmbedded (a bbolt file in Dir, one process) or
	// StorePostgres (shared by every replica pointing at the database).
	Store string
	// Dir holds the embedded job database (jobs.db) and the temporary
	// files of PDFs being rendered. Empty with the embedded store: jobs
	// are disabled.
	Dir string
	// Postgres is the PostgreSQL connection string without a password
	// (PGPASSWORD or a .pgpass file give it, as for face.gallery.postgres),
	// or PostgresFile names a file holding the whole connection string (a
	// mounted Secret). One of the two with StorePostgres.
	Postgres     string
	PostgresFile string
	// MaxItems is the most files one job may carry.
	MaxItems int
	// MaxPages is the most pages (images, TIFF frames, PDF pages) per job.
	MaxPages int
	// MaxBytes bounds one submission's body.
	MaxBytes int64
	// MaxQueued is the most unfinished jobs; more are refused with 429.
	MaxQueued int
	// MaxPendingBytes bounds the input bytes stored for unfinished jobs.
	MaxPendingBytes int64
	// MaxConcurrentUploads bounds submissions being read at once (each
	// may hold MaxBytes in memory); more are refused with 429.
	MaxConcurrentUploads int
	// SubmitTimeout bounds reading one submission.
	SubmitTimeout time.Duration
	// MinUploadRate is the average a submission's upload must keep (bytes
	// per second) once UploadGrace has passed; a slower one is cut (408),
	// so that trickling bytes cannot hold an upload slot for minutes.
	MinUploadRate int64
	UploadGrace   time.Duration
	// Tenant is one tenant's share of the bounds above (a principal
	// without a tenant is a tenant of its own): the most of them one
	// tenant may hold, each capped by the server's own bound.
	Tenant TenantShare
	// Concurrency is how many tasks (an image, or a PDF page) this
	// process runs at once, on the shared workers, yielding to
	// interactive requests.
	Concurrency int
	// Lease is how long a claimed task is a process's without renewal
	// (renewed every third of it): a process that dies loses its tasks
	// to the others after at most this long.
	Lease time.Duration
	// PollInterval is how often an idle process asks the store for work
	// submitted through other replicas.
	PollInterval time.Duration
	// PageTimeout bounds one page's recognition (or one PDF page's
	// rasterisation).
	PageTimeout time.Duration
	// Retention is how long a finished job and its result are kept.
	Retention time.Duration
	// KeepInputs keeps a job's input files as long as the job, so that
	// its result can be rendered over its page images (format=pdf);
	// false deletes them when the job ends, and those formats are
	// refused for finished jobs.
	KeepInputs bool
	// MaxKeptBytes bounds the input bytes kept for finished jobs (in the
	// store: fleet-wide with PostgreSQL). A job's end that would pass it
	// deletes the kept inputs of the oldest finished jobs until it fits
	// (their pdf and pdfa results are then refused, as without
	// KeepInputs). Zero keeps nothing once a job ends.
	MaxKeptBytes int64
	PDF          PDF
	Webhook      Webhook
}

// TenantShare bounds what one tenant may hold at once.
type TenantShare struct {
	MaxQueued            int
	MaxPendingBytes      int64
	MaxConcurrentUploads int
	// MaxKeptBytes is the tenant's part of Config.MaxKeptBytes: past it,
	// a job's end deletes the tenant's own oldest kept inputs, so that
	// one tenant's churn does not evict everyone else's.
	MaxKeptBytes int64
}

// PDF configures rasterisation.
type PDF struct {
	// DPI is the resolution pages are rendered at (lowered per page when
	// the page would exceed limits.max_pixels).
	DPI int
	// MemoryLimit bounds the renderer's address space (bytes).
	MemoryLimit int64
	// Pdftoppm and Pdfinfo are the poppler-utils commands.
	Pdftoppm string
	Pdfinfo  string
}

// Webhook configures completion notifications.
type Webhook struct {
	// SecretFile or SecretEnv holds the signing secret: "whsec_" followed
	// by base64 (Standard Webhooks form), or any string of at least 32
	// bytes. Without one, submissions asking for a webhook are refused.
	SecretFile string
	SecretEnv  string
	// MaxAttempts before a delivery is given up (and logged).
	MaxAttempts int
	// InitialBackoff doubles per failed attempt, up to MaxBackoff, with
	// jitter.
	InitialBackoff time.Duration
	MaxBackoff     time.Duration
	// Timeout bounds one delivery attempt.
	Timeout time.Duration
	// AllowPrivateNetworks lets webhooks reach loopback, private and
	// link-local addresses. Off by default: a client must not be able to
	// make the server call its own neighbours.
	AllowPrivateNetworks bool
	// Concurrency is how many deliveries a process makes at once.
	Concurrency int
	// PerDestination bounds the deliveries in flight to one receiver
	// (scheme, host, port) across all replicas, so a slow receiver
	// delays no one else's webhooks.
	PerDestination int
}

// DefaultConfig returns the documented defaults (jobs disabled: no Dir).
func DefaultConfig() Config {
	return Config{
		Store:                StoreEmbedded,
		MaxItems:             100,
		MaxPages:             500,
		MaxBytes:             256 << 20,
		MaxQueued:            100,
		MaxPendingBytes:      2 << 30,
		MaxConcurrentUploads: 4,
		SubmitTimeout:        5 * time.Minute,
		MinUploadRate:        32 << 10,
		UploadGrace:          10 * time.Second,
		Tenant:               TenantShare{MaxQueued: 50, MaxPendingBytes: 1 << 30, MaxConcurrentUploads: 2, MaxKeptBytes: 1 << 30},
		Concurrency:          1,
		Lease:                30 * time.Second,
		PollInterval:         time.Second,
		PageTimeout:          2 * time.Minute,
		Retention:            24 * time.Hour,
		KeepInputs:           true,
		MaxKeptBytes:         2 << 30,
		PDF:                  PDF{DPI: 300, MemoryLimit: 1 << 30, Pdftoppm: "pdftoppm", Pdfinfo: "pdfinfo"},
		Webhook: Webhook{
			SecretEnv:      "VISIONSERVE_WEBHOOK_SECRET",
			MaxAttempts:    12,
			InitialBackoff: time.Second,
			MaxBackoff:     time.Hour,
			Timeout:        10 * time.Second,
			Concurrency:    8,
			PerDestination: 2,
		},
	}
}

// Store kinds.
const (
	StoreEmbedded = "embedded"
	StorePostgres = "postgres"
)

// Enabled reports whether jobs are served: with a shared store, or with
// a directory for the embedded one.
func (c Config) Enabled() bool { return c.Store == StorePostgres || c.Dir != "" }

// DSN returns the PostgreSQL connection string: Postgres, or the contents
// of PostgresFile.
func (c Config) DSN() (string, error) {
	if c.PostgresFile == "" {
		return c.Postgres, nil
	}
	b, err := os.ReadFile(c.PostgresFile)
	if err != nil {
		return "", fmt.Errorf("jobs.postgres_file: %w", err)
	}
	dsn := strings.TrimSpace(string(b))
	if dsn == "" {
		return "", fmt.Errorf("jobs.postgres_file %s is empty", c.PostgresFile)
	}
	return dsn, nil
}

// Validate checks the section without touching the disk.
func (c Config) Validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	for name, v := range map[string]int64{
		"max_items": int64(c.MaxItems), "max_pages": int64(c.MaxPages), "max_bytes": c.MaxBytes,
		"max_queued": int64(c.MaxQueued), "max_pending_bytes": c.MaxPendingBytes, "concurrency": int64(c.Concurrency),
		"max_concurrent_uploads": int64(c.MaxConcurrentUploads), "min_upload_rate": c.MinUploadRate,
		"tenant.max_queued": int64(c.Tenant.MaxQueued), "tenant.max_pending_bytes": c.Tenant.MaxPendingBytes,
		"tenant.max_concurrent_uploads": int64(c.Tenant.MaxConcurrentUploads), "tenant.max_kept_bytes": c.Tenant.MaxKeptBytes,
		"pdf.dpi": int64(c.PDF.DPI), "pdf.memory_limit": c.PDF.MemoryLimit, "webhook.max_attempts": int64(c.Webhook.MaxAttempts),
		"webhook.concurrency": int64(c.Webhook.Concurrency), "webhook.per_destination": int64(c.Webhook.PerDestination),
	} {
		if v <= 0 {
			add("%s must be positive, got %d", name, v)
		}
	}
	for name, d := range map[string]time.Duration{
		"page_timeout": c.PageTimeout, "retention": c.Retention, "submit_timeout": c.SubmitTimeout, "webhook.initial_backoff": c.Webhook.InitialBackoff,
		"webhook.max_backoff": c.Webhook.MaxBackoff, "webhook.timeout": c.Webhook.Timeout, "lease": c.Lease, "poll_interval": c.PollInterval,
		"upload_grace": c.UploadGrace,
	} {
		if d <= 0 {
			add("%s must be positive, got %v", name, d)
		}
	}
	if c.MaxKeptBytes < 0 {
		add("max_kept_bytes must be 0 (keep no inputs once a job ends) or positive, got %d", c.MaxKeptBytes)
	}
	if c.Lease > 0 && c.Lease < 3*time.Second {
		add("lease %v is below 3s: renewals every third of it would race the store", c.Lease)
	}
	switch c.Store {
	case StoreEmbedded:
	case StorePostgres:
		if (c.Postgres == "") == (c.PostgresFile == "") {
			add("store postgres: set one of postgres (a connection string without a password) and postgres_file (a file holding the connection string)")
		}
	default:
		add("store %q: use %s or %s", c.Store, StoreEmbedded, StorePostgres)
	}
	if c.PDF.DPI > 1200 {
		add("pdf.dpi %d is above 1200", c.PDF.DPI)
	}
	if c.MaxPendingBytes > 0 && c.MaxBytes > c.MaxPendingBytes {
		add("max_bytes (%d) exceeds max_pending_bytes (%d): no job could ever be stored", c.MaxBytes, c.MaxPendingBytes)
	}
	if c.Tenant.MaxPendingBytes > 0 && c.MaxBytes > c.Tenant.MaxPendingBytes {
		add("max_bytes (%d) exceeds tenant.max_pending_bytes (%d): no tenant could store a job of max_bytes", c.MaxBytes, c.Tenant.MaxPendingBytes)
	}
	if c.Webhook.SecretFile != "" && c.Webhook.SecretEnv != "" && c.Webhook.SecretEnv != DefaultConfig().Webhook.SecretEnv {
		add("webhook: set secret_file or secret_env, not both")
	}
	return errors.Join(errs...)
}

// LoadSecret returns the webhook signing key, or nil when none is set.
func (w Webhook) LoadSecret() ([]byte, error) {
	var raw string
	switch {
	case w.SecretFile != "":
		b, err := os.ReadFile(w.SecretFile)
		if err != nil {
			return nil, fmt.Errorf("webhook secret: %w", err)
		}
		raw = strings.TrimSpace(string(b))
	case w.SecretEnv != "":
		raw = strings.TrimSpace(os.Getenv(w.SecretEnv))
	}
	if raw == "" {
		return nil, nil
	}
	key, err := webhook.ParseSecret(raw)
	if err != nil {
		return nil, fmt.Errorf("webhook secret: %w", err)
	}
	return key, nil
}

// delivery is the deliverer's part of the section.
func (w Webhook) delivery() webhook.Config {
	return webhook.Config{MaxAttempts: w.MaxAttempts, InitialBackoff: w.InitialBackoff, MaxBackoff: w.MaxBackoff, Timeout: w.Timeout,
		AllowPrivateNetworks: w.AllowPrivateNetworks, Concurrency: w.Concurrency, PerDestination: w.PerDestination}
}

// storeOptions are the store's options from the section (the manager
// adds its hooks).
func (c Config) storeOptions() store.Options {
	return store.Options{Retention: c.Retention, KeepInputs: c.KeepInputs && c.MaxKeptBytes > 0,
		MaxKeptBytes: c.MaxKeptBytes, TenantMaxKeptBytes: min(c.Tenant.MaxKeptBytes, c.MaxKeptBytes)}
}

// limits are the store's bounds on unfinished jobs: the server's, and a
// tenant's share of them.
func (c Config) limits() store.Limits {
	return store.Limits{MaxJobs: c.MaxQueued, MaxBytes: c.MaxPendingBytes,
		TenantMaxJobs: min(c.Tenant.MaxQueued, c.MaxQueued), TenantMaxBytes: min(c.Tenant.MaxPendingBytes, c.MaxPendingBytes)}
}

// limitDetail explains a refusal by the store's limits, naming the key.
func (c Config) limitDetail(le *store.LimitError) string {
	switch {
	case le.Tenant && le.What == "bytes":
		return fmt.Sprintf("your unfinished jobs hold %d bytes of input; this one would pass your share of %d (jobs.tenant.max_pending_bytes)", le.Used, le.Limit)
	case le.Tenant:
		return fmt.Sprintf("you have %d unfinished jobs, your share of the queue (jobs.tenant.max_queued)", le.Used)
	case le.What == "bytes":
		return fmt.Sprintf("unfinished jobs hold %d bytes of input; this one would pass the limit of %d (jobs.max_pending_bytes)", le.Used, le.Limit)
	}
	return fmt.Sprintf("%d jobs are unfinished, the most this server keeps (jobs.max_queued)", le.Used)
}

// validateWebhookURL checks a client-supplied webhook URL's form (its
// address is checked when connecting).
func validateWebhookURL(s string) error {
	if len(s) > 2048 {
		return errors.New("webhook_url is longer than 2048 bytes")
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		return fmt.Errorf("webhook_url %q: use an absolute http or https URL without credentials", s)
	}
	return nil
}
