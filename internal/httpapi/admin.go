package httpapi

import (
	"net/http"
	"net/http/pprof"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/visionserve/visionserve/internal/auth"
)

// registerAdmin completes the admin listener's mux: besides the routes
// that need models:admin (added by New), pprof behind the same scope, and
// health and metrics without credentials. Nothing here is reachable from
// the public listener.
func (s *Server) registerAdmin() {
	for _, rt := range []Route{
		{Method: http.MethodGet, Path: "/debug/pprof/", Handler: pprof.Index},
		{Method: http.MethodGet, Path: "/debug/pprof/cmdline", Handler: pprof.Cmdline},
		{Method: http.MethodGet, Path: "/debug/pprof/profile", Handler: pprof.Profile},
		{Method: http.MethodGet, Path: "/debug/pprof/symbol", Handler: pprof.Symbol},
		{Method: http.MethodPost, Path: "/debug/pprof/symbol", Handler: pprof.Symbol},
		{Method: http.MethodGet, Path: "/debug/pprof/trace", Handler: pprof.Trace},
		{Method: http.MethodGet, Path: "/healthz", Handler: s.handleHealthz, Scope: auth.Public},
		{Method: http.MethodGet, Path: "/metrics", Handler: promhttp.HandlerFor(s.cfg.Gatherer, promhttp.HandlerOpts{}).ServeHTTP, Scope: auth.Public},
		// The console, whose model pages call the routes above.
		s.uiRoute(),
		whoamiRoute(s, listenerAdmin),
	} {
		rt.Scope = scopeOf(rt)
		// pprof's profile and trace run for as long as asked (seconds=N);
		// they are not bounded by the request timeout.
		s.admin.Handle(rt.Pattern(), s.wrap(rt))
	}
	s.admin.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.instrument("other", w, r, func(w http.ResponseWriter, r *http.Request) {
			if s.redirectHome(w, r) {
				return
			}
			writeProblem(w, r, Problem{Type: problemBase + "not-found", Status: http.StatusNotFound,
				Detail: "no such admin endpoint"}, 0)
		})
	})
}

// Admin returns the handler of the admin listener.
func (s *Server) Admin() http.Handler { return s.admin }

// AdminRoutes lists the routes served on the admin listener only.
func (s *Server) AdminRoutes() []Route {
	var out []Route
	for _, rt := range s.routes {
		if rt.Scope == auth.ScopeModelsAdmin {
			out = append(out, rt)
		}
	}
	return out
}
