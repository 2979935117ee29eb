package ocr

import (
	"context"
	"errors"
	"image"
	"image/color"
	"math"
	"testing"

	"github.com/visionserve/visionserve/internal/ocr/dewarp"
	"github.com/visionserve/visionserve/internal/ocr/dewarp/dewarptest"
)

// With dewarp, a photographed sheet is read flattened: the engine sees
// the flattened page, and the boxes it returns come back mapped through
// the correction into the photo, where the page says it was.
func TestServiceFlattensPhotos(t *testing.T) {
	img := dewarptest.Photo(9)
	for _, tc := range []struct {
		opt      Options
		cfg      dewarp.Mode
		want     string // the correction's kind, "" for none
		seenSize image.Point
	}{
		{Options{}, dewarp.Auto, "perspective", image.Point{dewarptest.SheetWidth, dewarptest.SheetHeight}},
		{Options{Dewarp: dewarp.On}, dewarp.Off, "perspective", image.Point{dewarptest.SheetWidth, dewarptest.SheetHeight}},
		{Options{Dewarp: dewarp.Off}, dewarp.Auto, "", img.Rect.Size()},
		{Options{}, dewarp.Off, "", img.Rect.Size()},
	} {
		fe := &fakeEngine{}
		models, _ := NewStaticModels(&Model{Ref: ModelRef{Name: "m", Version: "1"}, Languages: "eng", Engines: onePool{fe}})
		cfg := DefaultConfig()
		cfg.Dewarp = tc.cfg
		res, err := NewService(cfg, models, direct{}, nil, nil).Recognize(context.Background(), Input{Data: pngOf(t, img)}, tc.opt)
		if err != nil {
			t.Fatal(err)
		}
		p := res.Pages[0]
		name := string(tc.opt.Dewarp) + " over default " + string(tc.cfg)
		if p.Width != img.Rect.Dx() || p.Height != img.Rect.Dy() {
			t.Errorf("%s: page %dx%d, want the photo's size", name, p.Width, p.Height)
		}
		// The flattened sheet is the sheet's size.
		if s := fe.sizes[0]; abs(s.X-tc.seenSize.X) > 2 || abs(s.Y-tc.seenSize.Y) > 2 {
			t.Errorf("%s: the engine read a %v image, want about %v", name, s, tc.seenSize)
		}
		if tc.want == "" {
			if p.Dewarp != nil {
				t.Errorf("%s: corrected: %+v", name, *p.Dewarp)
			}
			continue
		}
		d := p.Dewarp
		if d == nil || d.Kind != tc.want || d.Quad == nil || d.Width != fe.sizes[0].X || d.Height != fe.sizes[0].Y {
			t.Fatalf("%s: dewarp %+v, engine saw %v", name, d, fe.sizes[0])
		}
		// The fake engine's line box is (1,1)-(w-1,5) in the image it read;
		// in the photo it is that rectangle through the homography.
		h := d.Homography
		toPhoto := func(x, y float64) Point {
			z := h[2][0]*x + h[2][1]*y + h[2][2]
			return Point{(h[0][0]*x + h[0][1]*y + h[0][2]) / z, (h[1][0]*x + h[1][1]*y + h[1][2]) / z}
		}
		w := float64(d.Width)
		want := Quad{toPhoto(1, 1), toPhoto(w-1, 1), toPhoto(w-1, 5), toPhoto(1, 5)}
		for k := range want {
			if got := p.Lines[0].Box[k]; math.Hypot(got[0]-want[k][0], got[1]-want[k][1]) > 0.01 {
				t.Errorf("%s: line corner %d at %v, want %v", name, k, got, want[k])
			}
		}
		// The sheet is turned 9 degrees: so is the line read level in it.
		b := p.Lines[0].Box
		if deg := math.Atan2(b[1][1]-b[0][1], b[1][0]-b[0][0]) * 180 / math.Pi; math.Abs(deg-9) > 0.5 {
			t.Errorf("%s: the line runs at %.2f degrees in the photo, want 9", name, deg)
		}
		// The outline's top-left corner is where the sheet's is.
		if tl := (*d.Quad)[0]; math.Hypot(tl[0]-toPhoto(0, 0)[0], tl[1]-toPhoto(0, 0)[1]) > 0.01 {
			t.Errorf("%s: quad %v does not start at the homography's origin", name, *d.Quad)
		}
	}
}

func TestParseDewarp(t *testing.T) {
	for in, want := range map[string]dewarp.Mode{"": "", "auto": dewarp.Auto, "on": dewarp.On, "off": dewarp.Off} {
		if got, err := ParseDewarp(in); err != nil || got != want {
			t.Errorf("ParseDewarp(%q) = %q, %v", in, got, err)
		}
	}
	if _, err := (Params{Dewarp: "always"}).Options(); !errors.Is(err, ErrBadOption) {
		t.Errorf("dewarp=always: %v", err)
	}
}

func abs[T int | float64](v T) T {
	if v < 0 {
		return -v
	}
	return v
}

// sizeReader is a PageReader that records what it was given and finds
// one line along the top of it.
type sizeReader struct{ got image.Image }

func (r *sizeReader) ReadPage(_ context.Context, img image.Image, _ Mode) ([]Line, error) {
	r.got = img
	w := float64(img.Bounds().Dx())
	box := Quad{{1, 2}, {w - 1, 2}, {w - 1, 9}, {1, 9}}
	return []Line{{Text: "top line", Confidence: 0.9, Box: box, Words: []Word{{Text: "top", Confidence: 0.9, Box: box}}}}, nil
}

// A model that reads pages itself (PP-OCR) reads a photographed sheet
// flattened and in colour, and its boxes come back in the photo.
func TestServiceFlattensForPageReaders(t *testing.T) {
	g := dewarptest.Photo(-7)
	img := image.NewNRGBA(g.Rect)
	for i, v := range g.Pix {
		img.Pix[4*i], img.Pix[4*i+1], img.Pix[4*i+2], img.Pix[4*i+3] = v, v, v/2, 255 // a warm tint
	}
	r := &sizeReader{}
	models, _ := NewStaticModels(&Model{Ref: ModelRef{Name: "ocr-photo", Version: "1"}, Languages: "eng", Pages: r})
	res, err := NewService(DefaultConfig(), models, direct{}, nil, nil).Recognize(context.Background(), Input{Data: pngOf(t, img)}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	d := res.Pages[0].Dewarp
	if d == nil || d.Kind != "perspective" {
		t.Fatalf("dewarp %+v", d)
	}
	if _, ok := r.got.(*image.RGBA); !ok || r.got.Bounds().Dx() != d.Width || r.got.Bounds().Dy() != d.Height {
		t.Fatalf("the reader got a %T of %v; the correction is %dx%d", r.got, r.got.Bounds(), d.Width, d.Height)
	}
	if c := r.got.At(d.Width/2, d.Height/6).(color.RGBA); c.B >= c.R {
		t.Errorf("the paper lost its colour: %v", c)
	}
	// The top line of the flattened sheet runs at the sheet's -7 degrees.
	b := res.Pages[0].Lines[0].Box
	if deg := math.Atan2(b[1][1]-b[0][1], b[1][0]-b[0][0]) * 180 / math.Pi; math.Abs(deg+7) > 0.5 {
		t.Errorf("the line runs at %.2f degrees in the photo, want -7 (box %v)", deg, b)
	}
}
