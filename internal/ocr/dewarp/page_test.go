package dewarp

import (
	"fmt"
	"image"
	"math"
	"math/rand/v2"
	"testing"
)

// worstCorner is the largest distance between corresponding corners.
func worstCorner(a, b Quad) float64 {
	d := 0.0
	for i := range a {
		d = math.Max(d, a[i].dist(b[i]))
	}
	return d
}

// turnedRect is the rectangle inset in a w x h frame turned by deg about
// the frame's centre.
func turnedRect(w, h int, inset, deg float64) Quad {
	c := Point{float64(w) / 2, float64(h) / 2}
	sin, cos := math.Sincos(deg * math.Pi / 180)
	q := Quad{{inset * float64(w), inset * float64(h)}, {(1 - inset) * float64(w), inset * float64(h)},
		{(1 - inset) * float64(w), (1 - inset) * float64(h)}, {inset * float64(w), (1 - inset) * float64(h)}}
	for i, p := range q {
		v := p.sub(c)
		q[i] = c.add(Point{cos*v[0] - sin*v[1], sin*v[0] + cos*v[1]})
	}
	return q
}

// Photographed sheets are found, their corners within 1.5 pixels, and
// flattened: the correction maps the flat page's corners onto them.
func TestFindPageSynthetic(t *testing.T) {
	for i, tc := range []struct {
		name             string
		corners          func(rng *rand.Rand) Quad
		bg, light, noise float64
		paper            uint8
	}{
		{"mild perspective", func(r *rand.Rand) Quad { return jitter(600, 800, 0.12, 0.04, r) }, 70, 0.2, 3, 225},
		{"strong perspective", func(r *rand.Rand) Quad { return jitter(600, 800, 0.14, 0.09, r) }, 70, 0.2, 3, 225},
		{"light background", func(r *rand.Rand) Quad { return jitter(600, 800, 0.12, 0.05, r) }, 150, 0.1, 3, 235},
		{"uneven light", func(r *rand.Rand) Quad { return jitter(600, 800, 0.12, 0.05, r) }, 60, 0.45, 3, 230},
		{"noisy", func(r *rand.Rand) Quad { return jitter(600, 800, 0.12, 0.05, r) }, 80, 0.2, 8, 220},
		{"turned 25 degrees", func(*rand.Rand) Quad { return turnedRect(600, 800, 0.2, 25) }, 70, 0.2, 3, 225},
		{"turned -40 degrees", func(*rand.Rand) Quad { return turnedRect(600, 800, 0.25, -40) }, 70, 0.2, 3, 225},
		{"small sheet", func(r *rand.Rand) Quad { return jitter(600, 800, 0.3, 0.03, r) }, 70, 0.2, 3, 225},
		{"near the frame", func(r *rand.Rand) Quad { return jitter(600, 800, 0.06, 0.02, r) }, 70, 0.1, 3, 225},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(i), 7))
			page := textPage(480, 640, 14, tc.paper, 40, rng)
			want := tc.corners(rng)
			img := photo(page, 600, 800, want, tc.bg, tc.light, tc.noise, rng)
			p, ok := FindPage(img)
			if !ok {
				t.Fatal("no page found")
			}
			// TL is the corner nearest the frame's top-left; a sheet
			// turned further than 45 degrees starts at another corner.
			got := p.Quad
			if d := worstCorner(got, want); d > 1.5 {
				t.Errorf("corners %v, want %v (%.2f px off)", got, want, d)
			}
			if p.Confidence < MinPageConfidence || p.Support < 0.9 {
				t.Errorf("confidence %.2f, support %.2f, contrast %.0f, surround %.2f", p.Confidence, p.Support, p.Contrast, p.Surround)
			}
			c, ok := Plan(img, Auto)
			if !ok || c.Kind != Perspective {
				t.Fatalf("Plan: %v %v", ok, c.Kind)
			}
			if d := worstCorner(c.ToSource.MapQuad(Rect(float64(c.Width), float64(c.Height))), got); d > 1e-6 {
				t.Errorf("ToSource does not map the flat page onto the sheet (%.2g px)", d)
			}
			if w, h := want.Size(); math.Abs(float64(c.Width)-w) > 2 || math.Abs(float64(c.Height)-h) > 2 {
				t.Errorf("flat page %dx%d, the sheet's sides are %.0f and %.0f", c.Width, c.Height, w, h)
			}
		})
	}
}

// The flattened page shows the sheet: its lines of words are level again,
// its light even, its rim clear.
func TestCorrectionFlattens(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	page := textPage(480, 640, 14, 225, 40, rng)
	img := photo(page, 600, 800, jitter(600, 800, 0.12, 0.06, rng), 70, 0.4, 2, rng)
	c, ok := Plan(img, Auto)
	if !ok {
		t.Fatal("not corrected")
	}
	flat := c.Gray(img)
	if s := EstimateSkew(flat, MaxSkew); math.Abs(s.Degrees) > 0.3 || s.Lines < 20 {
		t.Errorf("flattened page skew %+v", s)
	}
	// The paper is even: the brightest tenth of each quarter of the page
	// is white whatever the gradient was.
	b := flat.Rect
	for _, r := range []image.Rectangle{
		image.Rect(0, 0, b.Dx()/2, b.Dy()/2), image.Rect(b.Dx()/2, 0, b.Dx(), b.Dy()/2),
		image.Rect(0, b.Dy()/2, b.Dx()/2, b.Dy()), image.Rect(b.Dx()/2, b.Dy()/2, b.Dx(), b.Dy()),
	} {
		hist, _ := histogram(flat.SubImage(r).(*image.Gray))
		if p := percentile(&hist, 0.9); p < 240 {
			t.Errorf("paper in %v is %d", r, p)
		}
	}
	for x := range b.Dx() {
		if v := flat.GrayAt(x, 0).Y; v != 255 {
			t.Fatalf("rim pixel (%d, 0) = %d", x, v)
		}
	}
}

// Images that are not a sheet on a background are not flattened.
func TestFindPageRejects(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	blank := image.NewGray(image.Rect(0, 0, 600, 800))
	for i := range blank.Pix {
		blank.Pix[i] = 240
	}
	noise := image.NewGray(image.Rect(0, 0, 600, 800))
	for i := range noise.Pix {
		noise.Pix[i] = uint8(rng.IntN(256))
	}
	// A dark sheet on a light desk: the light region is the desk, which
	// fills the frame.
	dark := photo(textPage(480, 640, 14, 60, 200, rng), 600, 800, jitter(600, 800, 0.12, 0.04, rng), 220, 0, 3, rng)
	// A scan with a dark figure on it.
	figure := textPage(600, 800, 14, 235, 30, rng)
	for y := 300; y < 500; y++ {
		for x := 150; x < 450; x++ {
			figure.Pix[y*figure.Stride+x] = uint8(40 + (x*y)%50)
		}
	}
	for name, img := range map[string]*image.Gray{
		"flat scan": textPage(600, 800, 14, 235, 30, rng), "blank": blank, "noise": noise,
		"dark sheet on a light desk": dark, "scan with a figure": figure,
	} {
		if p, ok := FindPage(img); ok && p.Confidence >= MinPageConfidence {
			t.Errorf("%s: sheet %v, confidence %.2f", name, p.Quad, p.Confidence)
		}
		if c, ok := Plan(img, Auto); ok && c.Kind == Perspective {
			t.Errorf("%s: flattened", name)
		}
	}
}

func ExampleFindPage() {
	rng := rand.New(rand.NewPCG(1, 1))
	corners := Quad{{80, 110}, {520, 70}, {540, 730}, {60, 700}}
	img := photo(textPage(480, 640, 14, 225, 40, rng), 600, 800, corners, 70, 0.2, 2, rng)
	p, _ := FindPage(img)
	fmt.Printf("within a pixel: %v, confidence %.1f\n", worstCorner(p.Quad, corners) < 1, p.Confidence)
	// Output: within a pixel: true, confidence 1.0
}
