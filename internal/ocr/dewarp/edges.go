package dewarp

import (
	"image"
	"math"
	"slices"
)

// Side fitting. Each side of a rough quad is sampled at sideSamples
// points away from the corners (where shadows and rounding bend the
// outline); at each, the grey profile across the side is read and the
// strongest dark-to-bright step going inwards is taken as the sheet's
// edge. A robust straight-line fit through those points is the side.
const (
	sideSamples = 48
	// minStep is the smallest rise in grey level, over stepSpan pixels
	// across the side, that counts as an edge.
	minStep  = 14.0
	stepSpan = 2 // the step is profile(t+stepSpan) - profile(t-stepSpan)
)

// line is the set of points p + t*d, d a unit vector.
type line struct{ p, d Point }

// intersect returns the crossing of two lines, or false when they are
// (nearly) parallel.
func (l line) intersect(m line) (Point, bool) {
	den := l.d.cross(m.d)
	if math.Abs(den) < 1e-6 {
		return Point{}, false
	}
	t := m.p.sub(l.p).cross(m.d) / den
	return l.p.add(l.d.scale(t)), true
}

// refine fits each side of q (clockwise on screen, in g's coordinates
// relative to its Bounds().Min) to the edge within radius pixels of it,
// and returns the quad of the fitted sides' intersections and the
// smallest fraction of a side's samples that lay on its fitted line.
func refine(g *image.Gray, q Quad, radius float64) (Quad, float64, bool) {
	var sides [4]line
	support := 1.0
	for i := range q {
		l, s, ok := fitSide(g, q[i], q[(i+1)%4], radius)
		if !ok {
			return q, 0, false
		}
		sides[i], support = l, math.Min(support, s)
	}
	var out Quad
	for i := range out {
		// Corner i joins the side that ends there and the one that
		// starts there.
		p, ok := sides[(i+3)%4].intersect(sides[i])
		if !ok || p.dist(q[i]) > 2*radius+2 {
			return q, 0, false
		}
		out[i] = p
	}
	return out, support, true
}

// fitSide finds the sheet's edge along the side from a to b.
func fitSide(g *image.Gray, a, b Point, radius float64) (line, float64, bool) {
	length := a.dist(b)
	if length < 8 {
		return line{}, 0, false
	}
	d := b.sub(a).scale(1 / length)
	n := Point{-d[1], d[0]} // into the sheet for a clockwise quad
	steps := int(math.Ceil(radius))
	profile := make([]float64, 2*(steps+stepSpan)+1)
	var pts []Point
	for i := range sideSamples {
		t := 0.1 + 0.8*(float64(i)+0.5)/sideSamples
		c := between(a, b, t)
		for j := range profile {
			off := float64(j - steps - stepSpan)
			profile[j] = across(g, c.add(n.scale(off)), d)
		}
		if off, ok := strongestStep(profile, stepSpan); ok {
			pts = append(pts, c.add(n.scale(off-float64(steps+stepSpan))))
		}
	}
	l, inliers, ok := robustLine(pts)
	if !ok {
		return line{}, 0, false
	}
	return l, float64(inliers) / sideSamples, true
}

// across is the mean grey of three points along direction d around p,
// which smooths the profile along the edge (noise, paper texture).
func across(g *image.Gray, p, d Point) float64 {
	b := g.Bounds()
	var sum float64
	for _, u := range [3]float64{-2, 0, 2} {
		// Clamped into the image, so its border is no edge.
		q := p.add(d.scale(u))
		x := math.Max(0, math.Min(float64(b.Dx()-1), q[0]-0.5))
		y := math.Max(0, math.Min(float64(b.Dy()-1), q[1]-0.5))
		sum += float64(bilinear(g.Pix[g.PixOffset(b.Min.X, b.Min.Y):], g.Stride, 1, b.Dx(), b.Dy(), x, y, 0))
	}
	return sum / 3
}

// strongestStep returns the position in profile, with sub-sample
// precision, of the largest rise profile[j+span] - profile[j-span], or
// false when no rise reaches minStep.
func strongestStep(profile []float64, span int) (float64, bool) {
	rise := func(j int) float64 { return profile[j+span] - profile[j-span] }
	best, bestRise := -1, minStep
	for j := span; j < len(profile)-span; j++ {
		if r := rise(j); r >= bestRise {
			best, bestRise = j, r
		}
	}
	if best < 0 {
		return 0, false
	}
	pos := float64(best)
	if best > span && best < len(profile)-span-1 {
		// The vertex of the parabola through the peak and its neighbours.
		l, c, r := rise(best-1), bestRise, rise(best+1)
		if den := l - 2*c + r; den < 0 {
			pos += 0.5 * (l - r) / den
		}
	}
	return pos, true
}

// robustLine fits a line to pts by total least squares, three times,
// each time dropping the points further from the last fit than 2.5
// robust standard deviations (at least one pixel). It returns the line
// and how many points it kept.
func robustLine(pts []Point) (line, int, bool) {
	keep := pts
	var l line
	for range 3 {
		if len(keep) < 2 {
			return line{}, 0, false
		}
		var ok bool
		if l, ok = leastSquaresLine(keep); !ok {
			return line{}, 0, false
		}
		dist := make([]float64, len(pts))
		for i, p := range pts {
			dist[i] = math.Abs(p.sub(l.p).cross(l.d))
		}
		sorted := slices.Clone(dist)
		slices.Sort(sorted)
		limit := math.Max(1, 2.5*1.4826*sorted[len(sorted)/2])
		keep = keep[:0:0]
		for i, p := range pts {
			if dist[i] <= limit {
				keep = append(keep, p)
			}
		}
	}
	return l, len(keep), len(keep) >= 2
}

// leastSquaresLine is the line through the centroid of pts along their
// principal direction.
func leastSquaresLine(pts []Point) (line, bool) {
	var c Point
	for _, p := range pts {
		c = c.add(p)
	}
	c = c.scale(1 / float64(len(pts)))
	var sxx, sxy, syy float64
	for _, p := range pts {
		v := p.sub(c)
		sxx += v[0] * v[0]
		sxy += v[0] * v[1]
		syy += v[1] * v[1]
	}
	theta := 0.5 * math.Atan2(2*sxy, sxx-syy)
	d := Point{math.Cos(theta), math.Sin(theta)}
	if !c.finite() || !d.finite() || sxx+syy == 0 {
		return line{}, false
	}
	return line{c, d}, true
}
