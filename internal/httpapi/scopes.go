package httpapi

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/visionserve/visionserve/internal/auth"
	"github.com/visionserve/visionserve/internal/ratelimit"
)

// routeScopes is the route -> scope table: the first entry whose method
// (empty: any) and path prefix match a route gives its scope, unless the
// route names its own. A route that matches no entry makes New panic, so
// a new endpoint cannot ship without someone deciding who may call it.
var routeScopes = []struct {
	method string
	prefix string
	scope  auth.Scope
}{
	{"GET", "/healthz", auth.Public},
	{"GET", "/readyz", auth.Public},
	{"GET", "/metrics", auth.Public}, // scraped by Prometheus and the operator's autoscaler
	{"GET", "/openapi.json", auth.Public},
	{"GET", "/ui/", auth.Public},              // the console's static files; it calls the API with the user's credential
	{"GET", "/v1/whoami", auth.Authenticated}, // any credential may ask what it may do
	{"GET", "/v2/health/", auth.Public},       // Open Inference Protocol liveness/readiness
	{"", "/v1/models", auth.ScopeModelsAdmin},
	{"", "/debug/pprof/", auth.ScopeModelsAdmin},
	{"GET", "/v1/galleries", auth.ScopeInfer},
	{"", "/v1/galleries", auth.ScopeGalleriesWrite},
	{"GET", "/v1/reviews", auth.ScopeInfer},
	{"", "/v1/reviews", auth.ScopeReviewsWrite},
	{"", "/v1/ocr", auth.ScopeInfer},
	{"", "/v1/faces/", auth.ScopeInfer},
	{"", "/v1/jobs", auth.ScopeInfer},
	{"", "/v2", auth.ScopeInfer},
}

// scopeOf returns the scope of rt.
func scopeOf(rt Route) auth.Scope {
	if rt.Scope != "" {
		return rt.Scope
	}
	for _, e := range routeScopes {
		if (e.method == "" || e.method == rt.Method) && strings.HasPrefix(rt.Path, e.prefix) {
			return e.scope
		}
	}
	panic(fmt.Sprintf("httpapi: route %s has no scope: add it to routeScopes in scopes.go", rt.Pattern()))
}

// authorize authenticates r, checks scope and takes a rate-limit slot.
// On refusal it has answered and ok is false; otherwise release must be
// called when the request ends.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request, scope auth.Scope) (_ *http.Request, release func(), ok bool) {
	noop := func() {}
	if scope == auth.Public || s.cfg.Auth == nil {
		return r, noop, true
	}
	p, err := s.cfg.Auth.Check(auth.FromRequest(r), scope)
	if err != nil {
		if ae, ok := err.(*auth.Error); ok {
			w.Header().Set("WWW-Authenticate", ae.WWWAuthenticate())
		}
		s.refuse(w, r, err)
		return r, nil, false
	}
	r = r.WithContext(auth.WithPrincipal(r.Context(), p))
	if s.cfg.Limiter == nil {
		return r, noop, true
	}
	release, err = s.cfg.Limiter.Acquire(ratelimit.Key{Principal: p.ID, Tenant: p.Tenant})
	if err != nil {
		s.refuse(w, r, err)
		return r, nil, false
	}
	return r, release, true
}

// owner is the job owner of r: its principal, or "anonymous" when the
// server runs without an authenticator (handler tests).
func owner(r *http.Request) string {
	if p := auth.PrincipalFrom(r.Context()); p != nil {
		return p.ID
	}
	return auth.Anonymous.ID
}
