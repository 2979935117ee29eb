package httpapi

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/visionserve/visionserve/internal/imageio"
	"github.com/visionserve/visionserve/internal/oip"
)

// The Open Inference Protocol's REST routes (KServe V2): thin wrappers
// around oip.Service. Errors are problem documents like every other route,
// with the protocol's "error" member added (see writeProblem).

func (s *Server) oipRoutes() []Route {
	inferBody := imageio.DefaultLimits().MaxBytes
	if s.cfg.OIP != nil {
		inferBody = s.cfg.OIP.Limits().MaxBytes
	}
	return []Route{
		{Method: http.MethodGet, Path: "/v2", Handler: s.handleOIPServer},
		{Method: http.MethodGet, Path: "/v2/health/live", Handler: s.handleOIPLive},
		{Method: http.MethodGet, Path: "/v2/health/ready", Handler: s.handleOIPReady},
		{Method: http.MethodGet, Path: "/v2/models/{model}", Handler: s.handleOIPModel},
		{Method: http.MethodGet, Path: "/v2/models/{model}/versions/{version}", Handler: s.handleOIPModel},
		{Method: http.MethodGet, Path: "/v2/models/{model}/ready", Handler: s.handleOIPModelReady},
		{Method: http.MethodGet, Path: "/v2/models/{model}/versions/{version}/ready", Handler: s.handleOIPModelReady},
		{Method: http.MethodPost, Path: "/v2/models/{model}/infer", Handler: s.handleOIPInfer, Admit: true, MaxBody: inferBody},
		{Method: http.MethodPost, Path: "/v2/models/{model}/versions/{version}/infer", Handler: s.handleOIPInfer, Admit: true, MaxBody: inferBody},
	}
}

// pathMatches reports whether path fits a route's path pattern, whose
// {name} segments match any one non-empty segment (for 405 answers).
func pathMatches(pattern, path string) bool {
	ps, xs := strings.Split(pattern, "/"), strings.Split(path, "/")
	if len(ps) != len(xs) {
		return false
	}
	for i, p := range ps {
		wild := strings.HasPrefix(p, "{") && strings.HasSuffix(p, "}")
		if wild && xs[i] == "" || !wild && p != xs[i] {
			return false
		}
	}
	return true
}

// writeNotReady answers 503 as /readyz does.
func writeNotReady(w http.ResponseWriter, r *http.Request, err error) {
	writeProblem(w, r, Problem{Type: problemBase + "not-ready", Status: http.StatusServiceUnavailable, Detail: err.Error()}, time.Second)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// modelVersion is the version in the path, else the X-Model-Version pin.
func modelVersion(r *http.Request) string {
	if v := r.PathValue("version"); v != "" {
		return v
	}
	return r.Header.Get(HeaderModelVersion)
}

func (s *Server) handleOIPServer(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.cfg.OIP.ServerMetadata())
}

func (s *Server) handleOIPLive(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]bool{"live": true})
}

func (s *Server) handleOIPReady(w http.ResponseWriter, r *http.Request) {
	if err := s.cfg.OIP.Ready(); err != nil {
		writeNotReady(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]bool{"ready": true})
}

func (s *Server) handleOIPModel(w http.ResponseWriter, r *http.Request) {
	md, err := s.cfg.OIP.ModelMetadata(r.PathValue("model"), modelVersion(r))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, md)
}

func (s *Server) handleOIPModelReady(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("model")
	ready, err := s.cfg.OIP.ModelReady(name, modelVersion(r))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if !ready {
		err := s.cfg.OIP.Ready()
		if err == nil {
			err = errors.New("model not ready")
		}
		writeNotReady(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"name": name, "ready": true})
}

func (s *Server) handleOIPInfer(w http.ResponseWriter, r *http.Request) {
	limits := s.cfg.OIP.Limits()
	headerLen := -1
	if h := r.Header.Get(oip.HeaderInferenceHeaderLength); h != "" {
		n, err := strconv.Atoi(h)
		if err != nil || n < 0 {
			s.writeError(w, r, badRequestf("%s: %q is not a byte count", oip.HeaderInferenceHeaderLength, h))
			return
		}
		headerLen = n
	}
	body, release, err := bodyBytes(w, r, limits.MaxBytes)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	// Decoded tensors never share the body's memory (a batch may outlive
	// this handler), so the buffer can go back to the pool when it returns.
	defer release()
	req, err := oip.DecodeRequest(body, headerLen, limits)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	req.ModelName, req.ModelVersion = r.PathValue("model"), modelVersion(r)
	resp, err := s.cfg.OIP.Infer(r.Context(), req)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	binary, err := oip.BinaryOutputs(req, resp)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out, jsonLen, err := oip.EncodeResponse(resp, binary)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	h := w.Header()
	h.Set(HeaderModelName, resp.ModelName)
	h.Set(HeaderModelVersion, resp.ModelVersion)
	h.Set("Cache-Control", "no-store")
	if jsonLen >= 0 {
		h.Set("Content-Type", "application/octet-stream")
		h.Set(oip.HeaderInferenceHeaderLength, strconv.Itoa(jsonLen))
	} else {
		h.Set("Content-Type", "application/json")
	}
	h.Set("Content-Length", strconv.Itoa(len(out)))
	_, _ = w.Write(out)
}
