package ocr

import "image"

// Automatic mode selection. A page-layout pass on a lone text line costs
// accuracy (Tesseract looks for columns and blocks that are not there), so
// mode=auto recognises an image in line mode when a horizontal projection
// profile shows exactly one text band. The test is deliberately
// conservative: anything that is not clearly one line goes to page mode,
// which reads a line correctly too, only slightly less well.

// otsu returns the threshold that best separates the histogram into two
// classes (Otsu 1979).
func otsu(hist *[256]int, total int) int {
	var sum float64
	for i, n := range hist {
		sum += float64(i * n)
	}
	var sumB, wB float64
	best, bestVar := 127, -1.0
	for t := 0; t < 256; t++ {
		wB += float64(hist[t])
		if wB == 0 {
			continue
		}
		wF := float64(total) - wB
		if wF == 0 {
			break
		}
		sumB += float64(t * hist[t])
		mB, mF := sumB/wB, (sum-sumB)/wF
		if v := wB * wF * (mB - mF) * (mB - mF); v > bestVar {
			best, bestVar = t, v
		}
	}
	return best
}

// band is a run of rows [top, bottom) holding ink.
type band struct{ top, bottom int }

func (b band) height() int { return b.bottom - b.top }

// inkBands splits the image into horizontal runs of rows that hold ink.
// Ink is the minority class after Otsu thresholding, so light text on a
// dark background works as well as dark on light.
func inkBands(g *image.Gray) []band {
	r := g.Bounds()
	w, h := r.Dx(), r.Dy()
	var hist [256]int
	for y := 0; y < h; y++ {
		for _, v := range g.Pix[g.PixOffset(r.Min.X, r.Min.Y+y):][:w] {
			hist[v]++
		}
	}
	t := otsu(&hist, w*h)
	dark := 0
	for v := 0; v <= t; v++ {
		dark += hist[v]
	}
	inkIsDark := dark*2 <= w*h
	isInk := func(v uint8) bool {
		if inkIsDark {
			return int(v) <= t
		}
		return int(v) > t
	}
	// A row holds ink when more than a sliver of it is ink; this ignores
	// scanner dust and a one-pixel border.
	minInk := 1 + w/1000
	var bands []band
	cur := band{top: -1}
	for y := 0; y <= h; y++ {
		n := 0
		if y < h {
			for _, v := range g.Pix[g.PixOffset(r.Min.X, r.Min.Y+y):][:w] {
				if isInk(v) {
					n++
				}
			}
		}
		switch {
		case n >= minInk && cur.top < 0:
			cur.top = y
		case n >= minInk:
		case cur.top >= 0:
			cur.bottom = y
			bands = append(bands, cur)
			cur.top = -1
		}
	}
	return bands
}

// maxLineHeight caps what auto mode takes for a line: a single band taller
// than this is a poster, a photo with a dark surround or a figure, and page
// mode is the safe reading for all of those.
const maxLineHeight = 300

// isSingleLine reports whether g looks like one line of text: one band of
// significant height (dots, underlines and specks under 35% of the tallest
// band do not count, and add up to less than half of it), no taller than
// maxLineHeight.
func isSingleLine(g *image.Gray) bool {
	bands := inkBands(g)
	if len(bands) == 0 {
		return false
	}
	tallest := bands[0]
	for _, b := range bands[1:] {
		if b.height() > tallest.height() {
			tallest = b
		}
	}
	marks := 0
	for _, b := range bands {
		if b == tallest {
			continue
		}
		if b.height()*100 >= tallest.height()*35 {
			return false // a second line
		}
		marks += b.height()
	}
	return marks*2 < tallest.height() && tallest.height() <= maxLineHeight
}
