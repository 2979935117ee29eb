package httpapi

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"

	"github.com/visionserve/visionserve/internal/auth"
	"github.com/visionserve/visionserve/internal/jobs"
	"github.com/visionserve/visionserve/internal/render"
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

// handleJobResult answers a finished job's result: the JSON result as it
// always was, or with format= (or Accept) any registered format, streamed
// from the store page by page; page= narrows it to one page.
func (s *Server) handleJobResult(w http.ResponseWriter, r *http.Request) {
	m := s.jobsOrError(w, r)
	if m == nil {
		return
	}
	q, err := checkQuery(r, "format", "page")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	f, err := formatOf(q.get("format"), r.Header.Get("Accept"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	page, one, err := q.index("page")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if !one {
		page = jobs.AllPages
	}
	id := r.PathValue("id")
	if f.Name == render.Default {
		res, err := m.ResultPage(r.Context(), owner(r), id, page)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, res)
		return
	}
	name := id
	if one {
		name += "-page-" + strconv.Itoa(page)
	}
	out := &lazyHeader{w: w, header: map[string]string{
		"Content-Type":        f.ContentType(),
		"Cache-Control":       "no-store",
		"Content-Disposition": fmt.Sprintf("inline; filename=%q", name+"."+f.Ext),
	}}
	err = m.Render(r.Context(), owner(r), id, f, page, out)
	switch {
	case err == nil:
		out.start()
	case !out.started:
		s.writeError(w, r, err)
	default:
		// Part of the document is sent: only a cut connection tells the
		// client it is incomplete (a chunked body would end cleanly).
		if r.Context().Err() == nil {
			s.log.WarnContext(r.Context(), "job result cut short", "job", id, "format", f.Name, "err", err)
		}
		panic(http.ErrAbortHandler)
	}
}

// lazyHeader sends the status and headers of a 200 with the first byte of
// the body, so that an error found before then is still answered with a
// problem.
type lazyHeader struct {
	w       http.ResponseWriter
	header  map[string]string
	started bool
}

func (l *lazyHeader) start() {
	if l.started {
		return
	}
	l.started = true
	for k, v := range l.header {
		l.w.Header().Set(k, v)
	}
	l.w.WriteHeader(http.StatusOK)
}

func (l *lazyHeader) Write(b []byte) (int, error) {
	l.start()
	return l.w.Write(b)
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
