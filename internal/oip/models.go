package oip

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/visionserve/visionserve/internal/engine"
	"github.com/visionserve/visionserve/internal/ocr"
)

// Platform names reported in model metadata.
const (
	PlatformONNX = "onnxruntime_onnx" // Triton's name for ONNX Runtime models
	PlatformOCR  = "visionserve_ocr"
)

// Interface guards.
var (
	_ Model = (*TensorModel)(nil)
	_ Model = (*OCRModel)(nil)
)

// TensorModel serves a model whose inputs and outputs are plain tensors
// (package kind onnx) through a runner that schedules its own runs: an
// engine/batch Batcher, or an unbatched runner that takes one worker per
// run.
type TensorModel struct {
	sig    Signature
	runner engine.TensorRunner
}

// NewTensorModel serves runner under sig.
func NewTensorModel(sig Signature, runner engine.TensorRunner) *TensorModel {
	return &TensorModel{sig: sig, runner: runner}
}

// Signature implements Model.
func (m *TensorModel) Signature() Signature { return m.sig }

// Infer implements Model.
func (m *TensorModel) Infer(ctx context.Context, inputs []engine.Tensor, _ Parameters) ([]engine.Tensor, error) {
	return m.runner.Run(ctx, inputs)
}

// OCR models over the protocol: one BYTES input of encoded images, two
// BYTES outputs per image, its text and its result as JSON (the body
// POST /v1/ocr returns).
const (
	OCRInputImage   = "image"
	OCROutputText   = "text"
	OCROutputResult = "result"
)

// OCRModel answers the protocol for one OCR model of an ocr.Service, with
// the same pipeline, review tiers, timings and metrics as /v1/ocr. Request
// parameters "mode" (auto, page, block, line, word) and "rotate" (auto,
// off) mean what the /v1/ocr query parameters of those names mean.
type OCRModel struct {
	svc       *ocr.Service
	name      string
	version   string
	maxImages int64
}

// NewOCRModel serves model name at version of svc; a request may carry at
// most maxImages images.
func NewOCRModel(svc *ocr.Service, name, version string, maxImages int) *OCRModel {
	return &OCRModel{svc: svc, name: name, version: version, maxImages: int64(max(maxImages, 1))}
}

// Signature implements Model.
func (m *OCRModel) Signature() Signature {
	return Signature{
		Platform: PlatformOCR,
		Inputs:   []engine.TensorInfo{{Name: OCRInputImage, DType: engine.BYTES, Shape: []int64{-1}}},
		Outputs: []engine.TensorInfo{
			{Name: OCROutputText, DType: engine.BYTES, Shape: []int64{-1}},
			{Name: OCROutputResult, DType: engine.BYTES, Shape: []int64{-1}},
		},
	}
}

// Infer implements Model: it reads the images one after the other.
func (m *OCRModel) Infer(ctx context.Context, inputs []engine.Tensor, params Parameters) ([]engine.Tensor, error) {
	opt := ocr.Options{Model: m.name, Version: m.version}
	mode, _, err := params.String("mode")
	if err != nil {
		return nil, err
	}
	if opt.Mode, err = ocr.ParseMode(mode); err != nil {
		return nil, err
	}
	rotate, _, err := params.String("rotate")
	if err != nil {
		return nil, err
	}
	if opt.NoRotate, err = ocr.ParseRotate(rotate); err != nil {
		return nil, err
	}
	images, ok := inputs[0].Data.([][]byte)
	if !ok {
		return nil, invalidf("input %q holds %T, want BYTES", OCRInputImage, inputs[0].Data)
	}
	if n := int64(len(images)); n > m.maxImages {
		return nil, tooLargef("%d images in one request; the limit is %d", n, m.maxImages)
	}
	texts := make([][]byte, len(images))
	results := make([][]byte, len(images))
	for i, img := range images {
		res, err := m.svc.Recognize(ctx, ocr.Input{Data: img}, opt)
		if err != nil {
			return nil, fmt.Errorf("image %d: %w", i, err)
		}
		texts[i] = []byte(res.Text)
		if results[i], err = json.Marshal(res); err != nil {
			return nil, err
		}
	}
	shape := []int64{int64(len(images))}
	return []engine.Tensor{
		{DType: engine.BYTES, Shape: shape, Data: texts},
		{DType: engine.BYTES, Shape: shape, Data: results},
	}, nil
}
