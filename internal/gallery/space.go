package gallery

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
)

// ErrEmbedderMismatch: a face embedded by one embedder was offered to a
// gallery whose faces were all embedded by others. Vectors of different
// embedders live in different spaces and never compare, so a gallery
// takes new faces only in a space it already holds (or any, when empty).
var ErrEmbedderMismatch = errors.New("the gallery's faces were embedded by another embedder")

// MismatchError says which embedder a gallery's faces carry; it wraps
// ErrEmbedderMismatch.
type MismatchError struct {
	Gallery string
	Held    string // an embedder id the gallery's faces carry
	Model   string // the embedder id that was refused
}

// Error implements error.
func (e *MismatchError) Error() string {
	return fmt.Sprintf("gallery %q holds faces embedded by %s, not by %s: faces of different embedders never compare", e.Gallery, e.Held, e.Model)
}

// Unwrap lets errors.Is match ErrEmbedderMismatch.
func (e *MismatchError) Unwrap() error { return ErrEmbedderMismatch }

// Space is one embedding space of a gallery: the embedder id its faces
// carry, and how many faces carry it.
type Space struct {
	Model string `json:"model"`
	Faces int    `json:"faces"`
}

// galleryState is one gallery: its faces in one index per embedding space.
// A gallery normally holds one space; a second appears only from faces
// stored before the embedder changed (the store never mixes them since).
type galleryState struct {
	ref     Ref
	created time.Time
	// ctx ends when the gallery is deleted (or the manager closed, or
	// its galleries reloaded): its indexes' background builds stop.
	ctx    context.Context
	cancel context.CancelFunc

	mu     sync.RWMutex // guards the map; each index has its own lock
	spaces map[string]*galleryIndex
}

func newGalleryState(parent context.Context, ref Ref, created time.Time) *galleryState {
	ctx, cancel := context.WithCancel(parent)
	return &galleryState{ref: ref, created: created, ctx: ctx, cancel: cancel, spaces: map[string]*galleryIndex{}}
}

// space returns the index of model's faces, or nil.
func (g *galleryState) space(model string) *galleryIndex {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return g.spaces[model]
}

// spaceFor returns the index of model's faces, creating it for vectors of
// length dim.
func (g *galleryState) spaceFor(model string, dim int) *galleryIndex {
	if idx := g.space(model); idx != nil {
		return idx
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	idx := g.spaces[model]
	if idx == nil {
		idx = newGalleryIndex(g.ctx, g.ref.String(), model, dim)
		g.spaces[model] = idx
	}
	return idx
}

// dropEmpty forgets the spaces that hold no face and are not being
// rebuilt, so that the index of an embedder a gallery moved away from
// frees its memory once its last subject is deleted (an exact index never
// shrinks its storage). Callers serialise it with the other mutations.
func (g *galleryState) dropEmpty() {
	g.mu.Lock()
	defer g.mu.Unlock()
	for model, idx := range g.spaces {
		idx.mu.RLock()
		empty := idx.idx.Len() == 0 && len(idx.bySubject) == 0 && !idx.building
		idx.mu.RUnlock()
		if empty {
			delete(g.spaces, model)
		}
	}
}

// indexes returns every space's index.
func (g *galleryState) indexes() []*galleryIndex {
	g.mu.RLock()
	defer g.mu.RUnlock()
	out := make([]*galleryIndex, 0, len(g.spaces))
	for _, idx := range g.spaces {
		out = append(out, idx)
	}
	return out
}

// models lists the spaces that hold faces, most faces first (ties by id).
func (g *galleryState) models() []Space {
	var out []Space
	for _, idx := range g.indexes() {
		if n, _ := idx.counts(); n > 0 {
			out = append(out, Space{Model: idx.model, Faces: n})
		}
	}
	slices.SortFunc(out, func(a, b Space) int {
		if c := cmp.Compare(b.Faces, a.Faces); c != 0 {
			return c
		}
		return cmp.Compare(a.Model, b.Model)
	})
	return out
}

// counts returns the live faces and the distinct subjects over every space.
func (g *galleryState) counts() (faces, subjects int) {
	idxs := g.indexes()
	if len(idxs) == 1 {
		return idxs[0].counts()
	}
	seen := map[string]struct{}{}
	for _, idx := range idxs {
		idx.mu.RLock()
		faces += idx.idx.Len()
		for s := range idx.bySubject {
			seen[s] = struct{}{}
		}
		idx.mu.RUnlock()
	}
	return faces, len(seen)
}

// subjectFaces is how many faces subject has over every space.
func (g *galleryState) subjectFaces(subject string) int {
	n := 0
	for _, idx := range g.indexes() {
		n += idx.subjectFaces(subject)
	}
	return n
}
