// Package ocrrepo connects the OCR core to the model repository: the
// loader for packages of kind ocr-tesseract, and Source, the ocr.ModelSource
// that routes each request to a pinned repository version.
//
// The loader reads model bytes through modelrepo.Package.ReadFile, which
// re-checks each file's digest, and initialises Tesseract from those bytes:
// what a version runs is exactly what its signature covers, even if the
// directory changes after verification. Multi-language specs such as
// "eng+deu" too: Tesseract reads those only from a directory, so the
// engine writes the verified bytes to a private copy of its own
// (tesseract.Config.Data) rather than opening the package's files.
package ocrrepo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/draw"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/image/font"
	"golang.org/x/image/font/gofont/goregular"
	"golang.org/x/image/font/opentype"
	"golang.org/x/image/math/fixed"

	"github.com/visionserve/visionserve/internal/calib"
	"github.com/visionserve/visionserve/internal/engine"
	"github.com/visionserve/visionserve/internal/engine/tesseract"
	"github.com/visionserve/visionserve/internal/modelrepo"
	"github.com/visionserve/visionserve/internal/ocr"
)

// KindTesseract is the package kind this package loads.
const KindTesseract = "ocr-tesseract"

// TesseractRuntime is the manifest runtime object of an ocr-tesseract
// package. Files: <lang>.traineddata for each language, and
// osd.traineddata for orientation detection.
type TesseractRuntime struct {
	// Lang is the Tesseract language spec; "" means "eng".
	Lang string `json:"lang"`
	// Orientation turns orientation detection on or off; absent means on
	// when the package holds osd.traineddata.
	Orientation *bool `json:"orientation,omitempty"`
	// Variables are Tesseract parameters set after initialisation.
	Variables map[string]string `json:"variables,omitempty"`
	// Calibration maps word confidences to probabilities ([score,
	// probability] knots, as `visionserve calibrate` fits them); it belongs
	// with the traineddata it was fitted on, hence in the package.
	Calibration calib.Curve `json:"calibration,omitempty"`
	// CheapTier is the version's cheaper quality tier, served under
	// sustained queueing (the server's ocr.tier); absent: none.
	CheapTier *ocr.CheapTier `json:"cheap_tier,omitempty"`
}

// RunFunc runs fn on a worker of the process's one scheduler.
type RunFunc func(ctx context.Context, fn func(context.Context) error) error

// TesseractLoader loads ocr-tesseract packages.
type TesseractLoader struct {
	// Workers is the number of engines per version (one per worker).
	Workers int
	// Run, when set, runs each engine build and each warm-up inference on
	// a worker of the scheduler, so that loading a version never adds CPU
	// concurrency beyond the configured workers. Nil runs them directly.
	Run RunFunc

	sampleOnce sync.Once
	sample     *image.Gray
	sampleErr  error
}

// Interface guards.
var (
	_ modelrepo.Loader         = (*TesseractLoader)(nil)
	_ modelrepo.RuntimeChecker = (*TesseractLoader)(nil)
)

// CheckRuntime implements modelrepo.RuntimeChecker: the runtime object
// parses and its variables are allowed.
func (l *TesseractLoader) CheckRuntime(pkg *modelrepo.Package) error {
	_, err := parseRuntime(pkg.Runtime)
	return err
}

// Load implements modelrepo.Loader.
func (l *TesseractLoader) Load(ctx context.Context, pkg *modelrepo.Package) (modelrepo.Instance, error) {
	rt, err := parseRuntime(pkg.Runtime)
	if err != nil {
		return nil, err
	}
	cfg := tesseract.Config{Languages: rt.Lang, Variables: rt.Variables}
	_, hasOSD := pkg.Files["osd.traineddata"]
	cfg.Orientation = hasOSD
	if rt.Orientation != nil {
		cfg.Orientation = *rt.Orientation
	}
	cfg.Data = map[string][]byte{}
	for _, lang := range strings.Split(rt.Lang, "+") {
		if cfg.Data[lang], err = pkg.ReadFile(ctx, lang+".traineddata"); err != nil {
			return nil, err
		}
	}
	if cfg.Orientation {
		if cfg.Data["osd"], err = pkg.ReadFile(ctx, "osd.traineddata"); err != nil {
			return nil, err
		}
	}
	run := l.run()
	pool, err := engine.NewPool(max(l.Workers, 1), func(int) (ocr.Engine, error) {
		var e *tesseract.Engine
		err := run(ctx, func(context.Context) error {
			var err error
			e, err = tesseract.New(cfg)
			return err
		})
		return e, err
	})
	if err != nil {
		tesseract.TrimMemory()
		return nil, err
	}
	sample, err := l.warmupSample()
	if err != nil {
		_ = pool.Close(ctx)
		return nil, err
	}
	return &Instance{
		model: &ocr.Model{Ref: ocr.ModelRef{Name: pkg.Name, Version: strconv.Itoa(pkg.Version)}, Languages: rt.Lang, Engines: pool,
			Calibration: rt.Calibration, Cheaper: rt.CheapTier},
		pool:        pool,
		run:         run,
		orientation: cfg.Orientation,
		sample:      sample,
	}, nil
}

func (l *TesseractLoader) run() RunFunc {
	if l.Run != nil {
		return l.Run
	}
	return func(ctx context.Context, fn func(context.Context) error) error { return fn(ctx) }
}

func parseRuntime(raw json.RawMessage) (TesseractRuntime, error) {
	var rt TesseractRuntime
	if len(raw) > 0 {
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&rt); err != nil {
			return rt, &modelrepo.Error{Reason: modelrepo.ReasonManifestInvalid, Path: "manifest.json", Detail: "runtime for ocr-tesseract", Err: err}
		}
		if err := rt.Calibration.Validate(); err != nil {
			return rt, &modelrepo.Error{Reason: modelrepo.ReasonManifestInvalid, Path: "manifest.json", Detail: "runtime for ocr-tesseract", Err: err}
		}
		if rt.CheapTier != nil {
			if err := rt.CheapTier.Validate(); err != nil {
				return rt, &modelrepo.Error{Reason: modelrepo.ReasonManifestInvalid, Path: "manifest.json", Detail: "runtime for ocr-tesseract", Err: err}
			}
		}
		// Engine variables come from an allowlist: a debug variable can
		// hang a page, write files or start a viewer process.
		if err := tesseract.CheckVariables(rt.Variables); err != nil {
			return rt, &modelrepo.Error{Reason: modelrepo.ReasonManifestInvalid, Path: "manifest.json", Detail: "runtime for ocr-tesseract", Err: err}
		}
	}
	if rt.Lang == "" {
		rt.Lang = "eng"
	}
	return rt, nil
}

// warmupSample renders, once per loader, the line of text each engine of
// a new version reads before the version is published.
func (l *TesseractLoader) warmupSample() (*image.Gray, error) {
	l.sampleOnce.Do(func() {
		var s *Sample
		if s, l.sampleErr = NewSample(); s != nil {
			l.sample = s.Image
		}
	})
	return l.sample, l.sampleErr
}

// Sample is the warm-up input of OCR versions: one line of WarmupText.
type Sample struct {
	Image *image.Gray
}

// NewSample renders the warm-up line.
func NewSample() (*Sample, error) {
	img, err := renderSample(WarmupText)
	if err != nil {
		return nil, err
	}
	return &Sample{Image: img}, nil
}

// WarmupText is the text of the warm-up image.
const WarmupText = "Warm up 0123456789"

func renderSample(text string) (*image.Gray, error) {
	f, err := opentype.Parse(goregular.TTF)
	if err != nil {
		return nil, err
	}
	face, err := opentype.NewFace(f, &opentype.FaceOptions{Size: 32, DPI: 72, Hinting: font.HintingFull})
	if err != nil {
		return nil, err
	}
	defer face.Close()
	img := image.NewGray(image.Rect(0, 0, 420, 64))
	draw.Draw(img, img.Bounds(), image.White, image.Point{}, draw.Src)
	d := font.Drawer{Dst: img, Src: image.Black, Face: face, Dot: fixed.P(16, 44)}
	d.DrawString(text)
	return img, nil
}

// Instance is a loaded ocr-tesseract version: an engine pool and the
// ocr.Model that requests use.
type Instance struct {
	model       *ocr.Model
	pool        *engine.Pool[ocr.Engine]
	run         RunFunc
	orientation bool
	sample      *image.Gray
}

var _ modelrepo.Instance = (*Instance)(nil)

// OCRModel returns the model for the OCR core.
func (i *Instance) OCRModel() *ocr.Model { return i.model }

// ErrWarmupNoText: an engine read nothing in the warm-up image.
var ErrWarmupNoText = errors.New("the warm-up image read as no text")

// Warmup has every engine of the pool read the sample line (and detect
// its orientation, when enabled): it catches an engine that cannot run,
// and the first inference's one-off costs are paid before any request.
func (i *Instance) Warmup(ctx context.Context) error {
	engines := make([]ocr.Engine, 0, i.pool.Size())
	defer func() {
		for _, e := range engines {
			i.pool.Release(e)
		}
	}()
	for range i.pool.Size() {
		e, err := i.pool.Acquire(ctx)
		if err != nil {
			return err
		}
		engines = append(engines, e)
	}
	for n, e := range engines {
		err := i.run(ctx, func(ctx context.Context) error {
			lines, err := e.RecognizeText(ctx, i.sample, engine.SegLine)
			if err != nil {
				return err
			}
			if len(lines) == 0 || strings.TrimSpace(lines[0].Text) == "" {
				return ErrWarmupNoText
			}
			if i.orientation {
				_, err = e.DetectOrientation(ctx, i.sample)
			}
			return err
		})
		if err != nil {
			return fmt.Errorf("engine %d: %w", n, err)
		}
	}
	return nil
}

// Close frees the engines (no request holds them: the repository closes a
// version after it drained) and returns the freed memory to the system.
func (i *Instance) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := i.pool.Close(ctx)
	tesseract.TrimMemory()
	return err
}
