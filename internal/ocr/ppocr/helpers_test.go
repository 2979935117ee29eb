package ppocr_test

import (
	"context"
	"image"
	"os"
	"testing"

	"github.com/visionserve/visionserve/internal/engine/onnx"
	"github.com/visionserve/visionserve/internal/engine/onnx/onnxtest"
	"github.com/visionserve/visionserve/internal/ocr/ppocr"
	"github.com/visionserve/visionserve/internal/testenv"
)

// realPipeline loads the shared PP-OCR models into pools of the given size
// on the real ONNX Runtime, skipping (or failing under CI) when the runtime
// or the models are missing.
func realPipeline(tb testing.TB, sessions int, params ppocr.Params) *ppocr.Pipeline {
	tb.Helper()
	onnxtest.Init(tb)
	opts := onnx.DefaultOptions()
	opts.Sessions = sessions
	load := func(name string) *onnx.Pool {
		b, err := os.ReadFile(testenv.Shared(tb, "models/ocr/"+name))
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
	f, err := os.Open(testenv.Shared(tb, "models/ocr/en_dict.txt"))
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	dict, err := ppocr.LoadDict(f)
	if err != nil {
		tb.Fatal(err)
	}
	pl, err := ppocr.New(ppocr.Models{
		Det:  load("en_PP-OCRv3_det_infer.onnx"),
		Cls:  load("ch_ppocr_mobile_v2.0_cls_infer.onnx"),
		Rec:  load("en_number_mobile_v2.0_rec_infer.onnx"),
		Dict: dict,
	}, params)
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
