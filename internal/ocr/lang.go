package ocr

import (
	"context"
	"errors"
	"maps"
	"time"

	"github.com/visionserve/visionserve/internal/imageio"
)

// LangAuto is the lang value that picks the language from the script of
// the input's first page: Tesseract's orientation and script detection
// (OSD) runs on it with an engine of the default model, Config.Scripts
// maps the script to a language, and the request is then served as if it
// had asked for that language. Without a script (OSD needs about 50
// characters, so single lines rarely have one; or the default model has no
// OSD) or without a mapping, the default model reads it.
const LangAuto = "auto"

// DefaultLanguages routes Simplified Chinese to the PP-OCRv4 package that
// `visionserve model bootstrap` publishes, the best Chinese reader in
// docs/ocr-evaluation.md; "zh" is an alias.
func DefaultLanguages() map[string]string {
	return map[string]string{"chi_sim": "ocr-zh", "zh": "ocr-zh"}
}

// DefaultScripts maps OSD's scripts to languages for lang=auto. OSD calls
// some Chinese pages "Japanese" (2 of the 15 zh-pages); with no Japanese
// model served, Chinese is the better reader for them.
func DefaultScripts() map[string]string {
	return map[string]string{"Latin": "eng", "Han": "chi_sim", "Japanese": "chi_sim"}
}

// acquire pins the model a request asks for: the named model; else the
// model Config.Languages routes its language to; else (that model is not
// served, or the language has no route) the first model reading the
// language; else the default model. A routed model that exists but has no
// ready version is an error, not a reason to read with another model.
func (s *Service) acquire(opt Options) (*Model, func(), error) {
	sel := Selector{Name: opt.Model, Version: opt.Version, Lang: opt.Lang, Key: opt.Key}
	if sel.Name == "" && sel.Lang != "" {
		if name, ok := s.cfg.Languages[sel.Lang]; ok {
			m, release, err := s.models.Acquire(Selector{Name: name, Version: sel.Version, Key: sel.Key})
			if !errors.Is(err, ErrModelNotFound) {
				return m, release, err
			}
		}
	}
	return s.models.Acquire(sel)
}

// detectLanguage runs OSD on the first page of doc with an engine of the
// default model and returns the script it saw and the language
// Config.Scripts maps it to ("" for either when there is none). It holds a
// worker while it decodes and detects.
func (s *Service) detectLanguage(ctx context.Context, doc *imageio.Document, key string, t *timings) (script, lang string, err error) {
	ctx, span := s.cfg.Tracer.Start(ctx, "ocr.detect_script")
	defer func() { endStage(span, err) }()
	m, release, err := s.models.Acquire(Selector{Key: key})
	if err != nil {
		return "", "", err
	}
	defer release()
	if m.Engines == nil || len(doc.Pages) == 0 {
		return "", "", nil // a PageReader model has no OSD
	}
	err = s.sched.Run(ctx, func(ctx context.Context) error {
		t0 := time.Now()
		img, err := doc.Decode(ctx, 0)
		t.decode += time.Since(t0)
		if err != nil {
			return err
		}
		t1 := time.Now()
		defer func() { t.preprocess += time.Since(t1) }()
		eng, err := m.Engines.Acquire(ctx)
		if err != nil {
			return err
		}
		defer m.Engines.Release(eng)
		o, err := eng.DetectOrientation(ctx, imageio.ToGray(img))
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			// An engine without OSD, or OSD failing on this page: no
			// script, the default model reads it.
			s.log.Debug("no script for lang=auto", "model", m.Ref.Name, "err", err)
			return nil
		}
		script = o.Script
		return nil
	})
	if err != nil {
		return "", "", err
	}
	return script, s.cfg.Scripts[script], nil
}

// cloneTables copies the routing tables so a Service never shares them
// with its caller.
func cloneTables(cfg *Config) {
	cfg.Languages = maps.Clone(cfg.Languages)
	cfg.Scripts = maps.Clone(cfg.Scripts)
}
