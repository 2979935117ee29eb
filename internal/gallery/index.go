package gallery

import (
	"cmp"
	"context"
	"slices"
	"sync"
	"time"

	"github.com/visionserve/visionserve/internal/gallery/ann"
)

// Index kinds, the values of the search latency metric's label.
const (
	KindExact = "exact"
	KindHNSW  = "hnsw"
)

// IndexConfig chooses and tunes each gallery's index.
type IndexConfig struct {
	// ExactBelow: a gallery with fewer live faces is searched exactly;
	// at or above it, with an HNSW graph. A graph goes back to exact
	// search below half of it (hysteresis, so churn at the boundary does
	// not rebuild back and forth).
	ExactBelow int
	HNSW       ann.Params
	// BuildWorkers is the number of goroutines a background graph build
	// uses.
	BuildWorkers int
	// MaxDeadFraction: a graph whose tombstones exceed this share of its
	// nodes is rebuilt without them.
	MaxDeadFraction float64
}

// faceRef is what an index entry points at.
type faceRef struct {
	face    string
	subject string
}

// galleryIndex is the in-memory vector index of one gallery's faces of one
// embedding space (one embedder), and the maps from index ids to faces and
// subjects. Readers hold mu shared; mutations and the swap after a rebuild
// hold it exclusively.
type galleryIndex struct {
	name  string // the gallery's, for logs
	model string // the embedder id every vector here carries
	dim   int
	ctx   context.Context // ends with the gallery: background builds stop

	mu        sync.RWMutex
	idx       ann.Index
	refs      []faceRef // by index id; the zero ref for free ids
	byFace    map[string]uint32
	bySubject map[string][]uint32
	// building is set while a rebuild runs; mutations meanwhile are also
	// recorded in pending and replayed onto the new index before the swap.
	building bool
	pending  []pendingOp
}

type pendingOp struct {
	add     bool
	face    string
	subject string
	vec     []float32
}

func newGalleryIndex(ctx context.Context, name, model string, dim int) *galleryIndex {
	return &galleryIndex{
		name: name, model: model, dim: dim, ctx: ctx, idx: ann.NewFlat(dim),
		byFace: map[string]uint32{}, bySubject: map[string][]uint32{},
	}
}

func (g *galleryIndex) kind() string {
	if _, ok := g.idx.(*ann.HNSW); ok {
		return KindHNSW
	}
	return KindExact
}

// add inserts a face unless it is there already; g.mu must be held.
func (g *galleryIndex) add(face, subject string, vec []float32) bool {
	if _, ok := g.byFace[face]; ok {
		return false
	}
	id := g.idx.Add(vec)
	for int(id) >= len(g.refs) {
		g.refs = append(g.refs, faceRef{})
	}
	g.refs[id] = faceRef{face: face, subject: subject}
	g.byFace[face] = id
	g.bySubject[subject] = append(g.bySubject[subject], id)
	if g.building {
		g.pending = append(g.pending, pendingOp{add: true, face: face, subject: subject, vec: vec})
	}
	return true
}

// deleteSubject removes every face of subject; g.mu must be held.
func (g *galleryIndex) deleteSubject(subject string) int {
	ids := g.bySubject[subject]
	for _, id := range ids {
		ref := g.refs[id]
		g.idx.Delete(id)
		delete(g.byFace, ref.face)
		g.refs[id] = faceRef{}
		if g.building {
			g.pending = append(g.pending, pendingOp{face: ref.face})
		}
	}
	delete(g.bySubject, subject)
	return len(ids)
}

// counts returns the live faces and subjects.
func (g *galleryIndex) counts() (faces, subjects int) {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return g.idx.Len(), len(g.bySubject)
}

// subjectFaces is how many faces subject has.
func (g *galleryIndex) subjectFaces(subject string) int {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return len(g.bySubject[subject])
}

// Match is one identified subject.
type Match struct {
	Subject    string  `json:"subject"`
	Similarity float64 `json:"similarity"`
}

// maxCandidates bounds how many nearest faces one search looks at while it
// collects k distinct subjects.
const maxCandidates = 8192

// search returns up to k subjects by their best face's similarity to q,
// best first, leaving out those below minSim. It asks the index for more
// faces until it has k distinct subjects (a subject with many similar
// faces could otherwise fill the list alone), the index is exhausted, or
// maxCandidates faces were seen.
func (g *galleryIndex) search(q []float32, k int, minSim float64) ([]Match, string) {
	g.mu.RLock()
	defer g.mu.RUnlock()
	kind := g.kind()
	live := g.idx.Len()
	if k <= 0 || live == 0 {
		return nil, kind
	}
	best := map[string]float64{}
	for want := min(live, max(4*k, 16)); ; want = min(live, 2*want) {
		clear(best)
		hits := g.idx.Search(q, want)
		for _, h := range hits {
			s := float64(h.Similarity)
			if s < minSim {
				break // hits are best first
			}
			sub := g.refs[h.ID].subject
			if cur, ok := best[sub]; !ok || s > cur {
				best[sub] = s
			}
		}
		exhausted := len(hits) < want || (len(hits) > 0 && float64(hits[len(hits)-1].Similarity) < minSim)
		if len(best) >= k || exhausted || want >= live || want >= maxCandidates {
			break
		}
	}
	out := make([]Match, 0, len(best))
	for s, sim := range best {
		out = append(out, Match{Subject: s, Similarity: sim})
	}
	slices.SortFunc(out, func(a, b Match) int {
		if c := cmp.Compare(b.Similarity, a.Similarity); c != 0 {
			return c
		}
		return cmp.Compare(a.Subject, b.Subject)
	})
	if len(out) > k {
		out = out[:k]
	}
	return out, kind
}

// rebuildWanted says which kind of index g should be rebuilt into, if
// any; g.mu must be held.
func (g *galleryIndex) rebuildWanted(c IndexConfig) (kind string, ok bool) {
	if g.building {
		return "", false
	}
	live := g.idx.Len()
	switch g.kind() {
	case KindExact:
		if live >= c.ExactBelow {
			return KindHNSW, true
		}
	case KindHNSW:
		if live < c.ExactBelow/2 {
			return KindExact, true
		}
		if dead := g.idx.Slots() - live; float64(dead) > c.MaxDeadFraction*float64(g.idx.Slots()) {
			return KindHNSW, true
		}
	}
	return "", false
}

// snapshot copies the live entries for a rebuild and starts recording
// mutations; g.mu must be held.
func (g *galleryIndex) snapshot() (refs []faceRef, vecs []float32) {
	live := g.idx.Len()
	refs = make([]faceRef, 0, live)
	vecs = make([]float32, 0, live*g.dim)
	for id, ref := range g.refs {
		if ref.face == "" || g.idx.Deleted(uint32(id)) {
			continue
		}
		refs = append(refs, ref)
		vecs = append(vecs, g.idx.Vector(uint32(id))...)
	}
	g.building = true
	g.pending = nil
	return refs, vecs
}

// rebuild builds an index of the given kind from a snapshot without
// holding g.mu, then replays what changed meanwhile and swaps it in.
func (g *galleryIndex) rebuild(ctx context.Context, kind string, c IndexConfig, refs []faceRef, vecs []float32) error {
	var idx ann.Index
	if kind == KindHNSW {
		h, err := ann.Build(ctx, g.dim, vecs, c.HNSW, uint64(time.Now().UnixNano()), c.BuildWorkers)
		if err != nil {
			g.mu.Lock()
			g.building, g.pending = false, nil
			g.mu.Unlock()
			return err
		}
		idx = h
	} else {
		f := ann.NewFlat(g.dim)
		for i := range refs {
			f.Add(vecs[i*g.dim : (i+1)*g.dim])
		}
		idx = f
	}
	next := &galleryIndex{idx: idx, refs: refs, byFace: make(map[string]uint32, len(refs)), bySubject: map[string][]uint32{}}
	for id, r := range refs {
		next.byFace[r.face] = uint32(id)
		next.bySubject[r.subject] = append(next.bySubject[r.subject], uint32(id))
	}

	g.mu.Lock()
	defer g.mu.Unlock()
	for _, op := range g.pending {
		if op.add {
			next.add(op.face, op.subject, op.vec)
			continue
		}
		if id, ok := next.byFace[op.face]; ok {
			sub := next.refs[id].subject
			next.idx.Delete(id)
			delete(next.byFace, op.face)
			next.refs[id] = faceRef{}
			ids := slices.DeleteFunc(next.bySubject[sub], func(x uint32) bool { return x == id })
			if len(ids) == 0 {
				delete(next.bySubject, sub)
			} else {
				next.bySubject[sub] = ids
			}
		}
	}
	g.idx, g.refs, g.byFace, g.bySubject = next.idx, next.refs, next.byFace, next.bySubject
	g.building, g.pending = false, nil
	return nil
}
