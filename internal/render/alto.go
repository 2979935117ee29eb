package render

import (
	"context"
	"image"
	"io"
	"strconv"

	"github.com/visionserve/visionserve/internal/ocr"
)

func init() { Register(Format{Name: "alto", Ext: "xml", Renderer: altoRenderer{}}) }

// altoRenderer writes ALTO v4 (https://www.loc.gov/standards/alto/),
// valid against the official 4.0 to 4.4 schemas: Page, PrintSpace,
// TextBlock, TextLine, String with HPOS/VPOS/WIDTH/HEIGHT in pixels and
// WC (the word's confidence in [0,1]), SP between words. A page's PC is
// its confidence; a block on a turned page carries ROTATION (degrees
// counter-clockwise), and its lines and words the upright bounding boxes
// of their quads.
type altoRenderer struct{}

func (altoRenderer) ContentType() string { return "application/xml; charset=utf-8" }

const altoHead = `<?xml version="1.0" encoding="UTF-8"?>
<alto xmlns="http://www.loc.gov/standards/alto/ns-v4#" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:schemaLocation="http://www.loc.gov/standards/alto/ns-v4# http://www.loc.gov/alto/v4/alto-4-4.xsd" SCHEMAVERSION="4.4">
 <Description>
  <MeasurementUnit>pixel</MeasurementUnit>
  <OCRProcessing ID="ocr">
   <ocrProcessingStep>
`

func (r altoRenderer) Render(ctx context.Context, w io.Writer, res *ocr.Result, _ Pages) error {
	return renderStream(ctx, r, w, res, nil)
}

// NewStream implements Streamer.
func (altoRenderer) NewStream(w io.Writer, doc Document) (Stream, error) {
	x := newStickyWriter(w)
	x.str(altoHead)
	x.str("    <processingStepSettings>model ", xmlText(doc.Model.Name), " version ", xmlText(doc.Model.Version), "</processingStepSettings>\n")
	x.str("    <processingSoftware>\n     <softwareName>visionserve</softwareName>\n    </processingSoftware>\n")
	x.str("   </ocrProcessingStep>\n  </OCRProcessing>\n </Description>\n <Layout>\n")
	return &altoStream{x}, x.err
}

type altoStream struct{ x *stickyWriter }

// Add implements Stream: one Page, or nothing for a page without a
// result.
func (s *altoStream) Add(_ context.Context, sp StreamPage) error {
	p, x := sp.Result, s.x
	if p == nil {
		return x.err
	}
	n := strconv.Itoa(sp.Number + 1)
	x.str(`  <Page ID="p`, n, `" PHYSICAL_IMG_NR="`, n, `" WIDTH="`, strconv.Itoa(p.Width), `" HEIGHT="`, strconv.Itoa(p.Height),
		`" PC="`, num(p.Confidence), `" PROCESSING="ocr">`, "\n")
	x.str(`   <PrintSpace HPOS="0" VPOS="0" WIDTH="`, strconv.Itoa(p.Width), `" HEIGHT="`, strconv.Itoa(p.Height), `">`, "\n")
	line, word := 0, 0
	for bi, b := range blocks(p) {
		x.str(`    <TextBlock ID="p`, n, "_b", strconv.Itoa(bi+1), `"`, altoBox(b.box))
		if p.Angle != 0 {
			x.str(` ROTATION="`, strconv.Itoa(p.Angle), `"`)
		}
		x.str(">\n")
		for _, l := range b.lines {
			if len(l.Words) == 0 {
				continue // ALTO needs a String in every TextLine
			}
			line++
			x.str(`     <TextLine ID="p`, n, "_l", strconv.Itoa(line), `"`, altoBox(clip(l.Box, p)), ">\n")
			for wi, wd := range l.Words {
				word++
				r := clip(wd.Box, p)
				if wi > 0 {
					prev := clip(l.Words[wi-1].Box, p)
					x.str(`      <SP WIDTH="`, strconv.Itoa(max(r.Min.X-prev.Max.X, 0)), `" HPOS="`, strconv.Itoa(prev.Max.X), `" VPOS="`, strconv.Itoa(prev.Min.Y), `"/>`, "\n")
				}
				x.str(`      <String ID="p`, n, "_w", strconv.Itoa(word), `"`, altoBox(r), ` CONTENT="`, xmlText(wd.Text), `" WC="`, num(wd.Confidence), `"/>`, "\n")
			}
			x.str("     </TextLine>\n")
		}
		x.str("    </TextBlock>\n")
	}
	x.str("   </PrintSpace>\n  </Page>\n")
	return x.err
}

// Close implements Stream.
func (s *altoStream) Close() error {
	s.x.str(" </Layout>\n</alto>\n")
	return s.x.flush()
}

func altoBox(r image.Rectangle) string {
	return ` HPOS="` + strconv.Itoa(r.Min.X) + `" VPOS="` + strconv.Itoa(r.Min.Y) + `" WIDTH="` + strconv.Itoa(r.Dx()) + `" HEIGHT="` + strconv.Itoa(r.Dy()) + `"`
}
