package auth

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"
)

// The algorithms accepted. Each configured key is bound to exactly one of
// them, so a token cannot make an RSA public key act as an HMAC secret.
const (
	AlgHS256 = "HS256"
	AlgRS256 = "RS256"
	AlgES256 = "ES256"
)

var algorithms = []string{AlgHS256, AlgRS256, AlgES256}

// JWKSCheckInterval is how often, at most, a verification looks at the
// JWKS file for new keys.
const JWKSCheckInterval = 30 * time.Second

// MaxLeeway bounds the configurable clock skew.
const MaxLeeway = 5 * time.Minute

// minHMACSecret is the shortest HS256 secret accepted (RFC 7518 3.2: at
// least the hash size).
const minHMACSecret = 32

// JWT configures token verification. Tokens must carry exp and sub; iss
// and aud must equal Issuer and Audience; nbf, when present, is honoured.
type JWT struct {
	Issuer   string        `yaml:"issuer"`
	Audience string        `yaml:"audience"`
	Leeway   time.Duration `yaml:"leeway"` // accepted clock skew on exp and nbf
	Keys     []JWTKey      `yaml:"keys"`
	// JWKSFile is a JSON Web Key Set file (RFC 7517), re-read when it
	// changes. RSA and P-256 keys without "alg" are bound to RS256 and
	// ES256; symmetric keys need "alg": "HS256".
	JWKSFile string `yaml:"jwks_file"`
	// TenantClaim names the claim holding the tenant; "" = "tenant".
	TenantClaim string `yaml:"tenant_claim"`
}

// JWTKey is one verification key from a file or the environment.
type JWTKey struct {
	ID        string `yaml:"id"`        // matched against the token's kid; "" = any kid
	Algorithm string `yaml:"algorithm"` // HS256, RS256 or ES256
	// PublicKeyFile (RS256, ES256): a PEM public key or certificate.
	PublicKeyFile string `yaml:"public_key_file"`
	// SecretFile or SecretEnv (HS256): the shared secret, at least 32 bytes
	// (a trailing newline in the file is ignored).
	SecretFile string `yaml:"secret_file"`
	SecretEnv  string `yaml:"secret_env"`
}

// Configured reports whether tokens can be verified.
func (j JWT) Configured() bool { return len(j.Keys) > 0 || j.JWKSFile != "" }

// Validate checks the section without reading files.
func (j JWT) Validate() error {
	if !j.Configured() {
		return nil
	}
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if j.Issuer == "" {
		add("issuer is required: tokens from any issuer trusting the same key would otherwise pass")
	}
	if j.Audience == "" {
		add("audience is required: tokens minted for other services would otherwise pass")
	}
	if j.Leeway < 0 || j.Leeway > MaxLeeway {
		add("leeway must be between 0 and %v, got %v", MaxLeeway, j.Leeway)
	}
	for i, k := range j.Keys {
		switch k.Algorithm {
		case AlgHS256:
			if (k.SecretFile == "") == (k.SecretEnv == "") || k.PublicKeyFile != "" {
				add("keys[%d]: HS256 needs exactly one of secret_file or secret_env, and no public_key_file", i)
			}
		case AlgRS256, AlgES256:
			if k.PublicKeyFile == "" || k.SecretFile != "" || k.SecretEnv != "" {
				add("keys[%d]: %s needs public_key_file and no secret", i, k.Algorithm)
			}
		default:
			add("keys[%d].algorithm %q: use HS256, RS256 or ES256", i, k.Algorithm)
		}
	}
	return errors.Join(errs...)
}

// verificationKey is a key bound to its algorithm.
type verificationKey struct {
	kid string
	alg string
	key any // []byte, *rsa.PublicKey or *ecdsa.PublicKey
}

type jwtVerifier struct {
	cfg    JWT
	now    func() time.Time
	log    *slog.Logger
	static []verificationKey
	parser *jwt.Parser

	jwks      atomic.Pointer[jwksGen]
	nextCheck atomic.Int64
	mu        sync.Mutex
}

type jwksGen struct {
	raw  []byte
	keys []verificationKey
}

func newJWTVerifier(cfg JWT, now func() time.Time, log *slog.Logger) (*jwtVerifier, error) {
	if cfg.TenantClaim == "" {
		cfg.TenantClaim = "tenant"
	}
	v := &jwtVerifier{cfg: cfg, now: now, log: log}
	for i, k := range cfg.Keys {
		vk, err := loadKey(k)
		if err != nil {
			return nil, fmt.Errorf("keys[%d]: %w", i, err)
		}
		v.static = append(v.static, vk)
	}
	if cfg.JWKSFile != "" {
		raw, err := os.ReadFile(cfg.JWKSFile)
		if err != nil {
			return nil, err
		}
		keys, err := parseJWKS(raw)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", cfg.JWKSFile, err)
		}
		v.jwks.Store(&jwksGen{raw: raw, keys: keys})
		v.nextCheck.Store(now().Add(JWKSCheckInterval).UnixNano())
	}
	v.parser = jwt.NewParser(
		jwt.WithValidMethods(algorithms),
		jwt.WithExpirationRequired(),
		jwt.WithIssuer(cfg.Issuer),
		jwt.WithAudience(cfg.Audience),
		jwt.WithLeeway(cfg.Leeway),
		jwt.WithTimeFunc(now),
		jwt.WithStrictDecoding(),
	)
	return v, nil
}

func loadKey(k JWTKey) (verificationKey, error) {
	vk := verificationKey{kid: k.ID, alg: k.Algorithm}
	switch k.Algorithm {
	case AlgHS256:
		var secret []byte
		if k.SecretFile != "" {
			b, err := os.ReadFile(k.SecretFile)
			if err != nil {
				return vk, err
			}
			secret = bytes.TrimRight(b, "\r\n")
		} else {
			secret = []byte(os.Getenv(k.SecretEnv))
		}
		if len(secret) < minHMACSecret {
			return vk, fmt.Errorf("HS256 secret is %d bytes; at least %d are needed", len(secret), minHMACSecret)
		}
		vk.key = secret
		return vk, nil
	}
	data, err := os.ReadFile(k.PublicKeyFile)
	if err != nil {
		return vk, err
	}
	pub, err := ParsePublicKeyPEM(data)
	if err != nil {
		return vk, fmt.Errorf("%s: %w", k.PublicKeyFile, err)
	}
	if err := checkKeyForAlg(pub, k.Algorithm); err != nil {
		return vk, fmt.Errorf("%s: %w", k.PublicKeyFile, err)
	}
	vk.key = pub
	return vk, nil
}

// ParsePublicKeyPEM reads the first PEM block: a PKIX or PKCS#1 public key
// or a certificate.
func ParsePublicKeyPEM(data []byte) (any, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("no PEM block")
	}
	switch block.Type {
	case "PUBLIC KEY":
		return x509.ParsePKIXPublicKey(block.Bytes)
	case "RSA PUBLIC KEY":
		return x509.ParsePKCS1PublicKey(block.Bytes)
	case "CERTIFICATE":
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, err
		}
		return c.PublicKey, nil
	}
	return nil, fmt.Errorf("PEM block %q: want PUBLIC KEY or CERTIFICATE (never a private key)", block.Type)
}

func checkKeyForAlg(key any, alg string) error {
	switch k := key.(type) {
	case *rsa.PublicKey:
		if alg != AlgRS256 {
			return fmt.Errorf("an RSA key cannot verify %s", alg)
		}
		if k.N.BitLen() < 2048 {
			return fmt.Errorf("RSA key of %d bits; at least 2048 are needed", k.N.BitLen())
		}
	case *ecdsa.PublicKey:
		if alg != AlgES256 {
			return fmt.Errorf("an EC key cannot verify %s", alg)
		}
		if k.Curve != elliptic.P256() {
			return fmt.Errorf("ES256 needs a P-256 key, got %s", k.Curve.Params().Name)
		}
	case []byte:
		if alg != AlgHS256 {
			return fmt.Errorf("a symmetric key cannot verify %s", alg)
		}
		if len(k) < minHMACSecret {
			return fmt.Errorf("HS256 secret is %d bytes; at least %d are needed", len(k), minHMACSecret)
		}
	default:
		return fmt.Errorf("unsupported key type %T", key)
	}
	return nil
}

// parseJWKS parses a JSON Web Key Set into verification keys. Keys for
// encryption ("use": "enc") are skipped; a key this server cannot use for
// any accepted algorithm is an error, so a typo does not silently leave a
// key out.
func parseJWKS(data []byte) ([]verificationKey, error) {
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(data, &set); err != nil {
		return nil, fmt.Errorf("not a JSON Web Key Set: %w", err)
	}
	if len(set.Keys) == 0 {
		return nil, errors.New("the key set has no keys")
	}
	var out []verificationKey
	for i, k := range set.Keys {
		if k.Use == "enc" {
			continue
		}
		key := k.Key
		if !k.IsPublic() {
			if _, sym := key.([]byte); !sym {
				pub := k.Public()
				key = pub.Key
			}
		}
		alg := k.Algorithm
		if alg == "" {
			switch key.(type) {
			case *rsa.PublicKey:
				alg = AlgRS256
			case *ecdsa.PublicKey:
				alg = AlgES256
			default:
				return nil, fmt.Errorf("keys[%d] (kid %q): a symmetric key needs \"alg\": \"HS256\"", i, k.KeyID)
			}
		}
		if !slices.Contains(algorithms, alg) {
			return nil, fmt.Errorf("keys[%d] (kid %q): alg %q is not accepted (use HS256, RS256 or ES256)", i, k.KeyID, alg)
		}
		if err := checkKeyForAlg(key, alg); err != nil {
			return nil, fmt.Errorf("keys[%d] (kid %q): %w", i, k.KeyID, err)
		}
		out = append(out, verificationKey{kid: k.KeyID, alg: alg, key: key})
	}
	if len(out) == 0 {
		return nil, errors.New("the key set has no signature keys")
	}
	return out, nil
}

// keys returns the current keys, re-reading the JWKS file when the check
// interval has passed and its content changed. A file that fails to parse
// leaves the previous keys in place.
func (v *jwtVerifier) keys() []verificationKey {
	gen := v.jwks.Load()
	if gen == nil {
		return v.static
	}
	now := v.now().UnixNano()
	if next := v.nextCheck.Load(); now >= next && v.nextCheck.CompareAndSwap(next, now+int64(JWKSCheckInterval)) && v.mu.TryLock() {
		func() {
			defer v.mu.Unlock()
			raw, err := os.ReadFile(v.cfg.JWKSFile)
			if err != nil || bytes.Equal(raw, gen.raw) {
				if err != nil {
					v.log.Warn("reading the JWKS file failed; keeping the previous keys", "file", v.cfg.JWKSFile, "err", err)
				}
				return
			}
			keys, err := parseJWKS(raw)
			if err != nil {
				v.log.Warn("the JWKS file changed but does not parse; keeping the previous keys", "file", v.cfg.JWKSFile, "err", err)
				return
			}
			gen = &jwksGen{raw: raw, keys: keys}
			v.jwks.Store(gen)
			v.log.Info("JWKS reloaded", "file", v.cfg.JWKSFile, "keys", len(keys))
		}()
		gen = v.jwks.Load()
	}
	return append(slices.Clip(v.static), gen.keys...)
}

// header is the part of the JOSE header looked at before the library
// verifies the token, to give a precise reason.
type header struct {
	Alg string `json:"alg"`
	Kid string `json:"kid"`
}

func (v *jwtVerifier) verify(token string) (*Principal, *Error) {
	if len(token) > maxCredentialLen {
		return nil, unauthenticated(ReasonMalformed)
	}
	h, err := parseHeader(token)
	if err != nil {
		return nil, unauthenticated(ReasonMalformed)
	}
	if !slices.Contains(algorithms, h.Alg) {
		// alg "none", HS384, PS256, ...: never verified.
		return nil, unauthenticated(ReasonBadAlgorithm)
	}
	var candidates []verificationKey
	kidKnown := false
	for _, k := range v.keys() {
		if h.Kid != "" && k.kid != "" && k.kid != h.Kid {
			continue
		}
		kidKnown = kidKnown || (h.Kid != "" && k.kid == h.Kid)
		if k.alg == h.Alg {
			candidates = append(candidates, k)
		}
	}
	if len(candidates) == 0 {
		if kidKnown {
			// The named key exists for another algorithm: a confusion attempt.
			return nil, unauthenticated(ReasonBadAlgorithm)
		}
		return nil, unauthenticated(ReasonUnknownSigningKey)
	}
	claims := jwt.MapClaims{}
	_, err = v.parser.ParseWithClaims(token, claims, func(t *jwt.Token) (any, error) {
		// The library checked alg against the accepted list; this checks it
		// against the keys, again, from the header the library parsed.
		if t.Method.Alg() != h.Alg {
			return nil, errors.New("algorithm changed between parses")
		}
		set := jwt.VerificationKeySet{}
		for _, c := range candidates {
			set.Keys = append(set.Keys, c.key)
		}
		return set, nil
	})
	if err != nil {
		return nil, unauthenticated(reasonFor(err))
	}
	sub, _ := claims["sub"].(string)
	if sub == "" {
		return nil, unauthenticated(ReasonMissingClaim)
	}
	tenant, _ := claims[v.cfg.TenantClaim].(string)
	return &Principal{ID: "jwt:" + sub, Tenant: tenant, Scopes: tokenScopes(claims), Method: MethodJWT}, nil
}

func parseHeader(token string) (header, error) {
	var h header
	first, _, ok := strings.Cut(token, ".")
	if !ok {
		return h, errors.New("not a JWS")
	}
	b, err := base64.RawURLEncoding.DecodeString(first)
	if err != nil {
		return h, err
	}
	err = json.Unmarshal(b, &h)
	return h, err
}

// reasonFor maps the library's errors; the first match in this order wins
// when a token has several faults.
func reasonFor(err error) Reason {
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return ReasonMalformed
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return ReasonBadSignature
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		return ReasonBadAlgorithm
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return ReasonMissingClaim
	case errors.Is(err, jwt.ErrTokenExpired):
		return ReasonExpired
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return ReasonNotYetValid
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return ReasonWrongAudience
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return ReasonWrongIssuer
	}
	return ReasonMalformed
}

// tokenScopes reads "scope" (space-separated, RFC 8693) and "scp" (a
// string or an array, as some issuers write it).
func tokenScopes(c jwt.MapClaims) ScopeSet {
	var names []string
	if s, ok := c["scope"].(string); ok {
		names = append(names, strings.Fields(s)...)
	}
	switch s := c["scp"].(type) {
	case string:
		names = append(names, strings.Fields(s)...)
	case []any:
		for _, x := range s {
			if str, ok := x.(string); ok {
				names = append(names, str)
			}
		}
	}
	var ss []Scope
	for _, n := range names {
		ss = append(ss, Scope(n))
	}
	return NewScopeSet(ss...)
}
