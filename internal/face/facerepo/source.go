package facerepo

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/visionserve/visionserve/internal/face"
	"github.com/visionserve/visionserve/internal/modelrepo"
)

// Repository is what Source needs of a model repository.
type Repository interface {
	Acquire(sel modelrepo.Selector) (*modelrepo.Handle, error)
	AcquireNewest(model string, match func(modelrepo.Instance) bool) (*modelrepo.Handle, error)
}

type detectorInstance interface {
	FaceDetector() *face.DetectorModel
}

type embedderInstance interface {
	FaceEmbedder() *face.EmbedderModel
}

// Source is the face.ModelSource of a server whose face models are
// repository models (face.detector_model and face.embedder_model). Each
// request pins a version through a reference-counted handle, so a swap
// never frees a model a request still runs.
type Source struct {
	Repo Repository
	// Detector and Embedder are the model names.
	Detector, Embedder string
}

var _ face.ModelSource = (*Source)(nil)

// AcquireDetector implements face.ModelSource: the version the traffic
// weights route to (the newest ready one by default).
func (s *Source) AcquireDetector() (face.DetectorVersion, func(), error) {
	h, err := s.acquire(s.Detector, "face.detector_model")
	if err != nil {
		return face.DetectorVersion{}, nil, err
	}
	inst, ok := h.Instance().(detectorInstance)
	if !ok {
		h.Release()
		return face.DetectorVersion{}, nil, wrongKind(h, KindDetect, "face.detector_model")
	}
	d := inst.FaceDetector()
	return face.DetectorVersion{Ref: ref(h), Detector: d.Detector, Digest: d.SHA256}, h.Release, nil
}

// AcquireEmbedder implements face.ModelSource. With an id, the routed
// version serves if it computes that embedding space, else the newest
// ready version that does (one kept loaded by the model's policy, e.g.
// latest: 2); face.ErrEmbedderNotLoaded when none does.
func (s *Source) AcquireEmbedder(id string) (face.EmbedderVersion, func(), error) {
	h, err := s.acquire(s.Embedder, "face.embedder_model")
	if err != nil {
		return face.EmbedderVersion{}, nil, err
	}
	inst, ok := h.Instance().(embedderInstance)
	if !ok {
		h.Release()
		return face.EmbedderVersion{}, nil, wrongKind(h, KindEmbed, "face.embedder_model")
	}
	if id == "" || inst.FaceEmbedder().ID() == id {
		return embedderVersion(h, inst), h.Release, nil
	}
	h.Release()
	h, err = s.Repo.AcquireNewest(s.Embedder, func(i modelrepo.Instance) bool {
		e, ok := i.(embedderInstance)
		return ok && e.FaceEmbedder().ID() == id
	})
	if err != nil {
		if errors.Is(err, modelrepo.ErrVersionNotFound) || errors.Is(err, modelrepo.ErrModelNotFound) {
			return face.EmbedderVersion{}, nil, fmt.Errorf("%w: no ready version of %s computes %s", face.ErrEmbedderNotLoaded, s.Embedder, id)
		}
		return face.EmbedderVersion{}, nil, err
	}
	return embedderVersion(h, h.Instance().(embedderInstance)), h.Release, nil
}

func embedderVersion(h *modelrepo.Handle, inst embedderInstance) face.EmbedderVersion {
	e := inst.FaceEmbedder()
	return face.EmbedderVersion{Ref: ref(h), Embedder: e.Embedder, ID: e.ID()}
}

// acquire pins the routed version of model. A model the repository does
// not hold (yet) is "not ready": the face routes answer 503 until it is
// published, as they do while its first version loads.
func (s *Source) acquire(model, key string) (*modelrepo.Handle, error) {
	h, err := s.Repo.Acquire(modelrepo.Selector{Model: model})
	if errors.Is(err, modelrepo.ErrModelNotFound) {
		return nil, fmt.Errorf("%w: %s names %q, which the model repository does not hold", modelrepo.ErrNoReadyVersion, key, model)
	}
	return h, err
}

// wrongKind is the server's configuration at fault, not the request: an
// internal error (500, logged), not "model not found".
func wrongKind(h *modelrepo.Handle, want, key string) error {
	return fmt.Errorf("the configuration is wrong: %s names %s, a %s model, not %s", key, h.Model(), h.Kind(), want)
}

func ref(h *modelrepo.Handle) face.ModelRef {
	return face.ModelRef{Name: h.Model(), Version: strconv.Itoa(h.Version())}
}
