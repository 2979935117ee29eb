package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/visionserve/visionserve/internal/config"
	"github.com/visionserve/visionserve/internal/loader"
	"github.com/visionserve/visionserve/internal/modelrepo"
	"github.com/visionserve/visionserve/internal/ocr"
	"github.com/visionserve/visionserve/internal/oip"
)

// loadModel loads one configured model with the loader for its engine, the
// same functions the model repository calls per package kind.
func loadModel(mc config.Model, env loader.Env) (*loader.Model, error) {
	switch mc.Engine {
	case config.EngineTesseract:
		runtime, err := json.Marshal(loader.TesseractOptions{Lang: mc.Languages})
		if err != nil {
			return nil, err
		}
		return loader.Tesseract(mc.Name, mc.Version, mc.DataPath, runtime, env)
	case config.EnginePPOCR, config.EngineONNX:
		var runtime json.RawMessage
		if mc.Runtime != nil {
			var err error
			if runtime, err = json.Marshal(mc.Runtime); err != nil {
				return nil, fmt.Errorf("model %s: runtime: %w", mc.Name, err)
			}
		}
		if mc.Engine == config.EnginePPOCR {
			return loader.PPOCR(context.Background(), mc.Name, mc.Version, loader.Dir(mc.Dir), runtime, env)
		}
		return loader.ONNX(context.Background(), mc.Name, mc.Version, loader.Dir(mc.Dir), runtime, env)
	}
	return nil, fmt.Errorf("model %s: unknown engine %q", mc.Name, mc.Engine)
}

// refuse records a built-in model that failed to load: the server serves
// the others and lists it as failed, with the reason.
func (a *App) refuse(mc config.Model, err error) {
	reason := modelrepo.ReasonOf(err)
	if reason == modelrepo.ReasonUnknown {
		reason = modelrepo.ReasonLoadError
	}
	a.log.Error("model refused; serving the others", "model", mc.Name, "version", mc.Version, "engine", mc.Engine, "reason", reason, "err", err)
	fail := &modelrepo.Error{Reason: reason, Err: err}
	a.refused = append(a.refused, modelrepo.ModelStatus{
		Name:    mc.Name,
		Traffic: modelrepo.Traffic{Mode: modelrepo.TrafficStatic, Shares: map[string]float64{}},
		Versions: []modelrepo.VersionStatus{{Version: mc.Version, State: modelrepo.StateFailed, Since: time.Now(),
			Reason: reason, Phase: modelrepo.PhaseLoad, Detail: fail.Error()}},
	})
}

// ocrSource serves the OCR models, or, with none configured, answers every
// OCR request with ErrModelNotFound.
func ocrSource(models []*loader.Model) (ocr.ModelSource, error) {
	var ms []*ocr.Model
	for _, m := range models {
		if m.OCR != nil {
			ms = append(ms, m.OCR)
		}
	}
	if len(ms) == 0 {
		return noOCRModels{}, nil
	}
	return ocr.NewStaticModels(ms...)
}

type noOCRModels struct{}

func (noOCRModels) Acquire(ocr.Selector) (*ocr.Model, func(), error) {
	return nil, nil, fmt.Errorf("%w: no OCR model is configured", ocr.ErrModelNotFound)
}

// oipSource serves every model on the inference protocol: tensor models as
// they are, OCR models through the OCR service.
func oipSource(models []*loader.Model, svc *ocr.Service, maxImages int) (*oip.StaticModels, error) {
	var hs []oip.Handle
	for _, m := range models {
		h := oip.Handle{Name: m.Name, Version: m.Version, Model: m.Tensor}
		if m.OCR != nil {
			h.Model = oip.NewOCRModel(svc, m.Name, m.Version, maxImages)
		}
		hs = append(hs, h)
	}
	return oip.NewStaticModels(hs...)
}

func (a *App) closeModels(ctx context.Context) error {
	var errs []error
	for _, m := range a.models {
		errs = append(errs, m.Close(ctx))
	}
	a.models = nil
	errs = append(errs, a.closeRepository(ctx))
	errs = append(errs, a.face.close(ctx))
	a.face = nil
	return errors.Join(errs...)
}
