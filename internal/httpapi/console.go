package httpapi

import "net/http"

// consoleRoutes are the routes the web console adds besides the files it
// is served from: what a credential may do, page previews, and reviews.
func (s *Server) consoleRoutes() []Route {
	routes := []Route{
		s.uiRoute(),
		whoamiRoute(s, listenerPublic),
		{Method: http.MethodPost, Path: "/v1/ocr/preview", Handler: s.handlePreview, Admit: true},
	}
	return append(routes, s.reviewRoutes()...)
}

// uiRoute serves the console's files (package ui), or 404 when it is off.
func (s *Server) uiRoute() Route {
	return Route{Method: http.MethodGet, Path: "/ui/", Handler: func(w http.ResponseWriter, r *http.Request) {
		if s.cfg.UI == nil {
			writeProblem(w, r, Problem{Type: problemBase + "not-found", Status: http.StatusNotFound,
				Detail: "the web console is off on this server (ui.enabled: false)"}, 0)
			return
		}
		s.cfg.UI.ServeHTTP(w, r)
	}}
}

// redirectHome sends a browser that opens the server's address (GET or
// HEAD of "/") to the console, when it is on, and reports whether it did.
// It is not an API route: it is left out of openapi.json.
func (s *Server) redirectHome(w http.ResponseWriter, r *http.Request) bool {
	if s.cfg.UI == nil || r.URL.Path != "/" || (r.Method != http.MethodGet && r.Method != http.MethodHead) {
		return false
	}
	http.Redirect(w, r, "/ui/", http.StatusFound)
	return true
}
