package render

import (
	"context"
	"io"

	"github.com/visionserve/visionserve/internal/ocr"
	"github.com/visionserve/visionserve/internal/render/pdf"
)

func init() {
	Register(Format{Name: "pdf", Ext: "pdf", Renderer: pdfRenderer{}})
	Register(Format{Name: "pdfa", Ext: "pdf", Renderer: pdfRenderer{pdfa: true}})
}

// pdfRenderer writes a searchable PDF (package pdf): every page image of
// the input under its invisible, word-placed text. pdfa adds what PDF/A-2b
// asks of the document (XMP identification, an sRGB output intent).
type pdfRenderer struct{ pdfa bool }

func (pdfRenderer) ContentType() string { return "application/pdf" }

// Render streams the document: each page image is fetched, written and
// dropped before the next.
func (r pdfRenderer) Render(ctx context.Context, w io.Writer, res *ocr.Result, pages Pages) error {
	pw, err := pdf.NewWriter(w, pdf.Options{Model: res.Model, PDFA: r.pdfa})
	if err != nil {
		return err
	}
	for i := range res.Pages {
		if err := ctx.Err(); err != nil {
			return err
		}
		img, err := pages.Page(ctx, i)
		if err != nil {
			return err
		}
		if err := pw.AddPage(img, &res.Pages[i]); err != nil {
			return err
		}
	}
	return pw.Close()
}
