// Package httpapi is the HTTP transport: it decodes requests into calls on
// the core services, encodes their answers, and maps every error to a
// status in one function (problemFor). It holds no inference logic.
//
// Every route is declared once, in Routes; the mux, the metrics labels and
// the OpenAPI test all read that table, so the published API description
// cannot drift from what is served.
package httpapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/trace"

	"github.com/visionserve/visionserve/internal/auth"
	"github.com/visionserve/visionserve/internal/face"
	"github.com/visionserve/visionserve/internal/imageio"
	"github.com/visionserve/visionserve/internal/jobs"
	"github.com/visionserve/visionserve/internal/metrics"
	"github.com/visionserve/visionserve/internal/modelrepo"
	"github.com/visionserve/visionserve/internal/ocr"
	"github.com/visionserve/visionserve/internal/oip"
	"github.com/visionserve/visionserve/internal/ratelimit"
	"github.com/visionserve/visionserve/internal/review"
	"github.com/visionserve/visionserve/internal/sched"
	"github.com/visionserve/visionserve/internal/tracing"
)

// Config is what the transport needs from the process.
type Config struct {
	OCR       *ocr.Service
	OIP       *oip.Service  // the Open Inference Protocol routes under /v2
	Face      *face.Service // nil: face routes answer 501
	Scheduler *sched.Scheduler
	Metrics   *metrics.Metrics
	Gatherer  prometheus.Gatherer
	// Ready reports nil when the server can take traffic.
	Ready func() error
	// RequestTimeout bounds each request from its first byte to its answer.
	RequestTimeout time.Duration
	Log            *slog.Logger
	// Auth checks every route's scope; nil serves every route to anyone
	// (handler tests only: the app always sets it).
	Auth *auth.Authenticator
	// Limiter applies per-principal rate limits; nil: none.
	Limiter *ratelimit.Limiter
	// Jobs serves /v1/jobs; nil: those routes answer 501.
	Jobs *jobs.Manager
	// Tracing starts a span per request and sets X-Trace-Id; nil: none.
	Tracing *tracing.Provider
	// Bodies bounds the memory of the request bodies of inference routes,
	// which are read whole before admission: in total and per principal.
	// nil: only each route's limit bounds them (handler tests).
	Bodies *sched.Memory
	// MinUploadRate is the pace, in bytes per second, that such a body
	// must keep after UploadGrace; a slower one is refused with 408.
	// 0: only the request's deadline bounds the upload.
	MinUploadRate int64
	UploadGrace   time.Duration

	// Models administers the model repository; nil when the server runs
	// without one (the model routes then list StaticModels and refuse
	// changes with 409).
	Models       ModelAdmin
	StaticModels []modelrepo.ModelStatus
	// DefaultModel is the model answering requests that name none.
	DefaultModel string
	// StickyHeader names the request header whose value routes requests
	// to the same version while traffic weights are unchanged; "" for none.
	StickyHeader string

	// Reviews serves /v1/reviews; nil: those routes answer 501.
	Reviews *review.Service
	// UI serves the web console under /ui/ on both listeners; nil: /ui/
	// answers 404 (ui.enabled: false).
	UI http.Handler
}

// Route is one served endpoint.
type Route struct {
	Method  string
	Path    string // net/http pattern path, e.g. /v1/ocr
	Handler http.HandlerFunc
	// Admit marks routes that do inference: their body is read whole
	// (within MaxBody) and then they pass the scheduler's admission
	// control, so a slow upload never holds a worker or a queue place.
	Admit bool
	// MaxBody bounds an admitted route's body; 0: one image of
	// limits.max_bytes in a multipart envelope.
	MaxBody int64
	// Scope is what a caller needs (auth.Public: nothing). Empty: the
	// scope table in scopes.go decides. Routes that need models:admin are
	// served on the admin listener only.
	Scope auth.Scope
	// Timeout bounds a route that is not admitted (whose deadline is
	// otherwise RequestTimeout); 0: none.
	Timeout time.Duration
}

// Pattern is the net/http ServeMux pattern, also the "route" metric label.
func (r Route) Pattern() string { return r.Method + " " + r.Path }

// Server is the HTTP handler for the public listener; Admin is the
// handler of the admin listener.
type Server struct {
	cfg    Config
	log    *slog.Logger
	routes []Route
	mux    *http.ServeMux
	admin  *http.ServeMux
}

// New builds the handler.
func New(cfg Config) *Server {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 30 * time.Second
	}
	s := &Server{cfg: cfg, log: cfg.Log.With("component", "http"), mux: http.NewServeMux(), admin: http.NewServeMux()}
	s.routes = []Route{
		{Method: http.MethodPost, Path: "/v1/ocr", Handler: s.handleOCR, Admit: true},
		{Method: http.MethodGet, Path: "/healthz", Handler: s.handleHealthz},
		{Method: http.MethodGet, Path: "/readyz", Handler: s.handleReadyz},
		{Method: http.MethodGet, Path: "/metrics", Handler: promhttp.HandlerFor(cfg.Gatherer, promhttp.HandlerOpts{}).ServeHTTP},
		{Method: http.MethodGet, Path: "/openapi.json", Handler: s.handleOpenAPI},
		// Model administration: scope models:admin, so served on the
		// admin listener only (scopes.go).
		{Method: http.MethodGet, Path: "/v1/models", Handler: s.handleModels},
		{Method: http.MethodGet, Path: "/v1/models/events", Handler: s.handleEvents},
		{Method: http.MethodGet, Path: "/v1/models/{model}", Handler: s.handleModel},
		{Method: http.MethodPost, Path: "/v1/models/{model}/versions/{version}/load", Handler: s.handleLoad},
		{Method: http.MethodPost, Path: "/v1/models/{model}/versions/{version}/unload", Handler: s.handleUnload},
		{Method: http.MethodPut, Path: "/v1/models/{model}/traffic", Handler: s.handleTraffic},
	}
	s.routes = append(s.routes, s.oipRoutes()...)
	s.routes = append(s.routes, s.jobRoutes()...)
	s.routes = append(s.routes, s.faceRoutes()...)
	s.routes = append(s.routes, s.consoleRoutes()...)
	for i := range s.routes {
		s.routes[i].Scope = scopeOf(s.routes[i])
		if s.routes[i].Admit && s.routes[i].MaxBody == 0 {
			s.routes[i].MaxBody = s.imageBody(1)
		}
		rt := s.routes[i]
		if rt.Scope == auth.ScopeModelsAdmin {
			s.admin.Handle(rt.Pattern(), s.wrap(rt)) // never on the public listener
			continue
		}
		s.mux.Handle(rt.Pattern(), s.wrap(rt))
	}
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.instrument("other", w, r, s.handleUnrouted)
	})
	s.registerAdmin()
	return s
}

// handleUnrouted answers requests no route matched: 405 with Allow when
// the path exists under another method, 404 otherwise.
func (s *Server) handleUnrouted(w http.ResponseWriter, r *http.Request) {
	if s.redirectHome(w, r) {
		return
	}
	var allow []string
	for _, rt := range s.routes {
		if pathMatches(rt.Path, r.URL.Path) && rt.Scope != auth.ScopeModelsAdmin && !slices.Contains(allow, rt.Method) {
			allow = append(allow, rt.Method)
		}
	}
	if len(allow) > 0 {
		w.Header().Set("Allow", strings.Join(allow, ", "))
		writeProblem(w, r, Problem{Type: problemBase + "method-not-allowed", Status: http.StatusMethodNotAllowed,
			Detail: fmt.Sprintf("%s is served for %s only", r.URL.Path, strings.Join(allow, ", "))}, 0)
		return
	}
	writeProblem(w, r, Problem{Type: problemBase + "not-found", Status: http.StatusNotFound,
		Detail: "no such endpoint; GET /openapi.json lists them"}, 0)
}

// Routes returns the served routes.
func (s *Server) Routes() []Route { return s.routes }

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// wrap adds, around a route's handler, in this order: metrics, logging,
// tracing and panic recovery; authentication and the route's scope; the
// principal's rate limit; a refusal of compressed bodies; for inference,
// the deadline, reading the body and admission.
func (s *Server) wrap(rt Route) http.Handler {
	pattern := rt.Pattern()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.instrument(pattern, w, r, func(w http.ResponseWriter, r *http.Request) {
			r, release, ok := s.authorize(w, r, rt.Scope)
			if !ok {
				return
			}
			defer release()
			if err := checkEncoding(r); err != nil {
				w.Header().Set("Accept-Encoding", "identity")
				s.refuse(w, r, err)
				return
			}
			if rt.Admit {
				s.serveAdmitted(w, r, rt)
				return
			}
			if rt.Timeout > 0 {
				deadline := time.Now().Add(rt.Timeout)
				ctx, cancel := context.WithDeadlineCause(r.Context(), deadline, errDeadline)
				defer cancel()
				_ = http.NewResponseController(w).SetReadDeadline(deadline)
				r = r.WithContext(ctx)
			}
			rt.Handler(w, r)
		})
	})
}

// serveAdmitted runs an inference route: its deadline starts, its body is
// read whole, and only then is it admitted. A client uploading slowly
// thus holds the memory its body was granted (readBody), never one of the
// workers + queue places other clients' requests need.
func (s *Server) serveAdmitted(w http.ResponseWriter, r *http.Request, rt Route) {
	deadline := time.Now().Add(s.cfg.RequestTimeout)
	ctx, cancel := context.WithDeadlineCause(r.Context(), deadline, errDeadline)
	defer cancel()
	r = r.WithContext(ctx)
	release, err := s.readBody(w, r, rt.MaxBody, deadline)
	if err != nil {
		s.refuse(w, r, err)
		return
	}
	defer release()
	ticket, err := s.cfg.Scheduler.Admit()
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	defer ticket.Done()
	rt.Handler(w, r)
}

// imageBody is the largest body of a route taking n images: n times
// limits.max_bytes, in a multipart envelope.
func (s *Server) imageBody(n int64) int64 {
	limit := imageio.DefaultLimits().MaxBytes
	switch {
	case s.cfg.Face != nil:
		limit = s.cfg.Face.Limits().MaxBytes
	case s.cfg.OCR != nil:
		limit = s.cfg.OCR.Limits().MaxBytes
	}
	return n*limit + multipartOverhead
}

// instrument counts and times a request under the route label and turns a
// panic into a 500 problem (logged with its stack, never sent).
//
// The request is counted before its client can have the whole answer: net
// /http sends the end of most answers after the handler returns, but the
// last write of a body of declared length goes out at once, so the
// request is finished (counted, its span ended, logged) just before that
// write. A scrape right after the answer then counts it.
func (s *Server) instrument(route string, w http.ResponseWriter, r *http.Request, h http.HandlerFunc) {
	start := time.Now()
	var span trace.Span
	if s.cfg.Tracing != nil {
		var ctx context.Context
		ctx, span = s.cfg.Tracing.StartHTTP(w, r, route)
		r = r.WithContext(ctx)
	}
	m := s.cfg.Metrics
	if m != nil {
		m.InFlight.Inc()
	}
	sw := &statusWriter{ResponseWriter: w, remaining: -1}
	sw.finish = func() {
		code := sw.code
		if r.Context().Err() != nil && !sw.wrote {
			code = StatusClientClosed
		}
		if code == 0 {
			code = http.StatusOK
		}
		d := time.Since(start)
		if span != nil {
			tracing.EndHTTP(span, code)
		}
		if m != nil {
			m.InFlight.Dec()
			m.Requests.WithLabelValues(route, r.Method, strconv.Itoa(code)).Inc()
			m.RequestDuration.WithLabelValues(route).Observe(d.Seconds())
		}
		level := slog.LevelDebug
		if code >= 500 && code != StatusClientClosed {
			level = slog.LevelWarn
		}
		s.log.Log(r.Context(), level, "request", "method", r.Method, "route", route, "status", code, "duration", d, "remote", r.RemoteAddr)
	}
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				if m != nil && !sw.finished {
					m.InFlight.Dec()
				}
				panic(v)
			}
			s.log.Error("panic serving request", "route", route, "panic", v, "stack", string(debug.Stack()))
			if !sw.wrote {
				p, _ := problemFor(errors.New("panic"))
				writeProblem(sw, r, p, 0)
			}
		}
		sw.done()
	}()
	h(sw, r)
}

// statusWriter records the status a handler sent, and finishes the
// request once: before the write that completes a body of declared
// length, else when the handler returns (done).
type statusWriter struct {
	http.ResponseWriter
	code      int
	wrote     bool
	remaining int64 // bytes of a declared Content-Length still to write; -1: none declared
	finish    func()
	finished  bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.record(code)
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if !w.wrote {
		w.record(http.StatusOK)
	}
	if w.remaining >= 0 && int64(len(b)) >= w.remaining {
		w.done() // this write completes the body: the client may have it all before Write returns
	}
	n, err := w.ResponseWriter.Write(b)
	if w.remaining >= 0 {
		w.remaining -= int64(n)
	}
	return n, err
}

// record notes the status sent and the body's declared length.
func (w *statusWriter) record(code int) {
	w.code, w.wrote = code, true
	if n, err := strconv.ParseInt(w.Header().Get("Content-Length"), 10, 64); err == nil && n >= 0 {
		w.remaining = n
	}
}

// done finishes the request, once.
func (w *statusWriter) done() {
	if !w.finished {
		w.finished = true
		w.finish()
	}
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (s *Server) handleHealthz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte("ok\n"))
}

func (s *Server) handleReadyz(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Ready != nil {
		if err := s.cfg.Ready(); err != nil {
			writeProblem(w, r, Problem{Type: problemBase + "not-ready", Status: http.StatusServiceUnavailable, Detail: err.Error()}, time.Second)
			return
		}
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte("ready\n"))
}
