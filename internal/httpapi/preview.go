package httpapi

import (
	"bytes"
	"context"
	"image/png"
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
	in, release, err := s.readImage(w, r, lim.MaxBytes)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	defer release()
	var out bytes.Buffer
	pages := 0
	err = s.cfg.Scheduler.Run(r.Context(), func(ctx context.Context) error {
		doc, err := imageio.Open(in.Data, in.Declared, lim)
		if err != nil {
			return err
		}
		if pages = len(doc.Pages); page >= pages {
			return badRequestf("page=%d of a %d-page image", page, pages)
		}
		img, err := doc.Decode(ctx, page)
		if err != nil {
			return err
		}
		enc := png.Encoder{CompressionLevel: png.BestSpeed}
		return enc.Encode(&out, img)
	})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "image/png")
	h.Set("Cache-Control", "no-store")
	h.Set(HeaderPageCount, strconv.Itoa(pages))
	_, _ = w.Write(out.Bytes())
}
