package dewarp

import (
	"encoding/binary"
	"image"
	"math"
	"math/rand/v2"
	"testing"
)

// fuzzImage makes a w x h grey image from fuzz bytes: the first two bytes
// choose the size (up to 256 on a side), the rest are tiled as pixels.
func fuzzImage(data []byte) *image.Gray {
	w, h := 1+int(data[0]), 1+int(data[1])
	g := image.NewGray(image.Rect(0, 0, w, h))
	body := data[2:]
	if len(body) == 0 {
		return g
	}
	for i := range g.Pix {
		g.Pix[i] = body[i%len(body)]
	}
	return g
}

// fuzzSeed encodes img as fuzzImage reads it back.
func fuzzSeed(img *image.Gray) []byte {
	w, h := img.Rect.Dx(), img.Rect.Dy()
	return append([]byte{byte(w - 1), byte(h - 1)}, img.Pix...)
}

// Whatever the pixels, the page search, the skew estimate and the plan
// return (no panic, no endless loop), and a correction is finite, of a
// bounded size, and can be applied. Images too small for Plan to look at
// go to the searches directly.
func FuzzPlan(f *testing.F) {
	rng := rand.New(rand.NewPCG(1, 1))
	f.Add(fuzzSeed(photo(textPage(180, 210, 8, 225, 40, rng), 220, 256, jitter(220, 256, 0.1, 0.04, rng), 70, 0.2, 3, rng)))
	f.Add(fuzzSeed(rotated(textPage(200, 210, 8, 235, 30, rng), 7, 235)))
	f.Add(fuzzSeed(photo(textPage(80, 100, 4, 225, 40, rng), 100, 120, jitter(100, 120, 0.1, 0.04, rng), 70, 0.2, 3, rng)))
	f.Add([]byte{255, 255, 0, 255})
	f.Add([]byte{10, 200, 128})
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) < 2 {
			return
		}
		img := fuzzImage(data)
		w, h := img.Rect.Dx(), img.Rect.Dy()
		if min(w, h) >= minPageSide {
			checkPlan(t, img, []Mode{Auto, On}[int(data[0]+data[1])%2])
			return
		}
		if p, ok := FindPage(img); ok {
			for _, c := range p.Quad {
				if !c.finite() {
					t.Fatalf("page corner %v", c)
				}
			}
			if p.Confidence < 0 || p.Confidence > 1 {
				t.Fatalf("confidence %v", p.Confidence)
			}
		}
		if s := EstimateSkew(img, MaxSkew); math.Abs(s.Degrees) > MaxSkew || s.Confidence < 0 || s.Confidence > 1 {
			t.Fatalf("skew %+v", s)
		}
	})
}

func checkPlan(t *testing.T, img *image.Gray, mode Mode) {
	c, ok := Plan(img, mode)
	if !ok {
		return
	}
	// A flattened sheet is no larger than its outline, which lies within
	// the frame; a turned page's canvas is at most its diagonal square.
	w, h := img.Rect.Dx(), img.Rect.Dy()
	limit := int(math.Ceil(math.Hypot(float64(w), float64(h)))) + 2
	if c.Width < 1 || c.Height < 1 || c.Width > limit || c.Height > limit {
		t.Fatalf("%s: %dx%d from a %dx%d image", c.Kind, c.Width, c.Height, w, h)
	}
	for _, v := range c.ToSource {
		if !isFinite(v) {
			t.Fatalf("homography %v", c.ToSource)
		}
	}
	if out := c.Gray(img); out.Rect.Dx() != c.Width || out.Rect.Dy() != c.Height {
		t.Fatalf("corrected image %v", out.Rect)
	}
}

// The homography the stage flattens with, from an upright rectangle of
// the sheet's size (as flatten makes it) to the sheet's convex outline,
// maps each corner onto its partner and back.
func FuzzQuadToQuad(f *testing.F) {
	f.Add(make([]byte, 16))
	seed := make([]byte, 0, 16)
	for _, v := range []int16{236, 332, 1212, 270, 1186, 1772, 278, 1788} {
		seed = binary.LittleEndian.AppendUint16(seed, uint16(v))
	}
	f.Add(seed)
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) < 16 {
			return
		}
		var quad Quad
		for i := range 8 {
			quad[i/2][i%2] = float64(int16(binary.LittleEndian.Uint16(data[2*i:])))
		}
		if !quad.Convex(5) || quad.Area() < 100 || !wellShaped(quad) {
			return
		}
		w, h := quad.Size()
		w, h = math.Round(w), math.Round(h)
		rect := Rect(w, h)
		toQuad, ok := QuadToQuad(rect, quad)
		if !ok {
			t.Fatalf("%vx%v -> %v: no homography", w, h, quad)
		}
		inv, ok := toQuad.Inverse()
		if !ok {
			t.Fatalf("%vx%v -> %v: not invertible: %v", w, h, quad, toQuad)
		}
		// Within a thousandth of a pixel, or a hundred-thousandth of the
		// coordinates' size.
		tol := 1e-3
		for _, p := range append(rect[:], quad[:]...) {
			tol = max(tol, 1e-5*math.Abs(p[0]), 1e-5*math.Abs(p[1]))
		}
		for i := range 4 {
			if got := toQuad.Map(rect[i]); !near(got, quad[i], tol) {
				t.Fatalf("%vx%v -> %v: corner %d maps to %v", w, h, quad, i, got)
			}
			if got := inv.Map(quad[i]); !near(got, rect[i], tol) {
				t.Fatalf("%vx%v -> %v: corner %d maps back to %v", w, h, quad, i, got)
			}
		}
	})
}

// wellShaped says a quad is one the stage could meet: no side shorter
// than 8 pixels or than a hundredth of the longest (a page's outline, a
// flattened rectangle). Sides of a pixel beside sides of thousands make
// the map between two quads as ill-conditioned as floating point allows.
func wellShaped(q Quad) bool {
	lo, hi := math.Inf(1), 0.0
	for i := range q {
		d := q[i].dist(q[(i+1)%4])
		lo, hi = min(lo, d), max(hi, d)
	}
	return lo >= 8 && lo >= hi/100
}
