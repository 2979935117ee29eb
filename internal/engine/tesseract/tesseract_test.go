package tesseract

import (
	"context"
	"errors"
	"image"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/visionserve/visionserve/internal/engine"
	"github.com/visionserve/visionserve/internal/imageio"
	"github.com/visionserve/visionserve/internal/ocreval"
	"github.com/visionserve/visionserve/internal/testenv"
)

func newEngine(t testing.TB, orientation bool) *Engine {
	t.Helper()
	e, err := New(Config{Orientation: orientation})
	if err != nil {
		testenv.Missing(t, "libtesseract models unavailable (run hack/setup.sh): "+err.Error())
	}
	t.Cleanup(func() { e.Close() })
	return e
}

func loadGray(t testing.TB, path string) *image.Gray {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := imageio.Open(data, "", imageio.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	img, err := doc.Decode(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	return imageio.ToGray(img)
}

func joined(lines []engine.TextLine) string {
	var parts []string
	for _, l := range lines {
		parts = append(parts, l.Text)
	}
	return strings.Join(parts, "\n")
}

func TestIntegrationPhototest(t *testing.T) {
	dir := testenv.Shared(t, "data/ocr/pages")
	e := newEngine(t, false)
	lines, err := e.RecognizeText(context.Background(), loadGray(t, filepath.Join(dir, "phototest.tif")), engine.SegPage)
	if err != nil {
		t.Fatal(err)
	}
	truth, _ := os.ReadFile(filepath.Join(dir, "phototest.txt"))
	var s ocreval.Score
	s.Add(joined(lines), string(truth))
	t.Logf("phototest: %v", s)
	if s.CER() > 0.01 {
		t.Errorf("CER %.3f > 1%%:\n%s", s.CER(), joined(lines))
	}
	if len(lines) != 8 {
		t.Errorf("lines = %d, want 8", len(lines))
	}
	for _, l := range lines {
		if l.Confidence <= 0 || l.Confidence > 1 || l.Box.Empty() {
			t.Errorf("line %q: confidence %v box %v", l.Text, l.Confidence, l.Box)
		}
		for _, w := range l.Words {
			if !w.Box.In(l.Box) {
				t.Errorf("word %q box %v outside its line %v", w.Text, w.Box, l.Box)
			}
		}
	}
}

func TestIntegrationOrientation(t *testing.T) {
	dir := testenv.Shared(t, "data/ocr/pages")
	e := newEngine(t, true)
	for name, want := range map[string]int{
		"phototest.tif":             0,
		"phototest-rotated-L.png":   90,
		"phototest-rotated-180.png": 180,
		"phototest-rotated-R.png":   270,
	} {
		o, err := e.DetectOrientation(context.Background(), loadGray(t, filepath.Join(dir, name)))
		if err != nil {
			t.Fatal(err)
		}
		if o.Degrees != want || o.Confidence < 0.5 || o.Script != "Latin" {
			t.Errorf("%s: orientation %+v, want %d degrees with confidence, script Latin", name, o, want)
		}
	}
	// OSD names the script of a Chinese page (lang=auto routes by it).
	o, err := e.DetectOrientation(context.Background(), loadGray(t, testenv.Shared(t, "data/ocr/zh-pages/02.png")))
	if err != nil || o.Script != "Han" || o.Degrees != 0 {
		t.Errorf("zh-pages/02.png: orientation %+v, %v; want upright, script Han", o, err)
	}
}

func TestIntegrationCancel(t *testing.T) {
	dir := testenv.Shared(t, "data/ocr/pages")
	e := newEngine(t, false)
	img := loadGray(t, filepath.Join(dir, "phototest.tif"))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := e.RecognizeText(ctx, img, engine.SegPage); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	// A deadline that passes during recognition stops it, and the engine
	// is reusable afterwards (the cancel flag was disarmed).
	ctx, cancel = context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	if _, err := e.RecognizeText(ctx, img, engine.SegPage); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want context.DeadlineExceeded", err)
	}
	lines, err := e.RecognizeText(context.Background(), img, engine.SegPage)
	if err != nil || len(lines) == 0 {
		t.Fatalf("after cancellation: %d lines, %v", len(lines), err)
	}
}

func TestNewErrors(t *testing.T) {
	if _, err := New(Config{Languages: "xx-not-a-language"}); err == nil || !strings.Contains(err.Error(), "tesseract-ocr-xx-not-a-language") {
		t.Errorf("missing language: err = %v", err)
	}
	if _, err := New(Config{DataPath: t.TempDir()}); err == nil {
		t.Error("empty data path accepted")
	}
	// A file that exists but is not a model fails in Tesseract itself;
	// the partial engine is freed and the error returned (no panic).
	bad := t.TempDir()
	if err := os.WriteFile(filepath.Join(bad, "eng.traineddata"), make([]byte, 4096), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := New(Config{DataPath: bad}); err == nil {
		t.Error("a model file of zeros accepted")
	}
}

func TestTooSmall(t *testing.T) {
	e := newEngine(t, false)
	if _, err := e.RecognizeText(context.Background(), image.NewGray(image.Rect(0, 0, 2, 40)), engine.SegLine); err == nil {
		t.Error("2-pixel-wide image accepted")
	}
}
