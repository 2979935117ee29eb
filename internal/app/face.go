package app

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/visionserve/visionserve/internal/config"
	"github.com/visionserve/visionserve/internal/engine/onnx"
	"github.com/visionserve/visionserve/internal/face"
	"github.com/visionserve/visionserve/internal/face/facerepo"
	"github.com/visionserve/visionserve/internal/gallery"
	"github.com/visionserve/visionserve/internal/keys"
	"github.com/visionserve/visionserve/internal/metrics"
)

// Interface guards: the metrics observe the face core and the galleries.
var (
	_ face.Observer    = (*metrics.Face)(nil)
	_ gallery.Observer = (*metrics.Face)(nil)
	_ face.Galleries   = (*gallery.Manager)(nil)
)

// faceParts is what face recognition adds to a process; close releases it
// (also after a partial start).
type faceParts struct {
	models    *face.Models // nil when the models come from the repository
	galleries *gallery.Manager
	service   *face.Service
}

// startFace loads the face models (files), or connects the face core to
// the repository's face models, opens the gallery store and builds the
// face core, when the configuration enables face recognition. On error it
// releases what it built.
func (a *App) startFace(cfg config.Config) (err error) {
	fc := cfg.Face
	// In-process commands (CoreOnly) need no face models, and must not
	// take the gallery store's lock from a server on the same file.
	if !fc.Enabled() || a.opts.CoreOnly {
		return nil
	}
	start := time.Now()
	p := &faceParts{}
	defer func() {
		if err != nil {
			_ = p.close(context.Background())
		}
	}()
	rt, err := onnx.Init(cfg.ONNX.Library)
	if err != nil {
		return fmt.Errorf("face recognition needs ONNX Runtime: %w", err)
	}
	var source face.ModelSource
	attrs := []any{"onnxruntime", rt.Version, "gallery_store", fc.Gallery.Store}
	if fc.FromRepository() {
		if a.repo == nil {
			return errors.New("face.detector_model and face.embedder_model name repository models, but the server has no model repository")
		}
		// Versions load, warm up and swap with the repository; each
		// request pins the ones it runs on.
		source = &facerepo.Source{Repo: a.repo, Detector: fc.DetectorModel, Embedder: fc.EmbedderModel}
		attrs = append(attrs, "detector_model", fc.DetectorModel, "embedder_model", fc.EmbedderModel)
		for _, name := range []string{fc.DetectorModel, fc.EmbedderModel} {
			if err := a.repo.Ready(name); err != nil {
				a.log.Warn("a face model has no ready version yet; the face routes answer 503 until it has", "model", name, "err", err)
			}
		}
		if d := config.Default().Face; fc.Flip != d.Flip || fc.Detect != d.Detect {
			a.log.Warn("face.detect and face.flip apply to model files; with repository models, set them in the packages' runtime options")
		}
	} else {
		opts := face.DefaultLoadOptions()
		opts.Detect = fc.Detect
		opts.Embed.Flip = fc.Flip
		opts.Runtime.Sessions = fc.Sessions
		if opts.Runtime.Sessions == 0 {
			opts.Runtime.Sessions = a.sched.Workers()
		}
		if p.models, err = face.Load(face.Files{Detector: fc.Detector, Embedder: fc.Embedder}, opts); err != nil {
			return err
		}
		source = p.models
		attrs = append(attrs, "detector", fc.Detector, "embedder", fc.Embedder, "embedder_id", p.models.EmbedderID(), "sessions", opts.Runtime.Sessions)
	}
	m := metrics.NewFace(a.opts.Registry)
	store, err := openGalleryStore(fc.Gallery, a.enc)
	if err != nil {
		return err
	}
	ring := ringOf(store)
	a.checkKeys("galleries", ring)
	attrs = append(attrs, "encryption", ring)
	if p.galleries, err = gallery.Open(context.Background(), store, fc.Gallery.ManagerConfig(), a.opts.Logger, m); err != nil {
		store.Close()
		return err
	}
	if p.service, err = face.NewService(fc.ServiceConfig(cfg.Limits), source, p.galleries, a.sched, m, a.opts.Logger); err != nil {
		return err
	}
	a.face = p
	a.log.Info("face recognition loaded", append(attrs, "duration", time.Since(start).Round(time.Millisecond))...)
	return nil
}

// openGalleryStore opens the gallery store g configures, its embeddings
// sealed with enc.
func openGalleryStore(g config.Gallery, enc keys.Config) (gallery.Store, error) {
	switch g.Store {
	case config.StorePostgres:
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		return gallery.OpenPostgres(ctx, g.Postgres, 0, enc)
	default:
		return gallery.OpenBolt(g.Path, 10*time.Second, enc)
	}
}

// Face returns the face core (nil when face recognition is off).
func (a *App) Face() *face.Service {
	if a.face == nil {
		return nil
	}
	return a.face.service
}

// close stops the galleries (after requests have drained) and frees the
// models.
func (p *faceParts) close(ctx context.Context) error {
	if p == nil {
		return nil
	}
	var errs []error
	if p.galleries != nil {
		errs = append(errs, p.galleries.Close())
	}
	errs = append(errs, p.models.Close(ctx))
	return errors.Join(errs...)
}
