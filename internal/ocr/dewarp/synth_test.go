package dewarp

import (
	"image"
	"math"
	"math/rand/v2"
)

// Synthetic pages for the tests: a sheet with rows of dark "words", and a
// phone photo of it, made here without the code under test (the
// perspective is inverted by solving the eight-unknown system directly, the
// tilt is a plain rotation).

// textPage draws a w x h sheet of grey paper with lines of words: dark
// blocks lineHeight tall, lineHeight*1.8 apart, between margins.
func textPage(w, h, lineHeight int, paper, ink uint8, rng *rand.Rand) *image.Gray {
	g := image.NewGray(image.Rect(0, 0, w, h))
	for i := range g.Pix {
		g.Pix[i] = paper
	}
	margin := w / 10
	for y := h / 10; y+lineHeight < h-h/10; y += lineHeight * 9 / 5 {
		x := margin
		end := w - margin - rng.IntN(w/4)
		for x < end {
			word := lineHeight/2 + rng.IntN(3*lineHeight)
			for yy := y; yy < y+lineHeight; yy++ {
				for xx := x; xx < min(x+word, end); xx++ {
					// Strokes, not solid blocks: every third column is paper.
					if (xx-x)%3 != 2 {
						g.Pix[yy*g.Stride+xx] = ink
					}
				}
			}
			x += word + lineHeight/2
		}
	}
	return g
}

// photo places page on a w x h textured background of mean grey bg, with
// its corners at corners, under a lighting gradient of strength light
// (0: even) and noise of the given standard deviation.
func photo(page *image.Gray, w, h int, corners Quad, bg, light, noise float64, rng *rand.Rand) *image.Gray {
	toPage := solveHomography(corners, Rect(float64(page.Rect.Dx()), float64(page.Rect.Dy())))
	out := image.NewGray(image.Rect(0, 0, w, h))
	pw, ph := page.Rect.Dx(), page.Rect.Dy()
	for y := range h {
		for x := range w {
			// Four samples per pixel smooth the page's outline.
			var v float64
			for _, d := range [4][2]float64{{0.25, 0.25}, {0.75, 0.25}, {0.25, 0.75}, {0.75, 0.75}} {
				px, py := applyH(toPage, float64(x)+d[0], float64(y)+d[1])
				if px >= 0 && py >= 0 && px < float64(pw) && py < float64(ph) {
					v += float64(page.Pix[int(py)*page.Stride+int(px)])
				} else {
					v += bg + 25*math.Sin(float64(x)/37)*math.Cos(float64(y)/23)
				}
			}
			v /= 4
			v *= 1 - light*float64(x+y)/float64(w+h)
			v += rng.NormFloat64() * noise
			out.Pix[y*out.Stride+x] = uint8(math.Max(0, math.Min(255, v)))
		}
	}
	return out
}

// solveHomography returns the 3x3 matrix (h8 = 1) mapping src[i] to dst[i]
// by Gauss-Jordan elimination on the eight-equation system.
func solveHomography(src, dst Quad) [9]float64 {
	var a [8][9]float64
	for i := range 4 {
		x, y, u, v := src[i][0], src[i][1], dst[i][0], dst[i][1]
		a[2*i] = [9]float64{x, y, 1, 0, 0, 0, -u * x, -u * y, u}
		a[2*i+1] = [9]float64{0, 0, 0, x, y, 1, -v * x, -v * y, v}
	}
	for c := range 8 {
		p := c
		for r := c + 1; r < 8; r++ {
			if math.Abs(a[r][c]) > math.Abs(a[p][c]) {
				p = r
			}
		}
		a[c], a[p] = a[p], a[c]
		for r := range 8 {
			if r != c {
				f := a[r][c] / a[c][c]
				for k := c; k < 9; k++ {
					a[r][k] -= f * a[c][k]
				}
			}
		}
	}
	var h [9]float64
	for i := range 8 {
		h[i] = a[i][8] / a[i][i]
	}
	h[8] = 1
	return h
}

func applyH(h [9]float64, x, y float64) (float64, float64) {
	w := h[6]*x + h[7]*y + h[8]
	return (h[0]*x + h[1]*y + h[2]) / w, (h[3]*x + h[4]*y + h[5]) / w
}

// rotated turns g clockwise by deg about its centre onto a canvas of
// paper grey that holds all of it (nearest sample).
func rotated(g *image.Gray, deg float64, paper uint8) *image.Gray {
	sin, cos := math.Sincos(deg * math.Pi / 180)
	w, h := float64(g.Rect.Dx()), float64(g.Rect.Dy())
	cw := int(math.Ceil(w*math.Abs(cos) + h*math.Abs(sin)))
	ch := int(math.Ceil(w*math.Abs(sin) + h*math.Abs(cos)))
	out := image.NewGray(image.Rect(0, 0, cw, ch))
	for y := range ch {
		for x := range cw {
			// The inverse turn: counter-clockwise about the centres.
			dx, dy := float64(x)+0.5-float64(cw)/2, float64(y)+0.5-float64(ch)/2
			sx, sy := cos*dx+sin*dy+w/2, -sin*dx+cos*dy+h/2
			v := paper
			if sx >= 0 && sy >= 0 && sx < w && sy < h {
				v = g.Pix[int(sy)*g.Stride+int(sx)]
			}
			out.Pix[y*out.Stride+x] = v
		}
	}
	return out
}

// jitter moves each corner of the rectangle inset in a w x h frame by up
// to frac of the frame in a random direction.
func jitter(w, h int, inset, frac float64, rng *rand.Rand) Quad {
	fw, fh := float64(w), float64(h)
	q := Quad{{inset * fw, inset * fh}, {(1 - inset) * fw, inset * fh}, {(1 - inset) * fw, (1 - inset) * fh}, {inset * fw, (1 - inset) * fh}}
	for i := range q {
		a := rng.Float64() * 2 * math.Pi
		r := frac * rng.Float64() * math.Min(fw, fh)
		q[i] = q[i].add(Point{r * math.Cos(a), r * math.Sin(a)})
	}
	return q
}
