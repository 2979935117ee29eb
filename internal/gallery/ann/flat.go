package ann

import (
	"fmt"
)

// Hit is a search result: a vector's id and its similarity to the query.
type Hit struct {
	ID         uint32
	Similarity float32
}

// Index is what the gallery needs from either kind of index.
type Index interface {
	// Add stores v (copied) and returns its id.
	Add(v []float32) uint32
	// Delete removes id from search results; it is a no-op for an unknown
	// or already deleted id.
	Delete(id uint32)
	// Search returns up to k live vectors most similar to q, best first.
	Search(q []float32, k int) []Hit
	// Vector returns the stored vector of id (not a copy).
	Vector(id uint32) []float32
	// Len is the number of live vectors; Slots counts deleted ones too.
	Len() int
	Slots() int
	// Deleted reports whether id is a tombstone.
	Deleted(id uint32) bool
	// Bytes estimates the memory the index holds.
	Bytes() int64
}

// Interface guards.
var (
	_ Index = (*Flat)(nil)
	_ Index = (*HNSW)(nil)
)

// Flat is exact search over every stored vector. Deleted slots are reused
// by later adds, so ids stay stable and the arena does not grow with churn.
type Flat struct {
	dim  int
	vecs []float32
	dead []bool
	free []uint32
	live int
}

// NewFlat returns an empty exact index for vectors of length dim.
func NewFlat(dim int) *Flat {
	if dim < 1 {
		panic(fmt.Sprintf("ann: dimension %d", dim))
	}
	return &Flat{dim: dim}
}

// Add implements Index.
func (f *Flat) Add(v []float32) uint32 {
	checkDim(f.dim, v)
	f.live++
	if n := len(f.free); n > 0 {
		id := f.free[n-1]
		f.free = f.free[:n-1]
		copy(f.vecs[int(id)*f.dim:], v)
		f.dead[id] = false
		return id
	}
	id := uint32(len(f.dead))
	f.vecs = append(f.vecs, v...)
	f.dead = append(f.dead, false)
	return id
}

// Delete implements Index.
func (f *Flat) Delete(id uint32) {
	if int(id) >= len(f.dead) || f.dead[id] {
		return
	}
	f.dead[id] = true
	f.free = append(f.free, id)
	f.live--
}

// Search implements Index: it compares q with every live vector.
func (f *Flat) Search(q []float32, k int) []Hit {
	checkDim(f.dim, q)
	if k <= 0 {
		return nil
	}
	top := newTopK(k)
	for id := range f.dead {
		if f.dead[id] {
			continue
		}
		top.push(uint32(id), Dot(q, f.vecs[id*f.dim:(id+1)*f.dim]))
	}
	return top.sorted()
}

// Vector implements Index.
func (f *Flat) Vector(id uint32) []float32 { return f.vecs[int(id)*f.dim : (int(id)+1)*f.dim] }

// Len implements Index.
func (f *Flat) Len() int { return f.live }

// Slots implements Index.
func (f *Flat) Slots() int { return len(f.dead) }

// Deleted implements Index.
func (f *Flat) Deleted(id uint32) bool { return int(id) >= len(f.dead) || f.dead[id] }

// Bytes implements Index.
func (f *Flat) Bytes() int64 {
	return int64(cap(f.vecs))*4 + int64(cap(f.dead)) + int64(cap(f.free))*4
}

func checkDim(dim int, v []float32) {
	if len(v) != dim {
		panic(fmt.Sprintf("ann: vector of length %d in an index of dimension %d", len(v), dim))
	}
}

// topK keeps the k best hits seen: a min-heap on similarity whose root is
// the worst kept hit.
type topK struct {
	k int
	h []Hit
}

func newTopK(k int) *topK { return &topK{k: k, h: make([]Hit, 0, k)} }

func (t *topK) push(id uint32, sim float32) {
	if len(t.h) < t.k {
		t.h = append(t.h, Hit{id, sim})
		i := len(t.h) - 1
		for i > 0 {
			p := (i - 1) / 2
			if t.h[p].Similarity <= t.h[i].Similarity {
				break
			}
			t.h[p], t.h[i] = t.h[i], t.h[p]
			i = p
		}
		return
	}
	if sim <= t.h[0].Similarity {
		return
	}
	t.h[0] = Hit{id, sim}
	siftDownMin(t.h, 0)
}

func siftDownMin(h []Hit, i int) {
	for {
		l := 2*i + 1
		if l >= len(h) {
			return
		}
		m := l
		if r := l + 1; r < len(h) && h[r].Similarity < h[l].Similarity {
			m = r
		}
		if h[i].Similarity <= h[m].Similarity {
			return
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
}

// sorted empties the heap into a slice, best first.
func (t *topK) sorted() []Hit {
	out := make([]Hit, len(t.h))
	for i := len(out) - 1; i >= 0; i-- {
		out[i] = t.h[0]
		last := len(t.h) - 1
		t.h[0] = t.h[last]
		t.h = t.h[:last]
		siftDownMin(t.h, 0)
	}
	return out
}
