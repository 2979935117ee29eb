// Package tesseract adapts libtesseract (through its C API) to the engine
// interfaces. One Engine wraps one TessBaseAPI for recognition and,
// optionally, one initialised for orientation detection. A TessBaseAPI is
// not safe for concurrent use, so neither is an Engine: pools hand them out
// one request at a time.
//
// Models are loaded once, in New; requests only set an image, recognise and
// clear. Recognition is cancellable: a context that ends sets a flag that
// Tesseract's per-word cancel callback reads, so a disconnected client or a
// passed deadline frees the worker within about one word's time.
package tesseract

/*
#cgo pkg-config: tesseract lept
#cgo LDFLAGS: -lgomp
#include <stdlib.h>
#include <stdbool.h>
#include <tesseract/capi.h>

// Tesseract's LSTM code opens OpenMP parallel regions. Each pool worker is
// already one request on one core, so nested OpenMP teams only
// oversubscribe the machine (and spin). Setting max-active-levels to 0 for
// the calling thread makes every region run on that thread alone; it must
// be done on the OS thread that calls into Tesseract, hence in C, per call.
extern void omp_set_max_active_levels(int);

static bool vs_cancel(void *flag, int words) {
	return __atomic_load_n((int *)flag, __ATOMIC_RELAXED) != 0;
}

static ETEXT_DESC *vs_monitor(int *flag) {
	ETEXT_DESC *m = TessMonitorCreate();
	TessMonitorSetCancelFunc(m, vs_cancel);
	TessMonitorSetCancelThis(m, flag);
	return m;
}

static int vs_recognize(TessBaseAPI *api, ETEXT_DESC *monitor, int single_thread) {
	if (single_thread) omp_set_max_active_levels(0);
	return TessBaseAPIRecognize(api, monitor);
}

static int vs_detect_orientation(TessBaseAPI *api, int single_thread, int *deg, float *conf, const char **script) {
	float script_conf = 0;
	*script = NULL;
	if (single_thread) omp_set_max_active_levels(0);
	// script points into the OSD unicharset; despite capi.h's comment it
	// is not allocated and must not be freed.
	return TessBaseAPIDetectOrientationScript(api, deg, conf, script, &script_conf);
}
*/
import "C"

import (
	"context"
	"errors"
	"fmt"
	"image"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"unsafe"

	"github.com/visionserve/visionserve/internal/engine"
)

// Interface guards.
var (
	_ engine.TextRecognizer      = (*Engine)(nil)
	_ engine.OrientationDetector = (*Engine)(nil)
)

// ErrNoOrientationModel is returned by DetectOrientation when the engine was
// created without orientation detection. It wraps engine.ErrNoOrientation.
var ErrNoOrientationModel = fmt.Errorf("tesseract: orientation detection not enabled (osd.traineddata): %w", engine.ErrNoOrientation)

// Config says which model files an Engine loads.
type Config struct {
	// DataPath is the directory holding <lang>.traineddata files. Empty
	// means DefaultDataPath().
	DataPath string
	// Languages is a Tesseract language spec such as "eng" or "eng+deu".
	Languages string
	// Orientation loads osd.traineddata for 0/90/180/270 detection.
	Orientation bool
	// Variables are Tesseract parameters set after initialisation.
	Variables map[string]string
	// AllowOpenMP lets Tesseract start OpenMP threads inside one request.
	// Off by default: a pool of single-threaded engines, one per core,
	// serves more requests per second than engines fighting over cores.
	AllowOpenMP bool
	// Data, when not nil, holds the content of the .traineddata files by
	// language name ("eng", "deu", and "osd" with Orientation). The engine
	// is then initialised from these bytes, so a caller that checked the
	// bytes knows exactly what is loaded (model packages verify digests of
	// what they hand over here); DataPath is ignored. One language loads
	// from memory and opens no file at all. Several ("eng+deu") load from
	// a private copy of these bytes: Tesseract's C API reads a second
	// language only from a directory, so New writes them into a new
	// directory of its own under TempDir (0700, files created exclusively)
	// and removes it once Tesseract has read them.
	Data map[string][]byte
	// TempDir is where New makes the private copy of several languages'
	// Data; "" means os.TempDir().
	TempDir string
}

// DefaultDataPath returns $TESSDATA_PREFIX or the first Debian tessdata
// directory that exists.
func DefaultDataPath() string {
	if p := os.Getenv("TESSDATA_PREFIX"); p != "" {
		return p
	}
	for _, p := range []string{
		"/usr/share/tesseract-ocr/5/tessdata",
		"/usr/share/tesseract-ocr/4.00/tessdata",
		"/usr/share/tessdata",
	} {
		if _, err := os.Stat(filepath.Join(p, "eng.traineddata")); err == nil {
			return p
		}
	}
	return "/usr/share/tesseract-ocr/5/tessdata"
}

// Version returns the libtesseract version string.
func Version() string { return C.GoString(C.TessVersion()) }

// Engine is one initialised Tesseract instance. Not safe for concurrent use.
type Engine struct {
	api     *C.TessBaseAPI
	osd     *C.TessBaseAPI
	monitor *C.ETEXT_DESC
	cancel  *C.int // read by vs_cancel; written atomically from Go
	single  C.int
}

// New loads the models named by cfg. Errors name the missing file so an
// operator can fix an installation.
func New(cfg Config) (e *Engine, err error) {
	if cfg.DataPath == "" {
		cfg.DataPath = DefaultDataPath()
	}
	if cfg.Languages == "" {
		cfg.Languages = "eng"
	}
	if cfg.Data != nil {
		return newFromData(cfg)
	}
	for _, lang := range strings.Split(cfg.Languages, "+") {
		if _, err := os.Stat(filepath.Join(cfg.DataPath, lang+".traineddata")); err != nil {
			return nil, fmt.Errorf("tesseract: language %q: %w (install tesseract-ocr-%s or set the data path)", lang, err, lang)
		}
	}
	e = &Engine{}
	if !cfg.AllowOpenMP {
		e.single = 1
	}
	// The error returns below set e to nil; close the partial engine
	// through its own pointer.
	partial := e
	defer func() {
		if err != nil {
			partial.Close() // Close copes with a partial construction.
		}
	}()
	if e.api, err = initAPI(cfg.DataPath, cfg.Languages); err != nil {
		return nil, err
	}
	for k, v := range cfg.Variables {
		if err := setVariable(e.api, k, v); err != nil {
			return nil, err
		}
	}
	if cfg.Orientation {
		if _, err := os.Stat(filepath.Join(cfg.DataPath, "osd.traineddata")); err != nil {
			return nil, fmt.Errorf("tesseract: orientation model: %w (install tesseract-ocr-osd)", err)
		}
		if e.osd, err = initAPI(cfg.DataPath, "osd"); err != nil {
			return nil, err
		}
		C.TessBaseAPISetPageSegMode(e.osd, C.PSM_OSD_ONLY)
	}
	e.arm()
	return e, nil
}

// arm creates the cancel flag and the progress monitor that reads it.
func (e *Engine) arm() {
	e.cancel = (*C.int)(C.calloc(1, C.size_t(unsafe.Sizeof(C.int(0)))))
	e.monitor = C.vs_monitor(e.cancel)
}

func initAPI(dataPath, langs string) (*C.TessBaseAPI, error) {
	api := C.TessBaseAPICreate()
	// Keep Tesseract's diagnostics ("Estimating resolution as ...") out of
	// the server's stderr; our own logs say what matters.
	_ = setVariable(api, "debug_file", "/dev/null")
	cPath, cLang := C.CString(dataPath), C.CString(langs)
	defer C.free(unsafe.Pointer(cPath))
	defer C.free(unsafe.Pointer(cLang))
	if C.TessBaseAPIInit3(api, cPath, cLang) != 0 {
		C.TessBaseAPIDelete(api)
		return nil, fmt.Errorf("tesseract: cannot initialise %q from %s", langs, dataPath)
	}
	return api, nil
}

func setVariable(api *C.TessBaseAPI, name, value string) error {
	cn, cv := C.CString(name), C.CString(value)
	defer C.free(unsafe.Pointer(cn))
	defer C.free(unsafe.Pointer(cv))
	if C.TessBaseAPISetVariable(api, cn, cv) == 0 {
		return fmt.Errorf("tesseract: unknown variable %q", name)
	}
	return nil
}

// Close frees the instances. It is safe on a partially built Engine and
// idempotent.
func (e *Engine) Close() error {
	if e.api != nil {
		C.TessBaseAPIEnd(e.api)
		C.TessBaseAPIDelete(e.api)
		e.api = nil
	}
	if e.osd != nil {
		C.TessBaseAPIEnd(e.osd)
		C.TessBaseAPIDelete(e.osd)
		e.osd = nil
	}
	if e.monitor != nil {
		C.TessMonitorDelete(e.monitor)
		e.monitor = nil
	}
	if e.cancel != nil {
		C.free(unsafe.Pointer(e.cancel))
		e.cancel = nil
	}
	return nil
}

var psm = map[engine.SegMode]C.TessPageSegMode{
	engine.SegPage:  C.PSM_AUTO,
	engine.SegBlock: C.PSM_SINGLE_BLOCK,
	engine.SegLine:  C.PSM_SINGLE_LINE,
	engine.SegWord:  C.PSM_SINGLE_WORD,
}

// setImage hands img to api. Tesseract copies the pixels, so the Go memory
// is not retained after the call.
func setImage(api *C.TessBaseAPI, img *image.Gray) error {
	b := img.Bounds()
	if b.Dx() < 3 || b.Dy() < 3 {
		return fmt.Errorf("tesseract: image %dx%d is smaller than 3x3", b.Dx(), b.Dy())
	}
	p := img.Pix[img.PixOffset(b.Min.X, b.Min.Y):]
	C.TessBaseAPISetImage(api, (*C.uchar)(unsafe.Pointer(&p[0])), C.int(b.Dx()), C.int(b.Dy()), 1, C.int(img.Stride))
	return nil
}

// watch arms the cancel flag for the duration of one engine call and
// returns the function that disarms it. Disarming waits for a cancellation
// already in flight, so it can never leak into the next request.
func (e *Engine) watch(ctx context.Context) func() {
	flag := (*int32)(unsafe.Pointer(e.cancel))
	atomic.StoreInt32(flag, 0)
	done := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		atomic.StoreInt32(flag, 1)
		close(done)
	})
	return func() {
		if !stop() {
			<-done
		}
		atomic.StoreInt32(flag, 0)
	}
}

// RecognizeText implements engine.TextRecognizer.
func (e *Engine) RecognizeText(ctx context.Context, img *image.Gray, mode engine.SegMode) ([]engine.TextLine, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m, ok := psm[mode]
	if !ok {
		return nil, fmt.Errorf("tesseract: unsupported segmentation mode %v", mode)
	}
	defer C.TessBaseAPIClear(e.api)
	C.TessBaseAPISetPageSegMode(e.api, m)
	if err := setImage(e.api, img); err != nil {
		return nil, err
	}
	disarm := e.watch(ctx)
	rc := C.vs_recognize(e.api, e.monitor, e.single)
	disarm()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if rc != 0 {
		return nil, errors.New("tesseract: recognition failed")
	}
	return e.collect(), nil
}

// collect walks the result iterator word by word, grouping words into
// lines and numbering blocks and paragraphs.
func (e *Engine) collect() []engine.TextLine {
	it := C.TessBaseAPIGetIterator(e.api)
	if it == nil {
		return nil
	}
	defer C.TessResultIteratorDelete(it)
	pi := C.TessResultIteratorGetPageIterator(it)
	var (
		lines        []engine.TextLine
		block, para  = -1, -1
		orientation  int
		l, t, r, btm C.int
	)
	for {
		if C.TessPageIteratorIsAtBeginningOf(pi, C.RIL_BLOCK) != 0 {
			block++
			orientation = blockOrientation(pi)
		}
		if C.TessPageIteratorIsAtBeginningOf(pi, C.RIL_PARA) != 0 {
			para++
		}
		if C.TessPageIteratorIsAtBeginningOf(pi, C.RIL_TEXTLINE) != 0 || len(lines) == 0 {
			line := engine.TextLine{Block: max(block, 0), Paragraph: max(para, 0), Orientation: orientation}
			if C.TessPageIteratorBoundingBox(pi, C.RIL_TEXTLINE, &l, &t, &r, &btm) != 0 {
				line.Box = image.Rect(int(l), int(t), int(r), int(btm))
			}
			line.Confidence = clamp01(float64(C.TessResultIteratorConfidence(it, C.RIL_TEXTLINE)) / 100)
			lines = append(lines, line)
		}
		if ct := C.TessResultIteratorGetUTF8Text(it, C.RIL_WORD); ct != nil {
			text := strings.TrimSpace(C.GoString(ct))
			C.TessDeleteText(ct)
			if text != "" {
				w := engine.TextWord{
					Text:       text,
					Confidence: clamp01(float64(C.TessResultIteratorConfidence(it, C.RIL_WORD)) / 100),
				}
				if C.TessPageIteratorBoundingBox(pi, C.RIL_WORD, &l, &t, &r, &btm) != 0 {
					w.Box = image.Rect(int(l), int(t), int(r), int(btm))
				}
				cur := &lines[len(lines)-1]
				cur.Words = append(cur.Words, w)
			}
		}
		if C.TessResultIteratorNext(it, C.RIL_WORD) == 0 {
			break
		}
	}
	out := lines[:0]
	for _, line := range lines {
		if len(line.Words) == 0 {
			continue
		}
		texts := make([]string, len(line.Words))
		for i, w := range line.Words {
			texts[i] = w.Text
		}
		line.Text = strings.Join(texts, " ")
		out = append(out, line)
	}
	return out
}

// blockOrientation converts the direction the top of the current block's
// text points to into the clockwise turn that makes it upright.
func blockOrientation(pi *C.TessPageIterator) int {
	var (
		o      C.TessOrientation
		wd     C.TessWritingDirection
		order  C.TessTextlineOrder
		deskew C.float
	)
	C.TessPageIteratorOrientation(pi, &o, &wd, &order, &deskew)
	deg := map[C.TessOrientation]int{
		C.ORIENTATION_PAGE_RIGHT: 270,
		C.ORIENTATION_PAGE_DOWN:  180,
		C.ORIENTATION_PAGE_LEFT:  90,
	}[o]
	// A horizontal script laid out top to bottom is a page turned 90
	// degrees clockwise that Tesseract read as vertical text (it reports
	// the glyphs as upright). The languages visionserve ships are all
	// horizontal; a vertical-script model (jpn_vert) would need this off.
	if wd == C.WRITING_DIRECTION_TOP_TO_BOTTOM {
		deg = (deg + 270) % 360
	}
	return deg
}

// DetectOrientation implements engine.OrientationDetector. Degrees is the
// clockwise rotation that makes the page upright. Confidence is Tesseract's
// orientation margin scaled to [0,1) (margin/(margin+5)); OSD reports about
// 10 on a clear page and under 2 when it is guessing. Script is the OSD
// script's name (Latin, Han, Japanese, Cyrillic, ...); OSD needs about 50
// characters, so a single line usually has none.
func (e *Engine) DetectOrientation(ctx context.Context, img *image.Gray) (engine.Orientation, error) {
	if e.osd == nil {
		return engine.Orientation{}, ErrNoOrientationModel
	}
	if err := ctx.Err(); err != nil {
		return engine.Orientation{}, err
	}
	defer C.TessBaseAPIClear(e.osd)
	if err := setImage(e.osd, img); err != nil {
		return engine.Orientation{}, err
	}
	var deg C.int
	var conf C.float
	var script *C.char
	if C.vs_detect_orientation(e.osd, e.single, &deg, &conf, &script) == 0 {
		// Too little text to tell: report upright with no confidence.
		return engine.Orientation{}, nil
	}
	// Tesseract reports the text's orientation; the fix is the reverse turn.
	cw := (360 - int(deg)) % 360
	margin := max(float64(conf), 0)
	o := engine.Orientation{Degrees: cw, Confidence: margin / (margin + 5)}
	if script != nil {
		o.Script = C.GoString(script)
	}
	return o, nil
}

func clamp01(v float64) float64 { return min(max(v, 0), 1) }
