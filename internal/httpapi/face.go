package httpapi

import (
	"mime"
	"net/http"

	"github.com/visionserve/visionserve/internal/auth"
	"github.com/visionserve/visionserve/internal/face"
	"github.com/visionserve/visionserve/internal/gallery"
)

// faceRoutes are the face recognition endpoints. They are always routed,
// so the API description holds for every server; without face models they
// answer 501.
func (s *Server) faceRoutes() []Route {
	return []Route{
		{Method: http.MethodPost, Path: "/v1/faces/detect", Handler: s.handleFaceDetect, Admit: true},
		{Method: http.MethodPost, Path: "/v1/faces/verify", Handler: s.handleFaceVerify, Admit: true},
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
	q, err := checkQuery(r, "max_faces")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	maxFaces, err := q.positive("max_faces")
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
	q, err := checkQuery(r, "threshold")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	threshold, err := q.number("threshold")
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
	if _, err := checkQuery(r); err != nil {
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
	if _, err := checkQuery(r); err != nil {
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
	if _, err := checkQuery(r); err != nil {
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
	if _, err := checkQuery(r); err != nil {
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
	opt, err := identifyOptions(r)
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

// identifyOptions reads identify's query parameters.
func identifyOptions(r *http.Request) (opt face.IdentifyOptions, err error) {
	q, err := checkQuery(r, "top_k", "max_faces", "threshold")
	if err != nil {
		return opt, err
	}
	if opt.TopK, err = q.positive("top_k"); err != nil {
		return opt, err
	}
	if opt.MaxFaces, err = q.positive("max_faces"); err != nil {
		return opt, err
	}
	opt.Threshold, err = q.number("threshold")
	return opt, err
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
