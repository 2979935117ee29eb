package dewarp

import "image"

// Uneven light. A photographed sheet is lit unevenly (a gradient across
// the page, vignetting, the shadow of the phone), and Tesseract binarises
// a page with one global threshold: text in the dark corner and paper in
// the bright one end up on the same side of it. evenLight divides the
// page by its paper's brightness, estimated at a coarse scale as the
// brightest block around each point (text is thin, so the brightest block
// within a few characters is paper), which makes the paper uniformly
// white and leaves the ink's contrast to the paper as it was.
const (
	// lightSide is the longer side of the reduced copy the paper's
	// brightness is estimated on; lightRadius is the half-width, in its
	// pixels, of the block whose brightest value is taken.
	lightSide   = 200
	lightRadius = 3
	// maxGain bounds the brightening of any point, so a large dark figure
	// on the sheet is not blown up into noise.
	maxGain = 3.0
)

// evenLight divides g in place by the brightness of its paper.
func evenLight(g *image.Gray) {
	small, k := shrink(g, lightSide)
	paper := blur3(maxFilter(small, lightRadius))
	w, h := g.Rect.Dx(), g.Rect.Dy()
	sw, sh := paper.Rect.Dx(), paper.Rect.Dy()
	// The paper of a row is interpolated from the two reduced rows around
	// it, then along the row.
	paperRow := make([]float32, sw)
	for y := range h {
		sy := min(max((float64(y)+0.5)/float64(k)-0.5, 0), float64(sh-1))
		y0 := int(sy)
		y1, fy := min(y0+1, sh-1), float32(sy-float64(y0))
		for x := range paperRow {
			a, b := float32(paper.Pix[y0*paper.Stride+x]), float32(paper.Pix[y1*paper.Stride+x])
			paperRow[x] = a + fy*(b-a)
		}
		row := g.Pix[y*g.Stride:][:w]
		for x, v := range row {
			sx := min(max((float32(x)+0.5)/float32(k)-0.5, 0), float32(sw-1))
			x0 := int(sx)
			x1, fx := min(x0+1, sw-1), sx-float32(x0)
			p := paperRow[x0] + fx*(paperRow[x1]-paperRow[x0])
			row[x] = uint8(min(255, float32(v)*min(maxGain, 255/max(p, 1))+0.5))
		}
	}
}

// maxFilter returns the largest value of g within r pixels (a square
// window, clamped at the edges), rows first and then columns; minFilter the
// smallest.
func maxFilter(g *image.Gray, r int) *image.Gray {
	return sweep(sweep(g, r, true, true), r, false, true)
}
func minFilter(g *image.Gray, r int) *image.Gray {
	return sweep(sweep(g, r, true, false), r, false, false)
}

func sweep(g *image.Gray, r int, horizontal, takeMax bool) *image.Gray {
	w, h := g.Rect.Dx(), g.Rect.Dy()
	out := image.NewGray(g.Rect)
	n, lines, step, stride := w, h, 1, g.Stride
	if !horizontal {
		n, lines, step, stride = h, w, g.Stride, 1
	}
	for l := range lines {
		in := g.Pix[l*stride:]
		dst := out.Pix[l*stride:]
		for i := range n {
			m := in[i*step]
			for j := max(0, i-r); j <= min(n-1, i+r); j++ {
				if v := in[j*step]; (v > m) == takeMax && v != m {
					m = v
				}
			}
			dst[i*step] = m
		}
	}
	return out
}

// blur3 is a 3x3 mean, which rounds off the max filter's steps.
func blur3(g *image.Gray) *image.Gray {
	w, h := g.Rect.Dx(), g.Rect.Dy()
	out := image.NewGray(g.Rect)
	for y := range h {
		for x := range w {
			sum, n := 0, 0
			for dy := -1; dy <= 1; dy++ {
				for dx := -1; dx <= 1; dx++ {
					xx, yy := x+dx, y+dy
					if xx >= 0 && yy >= 0 && xx < w && yy < h {
						sum += int(g.Pix[yy*g.Stride+xx])
						n++
					}
				}
			}
			out.Pix[y*out.Stride+x] = uint8((sum + n/2) / n)
		}
	}
	return out
}
