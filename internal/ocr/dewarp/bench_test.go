package dewarp_test

import (
	"image"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/visionserve/visionserve/internal/ocr/dewarp"
	"github.com/visionserve/visionserve/internal/ocr/dewarp/dewarptest"
	"github.com/visionserve/visionserve/internal/testenv"
)

// BenchmarkDewarp measures the stage on the shared pages: a 1500x2000
// phone photo planned and flattened, and what auto mode adds to flat scans
// it leaves alone. Besides wall time it reports the process's CPU time per
// operation (cpu-ms/op, which other processes on a busy machine do not
// inflate) and that as a multiple of decoding the same photo's JPEG,
// measured in the same run (x_decode), so it reads the same on a faster
// machine.
//
//	go test -run '^$' -bench Dewarp -benchtime 20x ./internal/ocr/dewarp
func BenchmarkDewarp(b *testing.B) {
	dir := testenv.Shared(b, "data/ocr")
	photoPath := filepath.Join(dir, "photo-pages/11.jpg")
	photoBytes, err := os.ReadFile(photoPath)
	if err != nil {
		b.Fatal(err)
	}
	photo := dewarptest.ReadGray(b, photoPath)
	flat := dewarptest.ReadGray(b, filepath.Join(dir, "photo-pages/11.flat.png"))
	phototest := dewarptest.ReadGray(b, filepath.Join(dir, "pages/phototest.tif"))

	// The baseline: decoding the photo to grey, as the pipeline does first.
	const reps = 10
	start := cpuTime(b)
	for range reps {
		dewarptest.DecodeGray(b, photoBytes)
	}
	decode := (cpuTime(b) - start) / reps

	run := func(name string, fn func()) {
		b.Run(name, func(b *testing.B) {
			start := cpuTime(b)
			for b.Loop() {
				fn()
			}
			perOp := (cpuTime(b) - start) / time.Duration(b.N)
			b.ReportMetric(float64(perOp)/1e6, "cpu-ms/op")
			b.ReportMetric(float64(perOp)/float64(decode), "x_decode")
		})
	}
	run("photo/plan", func() { mustPlan(b, photo, true) })
	run("photo/plan+flatten", func() {
		c := mustPlan(b, photo, true)
		c.Gray(photo)
	})
	run("flat-scan-1200x1600/auto", func() { mustPlan(b, flat, false) })
	run("phototest-640x480/auto", func() { mustPlan(b, phototest, false) })
	run("photo/decode", func() { dewarptest.DecodeGray(b, photoBytes) })
}

// cpuTime is the user and system CPU time the process has used.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func mustPlan(b *testing.B, g *image.Gray, want bool) dewarp.Correction {
	c, ok := dewarp.Plan(g, dewarp.Auto)
	if ok != want {
		b.Fatalf("Plan = %v, want %v", ok, want)
	}
	return c
}
