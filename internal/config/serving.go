package config

import (
	"time"

	"github.com/visionserve/visionserve/internal/jobs"
	"github.com/visionserve/visionserve/internal/tlsconf"
)

// TLS configures HTTPS on both listeners (and, later, gRPC). Without a
// certificate the listeners speak plain HTTP.
type TLS struct {
	CertFile     string `yaml:"cert_file"`
	KeyFile      string `yaml:"key_file"`
	ClientCAFile string `yaml:"client_ca_file"` // set: mutual TLS
	ClientAuth   string `yaml:"client_auth"`    // require (default) or verify_if_given
}

// Runtime converts to the tlsconf package's form.
func (t TLS) Runtime() tlsconf.Config {
	return tlsconf.Config{CertFile: t.CertFile, KeyFile: t.KeyFile, ClientCAFile: t.ClientCAFile, ClientAuth: tlsconf.ClientAuth(t.ClientAuth)}
}

// Jobs configures asynchronous jobs (see docs/jobs.md).
type Jobs struct {
	Store                string        `yaml:"store"` // embedded (default) or postgres
	Dir                  string        `yaml:"dir"`   // embedded: "" = jobs disabled
	Postgres             string        `yaml:"postgres"`
	PostgresFile         string        `yaml:"postgres_file"`
	MaxItems             int           `yaml:"max_items"`
	MaxPages             int           `yaml:"max_pages"`
	MaxBytes             ByteSize      `yaml:"max_bytes"`
	MaxQueued            int           `yaml:"max_queued"`
	MaxPendingBytes      ByteSize      `yaml:"max_pending_bytes"`
	MaxConcurrentUploads int           `yaml:"max_concurrent_uploads"`
	SubmitTimeout        time.Duration `yaml:"submit_timeout"`
	MinUploadRate        ByteSize      `yaml:"min_upload_rate"` // per second
	UploadGrace          time.Duration `yaml:"upload_grace"`
	Tenant               JobsTenant    `yaml:"tenant"`
	Concurrency          int           `yaml:"concurrency"`
	Lease                time.Duration `yaml:"lease"`
	PollInterval         time.Duration `yaml:"poll_interval"`
	PageTimeout          time.Duration `yaml:"page_timeout"`
	Retention            time.Duration `yaml:"retention"`
	KeepInputs           bool          `yaml:"keep_inputs"`
	MaxKeptBytes         ByteSize      `yaml:"max_kept_bytes"`
	PDF                  JobsPDF       `yaml:"pdf"`
	Webhook              JobsWebhook   `yaml:"webhook"`
}

// JobsTenant is one tenant's share of the jobs bounds.
type JobsTenant struct {
	MaxQueued            int      `yaml:"max_queued"`
	MaxPendingBytes      ByteSize `yaml:"max_pending_bytes"`
	MaxConcurrentUploads int      `yaml:"max_concurrent_uploads"`
	MaxKeptBytes         ByteSize `yaml:"max_kept_bytes"`
}

// JobsPDF configures PDF rasterisation.
type JobsPDF struct {
	DPI         int      `yaml:"dpi"`
	MemoryLimit ByteSize `yaml:"memory_limit"`
	Pdftoppm    string   `yaml:"pdftoppm"`
	Pdfinfo     string   `yaml:"pdfinfo"`
}

// JobsWebhook configures completion webhooks.
type JobsWebhook struct {
	SecretFile           string        `yaml:"secret_file"`
	SecretEnv            string        `yaml:"secret_env"`
	MaxAttempts          int           `yaml:"max_attempts"`
	InitialBackoff       time.Duration `yaml:"initial_backoff"`
	MaxBackoff           time.Duration `yaml:"max_backoff"`
	Timeout              time.Duration `yaml:"timeout"`
	AllowPrivateNetworks bool          `yaml:"allow_private_networks"`
	Concurrency          int           `yaml:"concurrency"`
	PerDestination       int           `yaml:"per_destination"`
}

func jobsDefaults() Jobs {
	d := jobs.DefaultConfig()
	return Jobs{
		Store: d.Store, Dir: d.Dir, MaxItems: d.MaxItems, MaxPages: d.MaxPages, MaxBytes: ByteSize(d.MaxBytes), MaxQueued: d.MaxQueued,
		MaxPendingBytes: ByteSize(d.MaxPendingBytes), MaxConcurrentUploads: d.MaxConcurrentUploads, SubmitTimeout: d.SubmitTimeout,
		MinUploadRate: ByteSize(d.MinUploadRate), UploadGrace: d.UploadGrace,
		Tenant: JobsTenant{MaxQueued: d.Tenant.MaxQueued, MaxPendingBytes: ByteSize(d.Tenant.MaxPendingBytes), MaxConcurrentUploads: d.Tenant.MaxConcurrentUploads,
			MaxKeptBytes: ByteSize(d.Tenant.MaxKeptBytes)},
		Concurrency: d.Concurrency, Lease: d.Lease, PollInterval: d.PollInterval, PageTimeout: d.PageTimeout, Retention: d.Retention,
		KeepInputs: d.KeepInputs, MaxKeptBytes: ByteSize(d.MaxKeptBytes),
		PDF: JobsPDF{DPI: d.PDF.DPI, MemoryLimit: ByteSize(d.PDF.MemoryLimit), Pdftoppm: d.PDF.Pdftoppm, Pdfinfo: d.PDF.Pdfinfo},
		Webhook: JobsWebhook{
			SecretFile: d.Webhook.SecretFile, SecretEnv: d.Webhook.SecretEnv, MaxAttempts: d.Webhook.MaxAttempts,
			InitialBackoff: d.Webhook.InitialBackoff, MaxBackoff: d.Webhook.MaxBackoff, Timeout: d.Webhook.Timeout,
			AllowPrivateNetworks: d.Webhook.AllowPrivateNetworks, Concurrency: d.Webhook.Concurrency, PerDestination: d.Webhook.PerDestination,
		},
	}
}

// Runtime converts to the jobs package's form.
func (j Jobs) Runtime() jobs.Config {
	return jobs.Config{
		Store: j.Store, Dir: j.Dir, Postgres: j.Postgres, PostgresFile: j.PostgresFile, MaxItems: j.MaxItems, MaxPages: j.MaxPages, MaxBytes: int64(j.MaxBytes), MaxQueued: j.MaxQueued,
		MaxPendingBytes: int64(j.MaxPendingBytes), MaxConcurrentUploads: j.MaxConcurrentUploads, SubmitTimeout: j.SubmitTimeout,
		MinUploadRate: int64(j.MinUploadRate), UploadGrace: j.UploadGrace,
		Tenant: jobs.TenantShare{MaxQueued: j.Tenant.MaxQueued, MaxPendingBytes: int64(j.Tenant.MaxPendingBytes), MaxConcurrentUploads: j.Tenant.MaxConcurrentUploads,
			MaxKeptBytes: int64(j.Tenant.MaxKeptBytes)},
		Concurrency: j.Concurrency, Lease: j.Lease, PollInterval: j.PollInterval, PageTimeout: j.PageTimeout, Retention: j.Retention,
		KeepInputs: j.KeepInputs, MaxKeptBytes: int64(j.MaxKeptBytes),
		PDF: jobs.PDF{DPI: j.PDF.DPI, MemoryLimit: int64(j.PDF.MemoryLimit), Pdftoppm: j.PDF.Pdftoppm, Pdfinfo: j.PDF.Pdfinfo},
		Webhook: jobs.Webhook{
			SecretFile: j.Webhook.SecretFile, SecretEnv: j.Webhook.SecretEnv, MaxAttempts: j.Webhook.MaxAttempts,
			InitialBackoff: j.Webhook.InitialBackoff, MaxBackoff: j.Webhook.MaxBackoff, Timeout: j.Webhook.Timeout,
			AllowPrivateNetworks: j.Webhook.AllowPrivateNetworks, Concurrency: j.Webhook.Concurrency, PerDestination: j.Webhook.PerDestination,
		},
	}
}
