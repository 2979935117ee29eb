package ppocr

import (
	"cmp"
	"math"
	"slices"
)

// vec is a point or direction in pixel coordinates (x right, y down).
type vec struct{ X, Y float64 }

func (a vec) add(b vec) vec       { return vec{a.X + b.X, a.Y + b.Y} }
func (a vec) sub(b vec) vec       { return vec{a.X - b.X, a.Y - b.Y} }
func (a vec) scale(k float64) vec { return vec{a.X * k, a.Y * k} }
func (a vec) dot(b vec) float64   { return a.X*b.X + a.Y*b.Y }
func (a vec) cross(b vec) float64 { return a.X*b.Y - a.Y*b.X }
func (a vec) norm() float64       { return math.Hypot(a.X, a.Y) }
func (a vec) dist(b vec) float64  { return a.sub(b).norm() }
func finite(v vec) bool {
	return !math.IsNaN(v.X) && !math.IsNaN(v.Y) && !math.IsInf(v.X, 0) && !math.IsInf(v.Y, 0)
}
func clampf(x, lo, hi float64) float64 { return math.Max(lo, math.Min(hi, x)) }

// quad is four corners in reading order: top-left, top-right, bottom-right,
// bottom-left of the text.
type quad [4]vec

// width and height are the longer of each pair of opposite sides, as
// PaddleOCR sizes its crops.
func (q quad) width() float64  { return math.Max(q[0].dist(q[1]), q[2].dist(q[3])) }
func (q quad) height() float64 { return math.Max(q[0].dist(q[3]), q[1].dist(q[2])) }

// rotateCCW returns the quad whose crop is this quad's crop turned 90°
// counter-clockwise (numpy's rot90): its top-left is the old top-right.
func (q quad) rotateCCW() quad { return quad{q[1], q[2], q[3], q[0]} }

// rotate180 returns the quad whose crop is this quad's crop upside down.
func (q quad) rotate180() quad { return quad{q[2], q[3], q[0], q[1]} }

// grow moves every side of the quad outward by d along the quad's own
// axes (so a rotated box grows as it is turned).
func (q quad) grow(d float64) quad {
	unit := func(a, b vec) vec {
		e := b.sub(a)
		if l := e.norm(); l > 0 {
			return e.scale(1 / l)
		}
		return vec{}
	}
	u01, u32 := unit(q[0], q[1]), unit(q[3], q[2])
	n03, n12 := unit(q[0], q[3]), unit(q[1], q[2])
	return quad{
		q[0].sub(u01.scale(d)).sub(n03.scale(d)),
		q[1].add(u01.scale(d)).sub(n12.scale(d)),
		q[2].add(u32.scale(d)).add(n12.scale(d)),
		q[3].sub(u32.scale(d)).add(n03.scale(d)),
	}
}

// convexHull returns the convex hull of pts (Andrew's monotone chain),
// without repeated or collinear points, counter-clockwise in a y-up frame.
// It returns one or two points for degenerate input.
func convexHull(pts []vec) []vec {
	p := slices.Clone(pts)
	slices.SortFunc(p, func(a, b vec) int {
		if c := cmp.Compare(a.X, b.X); c != 0 {
			return c
		}
		return cmp.Compare(a.Y, b.Y)
	})
	p = slices.Compact(p)
	if len(p) < 3 {
		return p
	}
	hull := make([]vec, 0, 2*len(p))
	for _, pass := range [2]bool{true, false} {
		start := len(hull)
		for i := range p {
			v := p[i]
			if !pass {
				v = p[len(p)-1-i]
			}
			for len(hull) >= start+2 && hull[len(hull)-1].sub(hull[len(hull)-2]).cross(v.sub(hull[len(hull)-2])) <= 0 {
				hull = hull[:len(hull)-1]
			}
			hull = append(hull, v)
		}
		hull = hull[:len(hull)-1] // the last point starts the other chain
	}
	if len(hull) < 2 { // all points collinear and equal ends were dropped
		return []vec{p[0], p[len(p)-1]}
	}
	return hull
}

// rotRect is a rectangle of any orientation: corners in order around it,
// w along corners[0]->corners[1] and h along corners[1]->corners[2].
type rotRect struct {
	corners [4]vec
	w, h    float64
}

func (r rotRect) shortSide() float64 { return math.Min(r.w, r.h) }

// minAreaRect is the smallest-area rectangle holding pts (OpenCV's
// cv2.minAreaRect). One side of that rectangle lies on an edge of the convex
// hull (Freeman and Shapira), so trying every hull edge is exact.
func minAreaRect(pts []vec) rotRect {
	hull := convexHull(pts)
	switch len(hull) {
	case 0:
		return rotRect{}
	case 1:
		p := hull[0]
		return rotRect{corners: [4]vec{p, p, p, p}}
	}
	best := rotRect{w: math.Inf(1), h: math.Inf(1)}
	bestArea := math.Inf(1)
	for i := range hull {
		e := hull[(i+1)%len(hull)].sub(hull[i])
		l := e.norm()
		if l == 0 {
			continue
		}
		u := e.scale(1 / l)
		n := vec{-u.Y, u.X}
		minU, maxU := math.Inf(1), math.Inf(-1)
		minV, maxV := math.Inf(1), math.Inf(-1)
		for _, p := range hull {
			a, b := p.dot(u), p.dot(n)
			minU, maxU = math.Min(minU, a), math.Max(maxU, a)
			minV, maxV = math.Min(minV, b), math.Max(maxV, b)
		}
		w, h := maxU-minU, maxV-minV
		if area := w * h; area < bestArea-1e-9 {
			bestArea = area
			at := func(a, b float64) vec { return u.scale(a).add(n.scale(b)) }
			best = rotRect{
				corners: [4]vec{at(minU, minV), at(maxU, minV), at(maxU, maxV), at(minU, maxV)},
				w:       w, h: h,
			}
		}
	}
	return best
}

// miniBox orders a rectangle's corners as PaddleOCR's get_mini_boxes does:
// of the two leftmost corners the upper one is top-left and the lower one
// bottom-left; of the two rightmost the upper is top-right.
func miniBox(c [4]vec) quad {
	p := c
	slices.SortStableFunc(p[:], func(a, b vec) int { return cmp.Compare(a.X, b.X) })
	var q quad
	if p[1].Y > p[0].Y {
		q[0], q[3] = p[0], p[1]
	} else {
		q[0], q[3] = p[1], p[0]
	}
	if p[3].Y > p[2].Y {
		q[1], q[2] = p[2], p[3]
	} else {
		q[1], q[2] = p[3], p[2]
	}
	return q
}

// polygonArea is the unsigned area of a simple polygon (shoelace formula).
func polygonArea(poly []vec) float64 {
	var s float64
	for i := range poly {
		s += poly[i].cross(poly[(i+1)%len(poly)])
	}
	return math.Abs(s) / 2
}

func perimeter(poly []vec) float64 {
	var s float64
	for i := range poly {
		s += poly[i].dist(poly[(i+1)%len(poly)])
	}
	return s
}

// unclip grows a convex polygon outward by DB's distance
// area·ratio/perimeter with round corners, as PaddleOCR does with
// pyclipper's JT_ROUND offset. The shrunk text kernel DB predicts is
// about that much smaller than the text on every side. It returns points
// on the grown outline (arcs sampled every 10° at most); callers take their
// minAreaRect. A polygon with no area is returned unchanged.
func unclip(poly []vec, ratio float64) []vec {
	area, length := polygonArea(poly), perimeter(poly)
	if len(poly) < 3 || area == 0 || length == 0 {
		return slices.Clone(poly)
	}
	d := area * ratio / length
	hull := convexHull(poly)
	if len(hull) < 3 {
		return slices.Clone(poly)
	}
	// convexHull winds counter-clockwise in a y-up frame, so the outward
	// normal of edge a->b is its direction turned clockwise: (dy, -dx).
	outward := func(a, b vec) vec {
		e := b.sub(a)
		l := e.norm()
		return vec{e.Y / l, -e.X / l}
	}
	const step = math.Pi / 18
	var out []vec
	for i, v := range hull {
		prev := hull[(i+len(hull)-1)%len(hull)]
		next := hull[(i+1)%len(hull)]
		n0, n1 := outward(prev, v), outward(v, next)
		a0, a1 := math.Atan2(n0.Y, n0.X), math.Atan2(n1.Y, n1.X)
		// Around a counter-clockwise hull the outward normal turns
		// counter-clockwise too; sweep the corner arc from n0 up to n1.
		for a1 < a0 {
			a1 += 2 * math.Pi
		}
		out = append(out, v.add(n0.scale(d)))
		for a := a0 + step; a < a1; a += step {
			out = append(out, v.add(vec{math.Cos(a), math.Sin(a)}.scale(d)))
		}
		out = append(out, v.add(n1.scale(d)))
	}
	return out
}

// homography is a 3×3 projective transform, row-major, h[8] = 1.
type homography [9]float64

func (h homography) apply(p vec) vec {
	w := h[6]*p.X + h[7]*p.Y + h[8]
	return vec{(h[0]*p.X + h[1]*p.Y + h[2]) / w, (h[3]*p.X + h[4]*p.Y + h[5]) / w}
}

// perspective returns the homography taking src[i] to dst[i] (OpenCV's
// getPerspectiveTransform), or false when the points are degenerate.
func perspective(src, dst [4]vec) (homography, bool) {
	// Unknowns h0..h7 with h8 = 1; two equations per correspondence.
	var a [8][9]float64
	for i := range 4 {
		x, y, u, v := src[i].X, src[i].Y, dst[i].X, dst[i].Y
		a[2*i] = [9]float64{x, y, 1, 0, 0, 0, -u * x, -u * y, u}
		a[2*i+1] = [9]float64{0, 0, 0, x, y, 1, -v * x, -v * y, v}
	}
	for col := range 8 { // Gaussian elimination with partial pivoting
		piv := col
		for r := col + 1; r < 8; r++ {
			if math.Abs(a[r][col]) > math.Abs(a[piv][col]) {
				piv = r
			}
		}
		if math.Abs(a[piv][col]) < 1e-12 {
			return homography{}, false
		}
		a[col], a[piv] = a[piv], a[col]
		for r := range 8 {
			if r == col {
				continue
			}
			f := a[r][col] / a[col][col]
			for c := col; c < 9; c++ {
				a[r][c] -= f * a[col][c]
			}
		}
	}
	var h homography
	for i := range 8 {
		h[i] = a[i][8] / a[i][i]
	}
	h[8] = 1
	for _, x := range h {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return homography{}, false
		}
	}
	return h, true
}

// cropFrame is the rectangle a quad is warped to: (0,0), (w,0), (w,h), (0,h).
func cropFrame(w, h float64) [4]vec { return [4]vec{{0, 0}, {w, 0}, {w, h}, {0, h}} }

// readingOrder sorts items top to bottom and, within a line, left to
// right, by the top-left corner of their boxes. Boxes form one line while
// their top-left corners differ vertically by less than sameLine times the
// smaller of the two box heights; this scales PaddleOCR's fixed 10-pixel
// rule with the text size.
func readingOrder[T any](items []T, box func(T) quad, sameLine float64) {
	slices.SortStableFunc(items, func(a, b T) int {
		qa, qb := box(a), box(b)
		if c := cmp.Compare(qa[0].Y, qb[0].Y); c != 0 {
			return c
		}
		return cmp.Compare(qa[0].X, qb[0].X)
	})
	for start := 0; start < len(items); {
		anchor := box(items[start])
		end := start + 1
		for end < len(items) {
			q := box(items[end])
			if math.Abs(q[0].Y-anchor[0].Y) >= sameLine*math.Min(anchor.height(), q.height()) {
				break
			}
			end++
		}
		slices.SortStableFunc(items[start:end], func(a, b T) int { return cmp.Compare(box(a)[0].X, box(b)[0].X) })
		start = end
	}
}
