package httpapi

import (
	"errors"
	"io"
	"math"
	"mime"
	"net/http"
	"net/url"
	"strconv"

	"github.com/visionserve/visionserve/internal/auth"
	"github.com/visionserve/visionserve/internal/face"
	"github.com/visionserve/visionserve/internal/gallery"
	"github.com/visionserve/visionserve/internal/imageio"
)

// faceRoutes are the face recognition endpoints. They are always routed,
// so the API description holds for every server; without face models they
// answer 501.
func (s *Server) faceRoutes() []Route {
	return []Route{
		{Method: http.MethodPost, Path: "/v1/faces/detect", Handler: s.handleFaceDetect, Admit: true},
		{Method: http.MethodPost, Path: "/v1/faces/verify", Handler: s.handleFaceVerify, Admit: true, MaxBody: s.imageBody(2)},
		{Method: http.MethodPut, Path: "/v1/galleries/{gallery}", Handler: s.handleGalleryPut},
		{Method: http.MethodPost, Path: "/v1/galleries/{gallery}/subjects/{subject}/faces", Handler: s.handleEnroll, Admit: true},
		{Method: http.MethodGet, Path: "/v1/galleries/{gallery}/subjects/{subject}", Handler: s.handleSubjectGet},
		{Method: http.MethodDelete, Path: "/v1/galleries/{gallery}/subjects/{subject}", Handler: s.handleSubjectDelete},
		// Identify reads a gallery and changes nothing: inference scope,
		// where the rest of /v1/galleries/ needs galleries:write.
		{Method: http.MethodPost, Path: "/v1/galleries/{gallery}/identify", Handler: s.handleIdentify, Admit: true, Scope: auth.ScopeInfer},
	}
}

// faceService returns the face core, or ErrDisabled.
func (s *Server) faceService() (*face.Service, error) {
	if s.cfg.Face == nil {
		return nil, face.ErrDisabled
	}
	return s.cfg.Face, nil
}

func (s *Server) handleFaceDetect(w http.ResponseWriter, r *http.Request) {
	fs, err := s.faceService()
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	q := r.URL.Query()
	maxFaces, err := intParam(q, "max_faces")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	in, release, err := s.readImage(w, r, fs.Limits().MaxBytes)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	defer release()
	res, err := fs.Detect(r.Context(), face.Input(in), maxFaces)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	setFaceModels(w, res.Models)
	writeTimedJSON(w, http.StatusOK, res, res.TimingMS)
}

func (s *Server) handleFaceVerify(w http.ResponseWriter, r *http.Request) {
	fs, err := s.faceService()
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	threshold, err := floatParam(r.URL.Query(), "threshold")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	limit := fs.Limits().MaxBytes
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "multipart/form-data" {
		s.writeError(w, r, badRequestf("send a multipart/form-data body with image fields \"a\" and \"b\""))
		return
	}
	if r.ContentLength > 2*limit+multipartOverhead {
		s.writeError(w, r, &http.MaxBytesError{Limit: 2 * limit})
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 2*limit+multipartOverhead)
	parts, release, err := readParts(r, limit, "a", "b")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	defer release()
	res, err := fs.Verify(r.Context(), face.Input(parts["a"]), face.Input(parts["b"]), threshold)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	setFaceModels(w, res.Models)
	writeTimedJSON(w, http.StatusOK, res, res.TimingMS)
}

func (s *Server) handleGalleryPut(w http.ResponseWriter, r *http.Request) {
	fs, err := s.faceService()
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	g, created, err := fs.CreateGallery(r.Context(), r.PathValue("gallery"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	writeJSON(w, status, g)
}

func (s *Server) handleEnroll(w http.ResponseWriter, r *http.Request) {
	fs, err := s.faceService()
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	in, release, err := s.readImage(w, r, fs.Limits().MaxBytes)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	defer release()
	res, err := fs.Enroll(r.Context(), r.PathValue("gallery"), r.PathValue("subject"), face.Input(in))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	setFaceModels(w, res.Models)
	writeTimedJSON(w, http.StatusCreated, res, res.TimingMS)
}

// subjectResponse is the body of GET .../subjects/{subject}.
type subjectResponse struct {
	Gallery string             `json:"gallery"`
	Subject string             `json:"subject"`
	Faces   []gallery.FaceInfo `json:"faces"`
}

func (s *Server) handleSubjectGet(w http.ResponseWriter, r *http.Request) {
	fs, err := s.faceService()
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	g, sub := r.PathValue("gallery"), r.PathValue("subject")
	faces, err := fs.Subject(r.Context(), g, sub)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, subjectResponse{Gallery: g, Subject: sub, Faces: faces})
}

func (s *Server) handleSubjectDelete(w http.ResponseWriter, r *http.Request) {
	fs, err := s.faceService()
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if _, err := fs.DeleteSubject(r.Context(), r.PathValue("gallery"), r.PathValue("subject")); err != nil {
		s.writeError(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) handleIdentify(w http.ResponseWriter, r *http.Request) {
	fs, err := s.faceService()
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	q := r.URL.Query()
	var opt face.IdentifyOptions
	if opt.TopK, err = intParam(q, "top_k"); err == nil {
		if opt.MaxFaces, err = intParam(q, "max_faces"); err == nil {
			opt.Threshold, err = floatParam(q, "threshold")
		}
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	in, release, err := s.readImage(w, r, fs.Limits().MaxBytes)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	defer release()
	res, err := fs.Identify(r.Context(), r.PathValue("gallery"), face.Input(in), opt)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	setFaceModels(w, res.Models)
	writeTimedJSON(w, http.StatusOK, res, res.TimingMS)
}

// readParts reads the named image fields of a multipart body, each within
// limit bytes; other fields are skipped. Every name must be present.
func readParts(r *http.Request, limit int64, names ...string) (map[string]upload, func(), error) {
	mr, err := r.MultipartReader()
	if err != nil {
		return nil, nil, badRequestf("malformed multipart body: %v", err)
	}
	out := map[string]upload{}
	var releases []func()
	release := func() {
		for _, f := range releases {
			f()
		}
	}
	fail := func(err error) (map[string]upload, func(), error) {
		release()
		return nil, nil, err
	}
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	for len(out) < len(names) {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			for _, n := range names {
				if _, ok := out[n]; !ok {
					return fail(badRequestf("multipart body has no field named %q", n))
				}
			}
		}
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				return fail(&http.MaxBytesError{Limit: limit})
			}
			return fail(badRequestf("malformed multipart body: %v", err))
		}
		name := part.FormName()
		if !want[name] {
			continue
		}
		if _, dup := out[name]; dup {
			return fail(badRequestf("multipart field %q appears twice", name))
		}
		declared, err := imageio.CheckMediaType(part.Header.Get("Content-Type"))
		if err != nil {
			return fail(err)
		}
		data, rel, err := readAll(r.Context(), io.LimitReader(part, limit+1), 0)
		if err != nil {
			return fail(err)
		}
		releases = append(releases, rel)
		if int64(len(data)) > limit {
			return fail(&http.MaxBytesError{Limit: limit})
		}
		out[name] = upload{Data: data, Declared: declared}
	}
	return out, release, nil
}

// intParam reads an optional positive integer query parameter (0 if absent).
func intParam(q url.Values, name string) (int, error) {
	v := q.Get(name)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return 0, badRequestf("%s=%q: want a positive integer", name, v)
	}
	return n, nil
}

// floatParam reads an optional number query parameter (nil if absent).
func floatParam(q url.Values, name string) (*float64, error) {
	v := q.Get(name)
	if v == "" {
		return nil, nil
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return nil, badRequestf("%s=%q: want a number", name, v)
	}
	return &f, nil
}

// Response headers that say which model versions answered a face request,
// as "name/version" (the JSON field models has them too, with the
// embedder's id).
const (
	HeaderFaceDetector = "X-Face-Detector"
	HeaderFaceEmbedder = "X-Face-Embedder"
)

func setFaceModels(w http.ResponseWriter, m face.UsedModels) {
	w.Header().Set(HeaderFaceDetector, m.Detector.Name+"/"+m.Detector.Version)
	if m.Embedder != nil {
		w.Header().Set(HeaderFaceEmbedder, m.Embedder.Name+"/"+m.Embedder.Version)
	}
}

// writeTimedJSON answers with v as JSON and the stage timings as the
// Server-Timing header.
func writeTimedJSON(w http.ResponseWriter, status int, v any, timing map[string]float64) {
	if len(timing) > 0 {
		w.Header().Set("Server-Timing", serverTiming(timing))
	}
	writeJSON(w, status, v)
}
