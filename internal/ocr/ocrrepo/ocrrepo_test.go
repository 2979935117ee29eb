package ocrrepo_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/visionserve/visionserve/internal/modelrepo"
	"github.com/visionserve/visionserve/internal/modelrepo/manifest"
	"github.com/visionserve/visionserve/internal/modelrepo/repotest"
	"github.com/visionserve/visionserve/internal/ocr"
	"github.com/visionserve/visionserve/internal/ocr/ocrrepo"
	"github.com/visionserve/visionserve/internal/sched"
	"github.com/visionserve/visionserve/internal/testenv"
)

// verified publishes a signed package and returns what the server's
// verifier makes of it.
func verified(t *testing.T, files map[string][]byte, runtime map[string]any) *modelrepo.Package {
	t.Helper()
	pkg, _ := repotest.Verified(t, repotest.Spec{Name: "ocr-eng", Version: 1, Kind: manifest.KindOCRTesseract, Runtime: runtime, Files: files})
	return pkg
}

func lineImage(t *testing.T) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(testenv.Shared(t, "data/ocr/lines"), "book/0005/010001.bin.png"))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// A package loads, warms up and reads like the system model, through the
// scheduler, and frees its engines on Close.
func TestIntegrationLoadAndServe(t *testing.T) {
	curve := [][2]float64{{0.1, 0.2}, {0.9, 0.95}}
	cheap := map[string]any{"max_side": 1600, "skip_orientation": true}
	pkg := verified(t, repotest.Tessdata(t), map[string]any{"lang": "eng", "calibration": curve, "cheap_tier": cheap})
	s := sched.New(2, 4, nil)
	l := &ocrrepo.TesseractLoader{Workers: 2, Run: s.Run}
	inst, err := l.Load(context.Background(), pkg)
	if err != nil {
		t.Fatal(err)
	}
	if err := inst.Warmup(context.Background()); err != nil {
		t.Fatal(err)
	}
	m := inst.(*ocrrepo.Instance).OCRModel()
	if m.Ref != (ocr.ModelRef{Name: "ocr-eng", Version: "1"}) || m.Languages != "eng" || len(m.Calibration) != 2 || m.Calibration[1].Y != 0.95 {
		t.Errorf("model %+v", m)
	}
	if m.Cheaper == nil || *m.Cheaper != (ocr.CheapTier{MaxSide: 1600, SkipOrientation: true}) {
		t.Errorf("cheap tier %+v, want the manifest's", m.Cheaper)
	}
	static, err := ocr.NewStaticModels(m)
	if err != nil {
		t.Fatal(err)
	}
	svc := ocr.NewService(ocr.DefaultConfig(), static, s, nil, nil)
	res, err := svc.Recognize(context.Background(), ocr.Input{Data: lineImage(t)}, ocr.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(strings.TrimSpace(res.Text)) < 10 || res.Model.Version != "1" {
		t.Errorf("result %q from %+v", res.Text, res.Model)
	}
	if err := inst.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Engines.Acquire(context.Background()); err == nil {
		t.Error("engines still lent after Close")
	}
}

// The loader hands Tesseract the bytes it re-hashed, not whatever the
// file holds later: a file swapped after verification fails the load.
func TestIntegrationLoaderRechecksWhatItLoads(t *testing.T) {
	data := repotest.Tessdata(t)
	pkg := verified(t, data, nil)
	if err := os.WriteFile(filepath.Join(pkg.Dir, "eng.traineddata"), data["osd.traineddata"], 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := (&ocrrepo.TesseractLoader{Workers: 1}).Load(context.Background(), pkg)
	if !errors.Is(err, modelrepo.ReasonDigestMismatch) {
		t.Fatalf("err = %v, want digest_mismatch", err)
	}
}

// Packages that verify but cannot serve fail in the phase that finds out.
func TestIntegrationBrokenModels(t *testing.T) {
	data := repotest.Tessdata(t)
	ctx := context.Background()
	l := &ocrrepo.TesseractLoader{Workers: 1}

	// Signed garbage: the engine refuses it.
	_, err := l.Load(ctx, verified(t, map[string][]byte{"eng.traineddata": []byte(strings.Repeat("not a model ", 100))}, nil))
	if err == nil {
		t.Error("garbage traineddata loaded")
	}
	// A runtime the loader does not understand.
	_, err = l.Load(ctx, verified(t, map[string][]byte{"eng.traineddata": data["eng.traineddata"]}, map[string]any{"langs": "eng"}))
	if !errors.Is(err, modelrepo.ReasonManifestInvalid) {
		t.Errorf("unknown runtime field: %v", err)
	}
	// A calibration that is not monotone.
	_, err = l.Load(ctx, verified(t, map[string][]byte{"eng.traineddata": data["eng.traineddata"]}, map[string]any{"calibration": [][2]float64{{0.5, 0.9}, {0.6, 0.1}}}))
	if !errors.Is(err, modelrepo.ReasonManifestInvalid) {
		t.Errorf("bad calibration: %v", err)
	}
	// A cheap tier that would shrink pages to nothing.
	_, err = l.Load(ctx, verified(t, map[string][]byte{"eng.traineddata": data["eng.traineddata"]}, map[string]any{"cheap_tier": map[string]any{"max_side": 10}}))
	if !errors.Is(err, modelrepo.ReasonManifestInvalid) || !strings.Contains(err.Error(), "max_side") {
		t.Errorf("bad cheap tier: %v", err)
	}
	// The language's file is not in the package.
	_, err = l.Load(ctx, verified(t, map[string][]byte{"eng.traineddata": data["eng.traineddata"]}, map[string]any{"lang": "deu"}))
	if !errors.Is(err, modelrepo.ReasonMissingFile) {
		t.Errorf("missing language file: %v", err)
	}
	// A model configured to read no character at all: it loads, and the
	// warm-up finds it reads nothing.
	blind := map[string]any{"variables": map[string]string{"tessedit_char_whitelist": "~"}}
	inst, err := l.Load(ctx, verified(t, map[string][]byte{"eng.traineddata": data["eng.traineddata"]}, blind))
	if err != nil {
		t.Fatalf("blind model: %v", err)
	}
	defer inst.Close()
	if err := inst.Warmup(ctx); !errors.Is(err, ocrrepo.ErrWarmupNoText) {
		t.Errorf("warm-up of a model that reads nothing: %v", err)
	}
}

// Engine variables come from an allowlist: a debug or display variable
// (ScrollView starts `java` and waits for it inside the recognition call;
// others write files) fails verification as manifest_invalid, before any
// engine is built; an allowed variable with a value it does not take too.
func TestIntegrationVariablesOutsideTheAllowlistAreRefused(t *testing.T) {
	data := map[string][]byte{"eng.traineddata": repotest.Tessdata(t)["eng.traineddata"]}
	l := &ocrrepo.TesseractLoader{Workers: 1}
	for _, vars := range []map[string]string{
		{"textord_tabfind_show_images": "1"},
		{"interactive_display_mode": "1"},
		{"tessedit_dump_pageseg_images": "1"},
		{"debug_file": "/tmp/x"},
		{"tessedit_char_whitelist": "0123456789", "wordrec_display_splits": "1"},
		{"user_defined_dpi": "1"},
	} {
		pkg := verified(t, data, map[string]any{"variables": vars})
		if err := l.CheckRuntime(pkg); !errors.Is(err, modelrepo.ReasonManifestInvalid) || !strings.Contains(err.Error(), "variable") {
			t.Errorf("%v: CheckRuntime = %v, want manifest_invalid naming the variable", vars, err)
		}
		if _, err := l.Load(context.Background(), pkg); !errors.Is(err, modelrepo.ReasonManifestInvalid) {
			t.Errorf("%v: Load = %v, want manifest_invalid", vars, err)
		}
	}
	ok := verified(t, data, map[string]any{"variables": map[string]string{"tessedit_char_whitelist": "0123456789", "preserve_interword_spaces": "1"}})
	if err := l.CheckRuntime(ok); err != nil {
		t.Errorf("allowed variables: %v", err)
	}
}
