package httpapi

import (
	"errors"
	"net/http"
	"os"
	"time"

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
	release, ok := m.TryUpload()
	if !ok {
		writeProblem(w, r, Problem{Type: problemBase + "too-many-uploads", Status: http.StatusTooManyRequests,
			Detail: "other job submissions are being read; retry after the delay in Retry-After"}, 5*time.Second)
		return
	}
	defer release()
	cfg := m.Config()
	if r.ContentLength > cfg.MaxBytes+multipartJobOverhead {
		s.writeError(w, r, &http.MaxBytesError{Limit: cfg.MaxBytes})
		return
	}
	body := http.MaxBytesReader(w, r.Body, cfg.MaxBytes+multipartJobOverhead)
	sub, err := jobs.ParseRequest(r.Header.Get("Content-Type"), r.URL.Query(), r.Header.Get(HeaderIdempotencyKey), body,
		jobs.RequestLimits{MaxItems: cfg.MaxItems, MaxBytes: cfg.MaxBytes})
	if errors.Is(err, os.ErrDeadlineExceeded) {
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
