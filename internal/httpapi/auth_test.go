package httpapi_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/visionserve/visionserve/internal/auth"
	"github.com/visionserve/visionserve/internal/httpapi"
	"github.com/visionserve/visionserve/internal/ratelimit"
	"github.com/visionserve/visionserve/internal/sched"
)

// credentials is an authenticator and tokens to present to it.
type credentials struct {
	a                      *auth.Authenticator
	inferKey, adminKey     string
	galleriesKey           string
	reviewsKey             string
	signer                 *ecdsa.PrivateKey
	jwtCfg                 auth.JWT
	expiredJWT, badSigJWT  string
	noneJWT, wrongAudJWT   string
	notYetJWT, wrongAlgJWT string
}

func (c *credentials) token(t testing.TB, claims jwt.MapClaims) string {
	t.Helper()
	base := jwt.MapClaims{"iss": "https://issuer.test", "aud": "visionserve", "sub": "robot", "exp": time.Now().Add(time.Hour).Unix()}
	for k, v := range claims {
		base[k] = v
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodES256, base).SignedString(c.signer)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func newCredentials(t testing.TB) *credentials {
	t.Helper()
	c := &credentials{}
	var inferHash, adminHash, galHash, revHash string
	c.inferKey, inferHash, _ = auth.GenerateKey()
	c.adminKey, adminHash, _ = auth.GenerateKey()
	c.galleriesKey, galHash, _ = auth.GenerateKey()
	c.reviewsKey, revHash, _ = auth.GenerateKey()
	c.signer, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalPKIXPublicKey(&c.signer.PublicKey)
	pub := filepath.Join(t.TempDir(), "es256.pem")
	os.WriteFile(pub, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600)
	c.jwtCfg = auth.JWT{Issuer: "https://issuer.test", Audience: "visionserve", Leeway: 10 * time.Second,
		Keys: []auth.JWTKey{{ID: "k1", Algorithm: auth.AlgES256, PublicKeyFile: pub}}}
	cfg := auth.Config{
		APIKeys: []auth.APIKey{
			{Name: "app", Hash: inferHash, Tenant: "acme", Scopes: []string{"infer"}},
			{Name: "ops", Hash: adminHash, Scopes: []string{"models:admin"}},
			{Name: "curator", Hash: galHash, Scopes: []string{"galleries:write"}},
			{Name: "reviewer", Hash: revHash, Scopes: []string{"reviews:write"}},
		},
		JWT: c.jwtCfg,
	}
	var err error
	if c.a, err = auth.New(cfg, auth.Options{}); err != nil {
		t.Fatal(err)
	}
	all := "infer models:admin galleries:write reviews:write"
	c.expiredJWT = c.token(t, jwt.MapClaims{"scope": all, "exp": time.Now().Add(-time.Hour).Unix()})
	c.notYetJWT = c.token(t, jwt.MapClaims{"scope": all, "nbf": time.Now().Add(time.Hour).Unix()})
	c.wrongAudJWT = c.token(t, jwt.MapClaims{"scope": all, "aud": "someone-else"})
	good := strings.Split(c.token(t, jwt.MapClaims{"scope": all}), ".")
	c.badSigJWT = good[0] + "." + good[1] + "." + base64.RawURLEncoding.EncodeToString([]byte("not the signature"))
	hdr := func(v any) string { b, _ := json.Marshal(v); return base64.RawURLEncoding.EncodeToString(b) }
	c.noneJWT = hdr(map[string]string{"alg": "none", "typ": "JWT"}) + "." + good[1] + "."
	c.wrongAlgJWT, _ = jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"iss": "https://issuer.test", "aud": "visionserve", "sub": "x",
		"scope": all, "exp": time.Now().Add(time.Hour).Unix()}).SignedString(der) // the public key as an HMAC secret
	return c
}

// pathOf fills a route's wildcards.
func pathOf(rt httpapi.Route) string {
	p := rt.Path
	for _, w := range []string{"{model}", "{m}", "{v}", "{g}", "{s}", "{name}", "{version}"} {
		p = strings.ReplaceAll(p, w, "x0")
	}
	return strings.ReplaceAll(p, "{id}", "job_00000000000000000000000000000000")
}

// keyFor returns a key holding exactly the scope, and one without it.
func (c *credentials) keys(scope auth.Scope) (with, without string) {
	switch scope {
	case auth.ScopeModelsAdmin:
		return c.adminKey, c.inferKey
	case auth.ScopeGalleriesWrite:
		return c.galleriesKey, c.inferKey
	case auth.ScopeReviewsWrite:
		return c.reviewsKey, c.inferKey
	}
	return c.inferKey, c.adminKey
}

// Must show: every route refuses missing, wrong, expired and
// wrongly-scoped credentials with 401/403, on both listeners. The table of
// routes is the server's own, so a route added later is covered too.
func TestEveryRouteRefusesBadCredentials(t *testing.T) {
	c := newCredentials(t)
	s := httpapi.New(httpapi.Config{Auth: c.a, Scheduler: sched.New(1, 1, nil), Gatherer: prometheus.NewRegistry()})
	public := httptest.NewServer(s)
	defer public.Close()
	admin := httptest.NewServer(s.Admin())
	defer admin.Close()

	type target struct {
		base string
		rt   httpapi.Route
	}
	var targets []target
	for _, rt := range s.Routes() {
		base := public.URL
		if rt.Scope == auth.ScopeModelsAdmin {
			base = admin.URL
		}
		targets = append(targets, target{base, rt})
	}
	for _, p := range []string{"/debug/pprof/", "/debug/pprof/cmdline", "/debug/pprof/heap"} {
		targets = append(targets, target{admin.URL, httpapi.Route{Method: "GET", Path: p, Scope: auth.ScopeModelsAdmin}})
	}
	checked := 0
	for _, tg := range targets {
		if tg.rt.Scope == auth.Public {
			continue
		}
		with, without := c.keys(tg.rt.Scope)
		scoped := c.token(t, jwt.MapClaims{"scope": string(tg.rt.Scope)})
		unscoped := c.token(t, jwt.MapClaims{"scope": "something:else"})
		for _, cred := range []struct {
			name   string
			header [2]string
			want   int // 0: anything but 401 and 403
		}{
			{"missing", [2]string{}, 401},
			{"not bearer", [2]string{"Authorization", "Basic dXNlcjpwYXNz"}, 401},
			{"wrong key", [2]string{"Authorization", "Bearer vsk_wrongwrongwrongwrongwrongwrong"}, 401},
			{"wrong key header", [2]string{"X-API-Key", "vsk_wrongwrongwrongwrongwrongwrong"}, 401},
			{"expired token", [2]string{"Authorization", "Bearer " + c.expiredJWT}, 401},
			{"not yet valid token", [2]string{"Authorization", "Bearer " + c.notYetJWT}, 401},
			{"token for another audience", [2]string{"Authorization", "Bearer " + c.wrongAudJWT}, 401},
			{"token with a bad signature", [2]string{"Authorization", "Bearer " + c.badSigJWT}, 401},
			{"unsigned token", [2]string{"Authorization", "Bearer " + c.noneJWT}, 401},
			{"token in the wrong algorithm", [2]string{"Authorization", "Bearer " + c.wrongAlgJWT}, 401},
			{"key without the scope", [2]string{"X-API-Key", without}, 403},
			{"token without the scope", [2]string{"Authorization", "Bearer " + unscoped}, 403},
			{"key with the scope", [2]string{"X-API-Key", with}, 0},
			{"token with the scope", [2]string{"Authorization", "Bearer " + scoped}, 0},
		} {
			if tg.rt.Scope == auth.Authenticated && strings.HasSuffix(cred.name, "without the scope") {
				continue // any verified credential may call it
			}
			t.Run(tg.rt.Pattern()+"/"+cred.name, func(t *testing.T) {
				req, _ := http.NewRequest(tg.rt.Method, tg.base+pathOf(tg.rt), strings.NewReader(""))
				if cred.header[0] != "" {
					req.Header.Set(cred.header[0], cred.header[1])
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				switch {
				case cred.want == 0 && (resp.StatusCode == 401 || resp.StatusCode == 403):
					t.Fatalf("a good credential was refused: %d", resp.StatusCode)
				case cred.want != 0 && resp.StatusCode != cred.want:
					t.Fatalf("status %d, want %d", resp.StatusCode, cred.want)
				case cred.want != 0 && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer realm=\"visionserve\""):
					t.Fatalf("WWW-Authenticate %q", resp.Header.Get("WWW-Authenticate"))
				case cred.want != 0 && resp.Header.Get("Content-Type") != "application/problem+json":
					t.Fatalf("Content-Type %q", resp.Header.Get("Content-Type"))
				}
			})
			checked++
		}
	}
	if checked < 14*5 {
		t.Fatalf("only %d checks: the route table lost routes", checked)
	}
}

// Admin routes and pprof live on the admin listener only.
func TestAdminRoutesNotOnPublicListener(t *testing.T) {
	c := newCredentials(t)
	s := httpapi.New(httpapi.Config{Auth: c.a, Scheduler: sched.New(1, 1, nil), Gatherer: prometheus.NewRegistry()})
	public := httptest.NewServer(s)
	defer public.Close()
	admin := httptest.NewServer(s.Admin())
	defer admin.Close()
	paths := []string{"/debug/pprof/", "/debug/pprof/cmdline"}
	for _, rt := range s.AdminRoutes() {
		paths = append(paths, pathOf(rt))
	}
	for _, p := range paths {
		req, _ := http.NewRequest("GET", public.URL+p, nil)
		req.Header.Set("X-API-Key", c.adminKey)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 404 && resp.StatusCode != 405 {
			t.Errorf("public %s: %d, want 404", p, resp.StatusCode)
		}
	}
	req, _ := http.NewRequest("GET", admin.URL+"/debug/pprof/cmdline", nil)
	req.Header.Set("X-API-Key", c.adminKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("admin pprof with the admin key: %v %v", resp, err)
	}
	resp.Body.Close()
	// Health and metrics need nothing on either listener.
	for _, u := range []string{public.URL + "/healthz", admin.URL + "/healthz", admin.URL + "/metrics"} {
		resp, err := http.Get(u)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("%s: %v %v", u, resp, err)
		}
		resp.Body.Close()
	}
}

// Authentication off: credential-less requests pass on inference routes,
// never on admin routes.
func TestAuthDisabledStillGuardsAdmin(t *testing.T) {
	a, err := auth.New(auth.Config{Disabled: true}, auth.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s := httpapi.New(httpapi.Config{Auth: a, Scheduler: sched.New(1, 1, nil), Gatherer: prometheus.NewRegistry()})
	admin := httptest.NewServer(s.Admin())
	defer admin.Close()
	public := httptest.NewServer(s)
	defer public.Close()
	resp, err := http.Get(admin.URL + "/debug/pprof/")
	if err != nil || resp.StatusCode != 401 {
		t.Fatalf("pprof without credentials: %v %v", resp.StatusCode, err)
	}
	resp, err = http.Get(public.URL + "/v1/jobs/job_00000000000000000000000000000000")
	if err != nil || resp.StatusCode != 501 { // jobs are not configured in this handler
		t.Fatalf("job route without credentials, auth off: %v %v", resp.StatusCode, err)
	}
}

// A principal over its rate gets 429 with Retry-After; another principal
// is unaffected.
func TestRateLimited(t *testing.T) {
	c := newCredentials(t)
	lim := ratelimit.New(ratelimit.Config{Default: ratelimit.Limit{Rate: 0.1, Burst: 1}}, ratelimit.Options{})
	s := httpapi.New(httpapi.Config{Auth: c.a, Limiter: lim, Scheduler: sched.New(1, 1, nil), Gatherer: prometheus.NewRegistry()})
	srv := httptest.NewServer(s)
	defer srv.Close()
	get := func(key string) *http.Response {
		req, _ := http.NewRequest("GET", srv.URL+"/v1/jobs/job_00000000000000000000000000000000", nil)
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if r := get(c.inferKey); r.StatusCode != 501 {
		t.Fatalf("first: %d", r.StatusCode)
	}
	r := get(c.inferKey)
	if r.StatusCode != 429 || r.Header.Get("Retry-After") != "10" {
		t.Fatalf("second: %d Retry-After %q", r.StatusCode, r.Header.Get("Retry-After"))
	}
	if r := get(c.token(t, jwt.MapClaims{"scope": "infer"})); r.StatusCode != 501 {
		t.Fatal("another principal was limited")
	}
}

// Two tokens of one subject that claim different tenants (with different
// limits) share the subject's bucket: alternating them does not reset the
// limit (it let 120 of 120 requests through a 2/s limit).
func TestRateLimitOutlivesTenantSwitch(t *testing.T) {
	c := newCredentials(t)
	lim := ratelimit.New(ratelimit.Config{Tenants: map[string]ratelimit.Limit{
		"t1": {Rate: 2, Burst: 2}, "t2": {Rate: 2, Burst: 2, Concurrency: 100}}}, ratelimit.Options{})
	s := httpapi.New(httpapi.Config{Auth: c.a, Limiter: lim, Scheduler: sched.New(1, 1, nil), Gatherer: prometheus.NewRegistry()})
	srv := httptest.NewServer(s)
	defer srv.Close()
	tokens := []string{c.token(t, jwt.MapClaims{"scope": "infer", "tenant": "t1"}), c.token(t, jwt.MapClaims{"scope": "infer", "tenant": "t2"})}
	start := time.Now()
	passed := 0
	for i := 0; i < 120; i++ {
		req, _ := http.NewRequest("GET", srv.URL+"/v1/jobs/job_00000000000000000000000000000000", nil)
		req.Header.Set("Authorization", "Bearer "+tokens[i%2])
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusTooManyRequests {
			passed++
		}
	}
	// The burst, plus what 2/s refills while the loop ran.
	if allowed := 2 + 2*int(time.Since(start).Seconds()+1); passed > allowed {
		t.Fatalf("%d of 120 requests passed a 2/s limit (at most %d could)", passed, allowed)
	}
}
