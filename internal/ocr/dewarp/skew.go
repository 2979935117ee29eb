package dewarp

import (
	"image"
	"math"
	"slices"
)

// Skew is the small tilt of a page's text lines, measured by EstimateSkew.
type Skew struct {
	// Degrees is the clockwise tilt of the text lines as displayed
	// (positive: lines run down to the right). Rotating the page
	// counter-clockwise by Degrees makes them level.
	Degrees float64
	// Confidence in [0, 1]: how much sharper the lines' projection is at
	// Degrees than at the other angles searched.
	Confidence float64
	// Gain is how much sharper the projection is at Degrees than at 0: a
	// correction that gains nothing over leaving the page as it is is not
	// worth a resampling.
	Gain float64
	// Lines is the number of text lines (or columns) the projection at
	// Degrees shows: the tilt of a lone line is no page's skew.
	Lines int
	// Paper is the grey of the page's background (the majority class), for
	// filling the corners a rotation uncovers.
	Paper uint8
}

// Skew search parameters: the image is reduced to skewSide pixels on its
// longer side, at most skewPoints ink pixels are projected, angles are
// tried every coarseStep degrees and then every fineStep around the best.
const (
	skewSide   = 1024
	skewPoints = 30000
	coarseStep = 0.5
	fineStep   = 0.05
)

// EstimateSkew measures the tilt of the text lines of g within
// [-maxDegrees, maxDegrees] by projection profiles (Postl, 1986): the
// ink pixels are projected across the lines at each candidate angle, and
// the angle at which the profile is sharpest (the largest sum of squared
// differences between neighbouring bins) is the lines' direction. Lines
// running down the page (a page turned by 90 degrees, vertical writing)
// are measured the same way across the other axis.
//
// A page without enough ink, or mostly ink, returns a zero Skew.
func EstimateSkew(g *image.Gray, maxDegrees float64) Skew {
	small, _ := shrink(g, skewSide)
	hist, n := histogram(small)
	t := otsuLevel(&hist)
	dark := 0
	for v := 0; v <= t; v++ {
		dark += hist[v]
	}
	// Ink is the minority class: dark text on light paper, or light
	// text on a dark background.
	inkDark := 2*dark <= n
	ink := dark
	paper := meanLevel(&hist, t+1, 255)
	if !inkDark {
		ink, paper = n-dark, meanLevel(&hist, 0, t)
	}
	out := Skew{Paper: paper}
	if ink < 50 || float64(ink) > 0.35*float64(n) {
		return out
	}
	pts := inkPoints(small, t, inkDark, ink)
	w, h := float64(small.Rect.Dx()), float64(small.Rect.Dy())
	p := projector{pts: pts, bins: make([]int32, int(math.Hypot(w, h))+3)}

	// Coarse search over both axes, then a fine one around the best.
	type candidate struct {
		deg      float64
		vertical bool
		score    float64
	}
	best := candidate{score: -1}
	var scores []float64
	for _, vertical := range []bool{false, true} {
		for deg := -maxDegrees; deg <= maxDegrees+1e-9; deg += coarseStep {
			s := p.sharpness(deg, vertical)
			scores = append(scores, s)
			if s > best.score {
				best = candidate{deg, vertical, s}
			}
		}
	}
	for deg := best.deg - coarseStep; deg <= best.deg+coarseStep+1e-9; deg += fineStep {
		if math.Abs(deg) > maxDegrees {
			continue
		}
		if s := p.sharpness(deg, best.vertical); s > best.score {
			best = candidate{deg, best.vertical, s}
		}
	}
	if best.score <= 0 {
		return out
	}
	out.Degrees = math.Round(best.deg/fineStep) * fineStep
	out.Confidence = clamp01((1 - median(scores)/best.score) / 0.5)
	// The tilt holds for both axes (a page's lines and its letters'
	// strokes turn together). The lines run across the axis whose
	// projection has gaps, the spaces between lines; the strokes of
	// letters, not aligned from one line to the next, leave few.
	mostGaps := -1.0
	for _, vertical := range []bool{false, true} {
		p.sharpness(best.deg, vertical)
		if lines, gaps := p.bands(); gaps > mostGaps {
			out.Lines, mostGaps = lines, gaps
		}
	}
	if level := p.sharpness(0, best.vertical); level > 0 {
		out.Gain = best.score/level - 1
	}
	return out
}

// inkPoints returns the centred coordinates of the ink pixels of g, about
// one in stride of them so that at most skewPoints come back. Which pixels
// are kept is decided by a hash of their position: taking every
// stride-th in raster order keeps the same columns of every row and
// paints stripes into the projections.
func inkPoints(g *image.Gray, t int, inkDark bool, ink int) []Point {
	stride := uint32(max(1, (ink+skewPoints-1)/skewPoints))
	w, h := g.Rect.Dx(), g.Rect.Dy()
	cx, cy := float64(w)/2, float64(h)/2
	pts := make([]Point, 0, ink/int(stride)+1)
	for y := range h {
		for x, v := range g.Pix[y*g.Stride:][:w] {
			if (int(v) <= t) == inkDark && (stride == 1 || mix(uint32(x)<<16^uint32(y))%stride == 0) {
				pts = append(pts, Point{float64(x) + 0.5 - cx, float64(y) + 0.5 - cy})
			}
		}
	}
	return pts
}

// mix is a 32-bit integer hash (the finaliser of MurmurHash3).
func mix(v uint32) uint32 {
	v ^= v >> 16
	v *= 0x85ebca6b
	v ^= v >> 13
	v *= 0xc2b2ae35
	return v ^ v>>16
}

// projector projects points onto the normal of a direction and measures
// how sharply they bunch.
type projector struct {
	pts  []Point
	bins []int32
}

// sharpness is the sum of squared differences between neighbouring bins
// of the projection of the points across lines tilted clockwise by deg
// (vertical: across columns tilted the same way).
func (p *projector) sharpness(deg float64, vertical bool) float64 {
	sin, cos := math.Sincos(deg * math.Pi / 180)
	// A line tilted clockwise by deg runs along (cos, sin): its points
	// share y*cos - x*sin. A column tilted likewise runs along (-sin,
	// cos) and its points share x*cos + y*sin.
	ax, ay := -sin, cos
	if vertical {
		ax, ay = cos, sin
	}
	clear(p.bins)
	off := float64(len(p.bins) / 2)
	for _, q := range p.pts {
		p.bins[int(q[0]*ax+q[1]*ay+off)]++
	}
	var s float64
	for i := 1; i < len(p.bins); i++ {
		d := float64(p.bins[i] - p.bins[i-1])
		s += d * d
	}
	return s
}

// bands reads the last projection: lines is the number of text lines it
// crossed, runs of bins holding more than a sixth of the fullest bin that
// are at least a third as wide as the widest run (the ascenders and
// descenders of one line make thin runs of their own); gaps is the
// fraction of bins between the first run and the last that are in none.
func (p *projector) bands() (lines int, gaps float64) {
	var most int32
	for _, b := range p.bins {
		most = max(most, b)
	}
	var runs []int
	first, last := -1, -1
	for i, b := range p.bins {
		full := b*6 > most
		switch {
		case full && (i == 0 || p.bins[i-1]*6 <= most):
			runs = append(runs, 1)
		case full:
			runs[len(runs)-1]++
		}
		if full {
			last = i
			if first < 0 {
				first = i
			}
		}
	}
	if first < 0 {
		return 0, 0
	}
	widest, covered := 0, 0
	for _, r := range runs {
		widest = max(widest, r)
		covered += r
	}
	for _, r := range runs {
		if 3*r >= widest {
			lines++
		}
	}
	return lines, 1 - float64(covered)/float64(last-first+1)
}

// meanLevel is the mean grey of the histogram's levels lo..hi (lo when
// none are counted).
func meanLevel(hist *[256]int, lo, hi int) uint8 {
	var n, sum int
	for v := lo; v <= hi; v++ {
		n += hist[v]
		sum += v * hist[v]
	}
	if n == 0 {
		return uint8(lo)
	}
	return uint8((sum + n/2) / n)
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}
