package dewarp

import (
	"image"
	"image/color"
	"image/draw"
	"math"
)

// Mode says when a page is corrected.
type Mode string

// Modes. Auto flattens a page that FindPage is confident is a sheet
// photographed on a background, deskews any other page whose text is
// measurably tilted, and leaves the rest as they are. On flattens the best
// sheet outline found whatever the confidence, and otherwise deskews as
// Auto does. Off never corrects.
const (
	Auto Mode = "auto"
	On   Mode = "on"
	Off  Mode = "off"
)

// Kind names a correction.
type Kind string

// Kinds of correction.
const (
	// Perspective flattens a photographed sheet: its quad is mapped to
	// an upright rectangle.
	Perspective Kind = "perspective"
	// Deskew turns a scanned page so that its text lines are level.
	Deskew Kind = "deskew"
)

// Thresholds of the decision. MaxSkew is the largest tilt, either way,
// that is looked for. A sheet is flattened in Auto mode when
// FindPage's confidence reaches MinPageConfidence and it covers between
// MinCoverage and MaxCoverage of the frame. A page is deskewed when its
// measured tilt is at least MinSkew degrees (below that Tesseract's own
// line finding copes and a resampling only blurs), the measurement's
// confidence reaches MinSkewConfidence, the lines are at least
// MinSkewGain sharper at that tilt than level, and there are at least
// MinSkewLines of them (one line's tilt says little about a page's, and
// Tesseract reads a lone tilted line well).
const (
	MinPageConfidence = 0.5
	MinCoverage       = 0.1
	MaxCoverage       = 0.97
	MaxSkew           = 15.0
	MinSkew           = 1.0
	MinSkewConfidence = 0.5
	MinSkewGain       = 0.1
	MinSkewLines      = 3
	// edgeMargin is the rim of a flattened sheet, as a fraction of its
	// longer side, that is painted over (clearEdge).
	edgeMargin = 0.004
	// minPageSide: an image with a shorter side than this (a text line,
	// a word) is never corrected.
	minPageSide = 200
)

// Correction is what Plan decided to do with a page: Kind, the size of
// the corrected image and the homography from it back to the input.
type Correction struct {
	Kind          Kind
	Width, Height int
	// ToSource maps a point of the corrected image (pixel-edge
	// coordinates) to the input image.
	ToSource Homography
	// Page is the sheet found (Perspective only).
	Page Page
	// Skew is the tilt measured (Deskew only).
	Skew Skew
	// Fill is the grey of anything the correction shows from outside the
	// input.
	Fill uint8
}

// Confidence is the confidence of the measurement behind the correction.
func (c Correction) Confidence() float64 {
	if c.Kind == Perspective {
		return c.Page.Confidence
	}
	return c.Skew.Confidence
}

// Gray returns g corrected. g must be the image Plan was given. A
// flattened sheet also has its light evened out (light.go) and its rim
// cleared.
func (c Correction) Gray(g *image.Gray) *image.Gray {
	out := WarpGray(g, c.ToSource, c.Width, c.Height, c.Fill)
	if c.Kind == Perspective {
		evenLight(out)
		clearEdge(out, 255)
	}
	return out
}

// Image returns img corrected, as grey when img is grey (as Gray does) and
// as RGBA otherwise, with a flattened sheet's rim cleared. img must have
// the size of the image Plan was given.
func (c Correction) Image(img image.Image) image.Image {
	if g, ok := img.(*image.Gray); ok && g.Rect.Min == (image.Point{}) {
		return c.Gray(g)
	}
	out := WarpImage(img, c.ToSource, c.Width, c.Height, c.Fill)
	if c.Kind == Perspective {
		clearEdge(out.(draw.Image), c.Fill)
	}
	return out
}

// clearEdge paints the rim of a flattened sheet with its paper grey. The
// outermost pixels mix the sheet with the background (and its shadow), a
// dark dashed border that an engine reads as a line of junk; no text lies
// that close to a sheet's edge.
func clearEdge(img draw.Image, fill uint8) {
	r := img.Bounds()
	m := max(2, int(math.Round(edgeMargin*float64(max(r.Dx(), r.Dy())))))
	paper := image.NewUniform(color.Gray{Y: fill})
	for _, band := range []image.Rectangle{
		{r.Min, image.Pt(r.Max.X, r.Min.Y+m)}, {image.Pt(r.Min.X, r.Max.Y-m), r.Max},
		{r.Min, image.Pt(r.Min.X+m, r.Max.Y)}, {image.Pt(r.Max.X-m, r.Min.Y), r.Max},
	} {
		draw.Draw(img, band.Intersect(r), paper, image.Point{}, draw.Src)
	}
}

// Plan decides how to correct g in mode, and returns false when g is best
// read as it is.
func Plan(g *image.Gray, mode Mode) (Correction, bool) {
	if mode == Off {
		return Correction{}, false
	}
	b := g.Bounds()
	if min(b.Dx(), b.Dy()) >= minPageSide {
		if p, ok := FindPage(g); ok && isSheet(p, mode) {
			if c, ok := flatten(p); ok {
				return c, true
			}
		}
	}
	if min(b.Dx(), b.Dy()) < minPageSide {
		return Correction{}, false
	}
	s := EstimateSkew(g, MaxSkew)
	if math.Abs(s.Degrees) < MinSkew || s.Confidence < MinSkewConfidence || s.Gain < MinSkewGain || s.Lines < MinSkewLines {
		return Correction{}, false
	}
	return rotation(s, b.Dx(), b.Dy()), true
}

// isSheet says whether p is to be flattened in mode.
func isSheet(p Page, mode Mode) bool {
	if p.Coverage < MinCoverage || !p.Quad.Convex(20) {
		return false
	}
	if mode == On {
		return p.Support > 0 && p.Coverage <= 1
	}
	return p.Confidence >= MinPageConfidence && p.Coverage <= MaxCoverage
}

// flatten maps the sheet p to an upright rectangle of its own size.
func flatten(p Page) (Correction, bool) {
	w, h := p.Quad.Size()
	w, h = math.Round(w), math.Round(h)
	if w < 1 || h < 1 {
		return Correction{}, false
	}
	toSrc, ok := QuadToQuad(Rect(w, h), p.Quad)
	if !ok {
		return Correction{}, false
	}
	return Correction{Kind: Perspective, Width: int(w), Height: int(h), ToSource: toSrc, Page: p, Fill: p.Paper}, true
}

// rotation turns a w x h page counter-clockwise by s.Degrees onto a canvas
// that holds all of it.
func rotation(s Skew, w, h int) Correction {
	sin, cos := math.Sincos(s.Degrees * math.Pi / 180)
	fw, fh := float64(w), float64(h)
	cw := math.Ceil(fw*math.Abs(cos) + fh*math.Abs(sin) - 1e-9)
	ch := math.Ceil(fw*math.Abs(sin) + fh*math.Abs(cos) - 1e-9)
	// A corrected point q comes from the input point at the same offset
	// from the centre, turned clockwise by the tilt.
	toCentre := Homography{1, 0, -cw / 2, 0, 1, -ch / 2, 0, 0, 1}
	turn := Homography{cos, -sin, 0, sin, cos, 0, 0, 0, 1}
	fromCentre := Homography{1, 0, fw / 2, 0, 1, fh / 2, 0, 0, 1}
	return Correction{Kind: Deskew, Width: int(cw), Height: int(ch), ToSource: toCentre.Then(turn).Then(fromCentre), Skew: s, Fill: s.Paper}
}
