package ppocr

import (
	"context"
	"image"
	"strings"

	"github.com/visionserve/visionserve/internal/engine"
	"github.com/visionserve/visionserve/internal/imageio"
	"github.com/visionserve/visionserve/internal/ocr"
)

var _ ocr.PageReader = (*Reader)(nil)

// AcquireFunc lends a line recogniser (a Tesseract engine from a pool) until
// release is called.
type AcquireFunc func(ctx context.Context) (tr engine.TextRecognizer, release func(), err error)

// Reader reads pages for the OCR service (ocr.PageReader) with a Pipeline:
// DB detection, line orientation and CTC recognition, or in hybrid mode
// each detected line read by a recogniser it borrows for the page.
type Reader struct {
	pl      *Pipeline
	acquire AcquireFunc // nil: CTC
}

// NewReader reads with the pipeline's own CTC recogniser.
func NewReader(pl *Pipeline) *Reader { return &Reader{pl: pl} }

// NewHybridReader reads each detected line with a recogniser from acquire.
func NewHybridReader(pl *Pipeline, acquire AcquireFunc) *Reader {
	return &Reader{pl: pl, acquire: acquire}
}

// Hybrid reports whether lines are read by a borrowed recogniser.
func (r *Reader) Hybrid() bool { return r.acquire != nil }

// ReadPage implements ocr.PageReader. In line and word mode the whole image
// is one line: no detection, as the evaluation reads line and word crops.
func (r *Reader) ReadPage(ctx context.Context, img image.Image, mode ocr.Mode) ([]ocr.Line, error) {
	single := mode == ocr.ModeLine || mode == ocr.ModeWord
	if r.acquire == nil {
		if !single {
			return r.pl.Recognize(ctx, img)
		}
		l, err := r.pl.RecognizeLine(ctx, img)
		if err != nil || strings.TrimSpace(l.Text) == "" {
			return nil, err
		}
		return []ocr.Line{l}, nil
	}
	tr, release, err := r.acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	if !single {
		return r.pl.RecognizeHybrid(ctx, img, tr)
	}
	seg := engine.SegLine
	if mode == ocr.ModeWord {
		seg = engine.SegWord
	}
	off := img.Bounds().Min
	tls, err := tr.RecognizeText(ctx, imageio.ToGray(img), seg)
	if err != nil {
		return nil, err
	}
	var lines []ocr.Line
	for _, tl := range tls {
		if strings.TrimSpace(tl.Text) == "" {
			continue
		}
		l := ocr.Line{Text: tl.Text, Confidence: tl.Confidence, Box: ocr.RectQuad(tl.Box.Add(off)), Words: make([]ocr.Word, len(tl.Words))}
		for k, w := range tl.Words {
			l.Words[k] = ocr.Word{Text: w.Text, Confidence: w.Confidence, Box: ocr.RectQuad(w.Box.Add(off))}
		}
		lines = append(lines, l)
	}
	return lines, nil
}
