package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Sentinel errors. Every error Check returns wraps one of them; transports
// map ErrUnauthenticated to 401 / codes.Unauthenticated and ErrForbidden to
// 403 / codes.PermissionDenied.
var (
	// ErrUnauthenticated: no credential, or one that does not verify.
	ErrUnauthenticated = errors.New("unauthenticated")
	// ErrForbidden: a verified principal without the scope the route needs.
	ErrForbidden = errors.New("forbidden")
	// ErrNoCredentials: authentication is on but nothing could ever pass.
	ErrNoCredentials = errors.New("authentication is on but no credentials are configured: add auth.api_keys or auth.jwt, or turn it off explicitly with auth.disabled: true / serve --no-auth (for local use on 127.0.0.1)")
)

// Reason is the bounded cause of a refusal, a metric label and the
// client-facing explanation. It never includes the credential.
type Reason string

// Refusal reasons.
const (
	ReasonMissing           Reason = "missing"         // no credential sent
	ReasonMalformed         Reason = "malformed"       // unparseable header or token
	ReasonConflicting       Reason = "conflicting"     // more than one credential
	ReasonUnknownKey        Reason = "unknown_api_key" // API key matches no configured hash
	ReasonBadSignature      Reason = "bad_signature"   // JWT signature does not verify
	ReasonBadAlgorithm      Reason = "bad_algorithm"   // alg none, unsupported, or not the key's
	ReasonUnknownSigningKey Reason = "unknown_signing_key"
	ReasonExpired           Reason = "expired"
	ReasonNotYetValid       Reason = "not_yet_valid"
	ReasonWrongAudience     Reason = "wrong_audience"
	ReasonWrongIssuer       Reason = "wrong_issuer"
	ReasonMissingClaim      Reason = "missing_claim" // exp or sub absent
	ReasonJWTDisabled       Reason = "jwt_not_configured"
	ReasonInsufficientScope Reason = "insufficient_scope"
)

// Error is a refusal. Kind is ErrUnauthenticated or ErrForbidden.
type Error struct {
	Kind   error
	Reason Reason
	// Scope is the scope the route needed (for 403 and WWW-Authenticate).
	Scope Scope
}

func (e *Error) Error() string {
	if e.Scope != "" && e.Reason == ReasonInsufficientScope {
		return fmt.Sprintf("%v: the credential lacks the %q scope", e.Kind, e.Scope)
	}
	return fmt.Sprintf("%v: %s", e.Kind, strings.ReplaceAll(string(e.Reason), "_", " "))
}

// Unwrap lets errors.Is match Kind.
func (e *Error) Unwrap() error { return e.Kind }

func unauthenticated(r Reason) *Error { return &Error{Kind: ErrUnauthenticated, Reason: r} }

// WWWAuthenticate is the RFC 6750 challenge to send with a 401 or 403.
func (e *Error) WWWAuthenticate() string {
	switch {
	case e.Kind == ErrForbidden:
		return fmt.Sprintf(`Bearer realm="visionserve", error="insufficient_scope", scope=%q`, string(e.Scope))
	case e.Reason == ReasonMissing:
		return `Bearer realm="visionserve"`
	}
	return `Bearer realm="visionserve", error="invalid_token"`
}

// Method says how a principal authenticated.
type Method string

// Authentication methods.
const (
	MethodAPIKey    Method = "api_key"
	MethodJWT       Method = "jwt"
	MethodAnonymous Method = "anonymous" // authentication disabled, no credential sent
)

// Principal is an authenticated caller.
type Principal struct {
	// ID identifies the caller for rate limits and job ownership:
	// "key:<name>" for an API key, "jwt:<subject>" for a token,
	// "anonymous" when authentication is off. It is not a metric label.
	ID string
	// Tenant groups principals for limits and metrics; "" when unknown.
	Tenant string
	Scopes ScopeSet
	Method Method
}

// Anonymous is the principal of credential-less requests when
// authentication is disabled: it may infer and write galleries and
// reviews, never administer models.
var Anonymous = Principal{ID: "anonymous", Scopes: NewScopeSet(ScopeInfer, ScopeGalleriesWrite, ScopeReviewsWrite), Method: MethodAnonymous}

type principalKey struct{}

// WithPrincipal returns ctx carrying p.
func WithPrincipal(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// PrincipalFrom returns the principal in ctx, or nil.
func PrincipalFrom(ctx context.Context) *Principal {
	p, _ := ctx.Value(principalKey{}).(*Principal)
	return p
}

// Config is the auth section of the configuration file.
type Config struct {
	// Disabled turns authentication off for requests that carry no
	// credential. It must be set explicitly, and is logged as a warning.
	// Admin routes still require a verified credential.
	Disabled bool     `yaml:"disabled"`
	APIKeys  []APIKey `yaml:"api_keys"`
	JWT      JWT      `yaml:"jwt"`
}

// APIKey is one configured key. The key itself is never stored: Hash is
// "sha256:" and the hex SHA-256 of the key (`visionserve auth hash-key`).
type APIKey struct {
	Name   string   `yaml:"name"` // the principal is "key:<name>"
	Hash   string   `yaml:"hash"`
	Tenant string   `yaml:"tenant"`
	Scopes []string `yaml:"scopes"`
}

// Configured reports whether any credential can be verified.
func (c Config) Configured() bool { return len(c.APIKeys) > 0 || c.JWT.Configured() }

// Validate checks the section without reading files.
func (c Config) Validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	names := map[string]bool{}
	for i, k := range c.APIKeys {
		switch {
		case k.Name == "":
			add("api_keys[%d].name is empty", i)
		case names[k.Name]:
			add("api_keys[%d].name %q is used twice", i, k.Name)
		}
		names[k.Name] = true
		if _, err := parseKeyHash(k.Hash); err != nil {
			add("api_keys[%d] (%s).hash: %v", i, k.Name, err)
		}
		if len(k.Scopes) == 0 {
			add("api_keys[%d] (%s).scopes is empty", i, k.Name)
		}
		for _, s := range k.Scopes {
			if _, err := ParseScope(s); err != nil {
				add("api_keys[%d] (%s).scopes: %v", i, k.Name, err)
			}
		}
	}
	if err := c.JWT.Validate(); err != nil {
		add("jwt: %v", err)
	}
	return errors.Join(errs...)
}

// Options tune an Authenticator.
type Options struct {
	Log     *slog.Logger
	Metrics *Metrics
	Now     func() time.Time // nil: time.Now
}

// Authenticator verifies credentials and checks scopes.
type Authenticator struct {
	disabled bool
	keys     []apiKey
	jwt      *jwtVerifier // nil: no JWT keys configured
	metrics  *Metrics
	log      *slog.Logger
}

// New builds an Authenticator, reading the key files. Errors here are
// startup errors.
func New(cfg Config, opts Options) (*Authenticator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if !cfg.Disabled && !cfg.Configured() {
		return nil, ErrNoCredentials
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	a := &Authenticator{disabled: cfg.Disabled, metrics: opts.Metrics, log: opts.Log.With("component", "auth")}
	for _, k := range cfg.APIKeys {
		h, _ := parseKeyHash(k.Hash)
		var ss []Scope
		for _, s := range k.Scopes {
			ss = append(ss, Scope(s))
		}
		a.keys = append(a.keys, apiKey{hash: h, principal: Principal{ID: "key:" + k.Name, Tenant: k.Tenant, Scopes: NewScopeSet(ss...), Method: MethodAPIKey}})
	}
	if cfg.JWT.Configured() {
		v, err := newJWTVerifier(cfg.JWT, opts.Now, a.log)
		if err != nil {
			return nil, fmt.Errorf("auth.jwt: %w", err)
		}
		a.jwt = v
	}
	if a.disabled {
		a.log.Warn("authentication is DISABLED: requests without credentials are served as \"anonymous\" (admin routes still need credentials); use this on 127.0.0.1 only")
	}
	return a, nil
}

// Disabled reports whether credential-less requests are let through.
func (a *Authenticator) Disabled() bool { return a.disabled }

// Credential is what a request presented.
type Credential struct {
	// Bearer is the value after "Bearer " in Authorization; APIKey is the
	// X-API-Key header. At most one is set by the extractors.
	Bearer, APIKey string
	// Conflicting: more than one credential was sent.
	Conflicting bool
	// Malformed: an Authorization header that is not "Bearer <token>".
	Malformed bool
}

func (c Credential) empty() bool {
	return c.Bearer == "" && c.APIKey == "" && !c.Conflicting && !c.Malformed
}

// Header names.
const (
	HeaderAuthorization = "Authorization"
	HeaderAPIKey        = "X-API-Key"
)

// FromHeader reads the credential of an HTTP request (or the same values
// from gRPC metadata).
func FromHeader(authorization []string, apiKey []string) Credential {
	var c Credential
	n := len(authorization) + len(apiKey)
	if n > 1 {
		return Credential{Conflicting: true}
	}
	if len(apiKey) == 1 {
		c.APIKey = strings.TrimSpace(apiKey[0])
		if c.APIKey == "" {
			c.Malformed = true
		}
		return c
	}
	if len(authorization) == 1 {
		scheme, value, ok := strings.Cut(strings.TrimSpace(authorization[0]), " ")
		value = strings.TrimSpace(value)
		if !ok || !strings.EqualFold(scheme, "Bearer") || value == "" {
			c.Malformed = true
			return c
		}
		c.Bearer = value
	}
	return c
}

// FromRequest reads the credential of r.
func FromRequest(r *http.Request) Credential {
	return FromHeader(r.Header.Values(HeaderAuthorization), r.Header.Values(HeaderAPIKey))
}

// Check authenticates c and authorises scope. For Public it returns nil,
// nil; for Authenticated, any verified principal. With authentication disabled, a request without a credential is
// Anonymous (which holds neither models:admin nor any scope a disabled
// server should not grant); a request with one is verified as usual.
func (a *Authenticator) Check(c Credential, scope Scope) (*Principal, error) {
	if scope == Public {
		return nil, nil
	}
	var p *Principal
	if c.empty() && a.disabled {
		anon := Anonymous
		p = &anon
	} else {
		var aerr *Error
		if p, aerr = a.authenticate(c); aerr != nil {
			a.count(aerr.Reason)
			return nil, aerr
		}
	}
	if scope != Authenticated && !p.Scopes.Has(scope) {
		err := &Error{Kind: ErrForbidden, Reason: ReasonInsufficientScope, Scope: scope}
		if p.Method == MethodAnonymous {
			// Anonymous lacks a scope only for admin routes: ask for
			// credentials rather than forbid.
			err = &Error{Kind: ErrUnauthenticated, Reason: ReasonMissing, Scope: scope}
		}
		a.count(err.Reason)
		return nil, err
	}
	return p, nil
}

func (a *Authenticator) authenticate(c Credential) (*Principal, *Error) {
	switch {
	case c.Conflicting:
		return nil, unauthenticated(ReasonConflicting)
	case c.Malformed:
		return nil, unauthenticated(ReasonMalformed)
	case c.APIKey != "":
		return a.checkAPIKey(c.APIKey)
	case c.Bearer != "":
		if looksLikeJWT(c.Bearer) {
			if a.jwt == nil {
				return nil, unauthenticated(ReasonJWTDisabled)
			}
			return a.jwt.verify(c.Bearer)
		}
		return a.checkAPIKey(c.Bearer)
	}
	return nil, unauthenticated(ReasonMissing)
}

// looksLikeJWT: a compact JWS has exactly three dot-separated parts; API
// keys (base64url) contain no dots.
func looksLikeJWT(s string) bool { return strings.Count(s, ".") == 2 }

func (a *Authenticator) count(r Reason) {
	if a.metrics != nil {
		a.metrics.Failures.WithLabelValues(string(r)).Inc()
	}
}

// Metrics count refusals by reason.
type Metrics struct {
	Failures *prometheus.CounterVec
}

// NewMetrics creates and registers the collectors.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{Failures: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "visionserve_auth_failures_total",
		Help: "Requests refused by authentication or authorisation, by reason.",
	}, []string{"reason"})}
	reg.MustRegister(m.Failures)
	return m
}
