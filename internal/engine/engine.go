// Package engine declares the small interfaces the pipelines consume and the
// plain data they exchange with an inference engine. Adapters live in
// sub-packages (engine/tesseract, engine/onnx); pipelines import only this
// package, so an engine can be swapped or faked without touching them.
package engine

import (
	"context"
	"errors"
	"image"
)

// SegMode tells a text engine what layout to expect in an image.
type SegMode int

// Segmentation modes.
const (
	SegPage  SegMode = iota // full page: blocks, columns, paragraphs
	SegBlock                // one uniform block of text
	SegLine                 // exactly one text line
	SegWord                 // exactly one word
)

func (m SegMode) String() string {
	switch m {
	case SegPage:
		return "page"
	case SegBlock:
		return "block"
	case SegLine:
		return "line"
	case SegWord:
		return "word"
	}
	return "unknown"
}

// TextWord is a recognised word with an axis-aligned box in the coordinates
// of the image handed to the engine. Confidence is in [0,1].
type TextWord struct {
	Text       string
	Confidence float64
	Box        image.Rectangle
}

// TextLine is a recognised line. Block and Paragraph number the layout
// units the line belongs to, in reading order, when the engine knows them.
// Orientation is the clockwise rotation (0, 90, 180, 270) that would make
// the line's text upright when the engine read it rotated within the image
// (Tesseract reads vertical lines this way); boxes stay axis-aligned in the
// image either way.
type TextLine struct {
	Text        string
	Confidence  float64
	Box         image.Rectangle
	Block       int
	Paragraph   int
	Orientation int
	Words       []TextWord
}

// TextRecognizer recognises text in an upright grayscale image. An
// implementation is used by one goroutine at a time; pools hand them out.
// It must return promptly with ctx.Err() once ctx is done.
type TextRecognizer interface {
	RecognizeText(ctx context.Context, img *image.Gray, mode SegMode) ([]TextLine, error)
}

// Orientation is a detected page rotation: Degrees (0, 90, 180 or 270) is
// the clockwise rotation that makes the page upright. Script is the
// writing system the detector saw most of ("Latin", "Han", ...; "" when it
// cannot tell), for detectors that report one (Tesseract's OSD does).
type Orientation struct {
	Degrees    int
	Confidence float64
	Script     string
}

// OrientationDetector estimates how a page must be rotated to be upright.
// One without a model to do so (a Tesseract package without
// osd.traineddata) returns an error wrapping ErrNoOrientation.
type OrientationDetector interface {
	DetectOrientation(ctx context.Context, img *image.Gray) (Orientation, error)
}

// ErrNoOrientation says an OrientationDetector has no orientation model: a
// pipeline reads the page as it is, or finds its turn another way, rather
// than fail the request.
var ErrNoOrientation = errors.New("no orientation detection model")
