package ocr_test

import (
	"context"
	"fmt"
	"image"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/image/draw"
	"golang.org/x/image/math/f64"

	"github.com/visionserve/visionserve/internal/ocr"
	"github.com/visionserve/visionserve/internal/ocr/dewarp"
	"github.com/visionserve/visionserve/internal/ocr/dewarp/dewarptest"
	"github.com/visionserve/visionserve/internal/ocr/ocrtest"
	"github.com/visionserve/visionserve/internal/ocreval"
	"github.com/visionserve/visionserve/internal/testenv"
)

// tilt returns g turned clockwise by deg about its centre onto a white
// canvas that holds all of it (x/image/draw, not the code under test), and
// the map from g's points to the canvas.
func tilt(g *image.Gray, deg float64) (*image.Gray, func(x, y float64) (float64, float64)) {
	sin, cos := math.Sincos(deg * math.Pi / 180)
	w, h := float64(g.Rect.Dx()), float64(g.Rect.Dy())
	cw := math.Ceil(w*math.Abs(cos) + h*math.Abs(sin))
	ch := math.Ceil(w*math.Abs(sin) + h*math.Abs(cos))
	to := func(x, y float64) (float64, float64) {
		x, y = x-w/2, y-h/2
		return cos*x - sin*y + cw/2, sin*x + cos*y + ch/2
	}
	tx, ty := to(0, 0)
	dst := image.NewGray(image.Rect(0, 0, int(cw), int(ch)))
	draw.Draw(dst, dst.Rect, image.White, image.Point{}, draw.Src)
	draw.BiLinear.Transform(dst, f64.Aff3{cos, -sin, tx, sin, cos, ty}, g, g.Rect, draw.Src, nil)
	return dst, to
}

// Must show (issue 15, deskew): scans tilted by up to 15 degrees, where
// Tesseract's own line finding fails (and its skew estimate is unreliable,
// tesseract#4445), are read by default (dewarp=auto) as well as the
// upright page, within 1 CER point; the tilt is measured within 0.2
// degrees; and boxes come back in the tilted image's coordinates. -v
// prints the table of docs/ocr-evaluation.md, with dewarp=off beside it.
func TestIntegrationDeskew(t *testing.T) {
	if testing.Short() {
		t.Skip("a long evaluation; it runs without -short")
	}
	svc := ocrtest.TesseractService(t, 2)
	pages := []struct{ image, truth string }{
		{testenv.Shared(t, "data/ocr/pages/phototest.tif"), testenv.Shared(t, "data/ocr/pages/phototest.txt")},
		{testenv.Shared(t, "data/ocr/photo-pages/11.flat.png"), testenv.Shared(t, "data/ocr/photo-pages/11.txt")},
	}
	read := func(img image.Image, dw dewarp.Mode) *ocr.Result {
		res, err := svc.Recognize(context.Background(), ocr.Input{Data: dewarptest.PNG(t, img)}, ocr.Options{Dewarp: dw})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	table := []string{"| page | tilt | CER, dewarp=off | CER, dewarp=auto | skew measured |", "|---|---|---|---|---|"}
	for _, p := range pages {
		data, err := os.ReadFile(p.image)
		if err != nil {
			t.Fatal(err)
		}
		truth, err := os.ReadFile(p.truth)
		if err != nil {
			t.Fatal(err)
		}
		upright := dewarptest.DecodeGray(t, data)
		base := read(upright, dewarp.Auto)
		var baseScore ocreval.Score
		baseScore.Add(base.Text, string(truth))
		name := filepath.Base(p.image)
		table = append(table, fmt.Sprintf("| %s | 0 | | %.2f%% | |", name, 100*baseScore.CER()))
		for _, deg := range []float64{-12, -5, -2, 3, 8, 15} {
			tilted, to := tilt(upright, deg)
			off, auto := read(tilted, dewarp.Off), read(tilted, dewarp.Auto)
			var sOff, sAuto ocreval.Score
			sOff.Add(off.Text, string(truth))
			sAuto.Add(auto.Text, string(truth))
			d := auto.Pages[0].Dewarp
			measured := "none"
			if d != nil {
				measured = fmt.Sprintf("%s %.2f°", d.Kind, d.Skew)
			}
			table = append(table, fmt.Sprintf("| %s | %g° | %.2f%% | %.2f%% | %s |", name, deg, 100*sOff.CER(), 100*sAuto.CER(), measured))
			if d == nil || d.Kind != string(dewarp.Deskew) || math.Abs(d.Skew-deg) > 0.2 {
				t.Errorf("%s tilted %g°: correction %s, want deskew by %g°", name, deg, measured, deg)
				continue
			}
			if sAuto.CER() > baseScore.CER()+0.01 {
				t.Errorf("%s tilted %g°: CER %.2f%%, upright %.2f%%:\n%s", name, deg, 100*sAuto.CER(), 100*baseScore.CER(), auto.Text)
			}
			checkTiltedBoxes(t, fmt.Sprintf("%s tilted %g°", name, deg), base.Pages[0], auto.Pages[0], to)
		}
	}
	t.Log("\n" + strings.Join(table, "\n"))
}

// checkTiltedBoxes checks that each line read alike upright and tilted
// has its tilted box where its upright box lands after the tilt.
func checkTiltedBoxes(t *testing.T, name string, upright, tilted ocr.Page, to func(x, y float64) (float64, float64)) {
	t.Helper()
	matched := 0
	for _, u := range upright.Lines {
		for _, l := range tilted.Lines {
			if l.Text != u.Text {
				continue
			}
			matched++
			for k, c := range u.Box {
				x, y := to(c[0], c[1])
				if d := math.Hypot(l.Box[k][0]-x, l.Box[k][1]-y); d > 6 {
					t.Errorf("%s: line %q corner %d at %v, want (%.0f, %.0f)", name, l.Text, k, l.Box[k], x, y)
				}
			}
			break
		}
	}
	if matched < len(upright.Lines)/2 {
		t.Errorf("%s: only %d of %d lines read alike", name, matched, len(upright.Lines))
	}
}
