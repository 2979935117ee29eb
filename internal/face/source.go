package face

import (
	"errors"
	"fmt"
)

// ErrEmbedderNotLoaded: a request needs the embedder whose id a gallery's
// faces carry, and no loaded model computes in that space. Comparing a
// vector of another embedder with them would be meaningless, so the
// request fails instead (409: load that embedder again, or re-enroll).
var ErrEmbedderNotLoaded = errors.New("the gallery's embedder is not loaded")

// EmbedderError is ErrEmbedderNotLoaded for one gallery, with what it holds
// and what is loaded.
type EmbedderError struct {
	Gallery string
	// Held is the embedder id of the gallery's faces (the one holding the
	// most faces, if several).
	Held string
	// Loaded is the current embedder's id, "" if none is ready.
	Loaded string
}

// Error implements error.
func (e *EmbedderError) Error() string {
	s := fmt.Sprintf("gallery %s holds faces embedded by %s, which is not loaded; load it or re-enroll", e.Gallery, e.Held)
	if e.Loaded != "" {
		s += fmt.Sprintf(" (the current embedder is %s)", e.Loaded)
	}
	return s
}

// Unwrap lets errors.Is match ErrEmbedderNotLoaded.
func (e *EmbedderError) Unwrap() error { return ErrEmbedderNotLoaded }

// ModelRef names a model version that did part of a request's work.
type ModelRef struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

// EmbedderRef names the embedder version of a response and the embedding
// space it computed in.
type EmbedderRef struct {
	ModelRef
	// ID is the embedder id (EmbedderID) its vectors carry: the id a
	// gallery's faces carry after enrolling with it.
	ID string `json:"id"`
}

// UsedModels names the versions that produced a response: always the
// detector, and the embedder when faces were embedded.
type UsedModels struct {
	Detector ModelRef     `json:"detector"`
	Embedder *EmbedderRef `json:"embedder,omitempty"`
}

// DetectorVersion is a detector pinned for one request.
type DetectorVersion struct {
	Ref      ModelRef
	Detector *Detector
	// Digest identifies the detector's weights (cache keys).
	Digest string
}

// EmbedderVersion is an embedder pinned for one request.
type EmbedderVersion struct {
	Ref      ModelRef
	Embedder *Embedder
	// ID is the embedding space (EmbedderID).
	ID string
}

// ModelSource gives each request the model versions it runs on, pinned
// until it calls the returned release function (exactly once): a hot swap
// never frees a model a request still uses. Models (two files) is one;
// a model repository is another (package facerepo).
type ModelSource interface {
	// AcquireDetector pins the current detector.
	AcquireDetector() (DetectorVersion, func(), error)
	// AcquireEmbedder pins the current embedder when id is "", else a
	// loaded embedder whose ID is id; ErrEmbedderNotLoaded when there is
	// none.
	AcquireEmbedder(id string) (EmbedderVersion, func(), error)
}
