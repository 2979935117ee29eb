package ann

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// randomUnit returns n random unit vectors of length dim, flat: uniform on
// the sphere (normalised Gaussians), the case with no structure for an
// index to exploit.
func randomUnit(rng *rand.Rand, n, dim int) []float32 {
	out := make([]float32, n*dim)
	for i := range n {
		v := out[i*dim : (i+1)*dim]
		var s float64
		for j := range v {
			x := rng.NormFloat64()
			v[j] = float32(x)
			s += x * x
		}
		inv := float32(1 / math.Sqrt(s))
		for j := range v {
			v[j] *= inv
		}
	}
	return out
}

// recallAt is the fraction of the exact top-k found: hits at least as
// similar as the exact k-th (so equal vectors under other ids count).
func recallAt(exact, got []Hit) float64 {
	if len(exact) == 0 {
		return 1
	}
	kth := exact[len(exact)-1].Similarity - 1e-6
	n := 0
	for _, h := range got {
		if h.Similarity >= kth {
			n++
		}
	}
	return float64(min(n, len(exact))) / float64(len(exact))
}

func TestFlatExact(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const dim = 16
	vecs := randomUnit(rng, 300, dim)
	f := NewFlat(dim)
	for i := range 300 {
		if id := f.Add(vecs[i*dim : (i+1)*dim]); id != uint32(i) {
			t.Fatalf("id %d for vector %d", id, i)
		}
	}
	q := randomUnit(rng, 1, dim)
	got := f.Search(q, 7)
	// Brute force by sorting every similarity.
	all := make([]Hit, 300)
	for i := range all {
		all[i] = Hit{uint32(i), Dot(q, vecs[i*dim:(i+1)*dim])}
	}
	slices.SortFunc(all, func(a, b Hit) int { return cmpF(b.Similarity, a.Similarity) })
	if !slices.Equal(got, all[:7]) {
		t.Fatalf("got %v, want %v", got, all[:7])
	}
	// Deleting the best moves everything up; its slot is reused.
	f.Delete(got[0].ID)
	f.Delete(got[0].ID) // no-op
	if f.Len() != 299 || f.Slots() != 300 || !f.Deleted(got[0].ID) {
		t.Fatalf("after delete: len %d slots %d", f.Len(), f.Slots())
	}
	if again := f.Search(q, 6); !slices.Equal(again, all[1:7]) {
		t.Fatalf("after delete got %v, want %v", again, all[1:7])
	}
	if id := f.Add(vecs[:dim]); id != got[0].ID {
		t.Fatalf("freed slot %d not reused (got %d)", got[0].ID, id)
	}
	if f.Search(q, 0) != nil || len(f.Search(q, 1000)) != 300 {
		t.Fatal("k edge cases")
	}
}

func TestDot(t *testing.T) {
	for _, n := range []int{0, 1, 7, 8, 9, 128, 131} {
		a, b := make([]float32, n), make([]float32, n)
		var want float64
		for i := range n {
			a[i], b[i] = float32(i+1)/10, float32(n-i)/7
			want += float64(a[i]) * float64(b[i])
		}
		if got := Dot(a, b); math.Abs(float64(got)-want) > 1e-3*max(1, math.Abs(want)) {
			t.Errorf("n=%d: Dot = %v, want %v", n, got, want)
		}
	}
}

// TestHNSWRecall checks the graph against exact search: built one vector
// at a time and in parallel, before and after deleting a third.
func TestHNSWRecall(t *testing.T) {
	const (
		dim = 64
		k   = 10
	)
	n, queries := 4000, 200
	if raceEnabled {
		n, queries = 800, 50
	}
	rng := rand.New(rand.NewPCG(3, 4))
	vecs := randomUnit(rng, n, dim)
	qs := randomUnit(rng, queries, dim)
	p := Params{M: 16, EfConstruction: 100, EfSearch: 128}

	seq, err := NewHNSW(dim, p, 1)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		seq.Add(vecs[i*dim : (i+1)*dim])
	}
	par, err := Build(context.Background(), dim, slices.Clone(vecs), p, 1, 4)
	if err != nil {
		t.Fatal(err)
	}
	flat := NewFlat(dim)
	for i := range n {
		flat.Add(vecs[i*dim : (i+1)*dim])
	}

	check := func(name string, idx Index, minRecall float64) {
		t.Helper()
		var sum float64
		for i := range queries {
			q := qs[i*dim : (i+1)*dim]
			exact := flat.Search(q, k)
			got := idx.Search(q, k)
			if len(got) != k {
				t.Fatalf("%s: %d hits, want %d", name, len(got), k)
			}
			for j := 1; j < len(got); j++ {
				if got[j].Similarity > got[j-1].Similarity {
					t.Fatalf("%s: hits not best first: %v", name, got)
				}
			}
			for _, h := range got {
				if idx.Deleted(h.ID) {
					t.Fatalf("%s: deleted id %d returned", name, h.ID)
				}
				if want := Dot(q, idx.Vector(h.ID)); math.Abs(float64(want-h.Similarity)) > 1e-5 {
					t.Fatalf("%s: similarity %v for id %d, want %v", name, h.Similarity, h.ID, want)
				}
			}
			sum += recallAt(exact, got)
		}
		r := sum / float64(queries)
		t.Logf("%s: recall@%d = %.4f", name, k, r)
		if r < minRecall {
			t.Errorf("%s: recall@%d = %.4f, want at least %.2f", name, k, r, minRecall)
		}
	}
	check("sequential", seq, 0.95)
	check("parallel", par, 0.95)

	for i := 0; i < n; i += 3 {
		seq.Delete(uint32(i))
		par.Delete(uint32(i))
		flat.Delete(uint32(i))
	}
	if seq.Len() != flat.Len() || par.Len() != flat.Len() {
		t.Fatalf("len after deletes: %d %d, want %d", seq.Len(), par.Len(), flat.Len())
	}
	check("sequential after deletes", seq, 0.93)
	check("parallel after deletes", par, 0.93)

	// Inserting after deletions keeps the graph searchable.
	for i := 0; i < n; i += 3 {
		flat.Add(vecs[i*dim : (i+1)*dim])
		par.Add(vecs[i*dim : (i+1)*dim])
	}
	check("parallel after re-adds", par, 0.93)
}

func TestHNSWSmall(t *testing.T) {
	h, err := NewHNSW(4, Params{M: 4, EfConstruction: 8, EfSearch: 4}, 7)
	if err != nil {
		t.Fatal(err)
	}
	q := []float32{1, 0, 0, 0}
	if h.Search(q, 3) != nil {
		t.Fatal("empty graph returned hits")
	}
	a := h.Add([]float32{1, 0, 0, 0})
	if got := h.Search(q, 3); len(got) != 1 || got[0].ID != a || got[0].Similarity != 1 {
		t.Fatalf("one node: %v", got)
	}
	h.Delete(a)
	if got := h.Search(q, 3); len(got) != 0 {
		t.Fatalf("only node deleted: %v", got)
	}
	b := h.Add([]float32{0, 1, 0, 0})
	if got := h.Search(q, 3); len(got) != 1 || got[0].ID != b {
		t.Fatalf("after re-add: %v", got)
	}
	if _, err := Build(context.Background(), 4, make([]float32, 5), DefaultParams(), 1, 2); err == nil {
		t.Error("Build accepted a ragged arena")
	}
	if g, err := Build(context.Background(), 4, nil, DefaultParams(), 1, 2); err != nil || g.Search(q, 1) != nil {
		t.Errorf("empty build: %v", err)
	}
	for _, p := range []Params{{M: 2, EfConstruction: 10, EfSearch: 10}, {M: 16, EfConstruction: 8, EfSearch: 10}, {M: 16, EfConstruction: 100, EfSearch: 0}} {
		if p.Validate() == nil {
			t.Errorf("%+v accepted", p)
		}
	}
	if err := DefaultParams().Validate(); err != nil {
		t.Error(err)
	}
}

func TestBuildCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	vecs := randomUnit(rand.New(rand.NewPCG(9, 9)), 5000, 16)
	if _, err := Build(ctx, 16, vecs, Params{M: 8, EfConstruction: 16, EfSearch: 16}, 1, 2); err == nil {
		t.Fatal("Build ignored a cancelled context")
	}
}
