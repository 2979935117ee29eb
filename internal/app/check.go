package app

import (
	"context"
	"io"
	"log/slog"
	"maps"
	"sync"

	"github.com/visionserve/visionserve/internal/config"
	"github.com/visionserve/visionserve/internal/face/facerepo"
	"github.com/visionserve/visionserve/internal/loader"
	"github.com/visionserve/visionserve/internal/modelcheck"
	"github.com/visionserve/visionserve/internal/modelrepo"
	"github.com/visionserve/visionserve/internal/ocr/ocrrepo"
	"github.com/visionserve/visionserve/internal/sched"
)

// A repository version is loaded twice: first in a check child (a
// short-lived process of this binary, internal/modelcheck) with one
// engine, then, only if that worked, here with one engine per worker. Both
// build it with the same loaders.

// loaderSetup is what the repository loaders are built from.
type loaderSetup struct {
	env loader.Env
	// run runs engine builds and warm-ups (the server's scheduler); nil
	// runs them directly.
	run          func(ctx context.Context, fn func(context.Context) error) error
	faceSessions int
	extra        map[string]modelrepo.Loader
}

// repositoryLoaders returns the loaders of every package kind.
func repositoryLoaders(s loaderSetup) map[string]modelrepo.Loader {
	loaders := kindLoaders(s.env, sync.OnceValues(ocrrepo.NewSample))
	loaders[ocrrepo.KindTesseract] = &ocrrepo.TesseractLoader{Workers: s.env.Instances, Run: s.run}
	maps.Copy(loaders, facerepo.Loaders{Sessions: s.faceSessions, ONNXLibrary: s.env.ONNXLibrary, Run: s.run}.Map())
	maps.Copy(loaders, s.extra)
	return loaders
}

// modelChecker returns the repository's isolated check, or nil when it is
// off (the configuration says so, or the process was not told how to
// start a check child).
func (a *App) modelChecker(cfg config.Config) modelrepo.Checker {
	cc := cfg.Repository.Check
	switch {
	case cc.Disabled:
		a.log.Warn("the isolated model check is off (repository.check.disabled): a model file that crashes or hangs its engine takes the server down")
		return nil
	case a.opts.ModelCheck == nil:
		a.log.Warn("the isolated model check is off: this process was not told how to start a check child (app.Options.ModelCheck)")
		return nil
	}
	return &modelcheck.Runner{
		Command:     *a.opts.ModelCheck,
		Timeout:     cc.Timeout,
		MemoryLimit: int64(cc.MemoryLimit),
		ONNXLibrary: cfg.ONNX.Library,
		Metrics:     modelcheck.NewMetrics(a.opts.Registry),
		Log:         a.opts.Logger,
	}
}

// CheckChild is the check child's entry point (`visionserve model check
// --child`, or a test binary's TestMain): it loads and warms up the
// version the parent sends on in with one engine and reports on out (file
// descriptor 3). extra are the loaders the server was given through
// Options.Loaders. It returns the process's exit code.
func CheckChild(ctx context.Context, in io.Reader, out io.Writer, extra map[string]modelrepo.Loader) int {
	loaders := func(req modelcheck.Request) map[string]modelrepo.Loader {
		env := loader.Env{Scheduler: sched.New(1, 1, nil), Instances: 1, ONNXLibrary: req.ONNXLibrary, Log: slog.New(slog.DiscardHandler)}
		return repositoryLoaders(loaderSetup{env: env, faceSessions: 1, extra: extra})
	}
	return modelcheck.Serve(ctx, loaders, in, out)
}
