package ocr

import (
	"context"
	"errors"
	"image"
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
			if got := p.Lines[0].Box[k]; math.Hypot(got[0]-want[k][0], got[1]-want[k][1]) > 1e-6 {
				t.Errorf("%s: line corner %d at %v, want %v", name, k, got, want[k])
			}
		}
		// The sheet is turned 9 degrees: so is the line read level in it.
		b := p.Lines[0].Box
		if deg := math.Atan2(b[1][1]-b[0][1], b[1][0]-b[0][0]) * 180 / math.Pi; math.Abs(deg-9) > 0.5 {
			t.Errorf("%s: the line runs at %.2f degrees in the photo, want 9", name, deg)
		}
		// The outline's top-left corner is where the sheet's is.
		if tl := (*d.Quad)[0]; math.Hypot(tl[0]-toPhoto(0, 0)[0], tl[1]-toPhoto(0, 0)[1]) > 1e-6 {
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
