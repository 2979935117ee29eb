package loader

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/visionserve/visionserve/internal/engine"
	"github.com/visionserve/visionserve/internal/engine/tesseract"
	"github.com/visionserve/visionserve/internal/ocr"
)

// TesseractOptions are the runtime options of kind ocr-tesseract.
type TesseractOptions struct {
	// Lang is a Tesseract language spec such as "eng" or "eng+deu".
	Lang string `json:"lang"`
}

// Tesseract loads a Tesseract OCR model: a pool of env.Instances engines
// reading the .traineddata files in dir ("" = the system's tessdata).
func Tesseract(name, version, dir string, runtime json.RawMessage, env Env) (m *Model, err error) {
	opts := TesseractOptions{Lang: "eng"}
	if err := decodeRuntime(runtime, &opts); err != nil {
		return nil, fmt.Errorf("model %s: %w", name, err)
	}
	if opts.Lang == "" {
		return nil, fmt.Errorf("model %s: runtime option lang is empty", name)
	}
	start := time.Now()
	tc := tesseract.Config{DataPath: dir, Languages: opts.Lang, Orientation: true}
	pool, err := engine.NewPool(max(env.Instances, 1), func(int) (ocr.Engine, error) { return tesseract.New(tc) })
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", name, err)
	}
	m = &Model{Name: name, Version: version, Kind: KindOCRTesseract,
		OCR:     &ocr.Model{Ref: ocr.ModelRef{Name: name, Version: version}, Languages: opts.Lang, Engines: pool},
		closers: []func(ctx context.Context) error{pool.Close}}
	env.log().Info("model loaded", "model", name, "version", version, "kind", KindOCRTesseract,
		"languages", opts.Lang, "instances", pool.Size(), "duration", time.Since(start).Round(time.Millisecond))
	return m, nil
}
