package ocr

import (
	"image"
	"math"
	"strings"
)

// Result is the document-shaped answer to one OCR request. Its JSON form is
// part of the public contract (see docs/api.md); add fields, never rename.
type Result struct {
	Model      ModelRef           `json:"model"`
	Text       string             `json:"text"`
	Confidence float64            `json:"confidence"`
	Pages      []Page             `json:"pages"`
	TimingMS   map[string]float64 `json:"timing_ms,omitempty"`
	// Tier is the quality tier that read the request, full or cheap, for a
	// model that has a cheaper tier; absent otherwise.
	Tier string `json:"tier,omitempty"`
	// Script and Lang are, for lang=auto, the script OSD saw on the first
	// page and the language it chose ("" when there was none and the
	// default model read the input); absent otherwise.
	Script string `json:"script,omitempty"`
	Lang   string `json:"lang,omitempty"`
}

// ModelRef names the model version that produced a result.
type ModelRef struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

// Page is one page (or TIFF frame) of the input.
//
// Width and Height are those of the page as displayed, that is after EXIF
// orientation. Angle is the clockwise rotation, in degrees, that was applied
// to make the text upright before recognition (0, 90, 180 or 270). All boxes
// are in the displayed page's coordinates regardless of Angle and Dewarp.
type Page struct {
	Index      int     `json:"index"`
	Width      int     `json:"width"`
	Height     int     `json:"height"`
	Angle      int     `json:"angle"`
	Mode       string  `json:"mode"`
	Confidence float64 `json:"confidence"`
	Lines      []Line  `json:"lines"`
	// Dewarp is the correction the page was read through (a flattened
	// photo or a levelled scan); absent when it was read as it is.
	Dewarp *Dewarp `json:"dewarp,omitempty"`
}

// Line is one text line in reading order.
type Line struct {
	Text       string  `json:"text"`
	Confidence float64 `json:"confidence"`
	Box        Quad    `json:"box"`
	Review     Tier    `json:"review"`
	Words      []Word  `json:"words"`
	// Vertical marks a line that runs down (or up) the page rather than
	// across it: vertical CJK text, or a line of a page turned 90° that
	// was read without turning the page. Its box's first corner is still
	// where the text starts, the first edge running along the text.
	Vertical bool `json:"vertical,omitempty"`
}

// Word is one recognised word.
type Word struct {
	Text       string  `json:"text"`
	Confidence float64 `json:"confidence"`
	Box        Quad    `json:"box"`
}

// Point is an (x, y) pixel position; it encodes as a two-element JSON array.
type Point [2]float64

// Quad is a quadrilateral given as its corners in reading order: the text's
// top-left, top-right, bottom-right and bottom-left. For an upright page it
// is an axis-aligned rectangle; for a rotated page the first corner tells
// where the text starts.
type Quad [4]Point

// RectQuad returns the quad of an axis-aligned rectangle.
func RectQuad(r image.Rectangle) Quad {
	x0, y0, x1, y1 := float64(r.Min.X), float64(r.Min.Y), float64(r.Max.X), float64(r.Max.Y)
	return Quad{{x0, y0}, {x1, y0}, {x1, y1}, {x0, y1}}
}

// Bounds returns the smallest integer rectangle holding q.
func (q Quad) Bounds() image.Rectangle {
	minX, minY := math.Inf(1), math.Inf(1)
	maxX, maxY := math.Inf(-1), math.Inf(-1)
	for _, p := range q {
		minX, maxX = math.Min(minX, p[0]), math.Max(maxX, p[0])
		minY, maxY = math.Min(minY, p[1]), math.Max(maxY, p[1])
	}
	return image.Rect(int(math.Floor(minX)), int(math.Floor(minY)), int(math.Ceil(maxX)), int(math.Ceil(maxY)))
}

// PlainText renders pages as text: lines joined by "\n", pages separated by
// a form feed, as the tesseract command line does.
func PlainText(pages []Page) string {
	var b strings.Builder
	for i, p := range pages {
		if i > 0 {
			b.WriteString("\f")
		}
		for j, l := range p.Lines {
			if j > 0 {
				b.WriteByte('\n')
			}
			b.WriteString(l.Text)
		}
	}
	return b.String()
}

// MeanConfidence is the character-weighted mean confidence of lines, so a
// long confident line counts for more than a stray low-confidence mark. It
// is 0 when there is no text.
func MeanConfidence(lines []Line) float64 {
	var sum, n float64
	for _, l := range lines {
		w := float64(len([]rune(strings.TrimSpace(l.Text))))
		sum += w * l.Confidence
		n += w
	}
	if n == 0 {
		return 0
	}
	return roundConfidence(sum / n)
}

// roundConfidence keeps four decimals: engines are not more precise than
// that, and clients should not have to read 0.9629883575439454.
func roundConfidence(c float64) float64 { return math.Round(c*1e4) / 1e4 }
