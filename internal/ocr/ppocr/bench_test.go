package ppocr_test

import (
	"context"
	"image"
	"testing"
	"time"

	"github.com/visionserve/visionserve/internal/ocr/ppocr"
	"github.com/visionserve/visionserve/internal/ocreval"
	"github.com/visionserve/visionserve/internal/testenv"
)

// The benchmarks use one single-threaded session per model, the per-worker
// configuration the server runs; they measure one image at a time.
// Run: nice -n 10 go test -run XXX -bench . -benchtime 10x ./internal/ocr/ppocr/

func reportMS(b *testing.B, start time.Time) {
	b.ReportMetric(time.Since(start).Seconds()*1000/float64(b.N), "ms/image")
}

func BenchmarkDetectPhototest(b *testing.B) {
	pl := realPipeline(b, 1, ppocr.DefaultParams())
	img := decode(b, testenv.Shared(b, "data/ocr/pages/phototest.tif"))
	start := time.Now()
	for b.Loop() {
		if _, err := pl.Detect(context.Background(), img); err != nil {
			b.Fatal(err)
		}
	}
	reportMS(b, start)
}

func BenchmarkRecognizePagePhototest(b *testing.B) {
	pl := realPipeline(b, 1, ppocr.DefaultParams())
	img := decode(b, testenv.Shared(b, "data/ocr/pages/phototest.tif"))
	start := time.Now()
	for b.Loop() {
		if _, err := pl.Recognize(context.Background(), img); err != nil {
			b.Fatal(err)
		}
	}
	reportMS(b, start)
}

// BenchmarkRecognizeLine cycles through the shared line images.
func BenchmarkRecognizeLine(b *testing.B) {
	pl := realPipeline(b, 1, ppocr.DefaultParams())
	samples, err := ocreval.LoadLines(testenv.Shared(b, "data/ocr/lines"))
	if err != nil {
		b.Fatal(err)
	}
	const n = 20
	var imgs []image.Image
	for _, s := range samples[:n] {
		imgs = append(imgs, decode(b, s.Image))
	}
	start := time.Now()
	i := 0
	for b.Loop() {
		if _, err := pl.RecognizeLine(context.Background(), imgs[i%n]); err != nil {
			b.Fatal(err)
		}
		i++
	}
	reportMS(b, start)
}
