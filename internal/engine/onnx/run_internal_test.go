package onnx

import (
	"context"
	"errors"
	"os"
	"sync"
	"testing"

	"github.com/visionserve/visionserve/internal/engine"
	"github.com/visionserve/visionserve/internal/testenv"
)

// initForTest is onnxtest.Init, which this package's internal tests cannot
// import (onnxtest imports onnx).
func initForTest(t *testing.T) {
	t.Helper()
	_, err := Init("")
	if errors.Is(err, ErrRuntimeNotFound) {
		testenv.Missing(t, err.Error())
	}
	if err != nil {
		t.Fatal(err)
	}
}

func TestIntegrationInitIsIdempotent(t *testing.T) {
	initForTest(t)
	a, err := Init("")
	if err != nil {
		t.Fatal(err)
	}
	b, err := Init(a.Path)
	if err != nil || b != a {
		t.Fatalf("second Init = %+v, %v; want %+v", b, err, a)
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			if c, err := Init(""); err != nil || c != a {
				t.Errorf("concurrent Init = %+v, %v; want %+v", c, err, a)
			}
		})
	}
	wg.Wait()
	if a.Version != RuntimeVersion && os.Getenv(LibraryEnv) == "" {
		t.Errorf("loaded ONNX Runtime %s from the cache, want %s", a.Version, RuntimeVersion)
	}
	other := t.TempDir() + "/libother.so"
	if err := os.WriteFile(other, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Init(other); err == nil {
		t.Error("Init with a second library succeeded; a process can hold only one")
	}
}

// A cancelled context terminates a run in progress, and the session works
// again afterwards (the terminate flag does not stick).
func TestIntegrationRunCancelledMidway(t *testing.T) {
	initForTest(t)
	model, err := os.ReadFile(testenv.Shared(t, "models/ocr/en_PP-OCRv3_det_infer.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSession(model, DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// Big enough that ORT is still busy when the cancellation lands.
	const side = 960
	in := []engine.Tensor{engine.NewTensor([]int64{1, 3, side, side}, make([]float32, 3*side*side))}

	ctx, cancel := context.WithCancel(context.Background())
	s.beforeRun = cancel
	_, err = s.Run(ctx, in)
	s.beforeRun = nil
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Run cancelled before ORT started = %v, want context.Canceled", err)
	}

	small := []engine.Tensor{engine.NewTensor([]int64{1, 3, 64, 64}, make([]float32, 3*64*64))}
	out, err := s.Run(context.Background(), small)
	if err != nil {
		t.Fatalf("Run after a cancelled run: %v", err)
	}
	if got := out[0].Shape; len(got) != 4 || got[2] != 64 || got[3] != 64 {
		t.Errorf("output shape %v, want [1 1 64 64]", got)
	}
}

func TestIntegrationSessionRefusesConcurrentUse(t *testing.T) {
	initForTest(t)
	model, err := os.ReadFile(testenv.Shared(t, "models/ocr/ch_ppocr_mobile_v2.0_cls_infer.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSession(model, DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	in := []engine.Tensor{engine.NewTensor([]int64{1, 3, 48, 192}, make([]float32, 3*48*192))}
	var inner, closeErr error
	s.beforeRun = func() {
		_, inner = s.Run(context.Background(), in)
		closeErr = s.Close()
	}
	if _, err := s.Run(context.Background(), in); err != nil {
		t.Fatalf("outer Run: %v", err)
	}
	if !errors.Is(inner, ErrConcurrentUse) {
		t.Errorf("Run during a Run = %v, want ErrConcurrentUse", inner)
	}
	if !errors.Is(closeErr, ErrConcurrentUse) {
		t.Errorf("Close during a Run = %v, want ErrConcurrentUse", closeErr)
	}
	s.beforeRun = nil
	if err := s.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}

// A session whose ORT session cannot be created frees what it had built
// (its RunOptions) and returns no session.
func TestIntegrationNewSessionCleansUpOnFailure(t *testing.T) {
	initForTest(t)
	s, err := newSession([]byte("not a model"), DefaultOptions(), nil, nil)
	if err == nil || s != nil {
		t.Fatalf("newSession(garbage) = %v, %v; want nil and an error", s, err)
	}
}
