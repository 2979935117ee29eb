package dewarp

import "image"

// score measures, on the reduced copy (k times smaller than the image q
// is in), the grey inside q against a band around it: Contrast, Surround
// and Paper of the returned Page.
func score(small *image.Gray, k int, q Quad) Page {
	f := 1 / float64(k)
	q = q.scaled(f)
	// The band is the quad grown by a tenth about its centre, minus the
	// quad; the inside sample skips a margin of the same size, where a
	// shadow or a rounded corner would blur the paper.
	var c Point
	for _, p := range q {
		c = c.add(p.scale(0.25))
	}
	outer, inner := q, q
	for i, p := range q {
		outer[i] = c.add(p.sub(c).scale(1.1))
		inner[i] = c.add(p.sub(c).scale(0.9))
	}
	var in, ring [256]int
	ringCount := 0
	box := outer.bounds()
	for y := max(0, box.Min.Y); y < min(small.Rect.Dy(), box.Max.Y); y++ {
		for x := max(0, box.Min.X); x < min(small.Rect.Dx(), box.Max.X); x++ {
			p := Point{float64(x) + 0.5, float64(y) + 0.5}
			v := small.Pix[y*small.Stride+x]
			switch {
			case inner.contains(p):
				in[v]++
			case !q.contains(p) && outer.contains(p):
				ring[v]++
				ringCount++
			}
		}
	}
	paper := percentile(&in, 0.5)
	page := Page{Paper: paper}
	if ringArea := outer.Area() - q.Area(); ringArea > 0 {
		page.Surround = clamp01(float64(ringCount) / ringArea)
	}
	if ringCount > 0 {
		page.Contrast = float64(paper) - float64(percentile(&ring, 0.5))
	}
	return page
}

// contains reports whether p is inside the convex quad q (clockwise on
// screen), edges included.
func (q Quad) contains(p Point) bool {
	for i := range q {
		if q[(i+1)%4].sub(q[i]).cross(p.sub(q[i])) < 0 {
			return false
		}
	}
	return true
}

// bounds is the smallest integer rectangle holding q.
func (q Quad) bounds() image.Rectangle {
	r := image.Rectangle{Min: image.Pt(int(q[0][0]), int(q[0][1])), Max: image.Pt(int(q[0][0]), int(q[0][1]))}
	for _, p := range q {
		r = r.Union(image.Rect(int(p[0])-1, int(p[1])-1, int(p[0])+2, int(p[1])+2))
	}
	return r
}
