package app

import (
	"bytes"
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"github.com/visionserve/visionserve/internal/loader"
	"github.com/visionserve/visionserve/internal/modelrepo"
	"github.com/visionserve/visionserve/internal/ocr"
	"github.com/visionserve/visionserve/internal/ocr/ocrrepo"
	"github.com/visionserve/visionserve/internal/oip"
)

// Packages of kind ocr-ppocr and onnx load with the loaders the models list
// uses (internal/loader), with the manifest's runtime object as their
// options. They read the package's files through the verified Package,
// which checks each file's size and SHA-256 against the signed manifest as
// it reads it, and build the engines from those very bytes, as every other
// kind does: a file replaced in the repository after verification (or
// after the isolated check) is refused with digest_mismatch, never loaded.

// kindLoaders returns the repository loaders of the kinds internal/loader
// provides.
func kindLoaders(env loader.Env, sample func() (*ocrrepo.Sample, error)) map[string]modelrepo.Loader {
	return map[string]modelrepo.Loader{
		loader.KindOCRPPOCR: modelrepo.LoaderFunc(func(ctx context.Context, pkg *modelrepo.Package) (modelrepo.Instance, error) {
			runtime, err := ppocrRuntime(pkg)
			if err != nil {
				return nil, err
			}
			m, err := loader.PPOCR(ctx, pkg.Name, strconv.Itoa(pkg.Version), pkg, runtime, env)
			if err != nil {
				return nil, err
			}
			return &pageModel{loaded{m}, sample}, nil
		}),
		loader.KindONNX: modelrepo.LoaderFunc(func(ctx context.Context, pkg *modelrepo.Package) (modelrepo.Instance, error) {
			m, err := loader.ONNX(ctx, pkg.Name, strconv.Itoa(pkg.Version), pkg, pkg.Runtime, env)
			if err != nil {
				return nil, err
			}
			return &tensorModel{loaded{m}}, nil
		}),
	}
}

// ppocrRuntime keeps a hybrid PP-OCR package inside itself: when it carries
// the traineddata of every Tesseract language it names and names no
// tessdata directory, its lines are read with those files rather than the
// system's (tessdata "." for the loader: the package's own files, read
// verified).
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
	if td, _ := opts["tessdata"].(string); td == "" && carries(pkg, lang) {
		opts["tessdata"] = "."
	}
	return json.Marshal(opts)
}

// carries reports whether pkg holds the traineddata of every language of
// the Tesseract spec lang.
func carries(pkg *modelrepo.Package, lang string) bool {
	for _, l := range strings.Split(lang, "+") {
		if _, ok := pkg.Files[l+".traineddata"]; !ok {
			return false
		}
	}
	return true
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
