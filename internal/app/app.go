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

	"github.com/visionserve/visionserve/internal/config"
	"github.com/visionserve/visionserve/internal/engine"
	"github.com/visionserve/visionserve/internal/engine/tesseract"
	"github.com/visionserve/visionserve/internal/httpapi"
	"github.com/visionserve/visionserve/internal/metrics"
	"github.com/visionserve/visionserve/internal/ocr"
	"github.com/visionserve/visionserve/internal/sched"
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
}

// DefaultOptions matches the command-line defaults.
func DefaultOptions() Options { return Options{Config: config.Default()} }

// App is a configured server.
type App struct {
	opts    Options
	log     *slog.Logger
	metrics *metrics.Metrics
	sched   *sched.Scheduler
	pools   []*engine.Pool[ocr.Engine]
	ocr     *ocr.Service
	handler *httpapi.Server
	srv     *http.Server
	ln      net.Listener
	ready   atomic.Bool
	served  chan error
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
	a = &App{opts: opts, log: opts.Logger.With("component", "app"), served: make(chan error, 1)}
	defer func() {
		if err != nil {
			a.closePools(context.Background())
		}
	}()

	a.metrics = metrics.New(opts.Registry)
	workers := cfg.Server.EffectiveWorkers()
	a.sched = sched.New(workers, cfg.Server.Queue, a.metrics)
	a.metrics.Workers.Set(float64(workers))
	a.metrics.QueueCapacity.Set(float64(cfg.Server.Queue))
	a.metrics.Info.WithLabelValues(Version, runtime.Version(), tesseract.Version()).Set(1)

	var models []*ocr.Model
	for _, mc := range cfg.Models {
		start := time.Now()
		tc := tesseract.Config{DataPath: mc.DataPath, Languages: mc.Languages, Orientation: true}
		pool, err := engine.NewPool(workers, func(int) (ocr.Engine, error) { return tesseract.New(tc) })
		if err != nil {
			return nil, fmt.Errorf("model %s: %w", mc.Name, err)
		}
		a.pools = append(a.pools, pool)
		models = append(models, &ocr.Model{Ref: ocr.ModelRef{Name: mc.Name, Version: mc.Version}, Languages: mc.Languages, Engines: pool, Calibration: mc.Calibration})
		a.log.Info("model loaded", "model", mc.Name, "version", mc.Version, "engine", mc.Engine,
			"languages", mc.Languages, "instances", workers, "duration", time.Since(start).Round(time.Millisecond))
	}
	source, err := ocr.NewStaticModels(models...)
	if err != nil {
		return nil, err
	}
	a.ocr = ocr.NewService(ocr.Config{
		Review:                   cfg.OCR.Review,
		OrientationCheckBelow:    cfg.OCR.OrientationCheckBelow,
		MinOrientationConfidence: cfg.OCR.MinOrientationConfidence,
		Limits:                   cfg.Limits.ImageLimits(),
	}, source, a.sched, a.metrics, opts.Logger)

	a.handler = httpapi.New(httpapi.Config{
		OCR:            a.ocr,
		Scheduler:      a.sched,
		Metrics:        a.metrics,
		Gatherer:       opts.Registry,
		Ready:          a.readiness,
		RequestTimeout: cfg.Server.RequestTimeout,
		Log:            opts.Logger,
	})
	a.srv = &http.Server{
		Handler:           a.handler,
		ReadHeaderTimeout: cfg.Server.ReadHeaderTimeout,
		IdleTimeout:       cfg.Server.IdleTimeout,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(opts.Logger.Handler(), slog.LevelWarn),
	}
	return a, nil
}

// OCR returns the OCR core, for in-process callers (the ocr command).
func (a *App) OCR() *ocr.Service { return a.ocr }

// Handler returns the HTTP handler.
func (a *App) Handler() *httpapi.Server { return a.handler }

func (a *App) readiness() error {
	if !a.ready.Load() {
		return errors.New("not ready: starting or shutting down")
	}
	return nil
}

// Start listens on the configured address and serves in the background.
func (a *App) Start() error {
	ln, err := net.Listen("tcp", a.opts.Config.Server.Addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	a.ln = ln
	go func() {
		err := a.srv.Serve(ln)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		a.served <- err
	}()
	a.ready.Store(true)
	a.log.Info("serving", "addr", ln.Addr().String(), "workers", a.sched.Workers(), "queue", a.sched.QueueCap(), "version", Version)
	return nil
}

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
	a.sched.Drain()
	a.log.Info("draining")
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
	if cerr := a.closePools(ctx); cerr != nil {
		err = errors.Join(err, cerr)
	}
	a.log.Info("stopped")
	return err
}

func (a *App) closePools(ctx context.Context) error {
	var errs []error
	for _, p := range a.pools {
		errs = append(errs, p.Close(ctx))
	}
	a.pools = nil
	return errors.Join(errs...)
}

// Run starts the server and blocks until ctx ends (a signal) or the server
// fails, then shuts down within the configured shutdown timeout.
func Run(ctx context.Context, opts Options) error {
	a, err := New(opts)
	if err != nil {
		return err
	}
	if err := a.Start(); err != nil {
		_ = a.closePools(context.Background())
		return err
	}
	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-a.served:
		a.ln = nil // already returned; Shutdown must not wait for it
	}
	sctx, cancel := context.WithTimeout(context.Background(), opts.Config.Server.ShutdownTimeout)
	defer cancel()
	return errors.Join(serveErr, a.Shutdown(sctx))
}
