package ocr

import (
	"context"
	"image"

	"github.com/visionserve/visionserve/internal/engine"
)

// guardedEngine is an engine lent to one page. Each call goes through
// engine.Call, so the page ends at its deadline even when the engine does
// not return (a C call stuck for good); the engine then goes back to its
// pool only once its call returns (EnginePool.ReleaseAfter), and the pool
// quarantines it if that takes too long.
type guardedEngine struct {
	eng   Engine
	guard engine.Guard
}

func (g *guardedEngine) RecognizeText(ctx context.Context, img *image.Gray, mode engine.SegMode) ([]engine.TextLine, error) {
	return engine.Guarded(ctx, &g.guard, func() ([]engine.TextLine, error) { return g.eng.RecognizeText(ctx, img, mode) })
}

func (g *guardedEngine) DetectOrientation(ctx context.Context, img *image.Gray) (engine.Orientation, error) {
	return engine.Guarded(ctx, &g.guard, func() (engine.Orientation, error) { return g.eng.DetectOrientation(ctx, img) })
}

// pageEngine is what a page reads with.
type pageEngine interface {
	engine.TextRecognizer
	engine.OrientationDetector
}

// lend acquires an engine of model for one page and returns it guarded,
// with the function that gives it back.
func (s *Service) lend(ctx context.Context, model *Model) (pageEngine, func(), error) {
	eng, err := model.Engines.Acquire(ctx)
	if err != nil {
		return nil, nil, err
	}
	g := &guardedEngine{eng: eng}
	return g, func() {
		model.Engines.ReleaseAfter(eng, g.guard.Pending(), func() {
			s.log.Error("an engine call did not return long after its request's deadline; the engine is quarantined and replaced",
				"model", model.Ref.Name, "version", model.Ref.Version)
			if s.metrics != nil {
				s.metrics.EngineCallsStuck.Inc()
			}
		})
	}, nil
}
