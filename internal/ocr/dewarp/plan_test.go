package dewarp

import (
	"image"
	"math"
	"math/rand/v2"
	"testing"
)

// Plan's decision for each kind of page and mode.
func TestPlan(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	scan := textPage(700, 900, 16, 235, 30, rng)
	sheet := photo(textPage(480, 640, 14, 225, 40, rng), 600, 800, jitter(600, 800, 0.12, 0.05, rng), 70, 0.2, 3, rng)
	// A sheet that fills the frame but for a thin dark border, as a
	// scanner lid leaves: its outline is found, but with too little
	// around it for auto to take it for a photographed sheet.
	bordered := photo(textPage(480, 640, 14, 225, 40, rng), 600, 800, Quad{{7, 9}, {592, 6}, {594, 793}, {6, 791}}, 70, 0, 2, rng)
	line := textPage(900, 60, 20, 235, 30, rng)
	for _, tc := range []struct {
		name string
		img  *image.Gray
		mode Mode
		want Kind // "": left alone
		skew float64
	}{
		{"level scan", scan, Auto, "", 0},
		{"scan tilted 0.6 degrees (below MinSkew)", rotated(scan, 0.6, 235), Auto, "", 0},
		{"scan tilted 6 degrees", rotated(scan, 6, 235), Auto, Deskew, 6},
		{"scan tilted -12 degrees", rotated(scan, -12, 235), Auto, Deskew, -12},
		{"scan turned 90 and tilted 3 degrees", rotated(scan, 93, 235), Auto, Deskew, 3},
		{"scan tilted 6 degrees, off", rotated(scan, 6, 235), Off, "", 0},
		{"photo", sheet, Auto, Perspective, 0},
		{"photo, off", sheet, Off, "", 0},
		{"photo, on", sheet, On, Perspective, 0},
		{"scan with a dark border", bordered, Auto, "", 0},
		{"scan with a dark border, on", bordered, On, Perspective, 0},
		{"level scan, on", scan, On, "", 0},
		{"a lone text line", rotated(line, 5, 235), Auto, "", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, ok := Plan(tc.img, tc.mode)
			if ok != (tc.want != "") || c.Kind != tc.want {
				t.Fatalf("Plan = %v %q (page %+v, skew %+v), want %q", ok, c.Kind, c.Page, c.Skew, tc.want)
			}
			if !ok {
				return
			}
			if tc.want == Deskew && math.Abs(c.Skew.Degrees-tc.skew) > 0.15 {
				t.Errorf("skew %+v, want %g", c.Skew, tc.skew)
			}
			if c.Width <= 0 || c.Height <= 0 || c.Confidence() <= 0 || c.Confidence() > 1 {
				t.Errorf("correction %+v", c)
			}
		})
	}
}

// A deskew turns the page about its centre onto a canvas that holds all
// of it, and maps every corrected point back to where it came from.
func TestDeskewGeometry(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 4))
	scan := textPage(600, 800, 16, 235, 30, rng)
	tilted := rotated(scan, 8, 235)
	c, ok := Plan(tilted, Auto)
	if !ok || c.Kind != Deskew {
		t.Fatalf("Plan = %v %v", ok, c.Kind)
	}
	w, h := float64(tilted.Rect.Dx()), float64(tilted.Rect.Dy())
	if got := c.ToSource.Map(Point{float64(c.Width) / 2, float64(c.Height) / 2}); !near(got, Point{w / 2, h / 2}, 1e-6) {
		t.Errorf("centre maps to %v", got)
	}
	// A level line in the corrected image is a line tilted 8 degrees
	// clockwise in the input.
	a, b := c.ToSource.Map(Point{100, 300}), c.ToSource.Map(Point{400, 300})
	if deg := math.Atan2(b[1]-a[1], b[0]-a[0]) * 180 / math.Pi; math.Abs(deg-c.Skew.Degrees) > 1e-9 {
		t.Errorf("a level line maps to one at %.3f degrees", deg)
	}
	// Nothing of the input is cut off.
	inv, _ := c.ToSource.Inverse()
	for _, p := range Rect(w, h) {
		if q := inv.Map(p); q[0] < -1 || q[1] < -1 || q[0] > float64(c.Width)+1 || q[1] > float64(c.Height)+1 {
			t.Errorf("input corner %v lands at %v, outside the %dx%d output", p, q, c.Width, c.Height)
		}
	}
	out := c.Gray(tilted)
	if s := EstimateSkew(out, MaxSkew); math.Abs(s.Degrees) > 0.2 {
		t.Errorf("corrected page still tilted: %+v", s)
	}
}
