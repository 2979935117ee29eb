package render

import (
	"bufio"
	"image"
	"io"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/visionserve/visionserve/internal/ocr"
)

// block is a run of consecutive lines that a format shows as one text
// block (hOCR ocr_carea and ocr_par, ALTO TextBlock, PAGE TextRegion).
// A Result has lines only, so blocks are inferred: a new one starts where
// the space between two lines, across the text, is more than the taller
// line's height — a blank line between paragraphs.
type block struct {
	lines []ocr.Line
	box   image.Rectangle // the lines' bounds, within the page
	quad  ocr.Quad        // the lines' quads' hull along the text direction
}

func blocks(p *ocr.Page) []block {
	var out []block
	for i, l := range p.Lines {
		if i == 0 || lineGap(p.Lines[i-1].Box, l.Box) > max(quadHeight(p.Lines[i-1].Box), quadHeight(l.Box)) {
			out = append(out, block{})
		}
		b := &out[len(out)-1]
		b.lines = append(b.lines, l)
	}
	for i := range out {
		b := &out[i]
		for j, l := range b.lines {
			r := clip(l.Box, p)
			if j == 0 {
				b.box = r
			} else {
				b.box = b.box.Union(r)
			}
		}
		b.quad = hull(b.lines)
	}
	return out
}

// lineGap is the space between quads a and b measured across the text
// (along a's left edge, top to bottom): negative when they overlap.
func lineGap(a, b ocr.Quad) float64 {
	ha := quadHeight(a)
	if ha == 0 {
		return 0
	}
	nx, ny := (a[3][0]-a[0][0])/ha, (a[3][1]-a[0][1])/ha
	ca, cb := center(a), center(b)
	d := (cb[0]-ca[0])*nx + (cb[1]-ca[1])*ny
	return math.Abs(d) - (ha+quadHeight(b))/2
}

func quadHeight(q ocr.Quad) float64 {
	return (math.Hypot(q[3][0]-q[0][0], q[3][1]-q[0][1]) + math.Hypot(q[2][0]-q[1][0], q[2][1]-q[1][1])) / 2
}

func quadWidth(q ocr.Quad) float64 {
	return (math.Hypot(q[1][0]-q[0][0], q[1][1]-q[0][1]) + math.Hypot(q[2][0]-q[3][0], q[2][1]-q[3][1])) / 2
}

func center(q ocr.Quad) ocr.Point {
	return ocr.Point{(q[0][0] + q[1][0] + q[2][0] + q[3][0]) / 4, (q[0][1] + q[1][1] + q[2][1] + q[3][1]) / 4}
}

// hull is the quad that holds every line of a block: the first line's
// top edge and the last line's bottom edge, widened to the widest line
// along the text direction.
func hull(lines []ocr.Line) ocr.Quad {
	first, last := lines[0].Box, lines[len(lines)-1].Box
	w := quadWidth(first)
	if w == 0 {
		return ocr.Quad{first[0], first[1], last[2], last[3]}
	}
	ux, uy := (first[1][0]-first[0][0])/w, (first[1][1]-first[0][1])/w
	// Extent of every corner along the text direction, from first[0].
	lo, hi := 0.0, w
	for _, l := range lines {
		for _, p := range l.Box {
			t := (p[0]-first[0][0])*ux + (p[1]-first[0][1])*uy
			lo, hi = math.Min(lo, t), math.Max(hi, t)
		}
	}
	at := func(base ocr.Point, t float64) ocr.Point {
		tb := (base[0]-first[0][0])*ux + (base[1]-first[0][1])*uy
		return ocr.Point{base[0] + (t-tb)*ux, base[1] + (t-tb)*uy}
	}
	return ocr.Quad{at(first[0], lo), at(first[1], hi), at(last[2], hi), at(last[3], lo)}
}

// clip is q's bounding box within the page.
func clip(q ocr.Quad, p *ocr.Page) image.Rectangle {
	return q.Bounds().Intersect(image.Rect(0, 0, p.Width, p.Height))
}

// isRect reports whether q is its own axis-aligned bounding box, corners
// in reading order (an upright page's words).
func isRect(q ocr.Quad) bool {
	return q[0][1] == q[1][1] && q[2][1] == q[3][1] && q[0][0] == q[3][0] && q[1][0] == q[2][0] && q[0][0] <= q[1][0] && q[0][1] <= q[3][1]
}

// num formats a coordinate or confidence without exponent and with at
// most four decimals.
func num(v float64) string {
	s := strconv.FormatFloat(math.Round(v*1e4)/1e4, 'f', -1, 64)
	if s == "-0" {
		return "0"
	}
	return s
}

// xmlText escapes s for XML text and attribute values and drops the
// characters XML 1.0 cannot carry at all (control characters, lone
// surrogates, U+FFFE and U+FFFF).
func xmlText(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for i, r := range s {
		if r == utf8.RuneError {
			if _, size := utf8.DecodeRuneInString(s[i:]); size == 1 {
				continue // invalid UTF-8
			}
		}
		switch r {
		case '&':
			b.WriteString("&amp;")
		case '<':
			b.WriteString("&lt;")
		case '>':
			b.WriteString("&gt;")
		case '"':
			b.WriteString("&quot;")
		case '\'':
			b.WriteString("&apos;")
		case '\t', '\n', '\r':
			b.WriteString("&#" + strconv.Itoa(int(r)) + ";")
		default:
			if r < 0x20 || r == 0xFFFE || r == 0xFFFF || (r >= 0xD800 && r <= 0xDFFF) {
				continue
			}
			b.WriteRune(r)
		}
	}
	return b.String()
}

// stickyWriter remembers the first write error so a renderer can write
// freely and check once.
type stickyWriter struct {
	w   *bufio.Writer
	err error
}

func newStickyWriter(w io.Writer) *stickyWriter { return &stickyWriter{w: bufio.NewWriter(w)} }

func (s *stickyWriter) str(parts ...string) {
	for _, p := range parts {
		if s.err != nil {
			return
		}
		_, s.err = s.w.WriteString(p)
	}
}

func (s *stickyWriter) flush() error {
	if s.err != nil {
		return s.err
	}
	return s.w.Flush()
}
