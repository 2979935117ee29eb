package dewarp

import (
	"cmp"
	"image"
	"math"
	"slices"
)

// Page is a sheet found on a background by FindPage.
type Page struct {
	// Quad is the sheet's outline in the image's pixel coordinates.
	Quad Quad
	// Confidence in [0, 1] says how sure FindPage is that Quad is a
	// sheet on a background: it is high only when every side lies on a
	// straight edge, the sheet is clearly brighter than its surroundings
	// and there are surroundings to compare with.
	Confidence float64
	// Support is the smallest, over the four sides, fraction of samples
	// along a side that found the edge on the side's fitted line.
	Support float64
	// Contrast is the median grey inside the sheet minus the median of a
	// band around it (0 to 255).
	Contrast float64
	// Surround is the fraction of that band that lies inside the image:
	// 0 for a sheet that fills the frame.
	Surround float64
	// Coverage is the sheet's area over the image's.
	Coverage float64
	// Paper is the sheet's median grey, for filling anything a
	// correction shows outside the image.
	Paper uint8
}

// Page detection works on a copy reduced to at most searchSide pixels on
// its longer side; the refinement then reads the full image.
const searchSide = 480

// FindPage looks for the outline of a bright sheet on a darker
// background. It returns false when the image shows no candidate at all;
// a candidate that is not a sheet on a background (a flat scan is one big
// bright region filling the frame) comes back with a low Confidence.
//
// The search: the brightest large region of a reduced copy (Otsu's
// threshold, an opening to cut thin bridges to bright clutter, the
// largest connected component) gives a convex hull, which is cut down to
// four corners. Each side is then fitted at full resolution to the
// strongest dark-to-bright step found across it, and the corners are the
// intersections of the fitted lines.
func FindPage(g *image.Gray) (Page, bool) {
	small, k := shrink(g, searchSide)
	if small.Rect.Dx() < 8 || small.Rect.Dy() < 8 {
		return Page{}, false
	}
	hist, _ := histogram(small)
	mask := maxFilter(minFilter(threshold(small, uint8(otsuLevel(&hist))), 1), 1)
	hull := componentHull(mask)
	if len(hull) < 4 {
		return Page{}, false
	}
	q, ok := quadOfHull(hull)
	if !ok {
		return Page{}, false
	}
	q = q.scaled(float64(k))
	b := g.Bounds()
	if area := float64(b.Dx() * b.Dy()); q.Area() > 0.99*area {
		// The bright region fills the frame: a scan, or a sheet with no
		// background to find it against.
		return Page{Quad: q, Coverage: q.Area() / area}, true
	}
	// Two passes: the first corrects the reduced copy's coarseness, the
	// second re-centres the search on the sides it found.
	diag := math.Hypot(float64(b.Dx()), float64(b.Dy()))
	support := 0.0
	for _, radius := range []float64{3*float64(k) + 0.012*diag, float64(k) + 3} {
		rq, s, ok := refine(g, q, radius)
		if !ok {
			break
		}
		q, support = rq, s
	}
	p := score(small, k, q)
	p.Quad, p.Support = q, support
	p.Coverage = q.Area() / float64(b.Dx()*b.Dy())
	p.Confidence = clamp01((p.Support-0.3)/0.5) * clamp01(p.Contrast/40) * clamp01(p.Surround/0.5)
	if !q.Convex(20) || !inside(q, b, 0.01*diag) || p.Coverage > 0.98 {
		p.Confidence = 0
	}
	return p, true
}

func clamp01(x float64) float64 { return math.Max(0, math.Min(1, x)) }

func (q Quad) scaled(k float64) Quad {
	for i := range q {
		q[i] = q[i].scale(k)
	}
	return q
}

// inside reports whether every corner of q is within r (after moving the
// image's bounds to the origin) grown by tol pixels.
func inside(q Quad, r image.Rectangle, tol float64) bool {
	for _, p := range q {
		if p[0] < -tol || p[1] < -tol || p[0] > float64(r.Dx())+tol || p[1] > float64(r.Dy())+tol {
			return false
		}
	}
	return true
}

// threshold returns the mask of g's pixels brighter than t: 1 in, 0 out.
func threshold(g *image.Gray, t uint8) *image.Gray {
	m := image.NewGray(image.Rect(0, 0, g.Rect.Dx(), g.Rect.Dy()))
	for y := range m.Rect.Dy() {
		for x, v := range g.Pix[g.PixOffset(g.Rect.Min.X, g.Rect.Min.Y+y):][:m.Rect.Dx()] {
			if v > t {
				m.Pix[y*m.Stride+x] = 1
			}
		}
	}
	return m
}

// componentHull returns the convex hull of the largest 4-connected
// component of the mask m (pixels of value 1, stride equal to width, as the
// masks made here are), in m's pixel-edge coordinates.
func componentHull(m *image.Gray) []Point {
	w, h := m.Rect.Dx(), m.Rect.Dy()
	labels := make([]int32, w*h)
	var best, bestSize int32
	stack := make([]int32, 0, 1024)
	next := int32(0)
	for start := range m.Pix {
		if m.Pix[start] == 0 || labels[start] != 0 {
			continue
		}
		next++
		size := int32(0)
		labels[start] = next
		stack = append(stack[:0], int32(start))
		for len(stack) > 0 {
			i := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			size++
			x, y := int(i)%w, int(i)/w
			for _, nb := range [4][2]int{{x - 1, y}, {x + 1, y}, {x, y - 1}, {x, y + 1}} {
				if nb[0] < 0 || nb[1] < 0 || nb[0] >= w || nb[1] >= h {
					continue
				}
				j := int32(nb[1]*w + nb[0])
				if m.Pix[j] == 1 && labels[j] == 0 {
					labels[j] = next
					stack = append(stack, j)
				}
			}
		}
		if size > bestSize {
			best, bestSize = next, size
		}
	}
	if bestSize == 0 {
		return nil
	}
	// The hull of a component is the hull of each row's outer pixel corners.
	var pts []Point
	for y := range h {
		lo, hi := -1, -1
		for x, l := range labels[y*w : (y+1)*w] {
			if l == best {
				if lo < 0 {
					lo = x
				}
				hi = x
			}
		}
		if lo >= 0 {
			fy, flo, fhi := float64(y), float64(lo), float64(hi+1)
			pts = append(pts, Point{flo, fy}, Point{fhi, fy}, Point{flo, fy + 1}, Point{fhi, fy + 1})
		}
	}
	return hull(pts)
}

// hull returns the convex hull of pts clockwise on screen (Andrew's
// monotone chain), without collinear points.
func hull(pts []Point) []Point {
	pts = slices.Clone(pts)
	slices.SortFunc(pts, func(a, b Point) int {
		return cmp.Or(cmp.Compare(a[0], b[0]), cmp.Compare(a[1], b[1]))
	})
	pts = slices.Compact(pts)
	if len(pts) < 3 {
		return pts
	}
	// turn > 0 is a clockwise turn on screen (y down).
	turn := func(a, b, c Point) float64 { return b.sub(a).cross(c.sub(b)) }
	out := make([]Point, 0, len(pts)+1)
	chain := func(seq func(yield func(int, Point) bool)) {
		base := len(out)
		for _, p := range seq {
			for len(out) >= base+2 && turn(out[len(out)-2], out[len(out)-1], p) <= 0 {
				out = out[:len(out)-1]
			}
			out = append(out, p)
		}
		out = out[:len(out)-1]
	}
	chain(slices.All(pts))      // upper chain, left to right
	chain(slices.Backward(pts)) // lower chain, right to left
	return out
}

// quadOfHull cuts a convex polygon (clockwise on screen) down to four
// corners by repeatedly dropping the corner whose removal loses the least
// area, and orders them from the one nearest the image's top-left.
func quadOfHull(poly []Point) (Quad, bool) {
	poly = slices.Clone(poly)
	tri := func(i int) float64 {
		n := len(poly)
		a, b, c := poly[(i+n-1)%n], poly[i], poly[(i+1)%n]
		return math.Abs(b.sub(a).cross(c.sub(b)))
	}
	for len(poly) > 4 {
		drop := 0
		for i := range poly {
			if tri(i) < tri(drop) {
				drop = i
			}
		}
		poly = slices.Delete(poly, drop, drop+1)
	}
	if len(poly) < 4 {
		return Quad{}, false
	}
	first := 0
	for i, p := range poly {
		if p[0]+p[1] < poly[first][0]+poly[first][1] {
			first = i
		}
	}
	var q Quad
	for i := range q {
		q[i] = poly[(first+i)%4]
	}
	return q, q.Area() > 0
}
