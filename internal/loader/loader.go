package loader

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/visionserve/visionserve/internal/engine/batch"
	"github.com/visionserve/visionserve/internal/metrics"
	"github.com/visionserve/visionserve/internal/ocr"
	"github.com/visionserve/visionserve/internal/oip"
)

// Kinds, as in model package manifests.
const (
	KindOCRTesseract = "ocr-tesseract"
	KindOCRPPOCR     = "ocr-ppocr"
	KindONNX         = "onnx"
)

// Env is what loaders may use from the process.
type Env struct {
	// Scheduler is the process-wide worker limit every model run holds
	// a worker of.
	Scheduler batch.Scheduler
	// Instances is how many engine instances (Tesseract engines, ONNX
	// sessions) a model gets unless its options say otherwise: one per
	// worker, so no request waits for an engine while holding a worker.
	Instances int
	// ONNXLibrary is the ONNX Runtime library path ("" = environment or
	// the setup script's cache, see onnx.LibraryPath).
	ONNXLibrary string
	// Metrics receives batch measurements; may be nil.
	Metrics *metrics.Serving
	Log     *slog.Logger
}

func (e Env) log() *slog.Logger {
	if e.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return e.Log
}

// Model is a loaded model version. Exactly one of OCR and Tensor is set.
type Model struct {
	Name, Version, Kind string
	// OCR is set for OCR kinds: the OCR service serves it on /v1/ocr, and
	// it answers the inference protocol through an oip.OCRModel.
	OCR *ocr.Model
	// Tensor is set for kind onnx: served on the inference protocol.
	Tensor oip.Model
	// Batching is true when the model's runs are dynamically batched.
	Batching bool

	closers []func(context.Context) error // run in reverse order
}

// Close frees the model's engines. Requests must be done with it; if ctx
// ends first, engines still in use are left alone (see engine.Pool.Close)
// and Close may be called again.
func (m *Model) Close(ctx context.Context) error {
	var errs []error
	for len(m.closers) > 0 {
		last := len(m.closers) - 1
		if err := m.closers[last](ctx); err != nil {
			errs = append(errs, err)
			if ctx.Err() != nil {
				return errors.Join(errs...)
			}
		}
		m.closers = m.closers[:last]
	}
	return errors.Join(errs...)
}

// onFail closes m when *err is set, for loaders' deferred cleanup.
func (m *Model) onFail(err *error) {
	if *err != nil {
		_ = m.Close(context.Background())
	}
}

// decodeRuntime decodes a runtime options object over the defaults already
// in v, refusing unknown keys (a misspelt option must not silently keep
// its default).
func decodeRuntime(runtime json.RawMessage, v any) error {
	if len(bytes.TrimSpace(runtime)) == 0 || string(bytes.TrimSpace(runtime)) == "null" {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(runtime))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("runtime options: %w", err)
	}
	if dec.More() {
		return errors.New("runtime options: data after the JSON object")
	}
	return nil
}

// Files is where a loader reads a model's files, by slash-separated path
// relative to the model. A model package (*modelrepo.Package) reads each
// file once and checks its size and SHA-256 against the signed manifest
// before it hands the bytes over, and the loaders build their engines from
// those very bytes: a file replaced after verification is refused, never
// loaded. Dir reads a directory as it is, for the configuration file's
// models list.
type Files interface {
	ReadFile(ctx context.Context, name string) ([]byte, error)
}

// Dir is a model directory read as it is on disk, unverified: the
// configuration file's models list, whose files the operator installed.
type Dir string

// ReadFile implements Files.
func (d Dir) ReadFile(ctx context.Context, name string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p := filepath.Join(string(d), filepath.FromSlash(name))
	st, err := os.Stat(p)
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", p)
	}
	return os.ReadFile(p)
}

// readFile reads the model file name through files, refusing names that
// leave the model; what says which file it is, for errors.
func readFile(ctx context.Context, files Files, name, what string) ([]byte, error) {
	if name == "" {
		return nil, fmt.Errorf("no %s file named", what)
	}
	if !filepath.IsLocal(name) {
		return nil, fmt.Errorf("%s file %q must be a relative path inside the model directory", what, name)
	}
	data, err := files.ReadFile(ctx, filepath.ToSlash(name))
	if err != nil {
		return nil, fmt.Errorf("%s file %s: %w", what, name, err)
	}
	return data, nil
}
