package httpapi

import (
	"net/http"

	"github.com/visionserve/visionserve/internal/auth"
	"github.com/visionserve/visionserve/internal/render"
)

// Listener names, the "listener" field of GET /v1/whoami.
const (
	listenerPublic = "public"
	listenerAdmin  = "admin"
)

// whoami is the body of GET /v1/whoami: who the credential is, what it
// may do, and what this server offers. A client (the console) shows only
// what the credential may use, and says why the rest is off.
type whoami struct {
	Principal struct {
		ID     string   `json:"id"`
		Tenant string   `json:"tenant"`
		Method string   `json:"method"`
		Scopes []string `json:"scopes"`
	} `json:"principal"`
	// Authentication is false when the server lets credential-less
	// requests through (auth.disabled).
	Authentication bool   `json:"authentication"`
	Listener       string `json:"listener"`
	Features       struct {
		OCR     bool `json:"ocr"`
		Faces   bool `json:"faces"`
		Jobs    bool `json:"jobs"`
		Reviews bool `json:"reviews"`
		// Models: the model administration routes (the admin listener).
		Models bool `json:"models"`
	} `json:"features"`
	DefaultModel string `json:"default_model"`
	// Formats are the OCR output formats (format= of /v1/ocr and of job
	// results), from the renderer registry.
	Formats []whoamiFormat `json:"formats"`
}

type whoamiFormat struct {
	Name        string `json:"name"`
	Ext         string `json:"ext"`
	ContentType string `json:"content_type"`
}

func whoamiRoute(s *Server, listener string) Route {
	return Route{Method: http.MethodGet, Path: "/v1/whoami", Handler: func(w http.ResponseWriter, r *http.Request) { s.handleWhoami(w, r, listener) }}
}

func (s *Server) handleWhoami(w http.ResponseWriter, r *http.Request, listener string) {
	if _, err := checkQuery(r); err != nil {
		s.writeError(w, r, err)
		return
	}
	p := auth.PrincipalFrom(r.Context())
	if p == nil {
		p = &auth.Anonymous // a server without an authenticator (handler tests)
	}
	var out whoami
	out.Principal.ID, out.Principal.Tenant, out.Principal.Method = p.ID, p.Tenant, string(p.Method)
	out.Principal.Scopes = []string{}
	for _, sc := range p.Scopes.List() {
		out.Principal.Scopes = append(out.Principal.Scopes, string(sc))
	}
	out.Authentication = s.cfg.Auth != nil && !s.cfg.Auth.Disabled()
	out.Listener = listener
	// Features of this listener: the admin listener serves the model
	// routes only, the public one everything else.
	f := &out.Features
	if listener == listenerAdmin {
		f.Models = true
	} else {
		f.OCR, f.Faces, f.Jobs, f.Reviews = s.cfg.OCR != nil, s.cfg.Face != nil, s.cfg.Jobs != nil, s.cfg.Reviews != nil
	}
	out.DefaultModel = s.cfg.DefaultModel
	out.Formats = []whoamiFormat{}
	for _, name := range render.Names() {
		if rf, err := render.Lookup(name); err == nil {
			out.Formats = append(out.Formats, whoamiFormat{Name: rf.Name, Ext: rf.Ext, ContentType: rf.ContentType()})
		}
	}
	writeJSON(w, http.StatusOK, out)
}
