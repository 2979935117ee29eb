package config

import (
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/visionserve/visionserve/internal/modelrepo"
)

// Repository configures serving from a model repository of signed
// packages (docs/model-packages.md). With Dir empty the server serves the
// built-in models list instead.
type Repository struct {
	// Dir is the repository root, <dir>/<model>/<version>/ (--models).
	Dir string `yaml:"dir"`
	// DefaultModel answers requests that name no model; "" means the name
	// of the first entry of models (ocr-eng by default).
	DefaultModel string `yaml:"default_model"`
	// RescanInterval is how often the whole repository is listed again,
	// besides the filesystem watch.
	RescanInterval time.Duration `yaml:"rescan_interval"`
	// Watch turns the filesystem watch (inotify) on.
	Watch bool `yaml:"watch"`
	// StickyHeader names the request header whose value routes requests
	// stickily to one version; "" turns sticky routing off.
	StickyHeader string `yaml:"sticky_header"`
	// MaxParallelLoads bounds version loads in flight across models.
	MaxParallelLoads int   `yaml:"max_parallel_loads"`
	Trust            Trust `yaml:"trust"`
	// Policy is the version policy of models not listed in Policies.
	Policy   modelrepo.Policy            `yaml:"policy"`
	Policies map[string]modelrepo.Policy `yaml:"policies"`
	// TrafficFile (--traffic-file) holds the traffic weights the server
	// starts with: a JSON object mapping each model to the body of PUT
	// /v1/models/{model}/traffic, e.g. {"ocr-eng": {"weights": {"2": 100}}}.
	// A missing file means none; the Kubernetes operator writes it, so
	// that a pod that starts after a canary verdict serves by it at once.
	TrafficFile string `yaml:"traffic_file"`
	// Check is the isolated check every version passes before this
	// process loads it.
	Check Check `yaml:"check"`
	// StateDir keeps what the server remembers about the repository (the
	// versions that failed to load, so a restart does not try them
	// again); "" means <dir>/.visionserve.
	StateDir string `yaml:"state_dir"`
	// Import watches a drop folder of vendor zips (docs/regulated.md).
	Import Import `yaml:"import"`
}

// Import configures the drop folder: zips in the simple layout (model,
// config.json, checksum.sha256, RSA-PSS signature.sig) that appear in Dir
// are verified with TrustedKeys and published into the repository, signed
// with SigningKey, as `visionserve model import` does.
type Import struct {
	// Dir is the drop folder; "" turns the import off.
	Dir string `yaml:"dir"`
	// SigningKey is the repository's PEM private key (ECDSA or SM2); its
	// public key (or SigningCertificate's CA) must be in trust.
	SigningKey string `yaml:"signing_key"`
	// SigningCertificate and SigningChain sign with the certificate
	// method instead.
	SigningCertificate string `yaml:"signing_certificate"`
	SigningChain       string `yaml:"signing_chain"`
	// TrustedKeys are the vendors' PEM public keys (RSA for zips).
	TrustedKeys []string `yaml:"trusted_keys"`
	// ScanInterval is how often the folder is listed besides the
	// filesystem watch, and how long a zip must stay unchanged.
	ScanInterval time.Duration `yaml:"scan_interval"`
}

// Check configures the isolated check: each new version is first loaded
// and warmed up in a child process of the server's binary, within Timeout
// and MemoryLimit, and loaded by the server only if that succeeded.
type Check struct {
	// Disabled loads versions in the serving process directly: a model
	// file that crashes or hangs its engine then takes the server with
	// it. For debugging only.
	Disabled    bool          `yaml:"disabled"`
	Timeout     time.Duration `yaml:"timeout"`
	MemoryLimit ByteSize      `yaml:"memory_limit"`
}

// DefaultCheck returns the check's defaults.
func DefaultCheck() Check {
	return Check{Timeout: 2 * time.Minute, MemoryLimit: 4 << 30}
}

// EffectiveStateDir resolves StateDir.
func (r Repository) EffectiveStateDir() string {
	if r.StateDir != "" || r.Dir == "" {
		return r.StateDir
	}
	return filepath.Join(r.Dir, ".visionserve")
}

// Trust lists what signatures the server accepts.
type Trust struct {
	// Keys are PEM public key files (--trust-key, repeatable).
	Keys []string `yaml:"keys"`
	// CACertificates are PEM files of trusted CA certificates (--trust-ca).
	CACertificates []string `yaml:"ca_certificates"`
	// AllowUnsigned admits packages without model.sig (--allow-unsigned).
	AllowUnsigned bool `yaml:"allow_unsigned"`
}

// DefaultStickyHeader is the default request header for sticky routing.
const DefaultStickyHeader = "X-Routing-Key"

// DefaultRepository returns the repository defaults (no repository).
func DefaultRepository() Repository {
	return Repository{
		RescanInterval:   30 * time.Second,
		Watch:            true,
		StickyHeader:     DefaultStickyHeader,
		MaxParallelLoads: 2,
		Policy:           modelrepo.DefaultPolicy(),
		Check:            DefaultCheck(),
		Import:           Import{ScanInterval: 5 * time.Second},
	}
}

// DefaultModelName resolves Repository.DefaultModel.
func (c Config) DefaultModelName() string {
	if c.Repository.DefaultModel != "" {
		return c.Repository.DefaultModel
	}
	if len(c.Models) > 0 {
		return c.Models[0].Name
	}
	return ""
}

func (r Repository) validate(add func(string, ...any)) {
	if r.RescanInterval <= 0 {
		add("repository.rescan_interval must be positive, got %v", r.RescanInterval)
	}
	if r.MaxParallelLoads < 1 {
		add("repository.max_parallel_loads must be >= 1, got %d", r.MaxParallelLoads)
	}
	if r.Check.Timeout <= 0 {
		add("repository.check.timeout must be positive, got %v", r.Check.Timeout)
	}
	if r.Check.MemoryLimit < 64<<20 {
		add("repository.check.memory_limit must be at least 64MiB, got %d bytes", r.Check.MemoryLimit)
	}
	if r.DefaultModel != "" && !modelrepo.ValidName(r.DefaultModel) {
		add("repository.default_model %q is not a valid model name", r.DefaultModel)
	}
	if h := r.StickyHeader; h != "" && (strings.ContainsAny(h, " :\t\r\n") || http.CanonicalHeaderKey(h) == "") {
		add("repository.sticky_header %q is not a header name", h)
	}
	if err := r.Policy.Validate(); err != nil {
		add("repository.policy: %v", err)
	}
	for _, name := range sortedKeys(r.Policies) {
		if !modelrepo.ValidName(name) {
			add("repository.policies: %q is not a valid model name", name)
		}
		if err := r.Policies[name].Validate(); err != nil {
			add("repository.policies.%s: %v", name, err)
		}
	}
	for _, k := range append(slices.Clone(r.Trust.Keys), r.Trust.CACertificates...) {
		if strings.TrimSpace(k) == "" {
			add("repository.trust: empty file name")
		}
	}
	if r.TrafficFile != "" && r.Dir == "" {
		add("repository.traffic_file needs repository.dir: traffic weights split a repository's versions")
	}
	r.Import.validate(r.Dir, add)
}

func (i Import) validate(repoDir string, add func(string, ...any)) {
	if i.Dir == "" {
		return
	}
	switch {
	case repoDir == "":
		add("repository.import.dir needs repository.dir, where imports are published")
	case i.SigningKey == "":
		add("repository.import.signing_key is required: imported packages are signed with the repository's key")
	case len(i.TrustedKeys) == 0:
		add("repository.import.trusted_keys is required: the vendors' RSA public keys")
	case i.SigningChain != "" && i.SigningCertificate == "":
		add("repository.import.signing_chain needs signing_certificate")
	case i.ScanInterval <= 0:
		add("repository.import.scan_interval must be positive, got %v", i.ScanInterval)
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// String summarises the repository settings for the start-up log.
func (r Repository) String() string {
	if r.Dir == "" {
		return "none (built-in models)"
	}
	return fmt.Sprintf("%s (trust: %d keys, %d CA files, allow_unsigned=%v; policy %+v)", r.Dir, len(r.Trust.Keys), len(r.Trust.CACertificates), r.Trust.AllowUnsigned, r.Policy)
}
