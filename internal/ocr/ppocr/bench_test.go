package ppocr_test

import (
	"context"
	"image"
	"syscall"
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

// cpuTime is the process's user and system CPU time so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkRecognizeZHPage reads the Chinese pages (1200x1600, 12 to 24
// lines) in turn with PP-OCRv4, one single-threaded session per model. On
// a shared machine wall time depends on the neighbours; CPU time per page
// does not, and 1000/cpu-ms is the pages per second one core sustains.
func BenchmarkRecognizeZHPage(b *testing.B) {
	pl := realV4Pipeline(b, 1, ppocr.V4Params())
	pages, err := ppocr.LoadPages(testenv.Shared(b, "data/ocr/zh-pages"))
	if err != nil {
		b.Fatal(err)
	}
	var imgs []image.Image
	for _, p := range pages {
		imgs = append(imgs, decode(b, p.Image))
	}
	start, cpu0 := time.Now(), cpuTime(b)
	i := 0
	for b.Loop() {
		if _, err := pl.Recognize(context.Background(), imgs[i%len(imgs)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
	reportMS(b, start)
	cpuMS := (cpuTime(b) - cpu0).Seconds() * 1000 / float64(b.N)
	b.ReportMetric(cpuMS, "cpu-ms/page")
	b.ReportMetric(1000/cpuMS, "pages/s/core")
}
