package loader_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/visionserve/visionserve/internal/engine"
	"github.com/visionserve/visionserve/internal/engine/onnx/onnxtest"
	"github.com/visionserve/visionserve/internal/loader"
	"github.com/visionserve/visionserve/internal/sched"
)

func env() loader.Env { return loader.Env{Scheduler: sched.New(1, 4, nil), Instances: 1} }

// Loaders as the table below calls them, on a directory of the system.
func onnxDir(name, version, dir string, runtime json.RawMessage, env loader.Env) (*loader.Model, error) {
	return loader.ONNX(context.Background(), name, version, loader.Dir(dir), runtime, env)
}

func ppocrDir(name, version, dir string, runtime json.RawMessage, env loader.Env) (*loader.Model, error) {
	return loader.PPOCR(context.Background(), name, version, loader.Dir(dir), runtime, env)
}

// Bad options and files are refused before anything is loaded, with a
// message naming the model and the problem.
func TestLoaderRejects(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "m.onnx"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		load    func(name, version, dir string, runtime json.RawMessage, env loader.Env) (*loader.Model, error)
		runtime string
		want    string
	}{
		{"onnx unknown option", onnxDir, `{"fille": "m.onnx"}`, `unknown field "fille"`},
		{"onnx file outside the directory", onnxDir, `{"file": "../m.onnx"}`, "inside the model directory"},
		{"onnx absolute file", onnxDir, `{"file": "/etc/passwd"}`, "inside the model directory"},
		{"onnx missing file", onnxDir, `{"file": "absent.onnx"}`, "absent.onnx"},
		{"onnx directory as file", onnxDir, `{"file": "sub"}`, "not a regular file"},
		{"onnx bad batching", onnxDir, `{"file": "m.onnx", "batching": {"max_batch_size": 0}}`, "max_batch_size"},
		{"onnx bad delay", onnxDir, `{"file": "m.onnx", "batching": {"max_queue_delay": 5}}`, "duration"},
		{"onnx not an object", onnxDir, `[1]`, "runtime options"},
		{"ppocr unknown recogniser", ppocrDir, `{"recognizer": "magic"}`, `recognizer "magic"`},
		{"ppocr bad params", ppocrDir, `{"params": {"det": {"thresh": 2}}}`, "det.thresh"},
		{"ppocr unknown param", ppocrDir, `{"params": {"dett": {}}}`, `unknown field "dett"`},
		{"ppocr bad cheap tier", ppocrDir, `{"cheap_tier": {"max_side": 10}}`, "cheap_tier.max_side"},
		{"tesseract empty lang", loader.Tesseract, `{"lang": ""}`, "lang is empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := tc.load("m1", "1", dir, json.RawMessage(tc.runtime), env())
			if err == nil {
				m.Close(context.Background())
				t.Fatal("loaded")
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "m1") {
				t.Errorf("error %q does not name the model and %q", err, tc.want)
			}
		})
	}
}

// A generated ONNX model loads, serves its signature, runs, and closes.
func TestIntegrationLoadONNX(t *testing.T) {
	onnxtest.Init(t)
	model, err := onnxtest.Identity(engine.INT32, []int64{-1, 2})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "model.onnx"), model, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, runtime := range []string{``, `{"sessions": 2, "batching": {}}`} {
		m, err := loader.ONNX(context.Background(), "id", "4", loader.Dir(dir), json.RawMessage(runtime), env())
		if err != nil {
			t.Fatal(err)
		}
		if m.Kind != loader.KindONNX || m.OCR != nil || m.Tensor == nil || m.Batching != (runtime != "") {
			t.Errorf("runtime %q: model %+v", runtime, m)
		}
		sig := m.Tensor.Signature()
		if sig.Platform != "onnxruntime_onnx" || len(sig.Inputs) != 1 || sig.Inputs[0].Name != "x" {
			t.Errorf("signature %+v", sig)
		}
		out, err := m.Tensor.Infer(context.Background(), []engine.Tensor{engine.NewTensor([]int64{1, 2}, []int32{4, 5})}, nil)
		if err != nil || out[0].Data.([]int32)[1] != 5 {
			t.Errorf("Infer = %v, %v", out, err)
		}
		if err := m.Close(context.Background()); err != nil {
			t.Error(err)
		}
		if _, err := m.Tensor.Infer(context.Background(), []engine.Tensor{engine.NewTensor([]int64{1, 2}, []int32{4, 5})}, nil); err == nil {
			t.Error("Infer after Close succeeded")
		}
	}
}
