package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"time"

	"github.com/visionserve/visionserve/internal/config"
	"github.com/visionserve/visionserve/internal/engine/tesseract"
	"github.com/visionserve/visionserve/internal/httpapi"
	"github.com/visionserve/visionserve/internal/loader"
	"github.com/visionserve/visionserve/internal/metrics"
	"github.com/visionserve/visionserve/internal/modelrepo"
	"github.com/visionserve/visionserve/internal/modelrepo/importer"
	"github.com/visionserve/visionserve/internal/modelrepo/signing"
	"github.com/visionserve/visionserve/internal/modelrepo/trust"
	"github.com/visionserve/visionserve/internal/ocr"
	"github.com/visionserve/visionserve/internal/ocr/ocrrepo"
	"github.com/visionserve/visionserve/internal/oip"
)

// A server with repository.dir (--models) serves the signed packages of
// that repository, and nothing else: the built-in models list is for
// servers without one (and for the in-process ocr command).

// staticConfig returns the built-in models to load: none when models come
// from a repository.
func (a *App) staticConfig(cfg config.Config) []config.Model {
	if cfg.Repository.Dir != "" {
		return nil
	}
	return cfg.Models
}

// modelSource returns where requests get their model version: the
// repository, started here (its initial loads finished), or the static
// models just loaded.
func (a *App) modelSource(cfg config.Config, env loader.Env) (ocr.ModelSource, error) {
	if cfg.Repository.Dir == "" {
		return ocrSource(a.models)
	}
	rc := cfg.Repository
	policy, err := trust.New(trust.Config{
		Keys: rc.Trust.Keys, CACertificates: rc.Trust.CACertificates, AllowUnsigned: rc.Trust.AllowUnsigned, Log: a.opts.Logger,
	})
	if err != nil {
		return nil, err
	}
	policy.LogSummary()
	// A version's request metrics end with it: label values stay bounded
	// however many versions come and go.
	mm := metrics.NewModelMetrics(a.opts.Registry, a.metrics.Stage, a.metrics.Confidence, a.metrics.Pages,
		a.serving.BatchRows, a.serving.BatchSize)
	// One scheduler for every version: engines are built and warmed on its
	// workers, so a swap never runs more inference than --workers allows.
	faceSessions := cfg.Face.Sessions
	if faceSessions == 0 {
		faceSessions = a.sched.Workers()
	}
	loaders := repositoryLoaders(loaderSetup{env: env, run: a.sched.Run, faceSessions: faceSessions, extra: a.opts.Loaders})
	repo, err := modelrepo.New(modelrepo.Options{
		Dir:              rc.Dir,
		Verifier:         policy,
		Loaders:          loaders,
		Checker:          a.modelChecker(cfg),
		StateDir:         rc.EffectiveStateDir(),
		DefaultPolicy:    rc.Policy,
		Policies:         rc.Policies,
		RescanInterval:   rc.RescanInterval,
		NoWatch:          !rc.Watch,
		MaxParallelLoads: rc.MaxParallelLoads,
		Observer:         mm.Observe,
		Log:              a.opts.Logger,
	})
	if err != nil {
		return nil, err
	}
	start := time.Now()
	if err := repo.Start(context.Background()); err != nil {
		return nil, err
	}
	a.repo = repo
	if err := applyTrafficFile(repo, rc.TrafficFile, a.log); err != nil {
		return nil, err
	}
	def := cfg.DefaultModelName()
	if err := repo.Ready(def); err != nil {
		a.log.Warn("the default model has no ready version yet; readiness fails until it has", "model", def, "err", err)
	}
	a.log.Info("model repository started", "dir", rc.Dir, "models", repo.Names(), "default_model", def,
		"duration", time.Since(start).Round(time.Millisecond))
	if err := a.startImports(rc, policy); err != nil {
		return nil, err
	}
	return &ocrrepo.Source{Repo: repo, Default: def}, nil
}

// modelAdmin is the repository for the model routes, or nil (an interface
// holding a nil pointer would not be).
func (a *App) modelAdmin() httpapi.ModelAdmin {
	if a.repo == nil {
		return nil
	}
	return a.repo
}

// staticStatus describes the built-in models for GET /v1/models.
func (a *App) staticStatus() []modelrepo.ModelStatus {
	var out []modelrepo.ModelStatus
	for _, m := range a.models {
		out = append(out, modelrepo.ModelStatus{
			Name:     m.Name,
			Kind:     m.Kind,
			Traffic:  modelrepo.Traffic{Mode: modelrepo.TrafficStatic, Shares: map[string]float64{m.Version: 1}},
			Versions: []modelrepo.VersionStatus{{Version: m.Version, State: modelrepo.StateReady, Since: a.started, Kind: m.Kind}},
		})
	}
	return append(out, a.refused...)
}

// oipModels returns the models of the inference protocol: the static ones,
// or the repository's.
func (a *App) oipModels(cfg config.Config) (oip.ModelSource, error) {
	if a.repo == nil {
		s, err := oipSource(a.models, a.ocr, cfg.Limits.MaxPages)
		if err != nil {
			return nil, err
		}
		return s, nil
	}
	return &repoOIP{repo: a.repo, ocr: a.ocr, maxImages: cfg.Limits.MaxPages}, nil
}

// repoOIP serves the repository's versions on the inference protocol: OCR
// kinds through the OCR service, tensor kinds as they are. The OCR service
// reads with the very version the protocol request pinned, never a second
// routing decision that a swap could change in between.
type repoOIP struct {
	repo      *modelrepo.Repository
	ocr       *ocr.Service
	maxImages int
}

// tensorInstance is a loaded version that answers tensors (kind onnx).
type tensorInstance interface {
	TensorModel() oip.Model
}

// ocrInstance is a loaded version that reads text.
type ocrInstance interface {
	OCRModel() *ocr.Model
}

func (s *repoOIP) Acquire(name, version string) (oip.Handle, func(), error) {
	pin := 0
	if version != "" {
		var ok bool
		if pin, ok = modelrepo.ParseVersion(version); !ok {
			return oip.Handle{}, nil, fmt.Errorf("%w: version %q is not a positive integer", oip.ErrVersionNotFound, version)
		}
	}
	h, err := s.repo.Acquire(modelrepo.Selector{Model: name, Version: pin})
	switch {
	case errors.Is(err, modelrepo.ErrModelNotFound):
		return oip.Handle{}, nil, fmt.Errorf("%w: %v", oip.ErrModelNotFound, err)
	case errors.Is(err, modelrepo.ErrVersionNotFound):
		return oip.Handle{}, nil, fmt.Errorf("%w: %v", oip.ErrVersionNotFound, err)
	case errors.Is(err, modelrepo.ErrNoReadyVersion):
		// REST answers 503 (modelrepo's sentinel comes first there);
		// gRPC, which knows only the protocol's, NotFound.
		return oip.Handle{}, nil, fmt.Errorf("%w (%w)", err, oip.ErrVersionNotFound)
	case err != nil:
		return oip.Handle{}, nil, err
	}
	v := strconv.Itoa(h.Version())
	out := oip.Handle{Name: name, Version: v, Versions: s.readyVersions(name, v)}
	switch inst := h.Instance().(type) {
	case tensorInstance:
		out.Model = inst.TensorModel()
	case ocrInstance:
		pinned := s.ocr.WithSource(pinnedModel{inst.OCRModel()})
		out.Model = oip.NewOCRModel(pinned, name, v, s.maxImages)
	default:
		h.Release()
		return oip.Handle{}, nil, fmt.Errorf("%w: %s is a %s model, which the inference protocol does not serve", oip.ErrModelNotFound, name, h.Kind())
	}
	return out, h.Release, nil
}

func (s *repoOIP) readyVersions(name, current string) []string {
	st, err := s.repo.Model(name)
	if err != nil {
		return []string{current}
	}
	var out []string
	for _, vs := range st.Versions {
		if vs.State == modelrepo.StateReady {
			out = append(out, vs.Version)
		}
	}
	return out
}

// pinnedModel is an ocr.ModelSource of one model version already pinned by
// its caller.
type pinnedModel struct{ m *ocr.Model }

func (p pinnedModel) Acquire(ocr.Selector) (*ocr.Model, func(), error) { return p.m, func() {}, nil }

// modelsReady reports whether the default model can take traffic.
func (a *App) modelsReady() error {
	if a.repo == nil {
		return nil
	}
	if err := a.repo.Ready(a.opts.Config.DefaultModelName()); err != nil {
		return errors.New("not ready: " + err.Error())
	}
	return nil
}

// closeRepository drains and frees every version.
func (a *App) closeRepository(ctx context.Context) error {
	if a.stopImports != nil {
		a.stopImports()
		a.stopImports = nil
	}
	if a.repo == nil {
		return nil
	}
	return a.repo.Close(ctx)
}

// startImports watches repository.import.dir: vendor zips dropped there
// are verified and published into the repository, signed with its key,
// by the code path of `visionserve model import`. An import the server's
// own trust policy would refuse is refused at import.
func (a *App) startImports(rc config.Repository, policy *trust.Policy) error {
	ic := rc.Import
	if ic.Dir == "" {
		return nil
	}
	if err := os.MkdirAll(ic.Dir, 0o750); err != nil {
		return fmt.Errorf("repository.import.dir: %w", err)
	}
	signer, err := signing.LoadSigner(ic.SigningKey, ic.SigningCertificate, ic.SigningChain)
	if err != nil {
		return fmt.Errorf("repository.import.signing_key: %w", err)
	}
	vendors, err := importer.LoadTrust(ic.TrustedKeys, nil)
	if err != nil {
		return fmt.Errorf("repository.import.trusted_keys: %w", err)
	}
	im, err := importer.New(importer.Options{
		Repo: rc.Dir, Signer: signer, Trust: vendors,
		Check: func(ctx context.Context, dir string) error {
			_, err := policy.Verify(ctx, dir)
			return err
		},
	})
	if err != nil {
		return err
	}
	w := &importer.Watcher{Importer: im, Dir: ic.Dir, Interval: ic.ScanInterval, Log: a.opts.Logger, Metrics: importer.NewMetrics(a.opts.Registry)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := w.Run(ctx); err != nil {
			a.log.Error("the import drop folder is not watched", "dir", ic.Dir, "err", err)
		}
	}()
	a.stopImports = func() {
		cancel()
		<-done
	}
	return nil
}

// tuneMalloc makes the C allocator give unloaded models' memory back to
// the system (see tesseract.TuneMalloc), so that hot swaps do not creep.
func tuneMalloc(log *slog.Logger) {
	if tesseract.TuneMalloc() {
		log.Debug("malloc mmap threshold fixed", "bytes", tesseract.MmapThreshold)
	}
}

// Repository returns the model repository, or nil when the server runs
// without one.
func (a *App) Repository() *modelrepo.Repository { return a.repo }
