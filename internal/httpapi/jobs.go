package httpapi

import (
	"errors"
	"io"
	"net/http"
	"os"

	"github.com/visionserve/visionserve/internal/auth"
	"github.com/visionserve/visionserve/internal/jobs"
)

// HeaderIdempotencyKey makes POST /v1/jobs safe to retry: the same key
// and request from the same principal return the job already created.
const HeaderIdempotencyKey = "Idempotency-Key"

// multipartJobOverhead is what multipart framing may add to a job's files.
const multipartJobOverhead = 1 << 20

func (s *Server) jobRoutes() []Route {
	submitTimeout := jobs.DefaultConfig().SubmitTimeout
	if s.cfg.Jobs != nil {
		submitTimeout = s.cfg.Jobs.Config().SubmitTimeout
	}
	return []Route{
		{Method: http.MethodPost, Path: "/v1/jobs", Handler: s.handleSubmitJob, Timeout: submitTimeout},
		{Method: http.MethodGet, Path: "/v1/jobs/{id}", Handler: s.handleGetJob},
		{Method: http.MethodGet, Path: "/v1/jobs/{id}/result", Handler: s.handleJobResult},
		{Method: http.MethodPost, Path: "/v1/jobs/{id}/cancel", Handler: s.handleCancelJob},
		{Method: http.MethodDelete, Path: "/v1/jobs/{id}", Handler: s.handleDeleteJob},
	}
}

func (s *Server) jobsOrError(w http.ResponseWriter, r *http.Request) *jobs.Manager {
	if s.cfg.Jobs == nil {
		s.writeError(w, r, jobs.ErrDisabled)
	}
	return s.cfg.Jobs
}

func (s *Server) handleSubmitJob(w http.ResponseWriter, r *http.Request) {
	m := s.jobsOrError(w, r)
	if m == nil {
		return
	}
	release, err := m.Upload(jobOwner(r))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	defer release()
	cfg := m.Config()
	if r.ContentLength > cfg.MaxBytes+multipartJobOverhead {
		s.writeError(w, r, &http.MaxBytesError{Limit: cfg.MaxBytes})
		return
	}
	until, _ := r.Context().Deadline()
	body, stop := jobs.MinRate(r.Body, http.NewResponseController(w), cfg.MinUploadRate, cfg.UploadGrace, until)
	sub, err := jobs.ParseRequest(r.Header.Get("Content-Type"), r.URL.Query(), r.Header.Get(HeaderIdempotencyKey),
		http.MaxBytesReader(w, readCloser{body, r.Body}, cfg.MaxBytes+multipartJobOverhead),
		jobs.RequestLimits{MaxItems: cfg.MaxItems, MaxBytes: cfg.MaxBytes})
	if err == nil {
		// Only a complete upload gets the request's deadline back: after
		// a failed one, the server's drain of the unread body must fail at
		// once, not wait for a client that stopped sending.
		stop()
	}
	if errors.Is(err, os.ErrDeadlineExceeded) && !errors.Is(err, jobs.ErrUploadTooSlow) {
		err = errDeadline // the upload outlived jobs.submit_timeout
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	st, created, err := m.Submit(r.Context(), jobOwner(r), sub)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	code := http.StatusAccepted
	if !created {
		code = http.StatusOK
		w.Header().Set("Idempotent-Replayed", "true")
	}
	w.Header().Set("Location", st.Links.Self)
	writeJSON(w, code, st)
}

func (s *Server) handleGetJob(w http.ResponseWriter, r *http.Request) {
	m := s.jobsOrError(w, r)
	if m == nil {
		return
	}
	st, err := m.Get(r.Context(), owner(r), r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

func (s *Server) handleJobResult(w http.ResponseWriter, r *http.Request) {
	m := s.jobsOrError(w, r)
	if m == nil {
		return
	}
	res, err := m.Result(r.Context(), owner(r), r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

func (s *Server) handleCancelJob(w http.ResponseWriter, r *http.Request) {
	m := s.jobsOrError(w, r)
	if m == nil {
		return
	}
	st, err := m.Cancel(r.Context(), owner(r), r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

func (s *Server) handleDeleteJob(w http.ResponseWriter, r *http.Request) {
	m := s.jobsOrError(w, r)
	if m == nil {
		return
	}
	if err := m.Delete(r.Context(), owner(r), r.PathValue("id")); err != nil {
		s.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// jobOwner is who submits a job: the principal, and its tenant for the
// tenant's share of the queue.
func jobOwner(r *http.Request) jobs.Owner {
	p := auth.PrincipalFrom(r.Context())
	if p == nil {
		p = &auth.Anonymous
	}
	return jobs.Owner{ID: p.ID, Tenant: p.Tenant}
}

// readCloser is a reader in front of a request body, closed as the body.
type readCloser struct {
	io.Reader
	io.Closer
}
