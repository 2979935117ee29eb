package loader

import (
	"context"
	"encoding/json"
	"fmt"
	"image"
	"os"
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
	// Lang and Tessdata configure the hybrid's Tesseract ("" tessdata:
	// the system's).
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

// PPOCR loads a PP-OCR model from the ONNX files in dir.
func PPOCR(name, version, dir string, runtime json.RawMessage, env Env) (m *Model, err error) {
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
		p, err := loadONNX(dir, file, what, opts.Options, env)
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
		if models.Dict, err = loadDict(dir, opts.Dict); err != nil {
			return nil, fmt.Errorf("model %s: %w", name, err)
		}
	}
	pl, err := ppocr.New(models, params)
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", name, err)
	}
	reader := ppocr.NewReader(pl)
	if hybrid {
		tc := tesseract.Config{DataPath: opts.Tessdata, Languages: opts.Lang}
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

func loadDict(dir, file string) ([]string, error) {
	path, err := modelFile(dir, file, "dictionary")
	if err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ppocr.LoadDict(f)
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
