package render

import (
	"context"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/visionserve/visionserve/internal/ocr"
)

func init() { Register(Format{Name: "page", Ext: "xml", Renderer: pageRenderer{}}) }

// pageRenderer writes PAGE XML 2019-07-15 (PRImA's PcGts), valid against
// that schema: one Page with TextRegions, TextLines and Words whose Coords
// are their quads (integer points, clipped to the page) and whose
// TextEquiv carries the text and its confidence (conf, in [0,1]). A line's
// review tier is in its custom attribute, "review {tier:verify;}", in the
// custom-attribute convention Transkribus and OCR-D read. A PAGE document
// holds exactly one page, so a result of several pages is refused.
type pageRenderer struct{}

func (pageRenderer) ContentType() string { return "application/xml; charset=utf-8" }

const pageHead = `<?xml version="1.0" encoding="UTF-8"?>
<PcGts xmlns="http://schema.primaresearch.org/PAGE/gts/pagecontent/2019-07-15" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:schemaLocation="http://schema.primaresearch.org/PAGE/gts/pagecontent/2019-07-15 http://schema.primaresearch.org/PAGE/gts/pagecontent/2019-07-15/pagecontent.xsd">
`

func (pageRenderer) Render(_ context.Context, w io.Writer, res *ocr.Result, _ Pages) error {
	if len(res.Pages) != 1 {
		return fmt.Errorf("%w: format=page holds one page and this input has %d; use alto or hocr, or send the pages one by one", ocr.ErrBadOption, len(res.Pages))
	}
	p := &res.Pages[0]
	now := time.Now().UTC().Format(time.RFC3339)
	x := newStickyWriter(w)
	x.str(pageHead, " <Metadata>\n  <Creator>visionserve ", xmlText(res.Model.Name+" "+res.Model.Version), "</Creator>\n")
	x.str("  <Created>", now, "</Created>\n  <LastChange>", now, "</LastChange>\n </Metadata>\n")
	x.str(` <Page imageFilename="page-1" imageWidth="`, strconv.Itoa(p.Width), `" imageHeight="`, strconv.Itoa(p.Height), `"`)
	orient := ""
	if p.Angle != 0 {
		// PAGE's orientation: the clockwise turn that makes the content
		// upright, in (-180, 180].
		a := p.Angle % 360
		if a > 180 {
			a -= 360
		}
		orient = ` orientation="` + strconv.Itoa(a) + `"`
	}
	x.str(orient, ">\n")
	bs := blocks(p)
	if len(bs) > 0 {
		x.str("  <ReadingOrder>\n   <OrderedGroup id=\"ro\">\n")
		for bi := range bs {
			x.str(`    <RegionRefIndexed index="`, strconv.Itoa(bi), `" regionRef="r`, strconv.Itoa(bi+1), `"/>`, "\n")
		}
		x.str("   </OrderedGroup>\n  </ReadingOrder>\n")
	}
	for bi, b := range bs {
		rid := "r" + strconv.Itoa(bi+1)
		x.str(`  <TextRegion id="`, rid, `" type="paragraph"`, orient, ">\n")
		x.str(`   <Coords points="`, pagePoints(b.quad, p), `"/>`, "\n")
		texts := make([]string, len(b.lines))
		for li, l := range b.lines {
			texts[li] = l.Text
			lid := rid + "_l" + strconv.Itoa(li+1)
			x.str(`   <TextLine id="`, lid, `" custom="readingOrder {index:`, strconv.Itoa(li), `;} review {tier:`, xmlText(string(l.Review)), `;}">`, "\n")
			x.str(`    <Coords points="`, pagePoints(l.Box, p), `"/>`, "\n")
			for wi, wd := range l.Words {
				x.str(`    <Word id="`, lid, "_w", strconv.Itoa(wi+1), `">`, "\n")
				x.str(`     <Coords points="`, pagePoints(wd.Box, p), `"/>`, "\n")
				x.str(`     <TextEquiv conf="`, num(wd.Confidence), `"><Unicode>`, xmlText(wd.Text), "</Unicode></TextEquiv>\n    </Word>\n")
			}
			x.str(`    <TextEquiv conf="`, num(l.Confidence), `"><Unicode>`, xmlText(l.Text), "</Unicode></TextEquiv>\n   </TextLine>\n")
		}
		x.str(`   <TextEquiv><Unicode>`, xmlText(strings.Join(texts, "\n")), "</Unicode></TextEquiv>\n  </TextRegion>\n")
	}
	x.str(" </Page>\n</PcGts>\n")
	return x.flush()
}

// pagePoints is q as PAGE points: integer "x,y" pairs within the page.
func pagePoints(q ocr.Quad, p *ocr.Page) string {
	var b strings.Builder
	for i, pt := range q {
		if i > 0 {
			b.WriteByte(' ')
		}
		x := min(max(int(math.Round(pt[0])), 0), p.Width)
		y := min(max(int(math.Round(pt[1])), 0), p.Height)
		b.WriteString(strconv.Itoa(x) + "," + strconv.Itoa(y))
	}
	return b.String()
}
