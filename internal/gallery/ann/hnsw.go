package ann

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
)

// Params tune an HNSW graph. They are JSON- and YAML-tagged so the
// configuration can carry them; DefaultParams are measured in
// docs/faces.md (1,000,000 random unit vectors of dimension 128).
type Params struct {
	// M is the number of neighbours a node keeps on the upper layers; the
	// bottom layer keeps 2*M. More neighbours raise recall and memory.
	M int `yaml:"m" json:"m"`
	// EfConstruction is the candidate list length while inserting: a
	// better graph for a slower build.
	EfConstruction int `yaml:"ef_construction" json:"ef_construction"`
	// EfSearch is the candidate list length while searching (at least k):
	// recall for latency.
	EfSearch int `yaml:"ef_search" json:"ef_search"`
}

// DefaultParams are safe for the worst case: on 1,000,000 random unit
// vectors of dimension 128 (no structure for a graph to exploit) they
// reach recall@10 0.988 against exact search, at about 39 ms of CPU per
// query (BenchmarkHNSWRandom; ef_search 2048 gives 0.938 in 22 ms, 1024
// gives 0.817 in 13 ms). Real face embeddings, which cluster by identity,
// need a far smaller EfSearch for the same recall: measure before lowering
// it.
func DefaultParams() Params { return Params{M: 48, EfConstruction: 100, EfSearch: 4096} }

// Validate reports parameters outside the useful range.
func (p Params) Validate() error {
	var errs []error
	if p.M < 4 || p.M > 128 {
		errs = append(errs, fmt.Errorf("m must be in [4,128], got %d", p.M))
	}
	if p.EfConstruction < p.M || p.EfConstruction > 4096 {
		errs = append(errs, fmt.Errorf("ef_construction must be in [m,4096], got %d", p.EfConstruction))
	}
	if p.EfSearch < 1 || p.EfSearch > 4096 {
		errs = append(errs, fmt.Errorf("ef_search must be in [1,4096], got %d", p.EfSearch))
	}
	return errors.Join(errs...)
}

// maxLevel caps node levels; with M >= 4 a level above it has a
// probability below 4^-16.
const maxLevel = 16

// HNSW is a hierarchical navigable small world graph over unit vectors.
// Add and Delete need the caller's exclusive lock, Search a shared one (see
// the package comment).
type HNSW struct {
	dim, m, m0 int
	efC, ef    int
	mult       float64
	rng        *rand.Rand

	vecs   []float32
	levels []uint8
	// links0 holds each node's bottom-layer neighbours: m0+1 entries per
	// node, the first being the count. upper[id] holds layers 1..level the
	// same way with m+1 entries per layer.
	links0 []uint32
	upper  [][]uint32
	dead   []bool
	live   int

	entry uint32
	top   int // level of the entry point; -1 while empty

	// Parallel builds only: one lock per node guards its neighbour lists,
	// and glock guards entry and top.
	locks []sync.Mutex
	glock sync.Mutex

	visited sync.Pool // *visitSet
}

// NewHNSW returns an empty graph for vectors of length dim. seed fixes the
// level draws, so a build from the same input in one goroutine is
// reproducible.
func NewHNSW(dim int, p Params, seed uint64) (*HNSW, error) {
	if dim < 1 {
		return nil, fmt.Errorf("ann: dimension %d", dim)
	}
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("ann: %w", err)
	}
	return &HNSW{
		dim: dim, m: p.M, m0: 2 * p.M, efC: p.EfConstruction, ef: p.EfSearch,
		mult: 1 / math.Log(float64(p.M)),
		rng:  rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		top:  -1,
	}, nil
}

// Build makes a graph of the n = len(vecs)/dim vectors in vecs (which it
// takes over: the caller must not change them) with workers goroutines
// inserting at once. Ids are positions in vecs. It gives up with ctx's
// error soon after ctx ends.
func Build(ctx context.Context, dim int, vecs []float32, p Params, seed uint64, workers int) (*HNSW, error) {
	h, err := NewHNSW(dim, p, seed)
	if err != nil {
		return nil, err
	}
	if len(vecs)%dim != 0 {
		return nil, fmt.Errorf("ann: %d values are not a whole number of %d-vectors", len(vecs), dim)
	}
	n := len(vecs) / dim
	h.vecs = vecs
	h.levels = make([]uint8, n)
	h.links0 = make([]uint32, n*(h.m0+1))
	h.upper = make([][]uint32, n)
	h.dead = make([]bool, n)
	h.live = n
	for i := range n {
		h.levels[i] = h.randomLevel()
		if l := int(h.levels[i]); l > 0 {
			h.upper[i] = make([]uint32, l*(h.m+1))
		}
	}
	if n == 0 {
		return h, nil
	}
	h.insert(0)
	workers = max(1, min(workers, n))
	if workers > 1 {
		h.locks = make([]sync.Mutex, n)
	}
	var next atomic.Int64
	next.Store(1)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				if i%1024 == 0 && ctx.Err() != nil {
					return
				}
				h.insert(uint32(i))
			}
		})
	}
	wg.Wait()
	h.locks = nil
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return h, nil
}

func (h *HNSW) randomLevel() uint8 {
	u := 1 - h.rng.Float64() // (0,1]
	return uint8(min(int(-math.Log(u)*h.mult), maxLevel))
}

// Add implements Index.
func (h *HNSW) Add(v []float32) uint32 {
	checkDim(h.dim, v)
	id := uint32(len(h.levels))
	l := h.randomLevel()
	h.vecs = append(h.vecs, v...)
	h.levels = append(h.levels, l)
	h.links0 = append(h.links0, make([]uint32, h.m0+1)...)
	var up []uint32
	if l > 0 {
		up = make([]uint32, int(l)*(h.m+1))
	}
	h.upper = append(h.upper, up)
	h.dead = append(h.dead, false)
	h.live++
	h.insert(id)
	return id
}

// Delete implements Index. The node stays in the graph as a waypoint.
func (h *HNSW) Delete(id uint32) {
	if int(id) >= len(h.dead) || h.dead[id] {
		return
	}
	h.dead[id] = true
	h.live--
}

// Vector implements Index.
func (h *HNSW) Vector(id uint32) []float32 { return h.vecs[int(id)*h.dim : (int(id)+1)*h.dim] }

// Len implements Index.
func (h *HNSW) Len() int { return h.live }

// Slots implements Index.
func (h *HNSW) Slots() int { return len(h.levels) }

// Deleted implements Index.
func (h *HNSW) Deleted(id uint32) bool { return int(id) >= len(h.dead) || h.dead[id] }

// Bytes implements Index.
func (h *HNSW) Bytes() int64 {
	b := int64(cap(h.vecs))*4 + int64(cap(h.links0))*4 + int64(cap(h.levels)) + int64(cap(h.dead)) + int64(cap(h.upper))*24
	for _, u := range h.upper {
		b += int64(cap(u)) * 4
	}
	return b
}

// SetEfSearch changes the search candidate list length.
func (h *HNSW) SetEfSearch(ef int) { h.ef = max(ef, 1) }

// Search implements Index.
func (h *HNSW) Search(q []float32, k int) []Hit {
	checkDim(h.dim, q)
	if k <= 0 || h.top < 0 || h.live == 0 {
		return nil
	}
	cur := h.entry
	curD := h.dist(q, cur)
	for lvl := h.top; lvl > 0; lvl-- {
		cur, curD = h.greedy(q, cur, curD, lvl, nil)
	}
	vs := h.getVisited()
	defer h.visited.Put(vs)
	res := h.searchLayer(q, cur, curD, max(h.ef, k), 0, true, vs, nil)
	// res is a max-heap on distance: pop the worst until k remain, then
	// fill the output from its end.
	for res.len() > k {
		res.pop()
	}
	out := make([]Hit, res.len())
	for i := len(out) - 1; i >= 0; i-- {
		c := res.pop()
		out[i] = Hit{ID: c.id, Similarity: 1 - c.d}
	}
	return out
}

// dist is the cosine distance of q to node id.
func (h *HNSW) dist(q []float32, id uint32) float32 {
	return 1 - Dot(q, h.vecs[int(id)*h.dim:(int(id)+1)*h.dim])
}

// links returns the neighbour list of id at lvl: element 0 is the count.
func (h *HNSW) links(id uint32, lvl int) []uint32 {
	if lvl == 0 {
		return h.links0[int(id)*(h.m0+1) : (int(id)+1)*(h.m0+1)]
	}
	return h.upper[id][(lvl-1)*(h.m+1) : lvl*(h.m+1)]
}

// neighbours copies id's neighbours at lvl into buf, under id's lock
// during a parallel build.
func (h *HNSW) neighbours(id uint32, lvl int, buf []uint32) []uint32 {
	if h.locks != nil {
		h.locks[id].Lock()
		defer h.locks[id].Unlock()
	}
	l := h.links(id, lvl)
	return append(buf[:0], l[1:1+l[0]]...)
}

// greedy walks lvl from cur to a local minimum of the distance to q.
func (h *HNSW) greedy(q []float32, cur uint32, curD float32, lvl int, buf []uint32) (uint32, float32) {
	for changed := true; changed; {
		changed = false
		buf = h.neighbours(cur, lvl, buf)
		for _, n := range buf {
			if d := h.dist(q, n); d < curD {
				cur, curD, changed = n, d, true
			}
		}
	}
	return cur, curD
}

// searchLayer is the paper's SEARCH-LAYER with one entry point: it returns
// up to ef nearest nodes to q on lvl as a max-heap on distance. With
// skipDead, tombstones guide the walk but are not returned.
func (h *HNSW) searchLayer(q []float32, ep uint32, epD float32, ef, lvl int, skipDead bool, vs *visitSet, buf []uint32) *maxHeap {
	vs.reset(len(h.levels))
	vs.mark(ep)
	cand := &minHeap{}
	res := &maxHeap{}
	cand.push(cand2{epD, ep})
	if !skipDead || !h.dead[ep] {
		res.push(cand2{epD, ep})
	}
	lower := float32(math.Inf(1))
	if res.len() > 0 {
		lower = res.peek().d
	}
	for cand.len() > 0 {
		c := cand.pop()
		if c.d > lower && res.len() >= ef {
			break
		}
		buf = h.neighbours(c.id, lvl, buf)
		for _, n := range buf {
			if vs.seen(n) {
				continue
			}
			vs.mark(n)
			d := h.dist(q, n)
			if res.len() < ef || d < lower {
				cand.push(cand2{d, n})
				if !skipDead || !h.dead[n] {
					res.push(cand2{d, n})
					if res.len() > ef {
						res.pop()
					}
				}
				if res.len() > 0 {
					lower = res.peek().d
				}
			}
		}
	}
	return res
}

// insert links node id (already stored, with its level) into the graph.
func (h *HNSW) insert(id uint32) {
	q := h.Vector(id)
	level := int(h.levels[id])
	if h.locks != nil {
		h.glock.Lock()
	}
	ep, top := h.entry, h.top
	holding := h.locks != nil
	if holding && level <= top {
		h.glock.Unlock()
		holding = false
	}
	if top < 0 { // the first node
		h.entry, h.top = id, level
		if holding {
			h.glock.Unlock()
		}
		return
	}
	var buf []uint32
	cur := ep
	curD := h.dist(q, cur)
	for lvl := top; lvl > level; lvl-- {
		cur, curD = h.greedy(q, cur, curD, lvl, buf)
	}
	vs := h.getVisited()
	defer h.visited.Put(vs)
	for lvl := min(level, top); lvl >= 0; lvl-- {
		res := h.searchLayer(q, cur, curD, h.efC, lvl, false, vs, buf)
		cands := res.ascending()
		selected := h.heuristic(cands, h.m)
		h.setLinks(id, lvl, selected)
		for _, s := range selected {
			h.connect(s.id, id, s.d, lvl)
		}
		cur, curD = cands[0].id, cands[0].d
	}
	if holding {
		h.entry, h.top = id, level
		h.glock.Unlock()
	}
}

func (h *HNSW) setLinks(id uint32, lvl int, sel []cand2) {
	if h.locks != nil {
		h.locks[id].Lock()
		defer h.locks[id].Unlock()
	}
	l := h.links(id, lvl)
	l[0] = uint32(len(sel))
	for i, s := range sel {
		l[1+i] = s.id
	}
}

// connect adds the edge e -> n (n at distance d from e) to e's list at
// lvl, re-selecting e's neighbours with the heuristic when it is full.
func (h *HNSW) connect(e, n uint32, d float32, lvl int) {
	if h.locks != nil {
		h.locks[e].Lock()
		defer h.locks[e].Unlock()
	}
	l := h.links(e, lvl)
	limit := h.m
	if lvl == 0 {
		limit = h.m0
	}
	cnt := int(l[0])
	if slices.Contains(l[1:1+cnt], n) {
		return
	}
	if cnt < limit {
		l[1+cnt] = n
		l[0]++
		return
	}
	ev := h.Vector(e)
	cands := make([]cand2, 0, cnt+1)
	cands = append(cands, cand2{d, n})
	for _, x := range l[1 : 1+cnt] {
		cands = append(cands, cand2{h.dist(ev, x), x})
	}
	slices.SortFunc(cands, func(a, b cand2) int { return cmpF(a.d, b.d) })
	sel := h.heuristic(cands, limit)
	l[0] = uint32(len(sel))
	for i, s := range sel {
		l[1+i] = s.id
	}
}

// heuristic is the paper's SELECT-NEIGHBORS-HEURISTIC over candidates
// sorted by distance: a candidate is kept only when it is closer to the
// base than to every neighbour already kept, which keeps edges pointing in
// different directions and the graph navigable in high dimensions.
func (h *HNSW) heuristic(cands []cand2, m int) []cand2 {
	if len(cands) <= m {
		return slices.Clone(cands)
	}
	sel := make([]cand2, 0, m)
	for _, c := range cands {
		if len(sel) >= m {
			break
		}
		cv := h.Vector(c.id)
		good := true
		for _, s := range sel {
			if h.dist(cv, s.id) < c.d {
				good = false
				break
			}
		}
		if good {
			sel = append(sel, c)
		}
	}
	return sel
}

func cmpF(a, b float32) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// cand2 is a node with its distance to the current query.
type cand2 struct {
	d  float32
	id uint32
}

type minHeap struct{ h []cand2 }

func (m *minHeap) len() int { return len(m.h) }

func (m *minHeap) push(c cand2) {
	m.h = append(m.h, c)
	i := len(m.h) - 1
	for i > 0 {
		p := (i - 1) / 2
		if m.h[p].d <= m.h[i].d {
			break
		}
		m.h[p], m.h[i] = m.h[i], m.h[p]
		i = p
	}
}

func (m *minHeap) pop() cand2 {
	top := m.h[0]
	last := len(m.h) - 1
	m.h[0] = m.h[last]
	m.h = m.h[:last]
	for i := 0; ; {
		l := 2*i + 1
		if l >= len(m.h) {
			break
		}
		s := l
		if r := l + 1; r < len(m.h) && m.h[r].d < m.h[l].d {
			s = r
		}
		if m.h[i].d <= m.h[s].d {
			break
		}
		m.h[i], m.h[s] = m.h[s], m.h[i]
		i = s
	}
	return top
}

// maxHeap is a minHeap of negated distances: the farthest on top.
type maxHeap struct{ m minHeap }

func (m *maxHeap) len() int     { return m.m.len() }
func (m *maxHeap) peek() cand2  { c := m.m.h[0]; c.d = -c.d; return c }
func (m *maxHeap) push(c cand2) { c.d = -c.d; m.m.push(c) }
func (m *maxHeap) pop() cand2   { c := m.m.pop(); c.d = -c.d; return c }

// ascending empties the heap into a slice sorted nearest first.
func (m *maxHeap) ascending() []cand2 {
	out := make([]cand2, m.len())
	for i := len(out) - 1; i >= 0; i-- {
		out[i] = m.pop()
	}
	return out
}

// visitSet marks visited nodes with a generation number, so clearing it
// between searches is free.
type visitSet struct {
	marks []uint16
	gen   uint16
}

func (h *HNSW) getVisited() *visitSet {
	if v, ok := h.visited.Get().(*visitSet); ok {
		return v
	}
	return &visitSet{}
}

func (v *visitSet) reset(n int) {
	if len(v.marks) < n {
		v.marks = make([]uint16, n+n/4)
		v.gen = 0
	}
	v.gen++
	if v.gen == 0 { // wrapped: old marks could collide
		clear(v.marks)
		v.gen = 1
	}
}

func (v *visitSet) seen(id uint32) bool { return v.marks[id] == v.gen }
func (v *visitSet) mark(id uint32)      { v.marks[id] = v.gen }
