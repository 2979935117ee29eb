package httpapi

import (
	"bytes"
	"context"
	"image/png"
	"mime"
	"net/http"
	"strconv"

	"github.com/visionserve/visionserve/internal/imageio"
)

// HeaderPageCount is the number of pages of the input a preview was
// taken from.
const HeaderPageCount = "X-Page-Count"

// handlePreview answers POST /v1/ocr/preview: one page of an image as
// the OCR pipeline decodes it (the same decoder, limits and orientation),
// as PNG, so that a client can draw the result's boxes over it in the
// same coordinates, whatever the input's format (browsers show no TIFF).
// A PDF's page is rendered as a job reads it (jobs.Manager.PDFPage), in
// the coordinates of the job's result.
func (s *Server) handlePreview(w http.ResponseWriter, r *http.Request) {
	q, err := checkQuery(r, "page")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	page := 0
	if v := q.get("page"); v != "" {
		if page, err = strconv.Atoi(v); err != nil || page < 0 {
			s.writeError(w, r, badRequestf("page=%q: want a page index (0 is the first)", v))
			return
		}
	}
	lim := s.cfg.OCR.Limits()
	var in upload
	var release func()
	if isPDFBody(r) {
		in.Data, release, err = bodyBytes(w, r, lim.MaxBytes)
	} else {
		in, release, err = s.readImage(w, r, lim.MaxBytes)
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	defer release()
	var out []byte
	pages := 0
	err = s.cfg.Scheduler.Run(r.Context(), func(ctx context.Context) (err error) {
		if isPDFBody(r) {
			out, pages, err = s.pdfPage(ctx, in.Data, page)
			return err
		}
		out, pages, err = imagePage(ctx, in, lim, page)
		return err
	})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "image/png")
	h.Set("Cache-Control", "no-store")
	h.Set(HeaderPageCount, strconv.Itoa(pages))
	_, _ = w.Write(out)
}

// imagePage decodes page of an image as OCR does and encodes it as PNG.
func imagePage(ctx context.Context, in upload, lim imageio.Limits, page int) ([]byte, int, error) {
	doc, err := imageio.Open(in.Data, in.Declared, lim)
	if err != nil {
		return nil, 0, err
	}
	pages := len(doc.Pages)
	if page >= pages {
		return nil, pages, badRequestf("page=%d of a %d-page image", page, pages)
	}
	img, err := doc.Decode(ctx, page)
	if err != nil {
		return nil, pages, err
	}
	var out bytes.Buffer
	enc := png.Encoder{CompressionLevel: png.BestSpeed}
	err = enc.Encode(&out, img)
	return out.Bytes(), pages, err
}

// pdfPage renders page of a PDF as a job reads it; a server without jobs
// reads no PDF.
func (s *Server) pdfPage(ctx context.Context, data []byte, page int) ([]byte, int, error) {
	if s.cfg.Jobs == nil {
		return nil, 0, &imageio.Error{Kind: imageio.ErrUnsupported, Detail: "PDFs are read as jobs, and this server has no jobs (jobs.dir)"}
	}
	return s.cfg.Jobs.PDFPage(ctx, data, page)
}

// isPDFBody reports whether r's body is declared a PDF.
func isPDFBody(r *http.Request) bool {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return mt == "application/pdf"
}
