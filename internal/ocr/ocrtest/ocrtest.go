// Package ocrtest builds the real OCR pipeline for tests: Tesseract
// engines in a pool behind a scheduler, as the server wires them.
package ocrtest

import (
	"context"
	"testing"

	"github.com/visionserve/visionserve/internal/engine"
	"github.com/visionserve/visionserve/internal/engine/tesseract"
	"github.com/visionserve/visionserve/internal/ocr"
	"github.com/visionserve/visionserve/internal/sched"
	"github.com/visionserve/visionserve/internal/testenv"
)

// TesseractService returns an ocr.Service over workers English Tesseract
// engines (model ocr-eng, version 1), closed when the test ends. Without
// Tesseract the test is skipped, or failed under CI=true.
func TesseractService(t testing.TB, workers int) *ocr.Service {
	t.Helper()
	pool, err := engine.NewPool(workers, func(int) (ocr.Engine, error) {
		return tesseract.New(tesseract.Config{Languages: "eng", Orientation: true})
	})
	if err != nil {
		testenv.Missing(t, "tesseract unavailable (run hack/setup.sh): "+err.Error())
	}
	t.Cleanup(func() { pool.Close(context.Background()) })
	models, err := ocr.NewStaticModels(&ocr.Model{Ref: ocr.ModelRef{Name: "ocr-eng", Version: "1"}, Languages: "eng", Engines: pool})
	if err != nil {
		t.Fatal(err)
	}
	return ocr.NewService(ocr.DefaultConfig(), models, sched.New(workers, 64, nil), nil, nil)
}
