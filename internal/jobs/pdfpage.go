package jobs

import (
	"context"
	"errors"

	"github.com/visionserve/visionserve/internal/imageio"
)

// PDFPage renders page (0 is the first) of a PDF as a job reads it, and
// returns it as PNG with the document's page count: the image a job's
// OCR of that page sees, at the same resolution (PageDPI), so the boxes of
// a job's result lie on it. It serves the console's page previews and the
// reviews of a PDF's lines. The caller holds a worker; the rendering runs
// within jobs.page_timeout and every renderer limit, and the document
// stays in memory (NewPDFFile).
func (m *Manager) PDFPage(ctx context.Context, data []byte, page int) ([]byte, int, error) {
	in := m.inputs
	if in.raster == nil {
		return nil, 0, inputError(imageio.ErrUnsupported, "this server cannot rasterise PDFs (poppler-utils is not installed)")
	}
	if !imageio.IsPDF(data) {
		return nil, 0, inputError(imageio.ErrUndecodable, "declared application/pdf but the data does not start with %%PDF-")
	}
	doc, err := NewPDFFile(data)
	if err != nil {
		return nil, 0, err
	}
	defer doc.Close()
	ctx, cancel := context.WithTimeout(ctx, m.cfg.PageTimeout)
	defer cancel()
	sizes, err := in.raster.Pages(ctx, doc, m.cfg.MaxPages)
	if errors.Is(err, ErrPDF) {
		return nil, 0, inputError(imageio.ErrUndecodable, "%v", err)
	}
	if err != nil {
		return nil, 0, err
	}
	if len(sizes) > m.cfg.MaxPages {
		return nil, 0, errorf(ErrTooLarge, "more than %d pages; the limit is %d per job", m.cfg.MaxPages, m.cfg.MaxPages)
	}
	if page < 0 || page >= len(sizes) {
		return nil, len(sizes), errorf(ErrBadRequest, "page %d of a %d-page PDF (0 is the first)", page, len(sizes))
	}
	png, err := in.raster.Render(ctx, doc, page+1, PageDPI(sizes[page], m.cfg.PDF.DPI, in.limits.MaxPixels))
	if errors.Is(err, ErrPDF) {
		return nil, 0, inputError(imageio.ErrUndecodable, "page %d: %v", page, err)
	}
	return png, len(sizes), err
}
