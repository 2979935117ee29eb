package app

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strconv"
	"time"

	"github.com/visionserve/visionserve/internal/loader"
	"github.com/visionserve/visionserve/internal/modelrepo"
	"github.com/visionserve/visionserve/internal/ocr"
	"github.com/visionserve/visionserve/internal/ocr/ocrrepo"
	"github.com/visionserve/visionserve/internal/oip"
)

// Packages of kind ocr-ppocr and onnx load with the loaders the models list
// uses (internal/loader), from the verified package directory and with the
// manifest's runtime object as their options. Those loaders hand ONNX
// Runtime file paths, so unlike ocr-tesseract packages, the files are read
// again after verification rather than handed over as verified bytes:
// keep the repository writable only by its publisher.

// kindLoaders returns the repository loaders of the kinds internal/loader
// provides.
func kindLoaders(env loader.Env, sample func() (*ocrrepo.Sample, error)) map[string]modelrepo.Loader {
	return map[string]modelrepo.Loader{
		loader.KindOCRPPOCR: modelrepo.LoaderFunc(func(_ context.Context, pkg *modelrepo.Package) (modelrepo.Instance, error) {
			runtime, err := ppocrRuntime(pkg)
			if err != nil {
				return nil, err
			}
			m, err := loader.PPOCR(pkg.Name, strconv.Itoa(pkg.Version), pkg.Dir, runtime, env)
			if err != nil {
				return nil, err
			}
			return &pageModel{loaded{m}, sample}, nil
		}),
		loader.KindONNX: modelrepo.LoaderFunc(func(_ context.Context, pkg *modelrepo.Package) (modelrepo.Instance, error) {
			m, err := loader.ONNX(pkg.Name, strconv.Itoa(pkg.Version), pkg.Dir, pkg.Runtime, env)
			if err != nil {
				return nil, err
			}
			return &tensorModel{loaded{m}}, nil
		}),
	}
}

// ppocrRuntime keeps a hybrid PP-OCR package inside itself: when it carries
// the Tesseract language's traineddata and names no tessdata directory,
// its lines are read with that file rather than the system's; a relative
// tessdata is relative to the package.
func ppocrRuntime(pkg *modelrepo.Package) (json.RawMessage, error) {
	opts := map[string]any{}
	if len(bytes.TrimSpace(pkg.Runtime)) > 0 {
		if err := json.Unmarshal(pkg.Runtime, &opts); err != nil {
			return nil, &modelrepo.Error{Reason: modelrepo.ReasonManifestInvalid, Path: "manifest.json", Detail: "runtime for ocr-ppocr", Err: err}
		}
	}
	lang, _ := opts["lang"].(string)
	if lang == "" {
		lang = "eng"
	}
	switch td, ok := opts["tessdata"].(string); {
	case !ok || td == "":
		if _, has := pkg.Files[lang+".traineddata"]; has {
			opts["tessdata"] = pkg.Dir
		}
	case !filepath.IsAbs(td):
		opts["tessdata"] = filepath.Join(pkg.Dir, td)
	}
	return json.Marshal(opts)
}

// loaded is a loader.Model as a repository Instance.
type loaded struct{ m *loader.Model }

func (l loaded) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return l.m.Close(ctx)
}

// pageModel is a PP-OCR version: warmed up by reading the sample line.
type pageModel struct {
	loaded
	sample func() (*ocrrepo.Sample, error)
}

func (p *pageModel) OCRModel() *ocr.Model { return p.m.OCR }

func (p *pageModel) Warmup(ctx context.Context) error {
	s, err := p.sample()
	if err != nil {
		return err
	}
	lines, err := p.m.OCR.Pages.ReadPage(ctx, s.Image, ocr.ModeLine)
	if err != nil {
		return err
	}
	if len(lines) == 0 {
		return ocrrepo.ErrWarmupNoText
	}
	return nil
}

// tensorModel is an ONNX version, served on the inference protocol. It has
// no warm-up: no input is valid for every model (loading created its
// sessions, which is what fails for a bad file).
type tensorModel struct{ loaded }

func (t *tensorModel) TensorModel() oip.Model { return t.m.Tensor }

func (t *tensorModel) Warmup(context.Context) error { return nil }
