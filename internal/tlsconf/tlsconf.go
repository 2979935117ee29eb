package tlsconf

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// ClientAuth says what the server asks of clients when a client CA is set.
type ClientAuth string

// Client authentication modes.
const (
	// ClientAuthRequire: every client presents a certificate that chains to
	// the client CA (mutual TLS). The default when a client CA is set.
	ClientAuthRequire ClientAuth = "require"
	// ClientAuthVerifyIfGiven: a certificate is optional, but one that is
	// presented must chain to the client CA.
	ClientAuthVerifyIfGiven ClientAuth = "verify_if_given"
)

// DefaultCheckInterval is how often, at most, a handshake looks at the
// files for a new certificate.
const DefaultCheckInterval = 10 * time.Second

// ErrConfig marks an invalid TLS configuration (missing files, a key that
// does not match its certificate, a CA file without certificates).
var ErrConfig = errors.New("tls configuration")

// Config names the files; the zero value means "no TLS".
type Config struct {
	CertFile     string     // PEM certificate chain, leaf first
	KeyFile      string     // PEM private key of the leaf
	ClientCAFile string     // PEM CA certificates for client certificates; "" = no mTLS
	ClientAuth   ClientAuth // "" = require (when ClientCAFile is set)
}

// Enabled reports whether a certificate is configured.
func (c Config) Enabled() bool { return c.CertFile != "" || c.KeyFile != "" }

// Validate checks the combination of fields, not the files.
func (c Config) Validate() error {
	var errs []error
	if (c.CertFile == "") != (c.KeyFile == "") {
		errs = append(errs, errors.New("cert_file and key_file must be set together"))
	}
	if c.ClientCAFile != "" && c.CertFile == "" {
		errs = append(errs, errors.New("client_ca_file needs cert_file and key_file (mTLS runs over TLS)"))
	}
	switch c.ClientAuth {
	case "", ClientAuthRequire, ClientAuthVerifyIfGiven:
	default:
		errs = append(errs, fmt.Errorf("client_auth %q: use require or verify_if_given", c.ClientAuth))
	}
	if c.ClientAuth != "" && c.ClientCAFile == "" {
		errs = append(errs, errors.New("client_auth needs client_ca_file"))
	}
	return errors.Join(errs...)
}

// Options tune a Reloader; the zero value is usable.
type Options struct {
	Log *slog.Logger
	// Metrics receives reload outcomes; nil: none.
	Metrics *Metrics
	// CheckInterval: 0 means DefaultCheckInterval; negative means every
	// handshake (tests).
	CheckInterval time.Duration
	// Now is the clock (tests); nil: time.Now.
	Now func() time.Time
}

// Reloader serves the current certificate material to handshakes.
type Reloader struct {
	cfg  Config
	opts Options
	log  *slog.Logger

	cur       atomic.Pointer[material]
	nextCheck atomic.Int64 // unix nanoseconds

	mu sync.Mutex // serialises reloads
	// lastBad is the content of a set of files that failed to parse, so a
	// half-written rotation is logged once, not at every check.
	lastBad []byte
}

// material is one consistent generation of the files, with the tls.Config
// built from it (built once per generation, shared by every handshake).
type material struct {
	raw    []byte // cert || key || ca, to detect changes
	config *tls.Config
	leaf   *x509.Certificate
}

// New loads the files once; an error here is a startup error.
func New(cfg Config, opts Options) (*Reloader, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	if !cfg.Enabled() {
		return nil, fmt.Errorf("%w: no certificate configured", ErrConfig)
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.CheckInterval == 0 {
		opts.CheckInterval = DefaultCheckInterval
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	r := &Reloader{cfg: cfg, opts: opts, log: opts.Log.With("component", "tls")}
	f, err := r.readFiles()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	m, err := r.build(f)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	r.publish(m)
	return r, nil
}

// TLSConfig returns the configuration to give a listener or an
// http.Server. Its handshakes use the newest material.
func (r *Reloader) TLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		NextProtos: []string{"h2", "http/1.1"},
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			r.maybeReload()
			return r.cur.Load().config, nil
		},
	}
}

// Leaf returns the certificate being served now.
func (r *Reloader) Leaf() *x509.Certificate { return r.cur.Load().leaf }

// maybeReload re-reads the files when the check interval has passed. A
// handshake that finds a reload in progress does not wait for it.
func (r *Reloader) maybeReload() {
	now := r.opts.Now().UnixNano()
	next := r.nextCheck.Load()
	if now < next || !r.nextCheck.CompareAndSwap(next, now+int64(max(r.opts.CheckInterval, 0))) {
		return
	}
	if !r.mu.TryLock() {
		return
	}
	defer r.mu.Unlock()
	_, _ = r.reloadLocked()
}

// Reload re-reads the files now (for SIGHUP or an admin action). It
// reports whether new material was published; on error the old one stays.
func (r *Reloader) Reload() (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.reloadLocked()
}

func (r *Reloader) reloadLocked() (bool, error) {
	f, err := r.readFiles()
	raw := f.identity()
	if err == nil && bytes.Equal(raw, r.cur.Load().raw) {
		return false, nil
	}
	var m *material
	if err == nil {
		m, err = r.build(f)
	}
	if err != nil {
		if !bytes.Equal(raw, r.lastBad) {
			r.log.Warn("certificate reload failed; still serving the previous certificate", "err", err)
		}
		r.lastBad = raw
		if r.opts.Metrics != nil {
			r.opts.Metrics.ReloadSuccess.Set(0)
			r.opts.Metrics.Reloads.WithLabelValues("failure").Inc()
		}
		return false, err
	}
	r.lastBad = nil
	r.publish(m)
	if r.opts.Metrics != nil {
		r.opts.Metrics.Reloads.WithLabelValues("success").Inc()
	}
	r.log.Info("certificate reloaded", "subject", m.leaf.Subject.String(), "not_after", m.leaf.NotAfter)
	return true, nil
}

func (r *Reloader) publish(m *material) {
	r.cur.Store(m)
	if met := r.opts.Metrics; met != nil {
		met.ReloadSuccess.Set(1)
		met.ReloadTimestamp.Set(float64(r.opts.Now().Unix()))
		met.NotAfter.Set(float64(m.leaf.NotAfter.Unix()))
	}
}

// files is one generation of the configured files' contents.
type files struct{ cert, key, ca []byte }

// identity is what tells two generations apart.
func (f files) identity() []byte {
	return bytes.Join([][]byte{f.cert, f.key, f.ca}, []byte{0})
}

func (r *Reloader) readFiles() (files, error) {
	var f files
	var err error
	if f.cert, err = os.ReadFile(r.cfg.CertFile); err != nil {
		return f, err
	}
	if f.key, err = os.ReadFile(r.cfg.KeyFile); err != nil {
		return f, err
	}
	if r.cfg.ClientCAFile != "" {
		if f.ca, err = os.ReadFile(r.cfg.ClientCAFile); err != nil {
			return f, err
		}
	}
	return f, nil
}

func (r *Reloader) build(f files) (*material, error) {
	pair, err := tls.X509KeyPair(f.cert, f.key)
	if err != nil {
		return nil, fmt.Errorf("%s / %s: %w", r.cfg.CertFile, r.cfg.KeyFile, err)
	}
	leaf := pair.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(pair.Certificate[0]); err != nil {
			return nil, err
		}
	}
	c := &tls.Config{
		MinVersion:   tls.VersionTLS13,
		NextProtos:   []string{"h2", "http/1.1"},
		Certificates: []tls.Certificate{pair},
	}
	if r.cfg.ClientCAFile != "" {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(f.ca) {
			return nil, fmt.Errorf("%s: no PEM certificates", r.cfg.ClientCAFile)
		}
		c.ClientCAs = pool
		c.ClientAuth = tls.RequireAndVerifyClientCert
		if r.cfg.ClientAuth == ClientAuthVerifyIfGiven {
			c.ClientAuth = tls.VerifyClientCertIfGiven
		}
	}
	return &material{raw: f.identity(), config: c, leaf: leaf}, nil
}

// Metrics are the reload gauges an operator alerts on.
type Metrics struct {
	ReloadSuccess   prometheus.Gauge
	ReloadTimestamp prometheus.Gauge
	NotAfter        prometheus.Gauge
	Reloads         *prometheus.CounterVec
}

// NewMetrics creates and registers the collectors.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		ReloadSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "visionserve_tls_certificate_reload_success",
			Help: "1 if the last attempt to load the TLS certificate succeeded, 0 if it failed (the previous certificate is still served).",
		}),
		ReloadTimestamp: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "visionserve_tls_certificate_reload_timestamp_seconds",
			Help: "Unix time of the last successful certificate load.",
		}),
		NotAfter: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "visionserve_tls_certificate_not_after_seconds",
			Help: "Expiry (Unix time) of the certificate being served.",
		}),
		Reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "visionserve_tls_certificate_reloads_total",
			Help: "Certificate reloads by result (success, failure).",
		}, []string{"result"}),
	}
	reg.MustRegister(m.ReloadSuccess, m.ReloadTimestamp, m.NotAfter, m.Reloads)
	return m
}
