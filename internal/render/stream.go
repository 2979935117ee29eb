package render

import (
	"context"
	"io"

	"github.com/visionserve/visionserve/internal/ocr"
)

// Streamer is implemented by the formats whose documents hold several
// pages and can be written one page at a time (text, hocr, alto, pdf,
// pdfa): a caller whose pages come one by one, such as a job's result
// read from its store, writes a document of any length holding only the
// page at hand. PAGE XML (one page) and the API's JSON do not stream.
type Streamer interface {
	// NewStream starts a document on w.
	NewStream(w io.Writer, doc Document) (Stream, error)
}

// Document is what a streamed document says before its first page.
type Document struct {
	// Model is the model named in the document's header or metadata.
	Model ocr.ModelRef
	// Pages is how many pages with a result will be added (hOCR's
	// ocr-number-of-pages).
	Pages int
}

// Stream is a document being written, page by page.
type Stream interface {
	// Add writes the next page.
	Add(ctx context.Context, p StreamPage) error
	// Close ends the document. It does not close the underlying writer.
	Close() error
}

// StreamPage is one page of a streamed document.
type StreamPage struct {
	// Number is the page's position in the whole document, from 0; the
	// formats number their pages with it (hOCR ppageno, ALTO
	// PHYSICAL_IMG_NR), so pages left out leave gaps rather than renumber
	// the rest.
	Number int
	// Result is the page as read, or nil for a page that could not be
	// read: text writes it as an empty page, a PDF as its image alone,
	// hOCR and ALTO (which need the page's size) leave it out.
	Result *ocr.Page
	// Image returns the page image; formats that show images call it once,
	// the others never. For a page without a Result, a nil Image or one
	// that fails leaves the page out; for a page with one, it is an error.
	Image func(ctx context.Context) (Image, error)
}

// renderStream renders a whole result through a format's stream: each
// page image is fetched from pages as the format asks for it.
func renderStream(ctx context.Context, s Streamer, w io.Writer, res *ocr.Result, pages Pages) error {
	st, err := s.NewStream(w, Document{Model: res.Model, Pages: len(res.Pages)})
	if err != nil {
		return err
	}
	for i := range res.Pages {
		if err := ctx.Err(); err != nil {
			return err
		}
		p := StreamPage{Number: i, Result: &res.Pages[i]}
		if pages != nil {
			p.Image = func(ctx context.Context) (Image, error) { return pages.Page(ctx, i) }
		}
		if err := st.Add(ctx, p); err != nil {
			return err
		}
	}
	return st.Close()
}
