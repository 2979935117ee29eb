package ppocr

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func near(a, b vec, tol float64) bool { return a.dist(b) <= tol }

// rectPoints returns the corners of a w×h rectangle centred at c and turned
// by deg degrees (clockwise on screen, y down), in order.
func rectPoints(c vec, w, h, deg float64) []vec {
	a := deg * math.Pi / 180
	u := vec{math.Cos(a), math.Sin(a)}
	n := vec{-u.Y, u.X}
	hw, hh := w/2, h/2
	return []vec{
		c.add(u.scale(-hw)).add(n.scale(-hh)),
		c.add(u.scale(hw)).add(n.scale(-hh)),
		c.add(u.scale(hw)).add(n.scale(hh)),
		c.add(u.scale(-hw)).add(n.scale(hh)),
	}
}

func TestConvexHull(t *testing.T) {
	for _, tc := range []struct {
		name string
		pts  []vec
		want []vec // as a set
	}{
		{"empty", nil, nil},
		{"one point", []vec{{3, 4}}, []vec{{3, 4}}},
		{"duplicates", []vec{{1, 1}, {1, 1}, {1, 1}}, []vec{{1, 1}}},
		{"collinear", []vec{{0, 0}, {1, 0}, {2, 0}, {3, 0}}, []vec{{0, 0}, {3, 0}}},
		{"square with inside and edge points", []vec{{0, 0}, {2, 0}, {2, 2}, {0, 2}, {1, 1}, {1, 0}, {0.5, 1.5}}, []vec{{0, 0}, {2, 0}, {2, 2}, {0, 2}}},
		{"triangle", []vec{{0, 0}, {4, 0}, {0, 3}, {1, 1}}, []vec{{0, 0}, {4, 0}, {0, 3}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := convexHull(tc.pts)
			if len(got) != len(tc.want) {
				t.Fatalf("hull = %v, want %v", got, tc.want)
			}
			for _, w := range tc.want {
				if !slices.Contains(got, w) {
					t.Errorf("hull %v lacks %v", got, w)
				}
			}
			if len(got) >= 3 {
				for i := range got { // strictly convex, one winding
					a, b, c := got[i], got[(i+1)%len(got)], got[(i+2)%len(got)]
					if b.sub(a).cross(c.sub(a)) <= 0 {
						t.Errorf("hull %v is not strictly counter-clockwise at %v", got, b)
					}
				}
			}
		})
	}
}

func TestMinAreaRect(t *testing.T) {
	for _, tc := range []struct {
		name        string
		pts         []vec
		area, short float64 // short < 0: not unique
	}{
		{"axis-aligned", []vec{{10, 20}, {110, 20}, {110, 40}, {10, 40}, {50, 30}}, 2000, 20},
		{"rotated 30 degrees", rectPoints(vec{200, 100}, 100, 20, 30), 2000, 20},
		{"rotated -12 degrees", rectPoints(vec{50, 60}, 80, 10, -12), 800, 10},
		{"rotated 90 degrees", rectPoints(vec{50, 60}, 80, 10, 90), 800, 10},
		{"single row of pixels", []vec{{5, 7}, {15, 7}}, 0, 0},
		{"single pixel", []vec{{5, 7}}, 0, 0},
		// Axis-aligned 4x3 and along the hypotenuse 5x2.4 tie at 12.
		{"right triangle", []vec{{0, 0}, {4, 0}, {0, 3}}, 12, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := minAreaRect(tc.pts)
			if math.Abs(r.w*r.h-tc.area) > 1e-6 {
				t.Errorf("rect %gx%g has area %g, want %g", r.w, r.h, r.w*r.h, tc.area)
			}
			if tc.short >= 0 && math.Abs(r.shortSide()-tc.short) > 1e-6 {
				t.Errorf("short side %g, want %g", r.shortSide(), tc.short)
			}
			checkContains(t, r, tc.pts)
		})
	}
}

// checkContains fails unless every point lies in the rectangle.
func checkContains(t *testing.T, r rotRect, pts []vec) {
	t.Helper()
	c := r.corners
	u, n := c[1].sub(c[0]), c[3].sub(c[0])
	for _, p := range pts {
		d := p.sub(c[0])
		a, b := d.dot(u), d.dot(n)
		if a < -1e-6 || a > u.dot(u)+1e-6 || b < -1e-6 || b > n.dot(n)+1e-6 {
			t.Errorf("point %v outside rect %v", p, c)
		}
	}
}

// On random point clouds the rectangle must hold every point and be no
// larger than the axis-aligned bounding box (which is one candidate).
func TestMinAreaRectRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 200 {
		pts := make([]vec, 3+rng.IntN(40))
		for i := range pts {
			pts[i] = vec{math.Round(rng.Float64() * 100), math.Round(rng.Float64() * 50)}
		}
		r := minAreaRect(pts)
		checkContains(t, r, pts)
		minX, maxX, minY, maxY := math.Inf(1), math.Inf(-1), math.Inf(1), math.Inf(-1)
		for _, p := range pts {
			minX, maxX = math.Min(minX, p.X), math.Max(maxX, p.X)
			minY, maxY = math.Min(minY, p.Y), math.Max(maxY, p.Y)
		}
		if r.w*r.h > (maxX-minX)*(maxY-minY)+1e-6 {
			t.Fatalf("rect area %g exceeds the bounding box's %g for %v", r.w*r.h, (maxX-minX)*(maxY-minY), pts)
		}
	}
}

func TestMiniBox(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   [4]vec
		want quad
	}{
		{"axis-aligned, scrambled", [4]vec{{10, 40}, {110, 20}, {10, 20}, {110, 40}}, quad{{10, 20}, {110, 20}, {110, 40}, {10, 40}}},
		{"tilted down to the right", [4]vec{{0, 0}, {100, 10}, {98, 30}, {-2, 20}}, quad{{0, 0}, {100, 10}, {98, 30}, {-2, 20}}},
		{"tilted up to the right", [4]vec{{0, 10}, {100, 0}, {102, 20}, {2, 30}}, quad{{0, 10}, {100, 0}, {102, 20}, {2, 30}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := miniBox(tc.in); got != tc.want {
				t.Errorf("miniBox(%v) = %v, want %v", tc.in, got, tc.want)
			}
		})
	}
}

func TestUnclip(t *testing.T) {
	for _, tc := range []struct {
		name         string
		box          []vec
		ratio        float64
		wantW, wantH float64
	}{
		// area 2000, perimeter 240: distance 2000·1.5/240 = 12.5 per side.
		{"100x20 at 1.5", rectPoints(vec{100, 50}, 100, 20, 0), 1.5, 125, 45},
		{"100x20 turned 25 degrees", rectPoints(vec{100, 50}, 100, 20, 25), 1.5, 125, 45},
		// area 100, perimeter 40: distance 5 at ratio 2.
		{"square at 2", rectPoints(vec{0, 0}, 10, 10, 0), 2, 20, 20},
		{"ratio 0 keeps the box", rectPoints(vec{0, 0}, 30, 6, 0), 0, 30, 6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := minAreaRect(unclip(tc.box, tc.ratio))
			w, h := math.Max(r.w, r.h), math.Min(r.w, r.h)
			if math.Abs(w-tc.wantW) > 1e-6 || math.Abs(h-tc.wantH) > 1e-6 {
				t.Errorf("grown to %gx%g, want %gx%g", w, h, tc.wantW, tc.wantH)
			}
			checkContains(t, r, tc.box)
		})
	}
	flat := []vec{{0, 0}, {10, 0}, {20, 0}}
	if got := unclip(flat, 1.5); !slices.Equal(got, flat) {
		t.Errorf("unclip of a zero-area polygon = %v, want it unchanged", got)
	}
}

func TestPerspective(t *testing.T) {
	frame := cropFrame(100, 20)
	for _, tc := range []struct {
		name string
		dst  [4]vec
	}{
		{"translation", [4]vec{{10, 10}, {110, 10}, {110, 30}, {10, 30}}},
		{"rotation", [4]vec(rectPoints(vec{200, 200}, 100, 20, 40))},
		{"true perspective", [4]vec{{0, 0}, {120, 10}, {110, 40}, {5, 25}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, ok := perspective(frame, tc.dst)
			if !ok {
				t.Fatal("perspective failed")
			}
			for i := range 4 {
				if got := h.apply(frame[i]); !near(got, tc.dst[i], 1e-9) {
					t.Errorf("corner %d -> %v, want %v", i, got, tc.dst[i])
				}
			}
			// A projective map keeps straight lines straight: the image of
			// the frame's centre is where the images of its diagonals cross.
			c := h.apply(vec{50, 10})
			d0, d1 := tc.dst[2].sub(tc.dst[0]), tc.dst[3].sub(tc.dst[1])
			if math.Abs(c.sub(tc.dst[0]).cross(d0)) > 1e-6*d0.norm() || math.Abs(c.sub(tc.dst[1]).cross(d1)) > 1e-6*d1.norm() {
				t.Errorf("centre maps to %v, off the diagonals of %v", c, tc.dst)
			}
		})
	}
	if _, ok := perspective(frame, [4]vec{{0, 0}, {1, 1}, {2, 2}, {3, 3}}); ok {
		t.Error("perspective onto collinear points succeeded")
	}
}

func TestWarpCrop(t *testing.T) {
	// Each pixel encodes its own coordinates, so a crop shows where it
	// sampled from.
	src := newRGB(40, 30)
	for y := range src.h {
		for x := range src.w {
			i := 3 * (y*src.w + x)
			src.pix[i], src.pix[i+1], src.pix[i+2] = uint8(x), uint8(y), 0
		}
	}
	pix := func(m *rgbImage, x, y int) (int, int) {
		i := 3 * (y*m.w + x)
		return int(m.pix[i]), int(m.pix[i+1])
	}
	t.Run("axis-aligned box is a sub-image", func(t *testing.T) {
		c, ok := cropQuad(src, quad{{5, 7}, {25, 7}, {25, 17}, {5, 17}})
		if !ok || c.img.w != 20 || c.img.h != 10 {
			t.Fatalf("crop %v %dx%d", ok, c.img.w, c.img.h)
		}
		for _, p := range [][2]int{{0, 0}, {19, 0}, {7, 9}} {
			if x, y := pix(c.img, p[0], p[1]); x != 5+p[0] || y != 7+p[1] {
				t.Errorf("crop pixel %v shows source (%d,%d), want (%d,%d)", p, x, y, 5+p[0], 7+p[1])
			}
		}
	})
	t.Run("rotated quad is read along its first edge", func(t *testing.T) {
		// A box whose text runs downwards: top-left at (30,5), top-right
		// at (30,25); the crop's x axis follows +y in the source.
		q := quad{{30, 5}, {30, 25}, {20, 25}, {20, 5}}
		c, ok := cropQuad(src, q)
		if !ok || c.img.w != 20 || c.img.h != 10 {
			t.Fatalf("crop %v %dx%d", ok, c.img.w, c.img.h)
		}
		for _, p := range [][2]int{{0, 0}, {10, 0}, {0, 5}, {19, 9}} {
			if x, y := pix(c.img, p[0], p[1]); x != 30-p[1] || y != 5+p[0] {
				t.Errorf("crop pixel %v shows source (%d,%d), want (%d,%d)", p, x, y, 30-p[1], 5+p[0])
			}
		}
		if got := c.toSrc.apply(vec{10, 5}); !near(got, vec{25, 15}, 1e-9) {
			t.Errorf("toSrc(10,5) = %v, want (25,15)", got)
		}
	})
	t.Run("flip keeps the quad and the pixels in step", func(t *testing.T) {
		c, _ := cropQuad(src, quad{{5, 7}, {25, 7}, {25, 17}, {5, 17}})
		c.flip()
		if x, y := pix(c.img, 0, 0); x != 24 || y != 16 {
			t.Errorf("flipped crop top-left shows (%d,%d), want (24,16)", x, y)
		}
		if c.q[0] != (vec{25, 17}) {
			t.Errorf("flipped quad starts at %v, want (25,17)", c.q[0])
		}
		if got := c.toSrc.apply(vec{0, 0}); !near(got, vec{25, 17}, 1e-9) {
			t.Errorf("flipped toSrc(0,0) = %v", got)
		}
	})
}

func TestReadingOrder(t *testing.T) {
	box := func(x, y, w, h float64) quad { return quad{{x, y}, {x + w, y}, {x + w, y + h}, {x, y + h}} }
	for _, tc := range []struct {
		name     string
		in       []quad
		sameLine float64
		want     []int // indices into in
	}{
		{"already ordered", []quad{box(0, 0, 50, 20), box(60, 0, 50, 20), box(0, 30, 50, 20)}, 0.5, []int{0, 1, 2}},
		{"lines given bottom up", []quad{box(0, 60, 50, 20), box(0, 30, 50, 20), box(0, 0, 50, 20)}, 0.5, []int{2, 1, 0}},
		{"same line, right box slightly higher", []quad{box(0, 5, 50, 20), box(60, 0, 50, 20)}, 0.5, []int{0, 1}},
		{"same line, given right to left", []quad{box(200, 2, 50, 20), box(100, 0, 50, 20), box(0, 4, 50, 20)}, 0.5, []int{2, 1, 0}},
		{"next line starts further left", []quad{box(0, 30, 50, 20), box(80, 0, 50, 20)}, 0.5, []int{1, 0}},
		// 12 px apart is a new line for 20 px text, the same line for 40 px text.
		{"offset beyond half the height", []quad{box(60, 0, 50, 20), box(0, 12, 50, 20)}, 0.5, []int{0, 1}},
		{"offset within half the height", []quad{box(60, 0, 50, 40), box(0, 12, 50, 40)}, 0.5, []int{1, 0}},
		{"small box beside a big one uses the smaller height", []quad{box(60, 0, 50, 60), box(0, 12, 50, 10)}, 0.5, []int{0, 1}},
		{"empty", nil, 0.5, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := slices.Clone(tc.in)
			readingOrder(got, func(q quad) quad { return q }, tc.sameLine)
			for i, w := range tc.want {
				if got[i] != tc.in[w] {
					t.Fatalf("order = %v, want boxes %v of %v", got, tc.want, tc.in)
				}
			}
		})
	}
}

func TestQuadGrow(t *testing.T) {
	for _, deg := range []float64{0, 30, -75, 180} {
		q := quad(rectPoints(vec{100, 100}, 60, 20, deg))
		g := q.grow(5)
		if w, h := g.width(), g.height(); math.Abs(w-70) > 1e-9 || math.Abs(h-30) > 1e-9 {
			t.Errorf("%v°: grown to %gx%g, want 70x30", deg, w, h)
		}
		for i := range 4 {
			// Each corner moves 5√2 outward, along its diagonal.
			if d := g[i].dist(q[i]); math.Abs(d-5*math.Sqrt2) > 1e-9 {
				t.Errorf("%v°: corner %d moved %g", deg, i, d)
			}
			if g[i].dist(vec{100, 100}) <= q[i].dist(vec{100, 100}) {
				t.Errorf("%v°: corner %d moved inward", deg, i)
			}
		}
	}
}
