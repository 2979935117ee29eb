package dewarp_test

import (
	"image"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/visionserve/visionserve/internal/ocr/dewarp"
	"github.com/visionserve/visionserve/internal/testenv"
)

// BenchmarkDewarp measures the stage on the shared pages: a 1500x2000
// phone photo planned and flattened, and what auto mode adds to flat scans
// it leaves alone. Each result is also given as a multiple of decoding the
// same photo (x_decode), measured in the same run, so it reads the same on
// a faster machine.
//
//	go test -run '^$' -bench Dewarp -benchtime 20x ./internal/ocr/dewarp
func BenchmarkDewarp(b *testing.B) {
	dir := testenv.Shared(b, "data/ocr")
	photoPath := filepath.Join(dir, "photo-pages/11.jpg")
	photoBytes, err := os.ReadFile(photoPath)
	if err != nil {
		b.Fatal(err)
	}
	photo := decodeGray(b, photoPath)
	flat := decodeGray(b, filepath.Join(dir, "photo-pages/11.flat.png"))
	phototest := decodeGray(b, filepath.Join(dir, "pages/phototest.tif"))

	// The baseline: decoding the photo to grey, as the pipeline does first.
	const reps = 5
	start := time.Now()
	for range reps {
		decodeGrayBytes(b, photoBytes)
	}
	decode := float64(time.Since(start)) / reps

	run := func(name string, fn func()) {
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				fn()
			}
			b.ReportMetric(float64(b.Elapsed())/float64(b.N)/decode, "x_decode")
		})
	}
	run("photo/plan", func() { mustPlan(b, photo, true) })
	run("photo/plan+flatten", func() {
		c := mustPlan(b, photo, true)
		c.Gray(photo)
	})
	run("flat-scan-1200x1600/auto", func() { mustPlan(b, flat, false) })
	run("phototest-640x480/auto", func() { mustPlan(b, phototest, false) })
	run("photo/decode", func() { decodeGrayBytes(b, photoBytes) })
}

func mustPlan(b *testing.B, g *image.Gray, want bool) dewarp.Correction {
	c, ok := dewarp.Plan(g, dewarp.Auto)
	if ok != want {
		b.Fatalf("Plan = %v, want %v", ok, want)
	}
	return c
}
