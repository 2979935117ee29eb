package dewarp

import (
	"math"
	"testing"
)

func near(a, b Point, tol float64) bool { return a.dist(b) <= tol }

func TestQuadToQuad(t *testing.T) {
	for _, tc := range []struct {
		name     string
		src, dst Quad
	}{
		{"identity", Rect(10, 20), Rect(10, 20)},
		{"scale", Rect(1, 1), Rect(300, 400)},
		{"perspective", Rect(1200, 1600), Quad{{236.75, 332.32}, {1212.66, 270.9}, {1186.99, 1772.81}, {278.9, 1788.73}}},
		{"quad to quad", Quad{{3, 4}, {90, 10}, {95, 70}, {1, 60}}, Quad{{-5, 2}, {40, -3}, {50, 66}, {0, 55}}},
		{"parallelogram (affine)", Quad{{0, 0}, {10, 0}, {15, 10}, {5, 10}}, Rect(1, 1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, ok := QuadToQuad(tc.src, tc.dst)
			if !ok {
				t.Fatal("degenerate")
			}
			for i := range 4 {
				if got := h.Map(tc.src[i]); !near(got, tc.dst[i], 1e-6) {
					t.Errorf("corner %d: %v -> %v, want %v", i, tc.src[i], got, tc.dst[i])
				}
			}
			inv, ok := h.Inverse()
			if !ok {
				t.Fatal("not invertible")
			}
			// Any point, not just corners, goes there and back.
			p := between(between(tc.src[0], tc.src[2], 0.3), tc.src[1], 0.4)
			if back := inv.Map(h.Map(p)); !near(back, p, 1e-6) {
				t.Errorf("round trip of %v: %v", p, back)
			}
			if id := h.Then(inv); !near(id.Map(p), p, 1e-6) || math.Abs(id[8]-1) > 1e-12 {
				t.Errorf("h then its inverse = %v", id)
			}
		})
	}
}

func TestQuadToQuadDegenerate(t *testing.T) {
	for _, q := range []Quad{
		{},                               // a point
		{{0, 0}, {1, 1}, {2, 2}, {3, 3}}, // a line
		{{0, 0}, {10, 0}, {10, 0}, {0, 10}},
	} {
		if h, ok := QuadToQuad(Rect(1, 1), q); ok {
			t.Errorf("%v: got %v, want degenerate", q, h)
		}
		if _, ok := QuadToQuad(q, Rect(1, 1)); ok {
			t.Errorf("%v as source: want degenerate", q)
		}
	}
	if _, ok := (Homography{}).Inverse(); ok {
		t.Error("the zero matrix inverted")
	}
}

func TestQuadShape(t *testing.T) {
	r := Rect(4, 3)
	if a := r.Area(); a != 12 {
		t.Errorf("area %v", a)
	}
	if !r.Convex(80) {
		t.Error("a rectangle is not convex")
	}
	if ccw := (Quad{r[0], r[3], r[2], r[1]}); ccw.Convex(1) || ccw.Area() >= 0 {
		t.Error("counter-clockwise corners pass as clockwise")
	}
	if dart := (Quad{{0, 0}, {10, 0}, {2, 2}, {0, 10}}); dart.Convex(1) {
		t.Error("a dart is convex")
	}
	if sharp := (Quad{{0, 0}, {100, 0}, {60, 10}, {40, 10}}); !sharp.Convex(1) || sharp.Convex(20) { // 14 and 166 degrees
		t.Error("corner angle limit not applied")
	}
	if w, h := (Quad{{0, 0}, {10, 0}, {12, 20}, {0, 18}}).Size(); math.Abs(w-math.Hypot(12, 2)) > 1e-9 || math.Abs(h-math.Hypot(2, 20)) > 1e-9 {
		t.Errorf("size %v x %v", w, h)
	}
	if !r.contains(Point{2, 1}) || r.contains(Point{5, 1}) {
		t.Error("contains")
	}
}

// A map between quads far from the origin is as invertible as the same
// map near it: pixel offsets of thousands beside perspective terms of
// 1e-5 once made Inverse call it singular (found by FuzzQuadToQuad).
func TestInverseFarFromTheOrigin(t *testing.T) {
	src := Quad{{12336, 12336}, {8240, 12336}, {304, 8240}, {12336, 8240}}
	dst := Quad{{12336, 12336}, {12336, 8240}, {12848, 12336}, {12592, 12592}}
	h, ok := QuadToQuad(src, dst)
	if !ok {
		t.Fatal("no homography")
	}
	inv, ok := h.Inverse()
	if !ok {
		t.Fatalf("not invertible: %v", h)
	}
	for i := range 4 {
		if got := inv.Map(dst[i]); !near(got, src[i], 0.01) {
			t.Errorf("corner %d maps back to %v, want %v", i, got, src[i])
		}
	}
}
