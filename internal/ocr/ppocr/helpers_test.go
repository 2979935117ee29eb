package ppocr_test

import (
	"context"
	"errors"
	"image"
	"os"
	"path/filepath"
	"testing"

	"github.com/visionserve/visionserve/internal/engine/onnx"
	"github.com/visionserve/visionserve/internal/engine/onnx/onnxtest"
	"github.com/visionserve/visionserve/internal/ocr/ppocr"
	"github.com/visionserve/visionserve/internal/testenv"
)

// realPipeline loads the shared PP-OCR models (PP-OCRv3 English detection,
// the v2.0 classifier and English CRNN) into pools of the given size on the
// real ONNX Runtime, skipping (or failing under CI) when the runtime or the
// models are missing.
func realPipeline(tb testing.TB, sessions int, params ppocr.Params) *ppocr.Pipeline {
	tb.Helper()
	dir := testenv.Shared(tb, "models/ocr")
	return loadPipeline(tb, sessions, params, dir,
		"en_PP-OCRv3_det_infer.onnx", "ch_ppocr_mobile_v2.0_cls_infer.onnx", "en_number_mobile_v2.0_rec_infer.onnx", "en_dict.txt")
}

// realV4Pipeline loads the PP-OCRv4 Chinese+English models that
// hack/setup-models.sh installs, skipping (or failing under CI) when they
// are absent.
func realV4Pipeline(tb testing.TB, sessions int, params ppocr.Params) *ppocr.Pipeline {
	tb.Helper()
	dir := v4Dir(tb)
	return loadPipeline(tb, sessions, params, dir, ppocr.V4Det, ppocr.V4Cls, ppocr.V4Rec, ppocr.V4Dict)
}

func v4Dir(tb testing.TB) string {
	tb.Helper()
	dir, err := ppocr.V4ModelsDir()
	if errors.Is(err, ppocr.ErrV4ModelsNotFound) {
		testenv.Missing(tb, err.Error())
	}
	if err != nil {
		tb.Fatal(err)
	}
	return dir
}

func loadPipeline(tb testing.TB, sessions int, params ppocr.Params, dir, det, cls, rec, dictFile string) *ppocr.Pipeline {
	tb.Helper()
	onnxtest.Init(tb)
	opts := onnx.DefaultOptions()
	opts.Sessions = sessions
	load := func(name string) *onnx.Pool {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			tb.Fatal(err)
		}
		p, err := onnx.NewPool(b, opts)
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { p.Close(context.Background()) })
		return p
	}
	f, err := os.Open(filepath.Join(dir, dictFile))
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	dict, err := ppocr.LoadDict(f)
	if err != nil {
		tb.Fatal(err)
	}
	pl, err := ppocr.New(ppocr.Models{Det: load(det), Cls: load(cls), Rec: load(rec), Dict: dict}, params)
	if err != nil {
		tb.Fatal(err)
	}
	return pl
}

func decode(tb testing.TB, path string) image.Image {
	tb.Helper()
	f, err := os.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	img, _, err := image.Decode(f)
	if err != nil {
		tb.Fatalf("decode %s: %v", path, err)
	}
	return img
}
