package render

import (
	"context"
	"fmt"
	"image"
	"io"
	"math"
	"strconv"

	"github.com/visionserve/visionserve/internal/ocr"
)

func init() { Register(Format{Name: "hocr", Ext: "hocr", Renderer: hocrRenderer{}}) }

// hocrRenderer writes hOCR 1.2 (http://kba.github.io/hocr-spec/1.2/) as
// XHTML 1.0 Transitional, as Tesseract does: ocr_page, ocr_carea, ocr_par,
// ocr_line and ocrx_word with bbox and, on words, x_wconf. What hOCR has
// no property for goes into x_visionserve_* properties: the quad of a box
// that is not upright, the line's confidence in [0,1] and its review tier.
type hocrRenderer struct{}

func (hocrRenderer) ContentType() string { return "application/xhtml+xml; charset=utf-8" }

const hocrHead = `<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN" "http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd">
<html xmlns="http://www.w3.org/1999/xhtml" xml:lang="en" lang="en">
 <head>
  <title>OCR</title>
  <meta http-equiv="Content-Type" content="text/html;charset=utf-8"/>
  <meta name="ocr-system" content="visionserve"/>
  <meta name="ocr-capabilities" content="ocr_page ocr_carea ocr_par ocr_line ocrx_word ocrp_wconf"/>
`

func (r hocrRenderer) Render(ctx context.Context, w io.Writer, res *ocr.Result, _ Pages) error {
	return renderStream(ctx, r, w, res, nil)
}

// NewStream implements Streamer.
func (hocrRenderer) NewStream(w io.Writer, doc Document) (Stream, error) {
	x := newStickyWriter(w)
	x.str(hocrHead)
	x.str(`  <meta name="ocr-number-of-pages" content="`, strconv.Itoa(doc.Pages), `"/>`, "\n")
	x.str(`  <meta name="visionserve-model" content="`, xmlText(doc.Model.Name+" "+doc.Model.Version), `"/>`, "\n")
	x.str(" </head>\n <body>\n")
	return &hocrStream{x}, x.err
}

type hocrStream struct{ x *stickyWriter }

// Add implements Stream: one ocr_page, or nothing for a page without a
// result.
func (s *hocrStream) Add(_ context.Context, sp StreamPage) error {
	p, x := sp.Result, s.x
	if p == nil {
		return x.err
	}
	n := sp.Number + 1
	x.str(`  <div class="ocr_page" id="page_`, strconv.Itoa(n), `" title="`,
		hocrBox(image.Rect(0, 0, p.Width, p.Height)), "; ppageno ", strconv.Itoa(sp.Number),
		"; x_visionserve_conf ", num(p.Confidence), `">`, "\n")
	line, word := 0, 0
	for bi, b := range blocks(p) {
		id := fmt.Sprintf("%d_%d", n, bi+1)
		x.str(`   <div class="ocr_carea" id="block_`, id, `" title="`, hocrBox(b.box), hocrQuad(b.quad), `">`, "\n")
		x.str(`    <p class="ocr_par" id="par_`, id, `" title="`, hocrBox(b.box), hocrQuad(b.quad), `">`, "\n")
		for _, l := range b.lines {
			line++
			x.str(`     <span class="ocr_line" id="line_`, strconv.Itoa(n), "_", strconv.Itoa(line), `" title="`,
				hocrBox(clip(l.Box, p)), hocrQuad(l.Box))
			if p.Angle != 0 {
				x.str("; textangle ", strconv.Itoa(p.Angle))
			}
			x.str("; x_visionserve_conf ", num(l.Confidence), "; x_visionserve_review ", string(l.Review), `">`)
			for wi, wd := range l.Words {
				word++
				if wi > 0 {
					x.str(" ")
				}
				x.str(`<span class="ocrx_word" id="word_`, strconv.Itoa(n), "_", strconv.Itoa(word), `" title="`,
					hocrBox(clip(wd.Box, p)), hocrQuad(wd.Box), "; x_wconf ", strconv.Itoa(int(math.Round(100*wd.Confidence))),
					`">`, xmlText(wd.Text), "</span>")
			}
			x.str("</span>\n")
		}
		x.str("    </p>\n   </div>\n")
	}
	x.str("  </div>\n")
	return x.err
}

// Close implements Stream.
func (s *hocrStream) Close() error {
	s.x.str(" </body>\n</html>\n")
	return s.x.flush()
}

func hocrBox(r image.Rectangle) string {
	return fmt.Sprintf("bbox %d %d %d %d", r.Min.X, r.Min.Y, r.Max.X, r.Max.Y)
}

// hocrQuad is the x_visionserve_quad property of a box that is not its
// own upright bounding box: its corners in reading order (the text's
// top-left, top-right, bottom-right, bottom-left).
func hocrQuad(q ocr.Quad) string {
	if isRect(q) {
		return ""
	}
	s := "; x_visionserve_quad"
	for _, p := range q {
		s += " " + num(p[0]) + " " + num(p[1])
	}
	return s
}
