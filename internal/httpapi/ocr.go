package httpapi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"sync"

	"github.com/visionserve/visionserve/internal/failure"
	"github.com/visionserve/visionserve/internal/imageio"
	"github.com/visionserve/visionserve/internal/ocr"
	"github.com/visionserve/visionserve/internal/render"
)

// Response headers that say which model version answered.
const (
	HeaderModelName    = "X-Model-Name"
	HeaderModelVersion = "X-Model-Version"
)

// multipartOverhead is what a multipart envelope may add to the image
// bytes (boundaries, part headers, other small fields).
const multipartOverhead = 64 << 10

func (s *Server) handleOCR(w http.ResponseWriter, r *http.Request) {
	q, err := checkQuery(r, "model", "version", "lang", "mode", "rotate", "dewarp", "format")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	opt, format, err := ocrOptions(url.Values(q), r.Header.Get("Accept"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if v := r.Header.Get(HeaderModelVersion); v != "" && opt.Version == "" {
		opt.Version = v
	}
	if h := s.cfg.StickyHeader; h != "" {
		opt.Key = r.Header.Get(h)
	}
	in, release, err := s.readImage(w, r, s.cfg.OCR.Limits().MaxBytes)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	defer release()
	res, err := s.cfg.OCR.Recognize(r.Context(), ocr.Input(in), opt)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	// Rendered whole before the status is sent, so a format that fails
	// (PAGE XML of several pages) is still answered with a problem.
	var body bytes.Buffer
	if err := format.Render(r.Context(), &body, res, render.InputPages(ocr.Input(in), s.cfg.OCR.Limits())); err != nil {
		s.writeError(w, r, err)
		return
	}
	h := w.Header()
	h.Set(HeaderModelName, res.Model.Name)
	h.Set(HeaderModelVersion, res.Model.Version)
	h.Set("Server-Timing", serverTiming(res.TimingMS))
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Type", format.ContentType())
	_, _ = w.Write(body.Bytes())
}

// ocrOptions reads the query and the format (formatOf).
func ocrOptions(q url.Values, accept string) (ocr.Options, render.Format, error) {
	opt, err := ocr.Params{Model: q.Get("model"), Version: q.Get("version"), Lang: q.Get("lang"),
		Mode: q.Get("mode"), Rotate: q.Get("rotate"), Dewarp: q.Get("dewarp")}.Options()
	if err != nil {
		return opt, render.Format{}, err
	}
	f, err := formatOf(q.Get("format"), accept)
	return opt, f, err
}

// formatOf is the output format a request asks for: format=, else the
// Accept header's (render.ForAccept), else JSON.
func formatOf(name, accept string) (render.Format, error) {
	if name == "" {
		if f, ok := render.ForAccept(accept); ok {
			return f, nil
		}
	}
	return render.Lookup(name)
}

// upload is an image read from a request: its bytes and the type the
// client declared. It converts to ocr.Input and face.Input.
type upload struct {
	Data     []byte
	Declared imageio.Format
}

// readImage reads the image from a raw body or the multipart field
// "image", within limit bytes. release returns the buffer to the pool once
// the caller no longer needs the bytes.
func (s *Server) readImage(w http.ResponseWriter, r *http.Request, limit int64) (upload, func(), error) {
	ct := r.Header.Get("Content-Type")
	if mt, _, _ := mime.ParseMediaType(ct); mt == "multipart/form-data" {
		if r.ContentLength > limit+multipartOverhead {
			return upload{}, nil, &http.MaxBytesError{Limit: limit}
		}
		r.Body = http.MaxBytesReader(w, r.Body, limit+multipartOverhead)
		parts, release, err := readParts(r, limit, "image")
		return parts["image"], release, err
	}
	declared, err := imageio.CheckMediaType(ct)
	if err != nil {
		return upload{}, nil, err
	}
	data, release, err := bodyBytes(w, r, limit)
	if err != nil {
		return upload{}, nil, err
	}
	return upload{Data: data, Declared: declared}, release, nil
}

// bufPool recycles request buffers. Buffers that grew past maxPooled are
// dropped so one large upload does not pin its memory forever.
var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

const maxPooled = 4 << 20

func readAll(ctx context.Context, r io.Reader, sizeHint int64) ([]byte, func(), error) {
	buf := bufPool.Get().(*bytes.Buffer)
	buf.Reset()
	release := func() {
		if buf.Cap() <= maxPooled {
			bufPool.Put(buf)
		}
	}
	if sizeHint > 0 {
		buf.Grow(int(sizeHint) + bytes.MinRead)
	}
	if _, err := buf.ReadFrom(r); err != nil {
		release()
		var mbe *http.MaxBytesError
		switch {
		case errors.As(err, &mbe):
			return nil, nil, err
		case errors.Is(err, os.ErrDeadlineExceeded):
			return nil, nil, errDeadline
		case ctx.Err() != nil:
			return nil, nil, ctx.Err()
		}
		return nil, nil, badRequestf("reading the request body: %v", err)
	}
	return buf.Bytes(), release, nil
}

// writeError answers with the problem for err. A context error is
// resolved to its cause, so a passed deadline is a 504 and a departed
// client is counted as such.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		if cause := context.Cause(r.Context()); cause != nil {
			err = cause
		}
	}
	p, retry := problemFor(err)
	// Waits caused by the scheduler get its estimate; others (rate limits,
	// the job queue) carry their own.
	if s.cfg.Scheduler != nil && failure.SchedulerWait(err) {
		retry = s.cfg.Scheduler.RetryAfter()
	}
	if p.Status >= 500 && p.Status != http.StatusServiceUnavailable && p.Status != http.StatusGatewayTimeout && p.Status != http.StatusNotImplemented {
		s.log.ErrorContext(r.Context(), "request failed", "path", r.URL.Path, "err", err)
	}
	writeProblem(w, r, p, retry)
}

// serverTiming renders stage timings as a Server-Timing header, which
// browser developer tools display.
func serverTiming(ms map[string]float64) string {
	keys := make([]string, 0, len(ms))
	for k := range ms {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s;dur=%.1f", k, ms[k])
	}
	return strings.Join(parts, ", ")
}
