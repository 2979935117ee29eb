package auth_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/visionserve/visionserve/internal/auth"
)

var t0 = time.Date(2030, 6, 1, 12, 0, 0, 0, time.UTC)

// keys are the signing keys of the tests, and the files the server reads.
type keys struct {
	dir     string
	hmac    []byte
	rsa     *rsa.PrivateKey
	ec      *ecdsa.PrivateKey
	rsaFile string // PEM public key
	ecFile  string
}

func newKeys(t testing.TB) *keys {
	t.Helper()
	k := &keys{dir: t.TempDir(), hmac: []byte("0123456789abcdef0123456789abcdef-hs256")}
	var err error
	if k.rsa, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		t.Fatal(err)
	}
	if k.ec, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		t.Fatal(err)
	}
	k.rsaFile = writePublic(t, k.dir, "rsa.pem", &k.rsa.PublicKey)
	k.ecFile = writePublic(t, k.dir, "ec.pem", &k.ec.PublicKey)
	write(t, filepath.Join(k.dir, "hs.secret"), append(k.hmac, '\n'))
	return k
}

func writePublic(t testing.TB, dir, name string, pub any) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name)
	write(t, p, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	return p
}

func write(t testing.TB, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path+".tmp", data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		t.Fatal(err)
	}
}

func (k *keys) jwtConfig() auth.JWT {
	return auth.JWT{
		Issuer: "https://issuer.test", Audience: "visionserve", Leeway: 30 * time.Second,
		Keys: []auth.JWTKey{
			{ID: "hs", Algorithm: auth.AlgHS256, SecretFile: filepath.Join(k.dir, "hs.secret")},
			{ID: "rs", Algorithm: auth.AlgRS256, PublicKeyFile: k.rsaFile},
			{ID: "es", Algorithm: auth.AlgES256, PublicKeyFile: k.ecFile},
		},
	}
}

// claims are valid for the configuration above at t0 unless changed.
func claims(change func(jwt.MapClaims)) jwt.MapClaims {
	c := jwt.MapClaims{
		"iss": "https://issuer.test", "aud": "visionserve", "sub": "user-1", "tenant": "acme",
		"exp": t0.Add(time.Hour).Unix(), "nbf": t0.Add(-time.Minute).Unix(), "iat": t0.Add(-time.Minute).Unix(),
		"scope": "infer galleries:write other:scope",
	}
	if change != nil {
		change(c)
	}
	return c
}

func sign(t testing.TB, method jwt.SigningMethod, kid string, key any, c jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, c)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func b64(v any) string {
	b, _ := json.Marshal(v)
	return base64.RawURLEncoding.EncodeToString(b)
}

func newAuth(t testing.TB, cfg auth.Config, now func() time.Time) (*auth.Authenticator, *auth.Metrics) {
	t.Helper()
	m := auth.NewMetrics(prometheus.NewRegistry())
	a, err := auth.New(cfg, auth.Options{Metrics: m, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	return a, m
}

func fixed(tm time.Time) func() time.Time { return func() time.Time { return tm } }

func bearer(tok string) auth.Credential { return auth.Credential{Bearer: tok} }

func reasonOf(err error) auth.Reason {
	var e *auth.Error
	if errors.As(err, &e) {
		return e.Reason
	}
	return ""
}

// Must show: a table of malformed JWTs is refused, each for its reason.
func TestJWT(t *testing.T) {
	k := newKeys(t)
	a, m := newAuth(t, auth.Config{JWT: k.jwtConfig()}, fixed(t0))
	otherRSA, _ := rsa.GenerateKey(rand.Reader, 2048)
	rsaPubPEM, _ := os.ReadFile(k.rsaFile)
	payload := b64(claims(nil))

	for _, tc := range []struct {
		name  string
		token string
		want  auth.Reason // "" = accepted
	}{
		{"HS256", sign(t, jwt.SigningMethodHS256, "hs", k.hmac, claims(nil)), ""},
		{"RS256", sign(t, jwt.SigningMethodRS256, "rs", k.rsa, claims(nil)), ""},
		{"ES256", sign(t, jwt.SigningMethodES256, "es", k.ec, claims(nil)), ""},
		{"no kid: every key of the algorithm is tried", sign(t, jwt.SigningMethodES256, "", k.ec, claims(nil)), ""},
		{"scp array", sign(t, jwt.SigningMethodHS256, "hs", k.hmac, claims(func(c jwt.MapClaims) { delete(c, "scope"); c["scp"] = []string{"infer"} })), ""},
		{"expired within leeway", sign(t, jwt.SigningMethodHS256, "hs", k.hmac, claims(func(c jwt.MapClaims) { c["exp"] = t0.Add(-20 * time.Second).Unix() })), ""},
		{"nbf within leeway", sign(t, jwt.SigningMethodHS256, "hs", k.hmac, claims(func(c jwt.MapClaims) { c["nbf"] = t0.Add(20 * time.Second).Unix() })), ""},
		{"audience list", sign(t, jwt.SigningMethodHS256, "hs", k.hmac, claims(func(c jwt.MapClaims) { c["aud"] = []string{"other", "visionserve"} })), ""},

		{"bad signature: other RSA key", sign(t, jwt.SigningMethodRS256, "rs", otherRSA, claims(nil)), auth.ReasonBadSignature},
		{"bad signature: payload changed", func() string {
			p := strings.Split(sign(t, jwt.SigningMethodES256, "es", k.ec, claims(nil)), ".")
			return p[0] + "." + b64(claims(func(c jwt.MapClaims) { c["scope"] = "models:admin" })) + "." + p[2]
		}(), auth.ReasonBadSignature},
		{"alg none", b64(map[string]string{"alg": "none", "typ": "JWT"}) + "." + payload + ".", auth.ReasonBadAlgorithm},
		{"alg None", b64(map[string]string{"alg": "None"}) + "." + payload + ".", auth.ReasonBadAlgorithm},
		{"alg none with a signature", b64(map[string]string{"alg": "none", "kid": "hs"}) + "." + payload + ".c2ln", auth.ReasonBadAlgorithm},
		{"wrong alg: HS512", sign(t, jwt.SigningMethodHS512, "hs", k.hmac, claims(nil)), auth.ReasonBadAlgorithm},
		{"wrong alg: PS256", sign(t, jwt.SigningMethodPS256, "rs", k.rsa, claims(nil)), auth.ReasonBadAlgorithm},
		{"wrong alg: RS256 token naming the ES key", sign(t, jwt.SigningMethodRS256, "es", k.rsa, claims(nil)), auth.ReasonBadAlgorithm},
		{"confusion: HS256 signed with the RSA public key, naming it", sign(t, jwt.SigningMethodHS256, "rs", rsaPubPEM, claims(nil)), auth.ReasonBadAlgorithm},
		{"confusion: HS256 signed with the RSA public key, no kid", sign(t, jwt.SigningMethodHS256, "", rsaPubPEM, claims(nil)), auth.ReasonBadSignature},
		{"expired", sign(t, jwt.SigningMethodRS256, "rs", k.rsa, claims(func(c jwt.MapClaims) { c["exp"] = t0.Add(-time.Minute).Unix() })), auth.ReasonExpired},
		{"not yet valid", sign(t, jwt.SigningMethodRS256, "rs", k.rsa, claims(func(c jwt.MapClaims) { c["nbf"] = t0.Add(time.Minute).Unix() })), auth.ReasonNotYetValid},
		{"wrong audience", sign(t, jwt.SigningMethodES256, "es", k.ec, claims(func(c jwt.MapClaims) { c["aud"] = "another-service" })), auth.ReasonWrongAudience},
		{"no audience", sign(t, jwt.SigningMethodES256, "es", k.ec, claims(func(c jwt.MapClaims) { delete(c, "aud") })), auth.ReasonMissingClaim},
		{"wrong issuer", sign(t, jwt.SigningMethodES256, "es", k.ec, claims(func(c jwt.MapClaims) { c["iss"] = "https://evil.test" })), auth.ReasonWrongIssuer},
		{"no exp", sign(t, jwt.SigningMethodHS256, "hs", k.hmac, claims(func(c jwt.MapClaims) { delete(c, "exp") })), auth.ReasonMissingClaim},
		{"no sub", sign(t, jwt.SigningMethodHS256, "hs", k.hmac, claims(func(c jwt.MapClaims) { delete(c, "sub") })), auth.ReasonMissingClaim},
		{"exp as a string", sign(t, jwt.SigningMethodHS256, "hs", k.hmac, claims(func(c jwt.MapClaims) { c["exp"] = "tomorrow" })), auth.ReasonMalformed},
		{"unknown kid", sign(t, jwt.SigningMethodHS256, "nope", k.hmac, claims(nil)), auth.ReasonUnknownSigningKey},
		{"garbage", "a.b.c", auth.ReasonMalformed},
		{"header not JSON", base64.RawURLEncoding.EncodeToString([]byte("{")) + "." + payload + ".x", auth.ReasonMalformed},
		{"huge", strings.Repeat("a", 9000) + ".b.c", auth.ReasonMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := a.Check(bearer(tc.token), auth.ScopeInfer)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if p.ID != "jwt:user-1" || p.Tenant != "acme" || p.Method != auth.MethodJWT || !p.Scopes.Has(auth.ScopeInfer) || p.Scopes.Has(auth.ScopeModelsAdmin) {
					t.Fatalf("principal %+v", p)
				}
				return
			}
			if !errors.Is(err, auth.ErrUnauthenticated) || reasonOf(err) != tc.want {
				t.Fatalf("got %v (reason %q), want unauthenticated/%s", err, reasonOf(err), tc.want)
			}
		})
	}
	if v := testutil.ToFloat64(m.Failures.WithLabelValues(string(auth.ReasonExpired))); v != 1 {
		t.Errorf("expired failures counted %v", v)
	}
}

func TestScopes(t *testing.T) {
	k := newKeys(t)
	key, hash, err := auth.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	adminKey, adminHash, _ := auth.GenerateKey()
	a, _ := newAuth(t, auth.Config{
		APIKeys: []auth.APIKey{
			{Name: "ci", Hash: hash, Tenant: "acme", Scopes: []string{"infer"}},
			{Name: "ops", Hash: adminHash, Scopes: []string{"models:admin"}},
		},
		JWT: k.jwtConfig(),
	}, fixed(t0))
	inferOnly := sign(t, jwt.SigningMethodHS256, "hs", k.hmac, claims(func(c jwt.MapClaims) { c["scope"] = "infer" }))
	for _, tc := range []struct {
		name  string
		cred  auth.Credential
		scope auth.Scope
		want  error // nil: allowed
		id    string
	}{
		{"key in X-API-Key", auth.Credential{APIKey: key}, auth.ScopeInfer, nil, "key:ci"},
		{"key as bearer", bearer(key), auth.ScopeInfer, nil, "key:ci"},
		{"key without the scope", bearer(key), auth.ScopeGalleriesWrite, auth.ErrForbidden, ""},
		{"key without admin", bearer(key), auth.ScopeModelsAdmin, auth.ErrForbidden, ""},
		{"admin key", bearer(adminKey), auth.ScopeModelsAdmin, nil, "key:ops"},
		{"admin key cannot infer", bearer(adminKey), auth.ScopeInfer, auth.ErrForbidden, ""},
		{"wrong key", bearer(key + "x"), auth.ScopeInfer, auth.ErrUnauthenticated, ""},
		{"missing", auth.Credential{}, auth.ScopeInfer, auth.ErrUnauthenticated, ""},
		{"token with infer", bearer(inferOnly), auth.ScopeInfer, nil, "jwt:user-1"},
		{"token without galleries:write", bearer(inferOnly), auth.ScopeGalleriesWrite, auth.ErrForbidden, ""},
		{"public needs nothing", auth.Credential{}, auth.Public, nil, ""},
		{"authenticated: any key", bearer(adminKey), auth.Authenticated, nil, "key:ops"},
		{"authenticated: any token", bearer(inferOnly), auth.Authenticated, nil, "jwt:user-1"},
		{"authenticated: not a wrong key", bearer(key + "x"), auth.Authenticated, auth.ErrUnauthenticated, ""},
		{"authenticated: not nothing", auth.Credential{}, auth.Authenticated, auth.ErrUnauthenticated, ""},
		{"key without reviews:write", bearer(key), auth.ScopeReviewsWrite, auth.ErrForbidden, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := a.Check(tc.cred, tc.scope)
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
			if tc.id != "" && p.ID != tc.id {
				t.Fatalf("principal %+v", p)
			}
			var e *auth.Error
			if errors.As(err, &e) && tc.want == auth.ErrForbidden && !strings.Contains(e.WWWAuthenticate(), `error="insufficient_scope"`) {
				t.Errorf("challenge %q", e.WWWAuthenticate())
			}
		})
	}
}

func TestFromHeader(t *testing.T) {
	for _, tc := range []struct {
		authz, key []string
		want       auth.Credential
	}{
		{nil, nil, auth.Credential{}},
		{[]string{"Bearer abc"}, nil, auth.Credential{Bearer: "abc"}},
		{[]string{"bearer   abc "}, nil, auth.Credential{Bearer: "abc"}},
		{[]string{"Basic dTpw"}, nil, auth.Credential{Malformed: true}},
		{[]string{"Bearer"}, nil, auth.Credential{Malformed: true}},
		{nil, []string{"k"}, auth.Credential{APIKey: "k"}},
		{nil, []string{" "}, auth.Credential{Malformed: true}},
		{[]string{"Bearer a"}, []string{"k"}, auth.Credential{Conflicting: true}},
		{[]string{"Bearer a", "Bearer b"}, nil, auth.Credential{Conflicting: true}},
	} {
		if got := auth.FromHeader(tc.authz, tc.key); got != tc.want {
			t.Errorf("FromHeader(%q, %q) = %+v, want %+v", tc.authz, tc.key, got, tc.want)
		}
	}
}

// Authentication off: credential-less requests are anonymous, but admin
// scope still needs a verified credential, and a bad credential is still
// refused.
func TestDisabled(t *testing.T) {
	key, hash, _ := auth.GenerateKey()
	a, _ := newAuth(t, auth.Config{Disabled: true, APIKeys: []auth.APIKey{{Name: "ops", Hash: hash, Scopes: []string{"models:admin"}}}}, nil)
	if p, err := a.Check(auth.Credential{}, auth.ScopeInfer); err != nil || p.ID != "anonymous" {
		t.Fatalf("anonymous infer: %+v %v", p, err)
	}
	if _, err := a.Check(auth.Credential{}, auth.ScopeModelsAdmin); !errors.Is(err, auth.ErrUnauthenticated) {
		t.Fatalf("anonymous admin: %v", err)
	}
	if _, err := a.Check(bearer("vsk_wrong"), auth.ScopeInfer); !errors.Is(err, auth.ErrUnauthenticated) {
		t.Fatalf("bad key: %v", err)
	}
	if p, err := a.Check(bearer(key), auth.ScopeModelsAdmin); err != nil || p.ID != "key:ops" {
		t.Fatalf("admin key: %v", err)
	}
}

func jwks(t testing.TB, ks ...jose.JSONWebKey) []byte {
	b, err := json.Marshal(jose.JSONWebKeySet{Keys: ks})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestJWKSFileReload(t *testing.T) {
	k := newKeys(t)
	second, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	file := filepath.Join(k.dir, "jwks.json")
	write(t, file, jwks(t,
		jose.JSONWebKey{Key: &k.rsa.PublicKey, KeyID: "r1", Use: "sig"},
		jose.JSONWebKey{Key: k.hmac, KeyID: "h1", Algorithm: "HS256"},
	))
	var now atomic.Int64
	now.Store(t0.UnixNano())
	cfg := k.jwtConfig()
	cfg.Keys, cfg.JWKSFile = nil, file
	a, _ := newAuth(t, auth.Config{JWT: cfg}, func() time.Time { return time.Unix(0, now.Load()) })
	claimsNow := func() jwt.MapClaims {
		return claims(func(c jwt.MapClaims) { c["exp"] = time.Unix(0, now.Load()).Add(time.Hour).Unix() })
	}
	check := func(tok string) error { _, err := a.Check(bearer(tok), auth.ScopeInfer); return err }

	if err := check(sign(t, jwt.SigningMethodRS256, "r1", k.rsa, claimsNow())); err != nil {
		t.Fatalf("RS256 from JWKS: %v", err)
	}
	if err := check(sign(t, jwt.SigningMethodHS256, "h1", k.hmac, claimsNow())); err != nil {
		t.Fatalf("HS256 from JWKS: %v", err)
	}
	rotated := sign(t, jwt.SigningMethodES256, "e2", second, claimsNow())
	if reasonOf(check(rotated)) != auth.ReasonUnknownSigningKey {
		t.Fatal("a key not yet in the set was accepted")
	}
	write(t, file, jwks(t, jose.JSONWebKey{Key: &second.PublicKey, KeyID: "e2"}))
	if check(rotated) == nil {
		t.Fatal("the file was re-read before the check interval passed")
	}
	now.Add(int64(auth.JWKSCheckInterval))
	rotated = sign(t, jwt.SigningMethodES256, "e2", second, claimsNow())
	if err := check(rotated); err != nil {
		t.Fatalf("after the rotation: %v", err)
	}
	if check(sign(t, jwt.SigningMethodRS256, "r1", k.rsa, claimsNow())) == nil {
		t.Fatal("a key removed from the set is still accepted")
	}
	// A broken file keeps the last good keys.
	write(t, file, []byte(`{"keys": [`))
	now.Add(int64(auth.JWKSCheckInterval))
	if err := check(sign(t, jwt.SigningMethodES256, "e2", second, claimsNow())); err != nil {
		t.Fatalf("after a broken write: %v", err)
	}
}

func TestConfigValidation(t *testing.T) {
	k := newKeys(t)
	_, hash, _ := auth.GenerateKey()
	good := auth.APIKey{Name: "a", Hash: hash, Scopes: []string{"infer"}}
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	smallFile := writePublic(t, k.dir, "small.pem", &small.PublicKey)
	p384File := writePublic(t, k.dir, "p384.pem", &p384.PublicKey)
	shortSecret := filepath.Join(k.dir, "short")
	write(t, shortSecret, []byte("short"))
	jw := func(keys ...auth.JWTKey) auth.JWT {
		j := k.jwtConfig()
		j.Keys = keys
		return j
	}
	for _, tc := range []struct {
		name string
		cfg  auth.Config
		want string
	}{
		{"nothing configured", auth.Config{}, "--no-auth"},
		{"disabled is fine", auth.Config{Disabled: true}, ""},
		{"good key", auth.Config{APIKeys: []auth.APIKey{good}}, ""},
		{"plain key instead of hash", auth.Config{APIKeys: []auth.APIKey{{Name: "a", Hash: "vsk_abc", Scopes: []string{"infer"}}}}, "sha256:"},
		{"short hash", auth.Config{APIKeys: []auth.APIKey{{Name: "a", Hash: "sha256:abcd", Scopes: []string{"infer"}}}}, "64 hex"},
		{"unknown scope", auth.Config{APIKeys: []auth.APIKey{{Name: "a", Hash: hash, Scopes: []string{"admin"}}}}, "unknown scope"},
		{"no scopes", auth.Config{APIKeys: []auth.APIKey{{Name: "a", Hash: hash}}}, "scopes is empty"},
		{"duplicate name", auth.Config{APIKeys: []auth.APIKey{good, good}}, "used twice"},
		{"jwt without audience", auth.Config{JWT: func() auth.JWT { j := k.jwtConfig(); j.Audience = ""; return j }()}, "audience is required"},
		{"jwt without issuer", auth.Config{JWT: func() auth.JWT { j := k.jwtConfig(); j.Issuer = ""; return j }()}, "issuer is required"},
		{"huge leeway", auth.Config{JWT: func() auth.JWT { j := k.jwtConfig(); j.Leeway = time.Hour; return j }()}, "leeway"},
		{"alg none", auth.Config{JWT: jw(auth.JWTKey{Algorithm: "none", SecretFile: shortSecret})}, "algorithm"},
		{"RS256 with a secret", auth.Config{JWT: jw(auth.JWTKey{Algorithm: "RS256", SecretFile: shortSecret})}, "public_key_file"},
		{"short HS256 secret", auth.Config{JWT: jw(auth.JWTKey{Algorithm: "HS256", SecretFile: shortSecret})}, "at least 32"},
		{"empty HS256 env", auth.Config{JWT: jw(auth.JWTKey{Algorithm: "HS256", SecretEnv: "VISIONSERVE_TEST_UNSET_SECRET"})}, "at least 32"},
		{"RSA 1024", auth.Config{JWT: jw(auth.JWTKey{Algorithm: "RS256", PublicKeyFile: smallFile})}, "2048"},
		{"EC key for RS256", auth.Config{JWT: jw(auth.JWTKey{Algorithm: "RS256", PublicKeyFile: k.ecFile})}, "EC key cannot verify RS256"},
		{"P-384 for ES256", auth.Config{JWT: jw(auth.JWTKey{Algorithm: "ES256", PublicKeyFile: p384File})}, "P-256"},
		{"private key file", auth.Config{JWT: jw(auth.JWTKey{Algorithm: "ES256", PublicKeyFile: shortSecret})}, "no PEM"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := auth.New(tc.cfg, auth.Options{})
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

func TestJWKSErrors(t *testing.T) {
	k := newKeys(t)
	file := filepath.Join(k.dir, "jwks.json")
	cfg := k.jwtConfig()
	cfg.Keys, cfg.JWKSFile = nil, file
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"not JSON", []byte("nope")},
		{"no keys", []byte(`{"keys": []}`)},
		{"symmetric key without alg", jwks(t, jose.JSONWebKey{Key: k.hmac, KeyID: "h"})},
		{"RS256 key with alg ES256", jwks(t, jose.JSONWebKey{Key: &k.rsa.PublicKey, Algorithm: "ES256"})},
		{"unaccepted alg", jwks(t, jose.JSONWebKey{Key: &k.rsa.PublicKey, Algorithm: "RS512"})},
		{"P-384", jwks(t, jose.JSONWebKey{Key: &p384.PublicKey})},
		{"only encryption keys", jwks(t, jose.JSONWebKey{Key: &k.rsa.PublicKey, Use: "enc"})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			write(t, file, tc.data)
			if _, err := auth.New(auth.Config{JWT: cfg}, auth.Options{}); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

func TestHashKey(t *testing.T) {
	key, hash, err := auth.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(key, auth.KeyPrefix) || len(key) < auth.MinKeyLength || strings.Contains(key, ".") {
		t.Fatalf("key %q", key)
	}
	if auth.HashKey(key) != hash || !strings.HasPrefix(hash, "sha256:") || len(hash) != len("sha256:")+64 {
		t.Fatalf("hash %q", hash)
	}
	// Known answer: sha256("abc").
	if got := auth.HashKey("abc"); got != "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" {
		t.Fatalf("HashKey(abc) = %s", got)
	}
	other, _, _ := auth.GenerateKey()
	if other == key {
		t.Fatal("two generated keys are equal")
	}
}
