package loader

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/visionserve/visionserve/internal/engine"
	"github.com/visionserve/visionserve/internal/engine/onnx"
	"github.com/visionserve/visionserve/internal/engine/tesseract"
	"github.com/visionserve/visionserve/internal/ocr"
	"github.com/visionserve/visionserve/internal/ocr/ppocr"
)

// Recognisers of an ocr-ppocr model.
const (
	// RecognizerTesseract (the default) is the hybrid: DB detection and
	// the line classifier, then Tesseract reads each line crop. It is the
	// more accurate of the two on every set measured in
	// docs/ocr-evaluation.md.
	RecognizerTesseract = "tesseract"
	// RecognizerCTC is PP-OCR throughout: the ONNX CTC recogniser reads
	// the lines.
	RecognizerCTC = "ctc"
)

// PPOCROptions are the runtime options of kind ocr-ppocr. The default file
// names are those of the shared models (shared/models/ocr).
type PPOCROptions struct {
	Det  string `json:"det"`  // DB detector
	Cls  string `json:"cls"`  // 0/180 line classifier; "" turns it off
	Rec  string `json:"rec"`  // CTC recogniser (ctc only)
	Dict string `json:"dict"` // its character list (ctc only)
	// Recognizer is "tesseract" (hybrid) or "ctc".
	Recognizer string `json:"recognizer"`
	// Lang and Tessdata configure the hybrid's Tesseract. Tessdata ""
	// is the system's tessdata directory, an absolute path another
	// directory of the system, and a relative path a directory of the
	// model: its <lang>.traineddata files are then read with the model's
	// other files (through Files, so a package's are verified) and
	// Tesseract is initialised from those bytes ("." for files beside the
	// ONNX models).
	Lang     string `json:"lang"`
	Tessdata string `json:"tessdata"`
	// Session settings of the ONNX models, as for kind onnx.
	onnx.Options
	// Params are the pipeline's parameters (ppocr.Params), over
	// ppocr.DefaultParams.
	Params json.RawMessage `json:"params,omitempty"`
	// CheapTier is the model's cheaper quality tier, served under
	// sustained queueing (the server's ocr.tier): max_side below the
	// detector's input limit makes detection itself cheaper.
	CheapTier *ocr.CheapTier `json:"cheap_tier,omitempty"`
}

// DefaultPPOCROptions returns the defaults for instances engine instances.
func DefaultPPOCROptions(instances int) PPOCROptions {
	o := PPOCROptions{
		Det:        "en_PP-OCRv3_det_infer.onnx",
		Cls:        "ch_ppocr_mobile_v2.0_cls_infer.onnx",
		Rec:        "en_number_mobile_v2.0_rec_infer.onnx",
		Dict:       "en_dict.txt",
		Recognizer: RecognizerTesseract,
		Lang:       "eng",
		Options:    onnx.DefaultOptions(),
	}
	o.Sessions = max(instances, 1)
	return o
}

// PPOCR loads a PP-OCR model from its ONNX files (and, for the hybrid,
// Tesseract's traineddata when the model carries it).
func PPOCR(ctx context.Context, name, version string, files Files, runtime json.RawMessage, env Env) (m *Model, err error) {
	opts := DefaultPPOCROptions(env.Instances)
	if err := decodeRuntime(runtime, &opts); err != nil {
		return nil, fmt.Errorf("model %s: %w", name, err)
	}
	params := ppocr.DefaultParams()
	if err := decodeRuntime(opts.Params, &params); err != nil {
		return nil, fmt.Errorf("model %s: params: %w", name, err)
	}
	hybrid := false
	switch opts.Recognizer {
	case RecognizerTesseract:
		hybrid = true
	case RecognizerCTC:
	default:
		return nil, fmt.Errorf("model %s: recognizer %q: use %s or %s", name, opts.Recognizer, RecognizerTesseract, RecognizerCTC)
	}
	if opts.Cls == "" {
		params.Cls.Enabled = false
	}
	if err := params.Validate(); err != nil {
		return nil, fmt.Errorf("model %s: params: %w", name, err)
	}
	if opts.CheapTier != nil {
		if err := opts.CheapTier.Validate(); err != nil {
			return nil, fmt.Errorf("model %s: %w", name, err)
		}
	}
	start := time.Now()
	m = &Model{Name: name, Version: version, Kind: KindOCRPPOCR}
	defer m.onFail(&err)
	load := func(file, what string) (*onnx.Pool, error) {
		p, err := loadONNX(ctx, files, file, what, opts.Options, env)
		if err != nil {
			return nil, fmt.Errorf("model %s: %w", name, err)
		}
		m.closers = append(m.closers, p.Close)
		return p, nil
	}
	var models ppocr.Models
	if models.Det, err = load(opts.Det, "detector"); err != nil {
		return nil, err
	}
	if params.Cls.Enabled {
		if models.Cls, err = load(opts.Cls, "classifier"); err != nil {
			return nil, err
		}
	}
	if !hybrid {
		if models.Rec, err = load(opts.Rec, "recogniser"); err != nil {
			return nil, err
		}
		if models.Dict, err = loadDict(ctx, files, opts.Dict); err != nil {
			return nil, fmt.Errorf("model %s: %w", name, err)
		}
	}
	pl, err := ppocr.New(models, params)
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", name, err)
	}
	reader := ppocr.NewReader(pl)
	if hybrid {
		tc, err := lineTesseract(ctx, files, opts.Tessdata, opts.Lang)
		if err != nil {
			return nil, fmt.Errorf("model %s: line recogniser: %w", name, err)
		}
		lines, err := engine.NewPool(max(env.Instances, 1), func(int) (*tesseract.Engine, error) { return tesseract.New(tc) })
		if err != nil {
			return nil, fmt.Errorf("model %s: line recogniser: %w", name, err)
		}
		m.closers = append(m.closers, lines.Close)
		reader = ppocr.NewHybridReader(pl, func(ctx context.Context) (engine.TextRecognizer, func(), error) {
			e, err := lines.Acquire(ctx)
			if err != nil {
				return nil, nil, err
			}
			// A line read that outlives its deadline is abandoned, and
			// the engine set aside until it returns (see engine.Call).
			g := &guardedLines{eng: e}
			return g, func() { lines.ReleaseAfter(e, g.guard.Pending(), nil) }, nil
		})
	}
	m.OCR = &ocr.Model{Ref: ocr.ModelRef{Name: name, Version: version}, Languages: opts.Lang, Pages: reader, Cheaper: opts.CheapTier}
	env.log().Info("model loaded", "model", name, "version", version, "kind", KindOCRPPOCR, "recognizer", opts.Recognizer,
		"classifier", params.Cls.Enabled, "sessions", opts.Sessions, "duration", time.Since(start).Round(time.Millisecond))
	return m, nil
}

func loadDict(ctx context.Context, files Files, file string) ([]string, error) {
	data, err := readFile(ctx, files, file, "dictionary")
	if err != nil {
		return nil, err
	}
	return ppocr.LoadDict(bytes.NewReader(data))
}

// lineTesseract configures the hybrid's Tesseract: from the system's
// directory or another absolute one, or from the bytes of the model's own
// traineddata (tessdata relative: a directory of the model).
func lineTesseract(ctx context.Context, files Files, tessdata, lang string) (tesseract.Config, error) {
	tc := tesseract.Config{Languages: lang}
	if tessdata == "" || filepath.IsAbs(tessdata) {
		tc.DataPath = tessdata
		return tc, nil
	}
	if !filepath.IsLocal(tessdata) {
		return tc, fmt.Errorf("tessdata %q must be an absolute path or a directory inside the model", tessdata)
	}
	tc.Data = map[string][]byte{}
	for _, l := range strings.Split(lang, "+") {
		data, err := readFile(ctx, files, path.Join(filepath.ToSlash(tessdata), l+".traineddata"), "traineddata")
		if err != nil {
			return tc, err
		}
		tc.Data[l] = data
	}
	return tc, nil
}

// guardedLines reads lines through engine.Call, so that a Tesseract call
// stuck for good cannot hold a request past its deadline.
type guardedLines struct {
	eng   engine.TextRecognizer
	guard engine.Guard
}

func (g *guardedLines) RecognizeText(ctx context.Context, img *image.Gray, mode engine.SegMode) ([]engine.TextLine, error) {
	return engine.Guarded(ctx, &g.guard, func() ([]engine.TextLine, error) { return g.eng.RecognizeText(ctx, img, mode) })
}
