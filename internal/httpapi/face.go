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
		{Method: http.MethodPost, Path: "/v1/faces/verify", Handler: s.handleFaceVerify, Admit: true, MaxBody: s.imageBody(2)},
		{Method: http.MethodGet, Path: "/v1/galleries", Handler: s.handleGalleryList},
		{Method: http.MethodPut, Path: "/v1/galleries/{gallery}", Handler: s.handleGalleryPut},
		{Method: http.MethodDelete, Path: "/v1/galleries/{gallery}", Handler: s.handleGalleryDelete},
		{Method: http.MethodGet, Path: "/v1/galleries/{gallery}/subjects", Handler: s.handleSubjectList},
		{Method: http.MethodPost, Path: "/v1/galleries/{gallery}/subjects/{subject}/faces", Handler: s.handleEnroll, Admit: true},
		{Method: http.MethodGet, Path: "/v1/galleries/{gallery}/subjects/{subject}", Handler: s.handleSubjectGet},
		{Method: http.MethodDelete, Path: "/v1/galleries/{gallery}/subjects/{subject}", Handler: s.handleSubjectDelete},
		// Identify reads a gallery and changes nothing: inference scope,
		// where the rest of /v1/galleries that is not GET needs
		// galleries:write.
		{Method: http.MethodPost, Path: "/v1/galleries/{gallery}/identify", Handler: s.handleIdentify, Admit: true, Scope: auth.ScopeInfer},
	}
}

// galleryRef names the request's gallery in its principal's tenant: a
// request can only ever name galleries of its own tenant.
func galleryRef(r *http.Request) gallery.Ref {
	return gallery.Ref{Tenant: tenantOf(r), Name: r.PathValue("gallery")}
}

// tenantOf is the tenant of r's principal: its credential's, or the
// default tenant for one that names none and with authentication off.
func tenantOf(r *http.Request) string {
	if p := auth.PrincipalFrom(r.Context()); p != nil {
		return p.Tenant
	}
	return gallery.DefaultTenant
}

// faceRequest returns the face core (ErrDisabled without one) and the
// request's query checked against the parameters the route reads; on
// failure it has answered and ok is false.
func (s *Server) faceRequest(w http.ResponseWriter, r *http.Request, params ...string) (fs *face.Service, q query, ok bool) {
	var err error
	if fs = s.cfg.Face; fs == nil {
		err = face.ErrDisabled
	} else {
		q, err = checkQuery(r, params...)
	}
	if err != nil {
		s.writeError(w, r, err)
		return nil, nil, false
	}
	return fs, q, true
}

func (s *Server) handleFaceDetect(w http.ResponseWriter, r *http.Request) {
	fs, q, ok := s.faceRequest(w, r, "max_faces")
	if !ok {
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
	fs, q, ok := s.faceRequest(w, r, "threshold")
	if !ok {
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
	fs, _, ok := s.faceRequest(w, r)
	if !ok {
		return
	}
	g, created, err := fs.CreateGallery(r.Context(), galleryRef(r))
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

func (s *Server) handleGalleryDelete(w http.ResponseWriter, r *http.Request) {
	fs, _, ok := s.faceRequest(w, r)
	if !ok {
		return
	}
	if _, err := fs.DeleteGallery(r.Context(), galleryRef(r)); err != nil {
		s.writeError(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) handleGalleryList(w http.ResponseWriter, r *http.Request) {
	s.serveList(w, r, func(fs *face.Service, page face.Page) (any, error) {
		return fs.ListGalleries(r.Context(), tenantOf(r), page)
	})
}

func (s *Server) handleSubjectList(w http.ResponseWriter, r *http.Request) {
	s.serveList(w, r, func(fs *face.Service, page face.Page) (any, error) {
		return fs.ListSubjects(r.Context(), galleryRef(r), page)
	})
}

// serveList answers a listing route with the page list returns for the
// request's page parameters.
func (s *Server) serveList(w http.ResponseWriter, r *http.Request, list func(*face.Service, face.Page) (any, error)) {
	fs, q, ok := s.faceRequest(w, r, "page_size", "page_token")
	if !ok {
		return
	}
	page, err := pageOf(q)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	res, err := list(fs, page)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// pageOf reads a listing's query parameters.
func pageOf(q query) (face.Page, error) {
	size, err := q.positive("page_size")
	return face.Page{Size: size, Token: q.get("page_token")}, err
}

func (s *Server) handleEnroll(w http.ResponseWriter, r *http.Request) {
	fs, _, ok := s.faceRequest(w, r)
	if !ok {
		return
	}
	in, release, err := s.readImage(w, r, fs.Limits().MaxBytes)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	defer release()
	res, err := fs.Enroll(r.Context(), galleryRef(r), r.PathValue("subject"), face.Input(in))
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
	fs, _, ok := s.faceRequest(w, r)
	if !ok {
		return
	}
	g, sub := galleryRef(r), r.PathValue("subject")
	faces, err := fs.Subject(r.Context(), g, sub)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, subjectResponse{Gallery: g.Name, Subject: sub, Faces: faces})
}

func (s *Server) handleSubjectDelete(w http.ResponseWriter, r *http.Request) {
	fs, _, ok := s.faceRequest(w, r)
	if !ok {
		return
	}
	if _, err := fs.DeleteSubject(r.Context(), galleryRef(r), r.PathValue("subject")); err != nil {
		s.writeError(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) handleIdentify(w http.ResponseWriter, r *http.Request) {
	fs, q, ok := s.faceRequest(w, r, "top_k", "max_faces", "threshold")
	if !ok {
		return
	}
	opt, err := identifyOptions(q)
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
	res, err := fs.Identify(r.Context(), galleryRef(r), face.Input(in), opt)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	setFaceModels(w, res.Models)
	writeTimedJSON(w, http.StatusOK, res, res.TimingMS)
}

// identifyOptions reads identify's query parameters.
func identifyOptions(q query) (opt face.IdentifyOptions, err error) {
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
