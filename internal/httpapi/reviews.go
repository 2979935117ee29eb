package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"

	"github.com/visionserve/visionserve/internal/imageio"
	"github.com/visionserve/visionserve/internal/review"
)

// reviewRoutes store and export reviewed OCR lines (docs/console.md). They
// are always routed; without a review store they answer 501.
func (s *Server) reviewRoutes() []Route {
	return []Route{
		{Method: http.MethodPost, Path: "/v1/reviews", Handler: s.handleReviewCreate, Admit: true},
		{Method: http.MethodGet, Path: "/v1/reviews", Handler: s.handleReviewList},
		{Method: http.MethodGet, Path: "/v1/reviews/export", Handler: s.handleReviewExport},
		{Method: http.MethodGet, Path: "/v1/reviews/{id}", Handler: s.handleReviewGet},
		{Method: http.MethodGet, Path: "/v1/reviews/{id}/image", Handler: s.handleReviewImage},
		{Method: http.MethodDelete, Path: "/v1/reviews/{id}", Handler: s.handleReviewDelete},
	}
}

// reviewBody is the body of POST /v1/reviews: the image the line was
// read from (base64) and the review's fields.
type reviewBody struct {
	Image       []byte        `json:"image"`
	ContentType string        `json:"content_type"`
	Corrected   *string       `json:"corrected"`
	Text        string        `json:"text"`
	Confidence  float64       `json:"confidence"`
	Review      string        `json:"review"`
	Model       review.Model  `json:"model"`
	Source      review.Source `json:"source"`
}

// reviewAnswer is a review as the routes answer it: its fields and where
// its line image is.
type reviewAnswer struct {
	review.Review
	Links struct {
		Self  string `json:"self"`
		Image string `json:"image"`
	} `json:"links"`
}

func answer(r review.Review) reviewAnswer {
	a := reviewAnswer{Review: r}
	a.Links.Self = "/v1/reviews/" + r.ID
	a.Links.Image = a.Links.Self + "/image"
	return a
}

// reviewsOrError returns the review core (ErrDisabled without one) and
// the query checked against params; on failure it has answered.
func (s *Server) reviewsOrError(w http.ResponseWriter, r *http.Request, params ...string) (*review.Service, query, bool) {
	var q query
	err := review.ErrDisabled
	if s.cfg.Reviews != nil {
		q, err = checkQuery(r, params...)
	}
	if err != nil {
		s.writeError(w, r, err)
		return nil, nil, false
	}
	return s.cfg.Reviews, q, true
}

func (s *Server) handleReviewCreate(w http.ResponseWriter, r *http.Request) {
	rs, _, ok := s.reviewsOrError(w, r)
	if !ok {
		return
	}
	// Base64 takes 4 bytes for 3; the fields are small.
	limit := rs.Limits().MaxBytes
	max := limit/3*4 + 8 + multipartOverhead
	if r.ContentLength > max {
		s.writeError(w, r, &http.MaxBytesError{Limit: limit})
		return
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, max))
	dec.DisallowUnknownFields()
	var b reviewBody
	if err := dec.Decode(&b); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			err = &http.MaxBytesError{Limit: limit}
		} else {
			err = badRequestf("body: %v (want the JSON object described in /openapi.json)", err)
		}
		s.writeError(w, r, err)
		return
	}
	if len(b.Image) == 0 || b.Corrected == nil {
		s.writeError(w, r, badRequestf(`body: "image" (base64) and "corrected" are required`))
		return
	}
	var declared imageio.Format
	if mt, _, _ := mime.ParseMediaType(b.ContentType); mt == "application/pdf" {
		// A PDF page: the reviews core renders it (review.Config.PDFPage).
		if !imageio.IsPDF(b.Image) {
			s.writeError(w, r, &imageio.Error{Kind: imageio.ErrUndecodable, Detail: "declared application/pdf but the image does not start with %PDF-"})
			return
		}
	} else if b.ContentType != "" {
		var err error
		if declared, err = imageio.CheckMediaType(b.ContentType); err != nil {
			s.writeError(w, r, err)
			return
		}
	}
	in := review.Input{Data: b.Image, Declared: declared, Review: review.Review{
		Tenant: tenantOf(r), Author: owner(r), Model: b.Model, Text: b.Text, Confidence: b.Confidence,
		Tier: b.Review, Corrected: *b.Corrected, Source: b.Source,
	}}
	rv, err := rs.Create(r.Context(), in)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	a := answer(rv)
	w.Header().Set("Location", a.Links.Self)
	writeJSON(w, http.StatusCreated, a)
}

func (s *Server) handleReviewList(w http.ResponseWriter, r *http.Request) {
	rs, q, ok := s.reviewsOrError(w, r, "page_size", "page_token")
	if !ok {
		return
	}
	size, err := q.positive("page_size")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	list, next, err := rs.List(r.Context(), tenantOf(r), review.Page{After: q.get("page_token"), Limit: size})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := struct {
		Reviews       []reviewAnswer `json:"reviews"`
		NextPageToken string         `json:"next_page_token,omitempty"`
	}{Reviews: []reviewAnswer{}, NextPageToken: next}
	for _, rv := range list {
		out.Reviews = append(out.Reviews, answer(rv))
	}
	writeJSON(w, http.StatusOK, out)
}

// reviewOf returns the review the path names, of the caller's tenant; on
// failure it has answered.
func (s *Server) reviewOf(w http.ResponseWriter, r *http.Request) (review.Review, bool) {
	rs, _, ok := s.reviewsOrError(w, r)
	if !ok {
		return review.Review{}, false
	}
	rv, err := rs.Get(r.Context(), tenantOf(r), r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return review.Review{}, false
	}
	return rv, true
}

func (s *Server) handleReviewGet(w http.ResponseWriter, r *http.Request) {
	if rv, ok := s.reviewOf(w, r); ok {
		writeJSON(w, http.StatusOK, answer(rv))
	}
}

func (s *Server) handleReviewImage(w http.ResponseWriter, r *http.Request) {
	rv, ok := s.reviewOf(w, r)
	if !ok {
		return
	}
	h := w.Header()
	h.Set("Content-Type", "image/png")
	h.Set("Content-Length", strconv.Itoa(len(rv.Image)))
	h.Set("Cache-Control", "private, max-age=3600") // a review's image never changes
	_, _ = w.Write(rv.Image)
}

func (s *Server) handleReviewDelete(w http.ResponseWriter, r *http.Request) {
	rs, _, ok := s.reviewsOrError(w, r)
	if !ok {
		return
	}
	if err := rs.Delete(r.Context(), tenantOf(r), r.PathValue("id")); err != nil {
		s.writeError(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
}

// handleReviewExport streams the tenant's reviews as the archive
// `visionserve calibrate` reads. Once the archive has started, a failure
// can only cut it short: it is logged and the connection aborted, so the
// client sees a broken transfer rather than a shorter archive.
func (s *Server) handleReviewExport(w http.ResponseWriter, r *http.Request) {
	rs, q, ok := s.reviewsOrError(w, r, "format", "model")
	if !ok {
		return
	}
	format, ct, err := review.ExportFormat(q.get("format"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	h := w.Header()
	h.Set("Content-Type", ct)
	h.Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", "reviews."+format))
	h.Set("Cache-Control", "no-store")
	sw := &startWriter{w: w}
	n, err := rs.Export(r.Context(), tenantOf(r), format, review.ExportFilter{Model: q.get("model")}, sw)
	switch {
	case err != nil && !sw.started:
		h.Del("Content-Disposition")
		s.writeError(w, r, err)
	case err != nil:
		// Abort the connection: a clean end would make a cut-off archive
		// look complete (a tar ends at any entry boundary).
		s.log.WarnContext(r.Context(), "review export cut short", "reviews", n, "err", err)
		panic(http.ErrAbortHandler)
	}
}

// startWriter passes writes through and records whether any was made, so
// a handler knows whether it may still answer with a problem.
type startWriter struct {
	w       io.Writer
	started bool
}

func (s *startWriter) Write(p []byte) (int, error) {
	s.started = true
	return s.w.Write(p)
}
