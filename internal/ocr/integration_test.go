package ocr_test

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/visionserve/visionserve/internal/ocr"
	"github.com/visionserve/visionserve/internal/ocr/ocrtest"
	"github.com/visionserve/visionserve/internal/ocreval"
	"github.com/visionserve/visionserve/internal/testenv"
)

// newTesseractService builds the real pipeline with an engine per core.
func newTesseractService(t testing.TB) *ocr.Service {
	t.Helper()
	return ocrtest.TesseractService(t, runtime.NumCPU())
}

func recognizeFile(t testing.TB, svc *ocr.Service, path string, opt ocr.Options) *ocr.Result {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	res, err := svc.Recognize(context.Background(), ocr.Input{Data: data}, opt)
	if err != nil {
		t.Fatalf("%s: %v", filepath.Base(path), err)
	}
	return res
}

// Must show: phototest.tif within 1% CER, each rotated copy within 2%.
func TestIntegrationPhototestAndRotations(t *testing.T) {
	testenv.Shared(t, "data/ocr/pages")
	checkPhototests(t, newTesseractService(t))
}

// checkPhototests reads phototest.tif and its turned copies with svc: each
// within 1% (upright) or 2% CER, at the right angle, every box inside the
// page.
func checkPhototests(t *testing.T, svc *ocr.Service) {
	t.Helper()
	dir := testenv.Shared(t, "data/ocr/pages")
	truth, err := os.ReadFile(filepath.Join(dir, "phototest.txt"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		file   string
		angle  int
		maxCER float64
	}{
		{"phototest.tif", 0, 0.01},
		{"phototest-rotated-L.png", 90, 0.02},
		{"phototest-rotated-180.png", 180, 0.02},
		{"phototest-rotated-R.png", 270, 0.02},
		{"phototestrot.tif", 90, 0.02},
	} {
		t.Run(tc.file, func(t *testing.T) {
			res := recognizeFile(t, svc, filepath.Join(dir, tc.file), ocr.Options{})
			var s ocreval.Score
			s.Add(res.Text, string(truth))
			t.Logf("%s: %v, angle %d, confidence %.3f, timing %v", tc.file, s, res.Pages[0].Angle, res.Confidence, res.TimingMS)
			if s.CER() > tc.maxCER {
				t.Errorf("CER %.2f%% > %.0f%%:\n%s", 100*s.CER(), 100*tc.maxCER, res.Text)
			}
			p := res.Pages[0]
			if p.Angle != tc.angle || p.Mode != "page" {
				t.Errorf("angle %d mode %s, want %d page", p.Angle, p.Mode, tc.angle)
			}
			// Every box lies inside the page as submitted.
			for _, l := range p.Lines {
				for _, q := range append([]ocr.Quad{l.Box}, wordBoxes(l)...) {
					if b := q.Bounds(); b.Min.X < 0 || b.Min.Y < 0 || b.Max.X > p.Width || b.Max.Y > p.Height {
						t.Errorf("line %q: box %v outside the %dx%d page", l.Text, q, p.Width, p.Height)
					}
				}
			}
		})
	}
}

func wordBoxes(l ocr.Line) []ocr.Quad {
	var out []ocr.Quad
	for _, w := range l.Words {
		out = append(out, w.Box)
	}
	return out
}

// The first line of a page rotated left starts at the bottom-left of the
// image as submitted and runs upwards: its quad's first corner (the text's
// top-left) is left of and below its second (the text's top-right).
func TestIntegrationRotatedBoxesFollowText(t *testing.T) {
	dir := testenv.Shared(t, "data/ocr/pages")
	svc := newTesseractService(t)
	upright := recognizeFile(t, svc, filepath.Join(dir, "phototest.tif"), ocr.Options{})
	left := recognizeFile(t, svc, filepath.Join(dir, "phototest-rotated-L.png"), ocr.Options{})
	q := left.Pages[0].Lines[0].Box
	if !(q[0][1] > q[1][1] && abs(q[0][0]-q[1][0]) < 3) {
		t.Errorf("rotated-left first line quad %v does not run upwards", q)
	}
	// Turned right, Tesseract reads the page as vertical text itself; the
	// first line then runs downwards from the top-right.
	right := recognizeFile(t, svc, filepath.Join(dir, "phototest-rotated-R.png"), ocr.Options{})
	if r := right.Pages[0].Lines[0].Box; !(r[1][1] > r[0][1] && abs(r[0][0]-r[1][0]) < 3) {
		t.Errorf("rotated-right first line quad %v does not run downwards", r)
	}
	// Rotating the upright box the same way gives (nearly) the same quad:
	// phototest-rotated-L is phototest.tif turned 90 degrees counter-clockwise
	// (640x480 -> 480x640), so upright (x, y) lands at (y, 640-x).
	u := upright.Pages[0].Lines[0].Box
	for k := range u {
		wantX, wantY := u[k][1], 640-u[k][0]
		if abs(q[k][0]-wantX) > 4 || abs(q[k][1]-wantY) > 4 {
			t.Errorf("corner %d: got %v, want about (%v, %v)", k, q[k], wantX, wantY)
		}
	}
}

func abs(v float64) float64 {
	if v < 0 {
		return -v
	}
	return v
}

// A sample of the shared text lines is read in line mode by default.
func TestIntegrationLinesAutoMode(t *testing.T) {
	samples, err := ocreval.LoadLines(testenv.Shared(t, "data/ocr/lines"))
	if err != nil {
		t.Fatal(err)
	}
	svc := newTesseractService(t)
	var s ocreval.Score
	for _, smp := range samples[:40] {
		res := recognizeFile(t, svc, smp.Image, ocr.Options{})
		if m := res.Pages[0].Mode; m != "line" {
			t.Errorf("%s: mode %s, want line", smp.Image, m)
		}
		s.Add(res.Text, smp.Truth)
	}
	t.Logf("first 40 lines: %v", s)
}
