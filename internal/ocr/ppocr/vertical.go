package ppocr

import (
	"cmp"
	"math"
	"slices"
	"unicode"

	"github.com/visionserve/visionserve/internal/ocr"
)

// Vertical text. A CJK column (text running top to bottom, each glyph
// upright) turned 90° like a rotated line shows the recogniser glyphs lying
// on their side, which it reads as garbage with a fair confidence. Read as
// a row instead — glyphs cut apart where the column has no ink and laid
// side by side — it reads like a horizontal line, since CJK glyphs are
// square and upright either way. A tall box may also be a line of a page
// turned 90°, which only the turned reading gets right, so a tall box is
// read both ways and the more confident reading wins (Pipeline.readings).
// (PP-OCRv4's recogniser, trained on turned columns, reads most of them
// either way; Tesseract, in the hybrid, reads only the row.) Either way
// the line is flagged ocr.Line.Vertical.

// column maps a row made by stackColumn back to the column it came from.
type column struct {
	w     float64 // the column crop's width
	cells []cell
}

// cell is one glyph: columns [x0,x1) of the row show rows [y0,y1) of the
// column.
type cell struct{ x0, x1, y0, y1 float64 }

// rect returns the column rectangle [0,w]×[y0,y1] that shows row columns
// [x0,x1]: the cells they overlap, top to bottom.
func (c *column) rect(x0, x1 float64) (float64, float64, float64, float64) {
	first, last := -1, -1
	for i, k := range c.cells {
		if k.x1 > x0 && k.x0 < x1 {
			if first < 0 {
				first = i
			}
			last = i
		}
	}
	if first < 0 {
		// Nothing overlaps (a span in the padding): the nearest cell.
		first = len(c.cells) - 1
		for i, k := range c.cells {
			if x1 <= k.x1 {
				first = i
				break
			}
		}
		last = first
	}
	return 0, c.cells[first].y0, c.w, c.cells[last].y1
}

// glyphMerge: ink bands of a column are merged into one glyph while the
// glyph stays under this many glyph widths tall (三 is three bands).
const glyphMerge = 1.15

// stackColumn crops the column q (first corner top-left, text running
// down) upright, cuts it into glyphs at rows without ink and lays the
// glyphs out left to right on the column's background. The crop's quad is
// that of the turned reading, first corner top-right, so a vertical line's
// box is the same whichever reading wins. It fails on a column without
// contrast or ink.
func stackColumn(src *rgbImage, q quad) (crop, bool) {
	col, ok := cropQuad(src, q)
	if !ok {
		return crop{}, false
	}
	m := col.img
	ink, bg, ok := inkMask(m)
	if !ok {
		return crop{}, false
	}
	// The glyph width is the ink's horizontal extent; bands are runs of
	// rows holding ink.
	x0, x1 := m.w, -1
	var bands [][2]int
	for y := range m.h {
		any := false
		for x := range m.w {
			if ink[y*m.w+x] {
				any = true
				x0, x1 = min(x0, x), max(x1, x)
			}
		}
		switch {
		case any && (len(bands) == 0 || bands[len(bands)-1][1] != y):
			bands = append(bands, [2]int{y, y + 1})
		case any:
			bands[len(bands)-1][1] = y + 1
		}
	}
	if x1 < x0 || len(bands) == 0 {
		return crop{}, false
	}
	gw := float64(x1 - x0 + 1)
	glyphs := bands[:1]
	for _, b := range bands[1:] {
		if g := &glyphs[len(glyphs)-1]; float64(b[1]-g[0]) <= glyphMerge*gw {
			g[1] = b[1]
		} else {
			glyphs = append(glyphs, b)
		}
	}
	// Each glyph keeps the column's full width (its margins space the
	// glyphs) and is centred in a row as tall as the tallest glyph plus a
	// margin of a sixth of the glyph width.
	pad := max(1, int(gw/6))
	h := 0
	for _, g := range glyphs {
		h = max(h, g[1]-g[0]+2*pad)
	}
	out := newRGB(m.w*len(glyphs), h)
	for i := 0; i < len(out.pix); i += 3 {
		copy(out.pix[i:i+3], bg[:])
	}
	stack := &column{w: float64(m.w), cells: make([]cell, len(glyphs))}
	for i, g := range glyphs {
		top := (h - (g[1] - g[0])) / 2
		for y := g[0]; y < g[1]; y++ {
			copy(out.pix[3*((top+y-g[0])*out.w+i*m.w):], m.pix[3*y*m.w:3*(y+1)*m.w])
		}
		stack.cells[i] = cell{x0: float64(i * m.w), x1: float64((i + 1) * m.w), y0: float64(max(g[0]-pad, 0)), y1: float64(min(g[1]+pad, m.h))}
	}
	return crop{q: q.rotateCCW(), img: out, toSrc: col.toSrc, vertical: true, stack: stack}, true
}

// inkMask separates ink from background by the midpoint of the 5th and
// 95th percentile luma, the rarer side being ink (dark on light or light
// on dark), and returns the mean background colour. It fails when the two
// percentiles are too close to tell text from paper.
func inkMask(m *rgbImage) ([]bool, [3]uint8, bool) {
	n := m.w * m.h
	luma := make([]uint8, n)
	for i := range n {
		p := m.pix[3*i:]
		luma[i] = uint8((299*int(p[0]) + 587*int(p[1]) + 114*int(p[2])) / 1000)
	}
	sorted := slices.Clone(luma)
	slices.Sort(sorted)
	lo, hi := int(sorted[n/20]), int(sorted[n-1-n/20])
	if hi-lo < 32 {
		return nil, [3]uint8{}, false
	}
	thr := uint8((lo + hi) / 2)
	dark := 0
	for _, v := range luma {
		if v < thr {
			dark++
		}
	}
	darkInk := 2*dark <= n
	ink := make([]bool, n)
	var sum [3]int
	nbg := 0
	for i, v := range luma {
		ink[i] = (v < thr) == darkInk
		if !ink[i] {
			for c := range 3 {
				sum[c] += int(m.pix[3*i+c])
			}
			nbg++
		}
	}
	var bg [3]uint8
	for c := range 3 {
		bg[c] = uint8(sum[c] / max(nbg, 1))
	}
	return ink, bg, true
}

// Columns are read right to left. A page set in vertical CJK text runs
// its columns from the right edge leftwards, each top to bottom; read in
// the horizontal order (top to bottom, then left to right) its columns
// come out left to right, the last first.

// cjkColumns reports whether lines are mostly columns of CJK text: more
// than half of them vertical lines running down the page, written mostly
// in ideographs, kana or hangul. PP-OCR does not turn pages, so a page
// turned 90° is made of vertical lines too: the script sets CJK columns
// apart from a turned page of Latin text, and the direction sets them
// apart from a page turned counter-clockwise, whose lines run up and come
// in the detector's order, the right one for it. (A CJK page turned
// clockwise is read as columns: right to left is its order too.)
func cjkColumns(lines []ocr.Line) bool {
	n := 0
	for _, l := range lines {
		// The first edge of a line's box runs along its text.
		down := l.Box[1][1] > l.Box[0][1]
		if l.Vertical && down && mostlyCJK(l.Text) {
			n++
		}
	}
	return n >= 2 && 2*n > len(lines)
}

// mostlyCJK reports whether at least half of s's letters are ideographs,
// kana or hangul.
func mostlyCJK(s string) bool {
	cjk, letters := 0, 0
	for _, r := range s {
		if !unicode.IsLetter(r) {
			continue
		}
		letters++
		if unicode.In(r, unicode.Han, unicode.Hiragana, unicode.Katakana, unicode.Hangul) {
			cjk++
		}
	}
	return letters > 0 && 2*cjk >= letters
}

// columnOrder sorts lines as columns right to left and, within a column,
// top to bottom, by the bounds of their boxes. Lines form one column while
// their right edges differ by less than sameLine times the narrower of
// the two (readingOrder's rule, turned).
func columnOrder(lines []ocr.Line, sameLine float64) {
	type bounds struct{ x0, x1, y0 float64 }
	of := func(l ocr.Line) bounds {
		b := bounds{x0: math.Inf(1), x1: math.Inf(-1), y0: math.Inf(1)}
		for _, p := range l.Box {
			b.x0, b.x1, b.y0 = min(b.x0, p[0]), max(b.x1, p[0]), min(b.y0, p[1])
		}
		return b
	}
	slices.SortStableFunc(lines, func(a, b ocr.Line) int {
		ba, bb := of(a), of(b)
		if c := cmp.Compare(bb.x1, ba.x1); c != 0 {
			return c
		}
		return cmp.Compare(ba.y0, bb.y0)
	})
	for start := 0; start < len(lines); {
		anchor := of(lines[start])
		end := start + 1
		for end < len(lines) {
			b := of(lines[end])
			if anchor.x1-b.x1 >= sameLine*min(anchor.x1-anchor.x0, b.x1-b.x0) {
				break
			}
			end++
		}
		slices.SortStableFunc(lines[start:end], func(a, b ocr.Line) int { return cmp.Compare(of(a).y0, of(b).y0) })
		start = end
	}
}
