package dewarp

import "math"

// Point is a position in pixels, x to the right and y down, with the
// origin at the image's top-left corner: pixel (i, j) covers
// [i, i+1) x [j, j+1) and its centre is (i+0.5, j+0.5).
type Point [2]float64

func (p Point) sub(q Point) Point         { return Point{p[0] - q[0], p[1] - q[1]} }
func (p Point) add(q Point) Point         { return Point{p[0] + q[0], p[1] + q[1]} }
func (p Point) scale(k float64) Point     { return Point{p[0] * k, p[1] * k} }
func (p Point) cross(q Point) float64     { return p[0]*q[1] - p[1]*q[0] }
func (p Point) len() float64              { return math.Hypot(p[0], p[1]) }
func (p Point) dist(q Point) float64      { return p.sub(q).len() }
func (p Point) finite() bool              { return isFinite(p[0]) && isFinite(p[1]) }
func isFinite(x float64) bool             { return !math.IsNaN(x) && !math.IsInf(x, 0) }
func between(p, q Point, t float64) Point { return p.add(q.sub(p).scale(t)) }

// Quad is a quadrilateral given by its corners in the order top-left,
// top-right, bottom-right, bottom-left (clockwise on screen).
type Quad [4]Point

// Area is the quad's area (shoelace formula), positive when its corners
// run clockwise on screen.
func (q Quad) Area() float64 {
	var a float64
	for i := range q {
		a += q[i].cross(q[(i+1)%4])
	}
	return a / 2
}

// Convex reports whether the corners run clockwise on screen around a
// convex quadrilateral whose every corner angle is within [minDeg,
// 180-minDeg] degrees.
func (q Quad) Convex(minDeg float64) bool {
	lo := math.Sin(minDeg * math.Pi / 180)
	for i := range q {
		a, b, c := q[(i+3)%4], q[i], q[(i+1)%4]
		u, v := a.sub(b), c.sub(b)
		lu, lv := u.len(), v.len()
		if !b.finite() || lu == 0 || lv == 0 {
			return false
		}
		// With y down, clockwise on screen means the turn from the
		// incoming to the outgoing side is positive.
		if b.sub(a).cross(c.sub(b))/(lu*lv) < lo {
			return false
		}
	}
	return true
}

// Size is the size of the rectangle a quad is flattened to: the longer of
// each pair of opposite sides, so no part of the page loses resolution.
func (q Quad) Size() (w, h float64) {
	return math.Max(q[0].dist(q[1]), q[3].dist(q[2])), math.Max(q[0].dist(q[3]), q[1].dist(q[2]))
}

// Homography is a plane projective transform as a 3x3 matrix in row-major
// order: it maps (x, y) to ((h0 x + h1 y + h2) / w, (h3 x + h4 y + h5) / w)
// with w = h6 x + h7 y + h8.
type Homography [9]float64

// Identity is the transform that changes nothing.
var Identity = Homography{1, 0, 0, 0, 1, 0, 0, 0, 1}

// Map applies h to p. A point that h sends to infinity comes back with
// non-finite coordinates.
func (h Homography) Map(p Point) Point {
	w := h[6]*p[0] + h[7]*p[1] + h[8]
	return Point{(h[0]*p[0] + h[1]*p[1] + h[2]) / w, (h[3]*p[0] + h[4]*p[1] + h[5]) / w}
}

// MapQuad applies h to each corner of q.
func (h Homography) MapQuad(q Quad) Quad {
	for i := range q {
		q[i] = h.Map(q[i])
	}
	return q
}

// Then returns the transform that applies h first and g second.
func (h Homography) Then(g Homography) Homography {
	var r Homography
	for i := range 3 {
		for j := range 3 {
			r[3*i+j] = g[3*i]*h[j] + g[3*i+1]*h[3+j] + g[3*i+2]*h[6+j]
		}
	}
	return r.normalized()
}

// Inverse returns the transform that undoes h, or false when h is
// singular (it flattens the plane onto a line).
func (h Homography) Inverse() (Homography, bool) {
	// The adjugate over the determinant.
	inv := Homography{
		h[4]*h[8] - h[5]*h[7], h[2]*h[7] - h[1]*h[8], h[1]*h[5] - h[2]*h[4],
		h[5]*h[6] - h[3]*h[8], h[0]*h[8] - h[2]*h[6], h[2]*h[3] - h[0]*h[5],
		h[3]*h[7] - h[4]*h[6], h[1]*h[6] - h[0]*h[7], h[0]*h[4] - h[1]*h[3],
	}
	det := h[0]*inv[0] + h[1]*inv[3] + h[2]*inv[6]
	// Hadamard's bound: |det| is at most the product of the rows'
	// lengths; far below it, h is singular. The rows are measured with
	// the coordinates rescaled (h conjugated by diag(k, k, 1), which
	// keeps det) so that pixel offsets of thousands beside linear terms
	// near one and perspective terms a million times smaller do not make
	// every row look alike: a map between quads far from the origin is
	// as invertible as the same map near it.
	k := math.Max(1, math.Max(math.Abs(h[2]), math.Abs(h[5])))
	bound := math.Hypot(math.Hypot(h[0], h[1]), h[2]/k) * math.Hypot(math.Hypot(h[3], h[4]), h[5]/k) * math.Hypot(math.Hypot(h[6]*k, h[7]*k), h[8])
	if !isFinite(det) || math.Abs(det) <= 1e-12*bound {
		return Homography{}, false
	}
	for i := range inv {
		inv[i] /= det
	}
	return inv.normalized(), true
}

// normalized scales h so that h8 is 1 when it can; a homography is only
// defined up to scale, and this keeps the JSON form readable.
func (h Homography) normalized() Homography {
	if s := h[8]; s != 0 && isFinite(s) {
		for i := range h {
			h[i] /= s
		}
	}
	return h
}

// fromUnitSquare returns the homography that maps the unit square's
// corners (0,0), (1,0), (1,1), (0,1) to q's corners in order (Heckbert,
// "Fundamentals of Texture Mapping", 1989), or false when q is degenerate.
func fromUnitSquare(q Quad) (Homography, bool) {
	x0, y0, x1, y1 := q[0][0], q[0][1], q[1][0], q[1][1]
	x2, y2, x3, y3 := q[2][0], q[2][1], q[3][0], q[3][1]
	sx, sy := x0-x1+x2-x3, y0-y1+y2-y3
	dx1, dx2, dy1, dy2 := x1-x2, x3-x2, y1-y2, y3-y2
	den := dx1*dy2 - dx2*dy1
	if den == 0 || !isFinite(den) {
		return Homography{}, false
	}
	g := (sx*dy2 - dx2*sy) / den
	k := (dx1*sy - sx*dy1) / den
	h := Homography{
		x1 - x0 + g*x1, x3 - x0 + k*x3, x0,
		y1 - y0 + g*y1, y3 - y0 + k*y3, y0,
		g, k, 1,
	}
	if _, ok := h.Inverse(); !ok {
		return Homography{}, false
	}
	return h, true
}

// QuadToQuad returns the homography that maps src's corners to dst's, in
// order, or false when either quad is degenerate (three corners on a line).
func QuadToQuad(src, dst Quad) (Homography, bool) {
	s, ok := fromUnitSquare(src)
	if !ok {
		return Homography{}, false
	}
	d, ok := fromUnitSquare(dst)
	if !ok {
		return Homography{}, false
	}
	sInv, _ := s.Inverse()
	return sInv.Then(d), true
}

// Rect is the quad of the rectangle [0, w] x [0, h].
func Rect(w, h float64) Quad { return Quad{{0, 0}, {w, 0}, {w, h}, {0, h}} }
