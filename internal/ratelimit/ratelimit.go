package ratelimit

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
)

// ErrLimited is wrapped by every refusal (a *LimitError).
var ErrLimited = errors.New("rate limited")

// Reasons for a refusal, the values of the "result" metric label.
const (
	ReasonRate        = "rate_limited"
	ReasonConcurrency = "concurrency_limited"
	resultAllowed     = "allowed"
)

// OtherTenant is the metric label of principals whose tenant is not
// configured.
const OtherTenant = "other"

// LimitError is a refusal with the time after which a retry may succeed.
type LimitError struct {
	Reason     string // ReasonRate or ReasonConcurrency
	RetryAfter time.Duration
}

func (e *LimitError) Error() string {
	if e.Reason == ReasonConcurrency {
		return "too many requests in flight for this principal"
	}
	return fmt.Sprintf("request rate limit reached; retry in %v", e.RetryAfter)
}

// Unwrap lets errors.Is match ErrLimited.
func (e *LimitError) Unwrap() error { return ErrLimited }

// Limit is one principal's allowance. Zero fields mean "no limit".
type Limit struct {
	Rate        float64 `yaml:"rate"`        // requests per second, sustained
	Burst       int     `yaml:"burst"`       // requests allowed at once above the rate; 0 = max(1, rate)
	Concurrency int     `yaml:"concurrency"` // requests in flight at once
}

func (l Limit) burst() int {
	if l.Burst > 0 {
		return l.Burst
	}
	return max(1, int(math.Ceil(l.Rate)))
}

// Config is the rate_limits section of the configuration file.
type Config struct {
	Default Limit `yaml:"default"`
	// Tenants override Default for principals of these tenants (API key
	// tenant, or the JWT tenant claim). Their names are metric labels.
	Tenants map[string]Limit `yaml:"tenants"`
}

// MaxTenants bounds the configured tenants (each is a metric label).
const MaxTenants = 200

// Validate checks the section.
func (c Config) Validate() error {
	var errs []error
	check := func(name string, l Limit) {
		if l.Rate < 0 || l.Burst < 0 || l.Concurrency < 0 || math.IsNaN(l.Rate) || math.IsInf(l.Rate, 0) {
			errs = append(errs, fmt.Errorf("%s: rate, burst and concurrency must be >= 0", name))
		}
	}
	check("default", c.Default)
	if len(c.Tenants) > MaxTenants {
		errs = append(errs, fmt.Errorf("tenants: %d configured, at most %d", len(c.Tenants), MaxTenants))
	}
	for name, l := range c.Tenants {
		if name == "" || name == OtherTenant {
			errs = append(errs, fmt.Errorf("tenants: %q is not a usable tenant name", name))
		}
		check("tenants."+name, l)
	}
	return errors.Join(errs...)
}

// Key identifies who is limited.
type Key struct {
	// Principal is whose bucket: an identity that no credential can
	// change (an API key's name, a token's subject at the one trusted
	// issuer), never something a token merely claims, such as its tenant.
	Principal string
	// Tenant chooses the limits and the metric label. A principal that
	// presents a token for another tenant keeps its bucket (tokens spent
	// stay spent) and its requests in flight; only the limits change.
	Tenant string
}

// Options tune a Limiter.
type Options struct {
	Metrics *Metrics
	Now     func() time.Time // nil: time.Now
	// MaxPrincipals bounds the table; 0: DefaultMaxPrincipals.
	MaxPrincipals int
}

// DefaultMaxPrincipals is the table bound.
const DefaultMaxPrincipals = 100_000

// Limiter applies the limits.
type Limiter struct {
	cfg     Config
	metrics *Metrics
	now     func() time.Time
	maxKeys int

	mu        sync.Mutex
	entries   map[string]*entry
	lastSweep time.Time
}

type entry struct {
	limit    Limit
	bucket   *rate.Limiter // nil when the rate is unlimited
	inflight int
}

// New returns a limiter.
func New(cfg Config, opts Options) *Limiter {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.MaxPrincipals <= 0 {
		opts.MaxPrincipals = DefaultMaxPrincipals
	}
	return &Limiter{cfg: cfg, metrics: opts.Metrics, now: opts.Now, maxKeys: opts.MaxPrincipals, entries: map[string]*entry{}}
}

// Enabled reports whether any limit is configured.
func (l *Limiter) Enabled() bool {
	if l == nil {
		return false
	}
	if l.cfg.Default != (Limit{}) {
		return true
	}
	for _, t := range l.cfg.Tenants {
		if t != (Limit{}) {
			return true
		}
	}
	return false
}

func (l *Limiter) limitFor(tenant string) Limit {
	if lim, ok := l.cfg.Tenants[tenant]; ok && tenant != "" {
		return lim
	}
	return l.cfg.Default
}

// Label is the metric label for tenant.
func (l *Limiter) Label(tenant string) string {
	if _, ok := l.cfg.Tenants[tenant]; ok && tenant != "" {
		return tenant
	}
	return OtherTenant
}

// Acquire admits one request of k or refuses it with a *LimitError. On
// success, release must be called once when the request ends.
func (l *Limiter) Acquire(k Key) (release func(), err error) {
	label := l.Label(k.Tenant)
	lim := l.limitFor(k.Tenant)
	if lim == (Limit{}) {
		l.count(label, resultAllowed)
		return func() {}, nil
	}
	now := l.now()
	l.mu.Lock()
	e := l.entries[k.Principal]
	switch {
	case e == nil:
		l.maybeSweep(now) // before inserting, so the new entry survives it
		e = &entry{limit: lim, bucket: newBucket(lim)}
		l.entries[k.Principal] = e
	case e.limit != lim:
		// The principal acts for another tenant (another token): that
		// tenant's limits from now on, on the same bucket. A new bucket
		// here would hand out a full burst on every switch, so that
		// alternating two tokens would never be limited.
		e.limit = lim
		switch {
		case lim.Rate <= 0: // no rate now; the bucket stays for a switch back
		case e.bucket == nil:
			e.bucket = newBucket(lim)
		default:
			e.bucket.SetLimitAt(now, rate.Limit(lim.Rate))
			e.bucket.SetBurstAt(now, lim.burst())
		}
	}
	if lim.Concurrency > 0 && e.inflight >= lim.Concurrency {
		l.mu.Unlock()
		l.count(label, ReasonConcurrency)
		return nil, &LimitError{Reason: ReasonConcurrency, RetryAfter: time.Second}
	}
	if e.bucket != nil && lim.Rate > 0 {
		r := e.bucket.ReserveN(now, 1)
		if d := r.DelayFrom(now); !r.OK() || d > 0 {
			r.CancelAt(now)
			l.mu.Unlock()
			l.count(label, ReasonRate)
			// Retry-After carries whole seconds: round up, so a client
			// that waits exactly that long finds a token.
			return nil, &LimitError{Reason: ReasonRate, RetryAfter: max((d + time.Second - 1).Truncate(time.Second), time.Second)}
		}
	}
	e.inflight++
	l.mu.Unlock()
	l.count(label, resultAllowed)
	if l.metrics != nil {
		l.metrics.InFlight.WithLabelValues(label).Inc()
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			e.inflight--
			l.mu.Unlock()
			if l.metrics != nil {
				l.metrics.InFlight.WithLabelValues(label).Dec()
			}
		})
	}, nil
}

func newBucket(lim Limit) *rate.Limiter {
	if lim.Rate <= 0 {
		return nil
	}
	return rate.NewLimiter(rate.Limit(lim.Rate), lim.burst())
}

// maybeSweep forgets principals whose state is indistinguishable from a
// new one: nothing in flight and a full bucket. It runs at most once a
// minute, or when the table is full. Called with mu held.
func (l *Limiter) maybeSweep(now time.Time) {
	full := len(l.entries) > l.maxKeys
	if !full && now.Sub(l.lastSweep) < time.Minute {
		return
	}
	l.lastSweep = now
	for id, e := range l.entries {
		if e.inflight == 0 && (e.bucket == nil || e.bucket.TokensAt(now) >= float64(e.bucket.Burst())) {
			delete(l.entries, id)
		}
	}
	if len(l.entries) <= l.maxKeys {
		return
	}
	// Still over: forget idle principals even with partial buckets, which
	// errs towards letting requests through. Oldest-first would need more
	// state; any idle entry will do.
	for id, e := range l.entries {
		if len(l.entries) <= l.maxKeys {
			break
		}
		if e.inflight == 0 {
			delete(l.entries, id)
		}
	}
}

// Len is the number of principals tracked (for tests).
func (l *Limiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.entries)
}

func (l *Limiter) count(label, result string) {
	if l.metrics != nil {
		l.metrics.Requests.WithLabelValues(label, result).Inc()
	}
}

// Metrics are per tenant, with bounded labels.
type Metrics struct {
	Requests *prometheus.CounterVec
	InFlight *prometheus.GaugeVec
}

// NewMetrics creates and registers the collectors. The series of the
// configured tenants and "other" exist from the start, so dashboards and
// alerts see zeros rather than gaps.
func NewMetrics(reg prometheus.Registerer, cfg Config) *Metrics {
	m := &Metrics{
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "visionserve_tenant_requests_total",
			Help: "Requests that passed authentication, by tenant (configured tenants, else \"other\") and rate-limit result.",
		}, []string{"tenant", "result"}),
		InFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "visionserve_tenant_requests_in_flight",
			Help: "Requests in flight under a rate limit, by tenant.",
		}, []string{"tenant"}),
	}
	reg.MustRegister(m.Requests, m.InFlight)
	names := []string{OtherTenant}
	for t := range cfg.Tenants {
		names = append(names, t)
	}
	sort.Strings(names)
	for _, t := range names {
		for _, r := range []string{resultAllowed, ReasonRate, ReasonConcurrency} {
			m.Requests.WithLabelValues(t, r)
		}
		m.InFlight.WithLabelValues(t)
	}
	return m
}
