package render

import (
	"context"
	"fmt"
	"io"

	"github.com/visionserve/visionserve/internal/ocr"
	"github.com/visionserve/visionserve/internal/render/pdf"
)

func init() {
	Register(Format{Name: "pdf", Ext: "pdf", Images: true, Renderer: pdfRenderer{}})
	Register(Format{Name: "pdfa", Ext: "pdf", Images: true, Renderer: pdfRenderer{pdfa: true}})
}

// pdfRenderer writes a searchable PDF (package pdf): every page image of
// the input under its invisible, word-placed text. pdfa adds what PDF/A-2b
// asks of the document (XMP identification, an sRGB output intent).
type pdfRenderer struct{ pdfa bool }

func (pdfRenderer) ContentType() string { return "application/pdf" }

// Render streams the document: each page image is fetched, written and
// dropped before the next.
func (r pdfRenderer) Render(ctx context.Context, w io.Writer, res *ocr.Result, pages Pages) error {
	return renderStream(ctx, r, w, res, pages)
}

// NewStream implements Streamer.
func (r pdfRenderer) NewStream(w io.Writer, doc Document) (Stream, error) {
	pw, err := pdf.NewWriter(w, pdf.Options{Model: doc.Model, PDFA: r.pdfa})
	if err != nil {
		return nil, err
	}
	return pdfStream{pw}, nil
}

type pdfStream struct{ w *pdf.Writer }

// Add implements Stream: the page's image under its text; a page without
// a result is its image alone, or nothing when its image cannot be had.
func (s pdfStream) Add(ctx context.Context, sp StreamPage) error {
	if sp.Image == nil {
		if sp.Result == nil {
			return nil
		}
		return fmt.Errorf("render: no image for page %d", sp.Number)
	}
	img, err := sp.Image(ctx)
	if err != nil {
		if sp.Result == nil && ctx.Err() == nil {
			return nil
		}
		return err
	}
	return s.w.AddPage(img, sp.Result)
}

// Close implements Stream.
func (s pdfStream) Close() error { return s.w.Close() }
