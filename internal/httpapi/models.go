package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/visionserve/visionserve/internal/modelrepo"
)

// ModelAdmin is the model repository as the model routes use it
// (*modelrepo.Repository).
type ModelAdmin interface {
	Models() []modelrepo.ModelStatus
	Model(name string) (modelrepo.ModelStatus, error)
	Load(ctx context.Context, name string, version int) (modelrepo.VersionStatus, error)
	Unload(ctx context.Context, name string, version int) (modelrepo.VersionStatus, error)
	SetTraffic(name string, weights map[int]int) (modelrepo.ModelStatus, error)
	Subscribe(since uint64) (*modelrepo.Subscription, []modelrepo.Event)
}

// Model sources, the "source" field of GET /v1/models.
const (
	sourceRepository = "repository"
	sourceStatic     = "static"
)

// modelList is the body of GET /v1/models.
type modelList struct {
	DefaultModel string                  `json:"default_model"`
	Source       string                  `json:"source"`
	Models       []modelrepo.ModelStatus `json:"models"`
}

// eventKeepalive is how often an idle event stream sends a comment, so
// proxies do not time it out.
const eventKeepalive = 15 * time.Second

// maxTrafficBody bounds a PUT /v1/models/{model}/traffic body.
const maxTrafficBody = 64 << 10

func (s *Server) handleModels(w http.ResponseWriter, r *http.Request) {
	list := modelList{DefaultModel: s.cfg.DefaultModel, Source: sourceStatic, Models: s.cfg.StaticModels}
	if s.cfg.Models != nil {
		list.Source, list.Models = sourceRepository, s.cfg.Models.Models()
	}
	if list.Models == nil {
		list.Models = []modelrepo.ModelStatus{}
	}
	writeJSON(w, http.StatusOK, list)
}

func (s *Server) handleModel(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("model")
	if s.cfg.Models == nil {
		for _, m := range s.cfg.StaticModels {
			if m.Name == name {
				writeJSON(w, http.StatusOK, m)
				return
			}
		}
		s.writeError(w, r, fmt.Errorf("%w: %q", modelrepo.ErrModelNotFound, name))
		return
	}
	st, err := s.cfg.Models.Model(name)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

func (s *Server) handleLoad(w http.ResponseWriter, r *http.Request) {
	s.versionAction(w, r, func(a ModelAdmin, name string, v int) (modelrepo.VersionStatus, error) {
		return a.Load(r.Context(), name, v)
	})
}

func (s *Server) handleUnload(w http.ResponseWriter, r *http.Request) {
	s.versionAction(w, r, func(a ModelAdmin, name string, v int) (modelrepo.VersionStatus, error) {
		return a.Unload(r.Context(), name, v)
	})
}

func (s *Server) versionAction(w http.ResponseWriter, r *http.Request, act func(ModelAdmin, string, int) (modelrepo.VersionStatus, error)) {
	if s.cfg.Models == nil {
		s.writeError(w, r, modelrepo.ErrNoRepository)
		return
	}
	v, ok := modelrepo.ParseVersion(r.PathValue("version"))
	if !ok {
		s.writeError(w, r, badRequestf("version %q is not a positive integer", r.PathValue("version")))
		return
	}
	st, err := act(s.cfg.Models, r.PathValue("model"), v)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

// trafficRequest is the body of PUT /v1/models/{model}/traffic.
type trafficRequest struct {
	Weights map[string]int `json:"weights"`
}

func (s *Server) handleTraffic(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Models == nil {
		s.writeError(w, r, modelrepo.ErrNoRepository)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxTrafficBody))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var req trafficRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		s.writeError(w, r, badRequestf(`body must be {"weights": {"<version>": <weight>, ...}}: %v`, err))
		return
	}
	if req.Weights == nil {
		s.writeError(w, r, badRequestf(`body must be {"weights": {"<version>": <weight>, ...}}; {"weights": {}} returns to the newest version`))
		return
	}
	weights := make(map[int]int, len(req.Weights))
	for k, wt := range req.Weights {
		v, ok := modelrepo.ParseVersion(k)
		if !ok {
			s.writeError(w, r, badRequestf("weights: %q is not a version number", k))
			return
		}
		weights[v] = wt
	}
	st, err := s.cfg.Models.SetTraffic(r.PathValue("model"), weights)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

// handleEvents streams lifecycle events as Server-Sent Events: one
// "id: <seq>" and one "data: <event JSON>" per event. A client that
// reconnects with Last-Event-ID (or ?since=) first receives the events it
// missed that the server still remembers. ?model= limits the stream to one
// model. The stream ends when the server shuts down, or when the client
// falls too far behind (it then reconnects).
func (s *Server) handleEvents(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Models == nil {
		s.writeError(w, r, modelrepo.ErrNoRepository)
		return
	}
	var since uint64
	if v := r.Header.Get("Last-Event-ID"); v != "" {
		since, _ = strconv.ParseUint(v, 10, 64) // a bad id means: from now
	}
	if v := r.URL.Query().Get("since"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			s.writeError(w, r, badRequestf("since=%q is not an event sequence number", v))
			return
		}
		since = n
	}
	only := r.URL.Query().Get("model")
	sub, replay := s.cfg.Models.Subscribe(since)
	defer sub.Close()

	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	send := func(e modelrepo.Event) error {
		if only != "" && e.Model != only {
			return nil
		}
		data, err := json.Marshal(e)
		if err != nil {
			return err
		}
		if _, err := fmt.Fprintf(w, "id: %d\ndata: %s\n\n", e.Seq, data); err != nil {
			return err
		}
		return rc.Flush()
	}
	if _, err := io.WriteString(w, ": visionserve model lifecycle events\n\n"); err != nil || rc.Flush() != nil {
		return
	}
	for _, e := range replay {
		if send(e) != nil {
			return
		}
	}
	keepalive := time.NewTicker(eventKeepalive)
	defer keepalive.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case e, ok := <-sub.C:
			if !ok || send(e) != nil {
				return
			}
		case <-keepalive.C:
			if _, err := io.WriteString(w, ": keepalive\n\n"); err != nil || rc.Flush() != nil {
				return
			}
		}
	}
}
