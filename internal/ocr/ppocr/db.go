package ppocr

import (
	"math"
)

// detBox is a detected text box in input-image coordinates.
type detBox struct {
	q     quad
	score float64
}

// dbBoxes turns a DB probability map (h×w, row-major, values in [0,1]) into
// text boxes scaled to a dstW×dstH image, following PaddleOCR's
// DBPostProcess in "quad" mode: binarise at Thresh, take connected text
// regions, fit a minimum-area rectangle to each, drop those whose mean
// probability is under BoxThresh, grow them by UnclipRatio (DB predicts a
// shrunk kernel), fit again and scale.
//
// Regions are 8-connected components (what cv2.findContours traces); their
// holes are not separate candidates, unlike RETR_LIST, which never helps a
// text box. Every returned corner lies in [0,dstW-1]×[0,dstH-1].
func dbBoxes(pred []float32, w, h, dstW, dstH int, p DetParams) []detBox {
	if w <= 0 || h <= 0 || len(pred) < w*h || dstW <= 0 || dstH <= 0 {
		return nil
	}
	thresh := float32(p.Thresh)
	mask := make([]bool, w*h)
	for i := range mask {
		mask[i] = pred[i] > thresh
	}
	var out []detBox
	for _, pts := range regions(mask, w, h, p.MaxCandidates) {
		r := minAreaRect(pts)
		if r.shortSide() < p.MinSize {
			continue
		}
		box := miniBox(r.corners)
		score := boxScore(pred, w, h, box)
		if score < p.BoxThresh {
			continue
		}
		grown := minAreaRect(unclip(box[:], p.UnclipRatio))
		if grown.shortSide() < p.MinSize+2 {
			continue
		}
		box = miniBox(grown.corners)
		sx, sy := float64(dstW)/float64(w), float64(dstH)/float64(h)
		for i, c := range box {
			// PaddleOCR rounds to whole pixels, then clips to the image.
			box[i] = vec{
				clampf(math.Round(c.X*sx), 0, float64(dstW-1)),
				clampf(math.Round(c.Y*sy), 0, float64(dstH-1)),
			}
		}
		if !finite(box[0]) || int(box[0].dist(box[1])) <= 3 || int(box[0].dist(box[3])) <= 3 {
			continue
		}
		out = append(out, detBox{q: box, score: score})
	}
	return out
}

// regions labels the 8-connected components of mask in raster order and
// returns, for at most limit of them, the points that span each one's
// convex hull: the first and last pixel of every row it covers.
func regions(mask []bool, w, h, limit int) [][]vec {
	label := make([]bool, w*h)
	var out [][]vec
	var stack, comp []int
	for start := range mask {
		if !mask[start] || label[start] {
			continue
		}
		if limit > 0 && len(out) >= limit {
			break
		}
		label[start] = true
		stack = append(stack[:0], start)
		comp = comp[:0]
		minY, maxY := start/w, start/w
		for len(stack) > 0 {
			i := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			comp = append(comp, i)
			x, y := i%w, i/w
			minY, maxY = min(minY, y), max(maxY, y)
			for ny := max(y-1, 0); ny <= min(y+1, h-1); ny++ {
				for nx := max(x-1, 0); nx <= min(x+1, w-1); nx++ {
					if j := ny*w + nx; mask[j] && !label[j] {
						label[j] = true
						stack = append(stack, j)
					}
				}
			}
		}
		lo := make([]int, maxY-minY+1)
		hi := make([]int, maxY-minY+1)
		for r := range lo {
			lo[r], hi[r] = w, -1
		}
		for _, i := range comp {
			x, r := i%w, i/w-minY
			lo[r], hi[r] = min(lo[r], x), max(hi[r], x)
		}
		pts := make([]vec, 0, 2*len(lo))
		for r := range lo {
			pts = append(pts, vec{float64(lo[r]), float64(minY + r)}, vec{float64(hi[r]), float64(minY + r)})
		}
		out = append(out, pts)
	}
	return out
}

// boxScore is the mean probability inside a convex box, PaddleOCR's
// box_score_fast: the box is clipped to the map and filled row by row with
// its vertices truncated to whole pixels, as cv2.fillPoly would.
func boxScore(pred []float32, w, h int, box quad) float64 {
	minX, maxX := math.Inf(1), math.Inf(-1)
	minY, maxY := math.Inf(1), math.Inf(-1)
	for _, c := range box {
		minX, maxX = math.Min(minX, c.X), math.Max(maxX, c.X)
		minY, maxY = math.Min(minY, c.Y), math.Max(maxY, c.Y)
	}
	if !(minX <= maxX && minY <= maxY) { // NaN
		return 0
	}
	x0 := int(clampf(math.Floor(minX), 0, float64(w-1)))
	x1 := int(clampf(math.Ceil(maxX), 0, float64(w-1)))
	y0 := int(clampf(math.Floor(minY), 0, float64(h-1)))
	y1 := int(clampf(math.Ceil(maxY), 0, float64(h-1)))
	var poly [4]vec
	for i, c := range box {
		poly[i] = vec{math.Trunc(c.X - float64(x0)), math.Trunc(c.Y - float64(y0))}
	}
	var sum float64
	var n int
	for y := 0; y <= y1-y0; y++ {
		lo, hi, ok := rowSpan(poly, float64(y))
		if !ok {
			continue
		}
		a := max(int(math.Ceil(lo)), 0)
		b := min(int(math.Floor(hi)), x1-x0)
		for x := a; x <= b; x++ {
			sum += float64(pred[(y0+y)*w+x0+x])
			n++
		}
	}
	if n == 0 {
		return 0
	}
	return sum / float64(n)
}

// rowSpan returns the horizontal extent of a convex polygon on the line at
// height y, edges included.
func rowSpan(poly [4]vec, y float64) (lo, hi float64, ok bool) {
	lo, hi = math.Inf(1), math.Inf(-1)
	for i := range poly {
		a, b := poly[i], poly[(i+1)%4]
		if (y < a.Y && y < b.Y) || (y > a.Y && y > b.Y) {
			continue
		}
		if a.Y == b.Y {
			lo, hi = math.Min(lo, math.Min(a.X, b.X)), math.Max(hi, math.Max(a.X, b.X))
			continue
		}
		x := a.X + (y-a.Y)*(b.X-a.X)/(b.Y-a.Y)
		lo, hi = math.Min(lo, x), math.Max(hi, x)
	}
	return lo, hi, lo <= hi
}
