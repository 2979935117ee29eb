// Package app wires a visionserve process: configuration in, a running
// server out. Tests start a whole server in-process with New and Start on
// 127.0.0.1:0 and stop it with Shutdown, exactly as the binary does.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/visionserve/visionserve/internal/auth"
	"github.com/visionserve/visionserve/internal/config"
	"github.com/visionserve/visionserve/internal/connlimit"
	"github.com/visionserve/visionserve/internal/engine/tesseract"
	"github.com/visionserve/visionserve/internal/grpcapi"
	"github.com/visionserve/visionserve/internal/httpapi"
	"github.com/visionserve/visionserve/internal/jobs"
	"github.com/visionserve/visionserve/internal/keys"
	"github.com/visionserve/visionserve/internal/loader"
	"github.com/visionserve/visionserve/internal/metrics"
	"github.com/visionserve/visionserve/internal/modelcheck"
	"github.com/visionserve/visionserve/internal/modelrepo"
	"github.com/visionserve/visionserve/internal/ocr"
	"github.com/visionserve/visionserve/internal/oip"
	"github.com/visionserve/visionserve/internal/ratelimit"
	"github.com/visionserve/visionserve/internal/review"
	"github.com/visionserve/visionserve/internal/sched"
	"github.com/visionserve/visionserve/internal/tlsconf"
	"github.com/visionserve/visionserve/internal/tracing"
	"github.com/visionserve/visionserve/internal/ui"
)

// Version is the visionserve version, set at link time.
var Version = "dev"

// Options configure a process. Logger and Registry are injected so tests
// and embedding programs choose their own.
type Options struct {
	Config config.Config
	Logger *slog.Logger
	// Registry receives the metrics and serves /metrics. Nil: a fresh one.
	Registry *prometheus.Registry
	// CoreOnly builds the engines and the OCR core for in-process use
	// (the ocr and calibrate commands): no credentials, TLS, jobs or
	// admin listener are set up, and Start must not be called.
	CoreOnly bool
	// Loaders add or replace model repository loaders, by package kind.
	// The check child must be given them too (CheckChild's extra).
	Loaders map[string]modelrepo.Loader
	// ModelCheck says how to start the child process that loads and warms
	// up each new repository version before this process does
	// (modelcheck.Executable(): this binary's `model check --child`).
	// Nil turns the isolated check off.
	ModelCheck *modelcheck.Command
}

// DefaultOptions matches the command-line defaults.
func DefaultOptions() Options { return Options{Config: config.Default()} }

// App is a configured server.
type App struct {
	opts    Options
	log     *slog.Logger
	metrics *metrics.Metrics
	serving *metrics.Serving
	sched   *sched.Scheduler
	models  []*loader.Model
	ocr     *ocr.Service
	oip     *oip.Service
	face    *faceParts
	handler *httpapi.Server
	srv     *http.Server
	ln      net.Listener
	ready   atomic.Bool
	served  chan error
	grpc    *grpcapi.Server // nil when server.grpc_addr is empty
	grpcLn  net.Listener
	grpcErr chan error

	tracing  *tracing.Provider
	auth     *auth.Authenticator
	tls      *tlsconf.Reloader // nil: plain HTTP
	jobs     *jobs.Manager     // nil: jobs disabled
	admin    *http.Server      // nil: no admin listener
	adminLn  net.Listener
	adminErr chan error
	repo     *modelrepo.Repository   // nil without repository.dir
	refused  []modelrepo.ModelStatus // built-in models that failed to load
	reviews  *review.Service         // nil without reviews.path or reviews.store: postgres
	// enc seals the stores' records at rest (zero: in clear).
	enc keys.Config
	// stopImports stops the import drop folder's watcher (nil without
	// repository.import.dir).
	stopImports func()
	started     time.Time
	conns       *connlimit.Metrics
}

// checkKeys warns when a store's active data key is not of the configured
// algorithm: the algorithm applies to new data keys, and the store's
// keyring was made before it was configured.
func (a *App) checkKeys(store string, ring *keys.Ring) {
	if ring == nil {
		return
	}
	if _, alg := ring.Active(); a.enc.Enabled() && alg != "" && alg != a.enc.Algorithm {
		a.log.Warn("the store seals with a data key of another algorithm than encryption.algorithm; make a new data key with visionserve keys rotate --data-key",
			"store", store, "active", alg, "algorithm", a.enc.Algorithm)
	}
}

// New loads the models and builds the server; nothing listens yet. On
// error, everything already loaded is released.
func New(opts Options) (a *App, err error) {
	cfg := opts.Config
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid configuration: %w", err)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Registry == nil {
		opts.Registry = prometheus.NewRegistry()
		opts.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	// Every record logged with a request's context carries its trace id.
	opts.Logger = slog.New(tracing.LogHandler(opts.Logger.Handler()))
	a = &App{opts: opts, log: opts.Logger.With("component", "app"), served: make(chan error, 1), grpcErr: make(chan error, 1), adminErr: make(chan error, 1), started: time.Now()}
	loaded := a // a is nil once an error is returned
	defer func() {
		if err != nil {
			loaded.closeModels(context.Background())
			if loaded.jobs != nil {
				_ = loaded.jobs.Close()
			}
			if loaded.reviews != nil {
				_ = loaded.reviews.Close()
			}
			if loaded.tracing != nil {
				_ = loaded.tracing.Shutdown(context.Background())
			}
		}
	}()
	if a.tracing, err = tracing.New(context.Background(), cfg.Tracing, tracing.Options{Version: Version}); err != nil {
		return nil, err
	}
	if cfg.Tracing.Enabled() {
		a.log.Info("tracing", "endpoint", cfg.Tracing.Endpoint, "protocol", cfg.Tracing.Protocol, "sample_ratio", cfg.Tracing.SampleRatio)
	}
	if opts.CoreOnly {
		cfg.Jobs.Store, cfg.Jobs.Dir, cfg.Server.AdminAddr, cfg.Server.GRPCAddr = jobs.StoreEmbedded, "", "", ""
	} else {
		if a.auth, err = auth.New(cfg.Auth, auth.Options{Log: opts.Logger, Metrics: auth.NewMetrics(opts.Registry)}); err != nil {
			return nil, err
		}
		for _, addr := range []string{cfg.Server.Addr, cfg.Server.GRPCAddr} {
			if cfg.Auth.Disabled && addr != "" && !isLoopback(addr) {
				a.log.Error("authentication is disabled on a listener that is not loopback-only: anyone who can reach it may use it", "addr", addr)
			}
		}
	}
	if !opts.CoreOnly {
		// The KEK is read once, here; a named one that is missing or
		// malformed stops the start (never a fall back to clear records).
		if a.enc, err = cfg.Encryption.Load(); err != nil {
			return nil, err
		}
		if a.enc.Enabled() {
			a.log.Info("encryption at rest", "algorithm", a.enc.Algorithm, "kek", a.enc.KEK.ID(), "kek_source", a.enc.KEK.Source())
		}
	}
	if cfg.TLS.Runtime().Enabled() && !opts.CoreOnly {
		if a.tls, err = tlsconf.New(cfg.TLS.Runtime(), tlsconf.Options{Log: opts.Logger, Metrics: tlsconf.NewMetrics(opts.Registry)}); err != nil {
			return nil, err
		}
	}

	a.metrics = metrics.New(opts.Registry)
	a.conns = connlimit.NewMetrics(opts.Registry)
	workers := cfg.Server.EffectiveWorkers()
	a.sched = sched.New(workers, cfg.Server.Queue, a.metrics)
	a.metrics.Workers.Set(float64(workers))
	a.metrics.QueueCapacity.Set(float64(cfg.Server.Queue))
	a.metrics.Info.WithLabelValues(Version, runtime.Version(), tesseract.Version()).Set(1)
	tuneMalloc(a.log)

	a.serving = metrics.NewServing(opts.Registry)
	env := loader.Env{Scheduler: a.sched, Instances: workers, ONNXLibrary: cfg.ONNX.Library, Metrics: a.serving, Log: opts.Logger.With("component", "loader")}
	for _, mc := range a.staticConfig(cfg) {
		m, err := loadModel(mc, env)
		if err != nil {
			if mc.Name == cfg.DefaultModelName() {
				return nil, err // nothing to serve without it
			}
			// One unusable model (an ONNX output the binding cannot
			// return, a corrupt file) must not keep the others from
			// serving: it is refused, and listed as failed.
			a.refuse(mc, err)
			continue
		}
		if m.OCR != nil {
			m.OCR.Calibration = mc.Calibration
			if mc.CheapTier != nil { // the configuration overrides the runtime's
				m.OCR.Cheaper = mc.CheapTier
			}
		}
		a.models = append(a.models, m)
	}
	source, err := a.modelSource(cfg, env)
	if err != nil {
		return nil, err
	}
	ocfg := ocr.Config{
		Review:                   cfg.OCR.Review,
		OrientationCheckBelow:    cfg.OCR.OrientationCheckBelow,
		MinOrientationConfidence: cfg.OCR.MinOrientationConfidence,
		Limits:                   cfg.Limits.ImageLimits(),
		Tracer:                   a.tracing.Tracer(),
		Tier:                     cfg.OCR.Tier,
		Languages:                cfg.OCR.Languages,
		Scripts:                  cfg.OCR.Scripts,
		Dewarp:                   cfg.OCR.Dewarp,
	}
	a.ocr = ocr.NewService(ocfg, source, a.sched, a.metrics, opts.Logger)
	if jc := cfg.Jobs.Runtime(); jc.Enabled() {
		// Jobs use the same core and workers, through the scheduler's
		// Background runner: they yield to interactive requests.
		background := ocr.NewService(ocfg, source, a.sched.Background(), a.metrics, opts.Logger)
		a.jobs, err = jobs.Open(jobs.Options{
			Config: jc, OCR: background, Scheduler: a.sched.Background(), Limits: cfg.Limits.ImageLimits(), Log: opts.Logger,
			Metrics: jobs.NewMetrics(opts.Registry), Tracer: a.tracing.Tracer(), Propagator: a.tracing.Propagator(), Version: Version,
			Keys: a.enc,
		})
		if err != nil {
			return nil, fmt.Errorf("jobs: %w", err)
		}
		a.checkKeys("jobs", a.jobs.Keys())
	}
	var limiter *ratelimit.Limiter
	if rl := ratelimit.New(cfg.RateLimits, ratelimit.Options{Metrics: ratelimit.NewMetrics(opts.Registry, cfg.RateLimits)}); rl.Enabled() {
		limiter = rl
	}
	oipModels, err := a.oipModels(cfg)
	if err != nil {
		return nil, err
	}
	a.oip = oip.NewService(oip.Config{Name: "visionserve", Version: Version, Ready: a.readiness,
		Limits: oip.Limits{MaxBytes: int64(cfg.Limits.MaxBytes), MaxElements: cfg.Limits.MaxTensorElements}}, oipModels, opts.Logger)
	if err := a.startFace(cfg); err != nil {
		return nil, err
	}
	if a.reviews, err = a.openReviews(cfg); err != nil {
		return nil, fmt.Errorf("reviews: %w", err)
	}
	var console http.Handler
	if cfg.UI.Enabled {
		console = ui.New()
	}

	bodyTotal, bodyShare := cfg.BodyBudget()
	a.metrics.BodyMemoryCapacity.Set(float64(bodyTotal))
	a.handler = httpapi.New(httpapi.Config{
		Bodies:         sched.NewMemory(bodyTotal, bodyShare, a.metrics),
		MinUploadRate:  int64(cfg.Server.MinUploadRate),
		UploadGrace:    cfg.Server.ReadHeaderTimeout,
		OCR:            a.ocr,
		OIP:            a.oip,
		Face:           a.Face(),
		Scheduler:      a.sched,
		Metrics:        a.metrics,
		Gatherer:       opts.Registry,
		Ready:          a.readiness,
		RequestTimeout: cfg.Server.RequestTimeout,
		Log:            opts.Logger,
		Auth:           a.auth,
		Limiter:        limiter,
		Jobs:           a.jobs,
		Tracing:        a.tracing,
		Models:         a.modelAdmin(),
		StaticModels:   a.staticStatus(),
		DefaultModel:   cfg.DefaultModelName(),
		StickyHeader:   cfg.Repository.StickyHeader,
		Reviews:        a.reviews,
		UI:             console,
	})
	a.srv = &http.Server{
		Handler:           a.handler,
		ReadHeaderTimeout: cfg.Server.ReadHeaderTimeout,
		IdleTimeout:       cfg.Server.IdleTimeout,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(opts.Logger.Handler(), slog.LevelWarn),
	}
	if cfg.Server.GRPCAddr != "" {
		// A message holds the tensors or image(s) plus its envelope; the
		// largest is Faces/Verify's two images. Each method's own bound
		// (ModelInfer the inference protocol's, images max_bytes each) is
		// applied before the message is parsed.
		envelope := grpcapi.Envelope
		gc := grpcapi.Config{
			OIP:             a.oip,
			OCR:             a.ocr,
			Face:            a.Face(),
			StickyHeader:    cfg.Repository.StickyHeader,
			Scheduler:       a.sched,
			RequestTimeout:  cfg.Server.RequestTimeout,
			MaxMessageBytes: 2*int(cfg.Limits.MaxBytes) + envelope,
			OIPMessageBytes: int(cfg.Limits.MaxBytes) + envelope,
			Metrics:         a.serving,
			Log:             opts.Logger,
		}
		// The same credentials, scopes, rate limits and certificate as HTTP;
		// credentials and then rate limits are checked when a call's
		// headers arrive, before its message is read.
		if a.auth != nil {
			gc.Taps = append(gc.Taps, a.auth.TapHandle(grpcapi.MethodScopes()))
		}
		if limiter != nil {
			gc.Taps = append(gc.Taps, limiter.TapHandle(principalKey))
			gc.Unary = append(gc.Unary, limiter.UnaryServerInterceptor())
			gc.Stream = append(gc.Stream, limiter.StreamServerInterceptor())
		}
		if a.tls != nil {
			gc.TLS = a.tls.TLSConfig()
		}
		a.grpc = grpcapi.New(gc)
	}
	if cfg.Server.AdminAddr != "" {
		a.admin = &http.Server{
			Handler:           a.handler.Admin(),
			ReadHeaderTimeout: cfg.Server.ReadHeaderTimeout,
			IdleTimeout:       cfg.Server.IdleTimeout,
			MaxHeaderBytes:    64 << 10,
			ErrorLog:          slog.NewLogLogger(opts.Logger.Handler(), slog.LevelWarn),
		}
	}
	if a.tls != nil {
		a.srv.TLSConfig = a.tls.TLSConfig()
		if a.admin != nil {
			a.admin.TLSConfig = a.tls.TLSConfig()
		}
	}
	if a.repo != nil {
		// Event streams (admin listener) never end on their own; end them
		// when shutdown starts, or Shutdown would wait for them.
		a.srv.RegisterOnShutdown(a.repo.CloseEvents)
		if a.admin != nil {
			a.admin.RegisterOnShutdown(a.repo.CloseEvents)
		}
	}
	return a, nil
}

// OIP returns the inference protocol core.
func (a *App) OIP() *oip.Service { return a.oip }

// GRPCAddr is the address the gRPC server listens on, "" when it is off.
func (a *App) GRPCAddr() string {
	if a.grpcLn == nil {
		return ""
	}
	return a.grpcLn.Addr().String()
}

// principalKey names the rate-limited caller of a gRPC call from the
// principal the auth tap found; public methods have none.
func principalKey(ctx context.Context) (ratelimit.Key, bool) {
	p := auth.PrincipalFrom(ctx)
	if p == nil {
		return ratelimit.Key{}, false
	}
	return ratelimit.Key{Principal: p.ID, Tenant: p.Tenant}, true
}

// isLoopback reports whether addr (host:port) binds loopback only.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// serve runs srv on ln, with TLS when configured, reporting on done.
func (a *App) serve(srv *http.Server, ln net.Listener, done chan<- error) {
	var err error
	if srv.TLSConfig != nil {
		err = srv.ServeTLS(ln, "", "")
	} else {
		err = srv.Serve(ln)
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	done <- err
}

// OCR returns the OCR core, for in-process callers (the ocr command).
func (a *App) OCR() *ocr.Service { return a.ocr }

// Handler returns the HTTP handler.
func (a *App) Handler() *httpapi.Server { return a.handler }

func (a *App) readiness() error {
	if !a.ready.Load() {
		return errors.New("not ready: starting or shutting down")
	}
	return a.modelsReady()
}

// listen opens the listener name on addr, bounded to
// server.max_connections open connections.
func (a *App) listen(name, addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	return connlimit.Listen(ln, a.opts.Config.Server.MaxConnections, name, a.conns), nil
}

// Start listens on the configured address and serves in the background.
func (a *App) Start() error {
	ln, err := a.listen("http", a.opts.Config.Server.Addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	if a.grpc != nil {
		gln, err := a.listen("grpc", a.opts.Config.Server.GRPCAddr)
		if err != nil {
			ln.Close()
			return fmt.Errorf("listen (gRPC): %w", err)
		}
		a.grpcLn = gln
		go func() { a.grpcErr <- a.grpc.Serve(gln) }()
	}
	if a.admin != nil {
		aln, err := a.listen("admin", a.opts.Config.Server.AdminAddr)
		if err != nil {
			ln.Close()
			if a.grpcLn != nil {
				a.grpc.Stop(context.Background())
			}
			return fmt.Errorf("admin listen: %w", err)
		}
		a.adminLn = aln
		go a.serve(a.admin, aln, a.adminErr)
		a.log.Info("admin listener", "addr", aln.Addr().String(), "tls", a.tls != nil)
	}
	a.ln = ln
	go a.serve(a.srv, ln, a.served)
	if a.jobs != nil {
		a.jobs.Start()
	}
	a.ready.Store(true)
	if a.grpc != nil {
		a.grpc.SetServing(true)
		// A message of its own: the HTTP "serving" line is what scripts
		// and the e2e tests read the HTTP address from.
		a.log.Info("serving gRPC", "grpc_addr", a.grpcLn.Addr().String())
	}
	bodyMemory, _ := a.opts.Config.BodyBudget()
	a.log.Info("serving", "addr", ln.Addr().String(), "tls", a.tls != nil, "auth", a.auth != nil && !a.auth.Disabled(), "jobs", a.jobs != nil,
		"workers", a.sched.Workers(), "queue", a.sched.QueueCap(), "max_connections", a.opts.Config.Server.MaxConnections,
		"body_memory", bodyMemory, "version", Version)
	return nil
}

// AdminAddr is the admin listener's address ("" when it is off).
func (a *App) AdminAddr() string {
	if a.adminLn == nil {
		return ""
	}
	return a.adminLn.Addr().String()
}

// TLS returns the certificate reloader, nil without TLS.
func (a *App) TLS() *tlsconf.Reloader { return a.tls }

// Addr is the address the server listens on (useful with port 0).
func (a *App) Addr() string {
	if a.ln == nil {
		return ""
	}
	return a.ln.Addr().String()
}

// Shutdown drains: readiness fails at once (so load balancers stop
// sending), new inference is refused with 503, requests in flight finish
// within ctx's deadline, then engines are freed. Requests still running at
// the deadline are cut off and their engines left to the process exit.
func (a *App) Shutdown(ctx context.Context) error {
	a.ready.Store(false)
	// Draining also stops jobs from taking workers: a job's page in
	// progress finishes or is abandoned, and runs again at the next start.
	a.sched.Drain()
	a.log.Info("draining")
	var grpcStopped chan error
	if a.grpc != nil && a.grpcLn != nil {
		grpcStopped = make(chan error, 1)
		go func() { grpcStopped <- a.grpc.Stop(ctx) }()
	}
	err := a.srv.Shutdown(ctx)
	if err != nil {
		a.log.Warn("requests still running at the shutdown deadline; closing connections", "err", err)
		_ = a.srv.Close()
	}
	if a.ln != nil {
		if serr := <-a.served; serr != nil {
			err = errors.Join(err, serr)
		}
	}
	if grpcStopped != nil {
		if gerr := <-grpcStopped; gerr != nil {
			a.log.Warn("gRPC calls still running at the shutdown deadline; closed their connections", "err", gerr)
			err = errors.Join(err, gerr)
		}
	}
	if a.admin != nil && a.adminLn != nil {
		if aerr := a.admin.Shutdown(ctx); aerr != nil {
			_ = a.admin.Close()
		}
		if serr := <-a.adminErr; serr != nil {
			err = errors.Join(err, serr)
		}
	}
	if a.jobs != nil {
		if jerr := a.jobs.Close(); jerr != nil {
			err = errors.Join(err, jerr)
		}
	}
	if a.reviews != nil {
		err = errors.Join(err, a.reviews.Close())
	}
	if cerr := a.closeModels(ctx); cerr != nil {
		err = errors.Join(err, cerr)
	}
	if terr := a.tracing.Shutdown(ctx); terr != nil {
		a.log.Warn("flushing traces", "err", terr)
	}
	a.log.Info("stopped")
	return err
}

// Run starts the server and blocks until ctx ends (a signal) or the server
// fails, then shuts down within the configured shutdown timeout.
func Run(ctx context.Context, opts Options) error {
	a, err := New(opts)
	if err != nil {
		return err
	}
	if err := a.Start(); err != nil {
		_ = a.closeModels(context.Background())
		if a.jobs != nil {
			_ = a.jobs.Close()
		}
		if a.reviews != nil {
			_ = a.reviews.Close()
		}
		return err
	}
	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-a.served:
		a.ln = nil // already returned; Shutdown must not wait for it
	case serveErr = <-a.grpcErr:
		serveErr = fmt.Errorf("gRPC server: %w", serveErr)
	case serveErr = <-a.adminErr:
		a.adminLn = nil
	}
	sctx, cancel := context.WithTimeout(context.Background(), opts.Config.Server.ShutdownTimeout)
	defer cancel()
	return errors.Join(serveErr, a.Shutdown(sctx))
}
