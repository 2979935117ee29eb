package gallery

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/visionserve/visionserve/internal/gallery/ann"
	"github.com/visionserve/visionserve/internal/gallery/pgtest"
	"github.com/visionserve/visionserve/internal/keys"
)

const (
	testDim   = 16
	testModel = "sha256:test-model"
)

func unit(rng *rand.Rand) []float32 {
	v := make([]float32, testDim)
	var s float64
	for i := range v {
		x := rng.NormFloat64()
		v[i] = float32(x)
		s += x * x
	}
	for i := range v {
		v[i] /= float32(math.Sqrt(s))
	}
	return v
}

// near returns a unit vector close to v (cosine about 0.95).
func near(rng *rand.Rand, v []float32) []float32 {
	n := unit(rng)
	out := make([]float32, testDim)
	var s float64
	for i := range v {
		out[i] = v[i] + 0.3*n[i]
		s += float64(out[i]) * float64(out[i])
	}
	for i := range out {
		out[i] /= float32(math.Sqrt(s))
	}
	return out
}

func testConfig() Config {
	c := DefaultConfig()
	c.PollInterval = 200 * time.Millisecond
	c.Index.HNSW = ann.Params{M: 8, EfConstruction: 40, EfSearch: 40}
	return c
}

// stores returns a constructor per store kind; each call opens a new
// handle on the same data, as a restart would.
func stores(t *testing.T) map[string]func(t *testing.T) Store {
	path := filepath.Join(t.TempDir(), "galleries.db")
	out := map[string]func(t *testing.T) Store{
		"bolt": func(t *testing.T) Store {
			s, err := OpenBolt(path, time.Second, keys.Config{})
			if err != nil {
				t.Fatal(err)
			}
			return s
		},
	}
	if !testing.Short() {
		var once sync.Once
		var dsn string
		out["postgres"] = func(t *testing.T) Store {
			once.Do(func() { dsn = pgtest.Start(t).DSN })
			s, err := OpenPostgres(context.Background(), dsn, 4, keys.Config{})
			if err != nil {
				t.Fatal(err)
			}
			return s
		}
	}
	return out
}

func open(t *testing.T, s Store, c Config) *Manager {
	t.Helper()
	m, err := Open(context.Background(), s, c, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// TestManager runs the same scenario on every store: create, enroll,
// identify, list, delete, and a restart that reloads everything.
func TestManager(t *testing.T) {
	for name, newStore := range stores(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			rng := rand.New(rand.NewPCG(1, 2))
			m := open(t, newStore(t), testConfig())

			if _, _, err := m.CreateGallery(ctx, Ref{Name: "bad/name"}); !errors.Is(err, ErrInvalidName) {
				t.Fatalf("bad name: %v", err)
			}
			g, created, err := m.CreateGallery(ctx, Ref{Name: "staff"})
			if err != nil || !created || g.Name != "staff" {
				t.Fatalf("create: %+v %v %v", g, created, err)
			}
			if _, created, err := m.CreateGallery(ctx, Ref{Name: "staff"}); err != nil || created {
				t.Fatalf("second create: created=%v err=%v", created, err)
			}
			if _, err := m.AddFace(ctx, Ref{Name: "nope"}, "alice", testModel, unit(rng)); !errors.Is(err, ErrGalleryNotFound) {
				t.Fatalf("enroll into a missing gallery: %v", err)
			}
			if _, err := m.AddFace(ctx, Ref{Name: "staff"}, "alice", "", unit(rng)); !errors.Is(err, ErrEmbedding) {
				t.Fatalf("no embedder id: %v", err)
			}

			people := map[string][]float32{}
			ids := map[string][]string{}
			for i := range 20 {
				name := fmt.Sprintf("person-%02d", i)
				people[name] = unit(rng)
				for range 2 {
					id, err := m.AddFace(ctx, Ref{Name: "staff"}, name, testModel, near(rng, people[name]))
					if err != nil {
						t.Fatal(err)
					}
					ids[name] = append(ids[name], id)
				}
			}
			checkIdentify := func(m *Manager) {
				t.Helper()
				for name, v := range people {
					got, err := m.Search(Ref{Name: "staff"}, testModel, near(rng, v), 3, 0.5)
					if err != nil {
						t.Fatal(err)
					}
					if len(got) == 0 || got[0].Subject != name {
						t.Fatalf("identify %s: %+v", name, got)
					}
					for i := 1; i < len(got); i++ {
						if got[i].Similarity > got[i-1].Similarity || got[i].Similarity < 0.5 {
							t.Fatalf("identify %s: order or threshold broken: %+v", name, got)
						}
					}
				}
			}
			checkIdentify(m)
			// An embedder's vectors all have the length of its first.
			if _, err := m.AddFace(ctx, Ref{Name: "staff"}, "alice", testModel, make([]float32, 3)); !errors.Is(err, ErrEmbedding) {
				t.Fatalf("short embedding: %v", err)
			}
			if _, err := m.Search(Ref{Name: "staff"}, testModel, make([]float32, 3), 1, 0); !errors.Is(err, ErrEmbedding) {
				t.Fatalf("short query: %v", err)
			}
			if _, err := m.Search(Ref{Name: "nope"}, testModel, unit(rng), 1, 0); !errors.Is(err, ErrGalleryNotFound) {
				t.Fatalf("search a missing gallery: %v", err)
			}

			faces, err := m.Subject(ctx, Ref{Name: "staff"}, "person-03")
			if err != nil || len(faces) != 2 || faces[0].ID != ids["person-03"][0] || faces[1].ID != ids["person-03"][1] {
				t.Fatalf("subject: %+v %v (want %v)", faces, err, ids["person-03"])
			}
			if _, err := m.Subject(ctx, Ref{Name: "staff"}, "nobody"); !errors.Is(err, ErrSubjectNotFound) {
				t.Fatalf("missing subject: %v", err)
			}
			if _, err := m.Subject(ctx, Ref{Name: "nope"}, "nobody"); !errors.Is(err, ErrGalleryNotFound) {
				t.Fatalf("missing gallery: %v", err)
			}
			if n, err := m.DeleteSubject(ctx, Ref{Name: "staff"}, "person-03"); err != nil || n != 2 {
				t.Fatalf("delete: %d %v", n, err)
			}
			if _, err := m.DeleteSubject(ctx, Ref{Name: "staff"}, "person-03"); !errors.Is(err, ErrSubjectNotFound) {
				t.Fatalf("second delete: %v", err)
			}
			if got, _ := m.Search(Ref{Name: "staff"}, testModel, people["person-03"], 1, 0.8); len(got) != 0 {
				t.Fatalf("deleted subject still found: %+v", got)
			}
			st := m.Stats()
			if st.Galleries != 1 || st.Subjects != 19 || st.Faces != 38 {
				t.Fatalf("stats %+v", st)
			}
			m.Close()

			// A restart rebuilds the same index from the store.
			m2 := open(t, newStore(t), testConfig())
			if st2 := m2.Stats(); st2.Galleries != 1 || st2.Subjects != 19 || st2.Faces != 38 {
				t.Fatalf("after restart: %+v", st2)
			}
			delete(people, "person-03")
			checkIdentify(m2)

			// Another embedder's vectors never meet this gallery's: a
			// search in its space finds nothing, and the gallery refuses
			// its faces.
			const otherModel = "sha256:other-model"
			if sp := m2.Spaces(Ref{Name: "staff"}); len(sp) != 1 || sp[0] != (Space{Model: testModel, Faces: 38}) {
				t.Fatalf("spaces %+v", sp)
			}
			for name, v := range people {
				if got, err := m2.Search(Ref{Name: "staff"}, otherModel, v, 1, -1); err != nil || len(got) != 0 {
					t.Fatalf("search %s in another space: %+v %v", name, got, err)
				}
				break
			}
			var me *MismatchError
			if _, err := m2.AddFace(ctx, Ref{Name: "staff"}, "zoe", otherModel, unit(rng)); !errors.As(err, &me) || me.Held != testModel || !errors.Is(err, ErrEmbedderMismatch) {
				t.Fatalf("enroll another embedder's face: %v", err)
			}
			// The store, not only this replica's view, refuses it.
			if name == "postgres" {
				f := Face{ID: newFaceID(), Gallery: Ref{Name: "staff"}, Subject: "zoe", Model: otherModel, Embedding: unit(rng), Created: time.Now()}
				if _, err := m2.store.AddFace(ctx, f); !errors.As(err, &me) || me.Held != testModel {
					t.Fatalf("the shared store took another embedder's face: %v", err)
				}
			}
			if st := m2.Stats(); st.Faces != 38 {
				t.Fatalf("after the refused enroll: %+v", st)
			}
		})
	}
}

func TestLimits(t *testing.T) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(3, 4))
	s, err := OpenBolt(filepath.Join(t.TempDir(), "g.db"), time.Second, keys.Config{})
	if err != nil {
		t.Fatal(err)
	}
	c := testConfig()
	c.MaxGalleries, c.MaxFaces, c.MaxFacesPerSubject = 2, 5, 2
	m := open(t, s, c)
	for _, g := range []string{"a", "b"} {
		if _, _, err := m.CreateGallery(ctx, Ref{Name: g}); err != nil {
			t.Fatal(err)
		}
	}
	var le *LimitError
	if _, _, err := m.CreateGallery(ctx, Ref{Name: "c"}); !errors.As(err, &le) || le.What != "galleries" || !errors.Is(err, ErrLimit) {
		t.Fatalf("third gallery: %v", err)
	}
	if _, _, err := m.CreateGallery(ctx, Ref{Name: "a"}); err != nil {
		t.Fatalf("existing gallery at the limit: %v", err)
	}
	for range 2 {
		if _, err := m.AddFace(ctx, Ref{Name: "a"}, "x", testModel, unit(rng)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := m.AddFace(ctx, Ref{Name: "a"}, "x", testModel, unit(rng)); !errors.As(err, &le) || le.What != "faces per subject" {
		t.Fatalf("third face of a subject: %v", err)
	}
	for _, sub := range []string{"y", "z", "w", "v"} {
		_, err = m.AddFace(ctx, Ref{Name: "b"}, sub, testModel, unit(rng))
	}
	if !errors.As(err, &le) || le.What != "faces" {
		t.Fatalf("sixth face: %v", err)
	}
}

func TestNames(t *testing.T) {
	for _, ok := range []string{"a", "staff-2024", "A.b_c", "0"} {
		if err := ValidGalleryName(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "-a", "a b", "a/b", "é", string(make([]byte, 65))} {
		if ValidGalleryName(bad) == nil {
			t.Errorf("gallery %q accepted", bad)
		}
	}
	for _, ok := range []string{"Alice Smith", "émile", "id:42", "李"} {
		if err := ValidSubjectName(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "a/b", "a\x00b", "tab\there", "\xff"} {
		if ValidSubjectName(bad) == nil {
			t.Errorf("subject %q accepted", bad)
		}
	}
}

// TestIndexSwitch grows a gallery past ExactBelow (the background build
// swaps in a graph), deletes most of it (the graph is compacted, then
// replaced by exact search) and checks search along the way.
func TestIndexSwitch(t *testing.T) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(5, 6))
	s, err := OpenBolt(filepath.Join(t.TempDir(), "g.db"), time.Second, keys.Config{})
	if err != nil {
		t.Fatal(err)
	}
	c := testConfig()
	c.Index.ExactBelow = 100
	m := open(t, s, c)
	if _, _, err := m.CreateGallery(ctx, Ref{Name: "g"}); err != nil {
		t.Fatal(err)
	}
	vecs := map[string][]float32{}
	for i := range 300 {
		sub := fmt.Sprintf("s%03d", i)
		vecs[sub] = unit(rng)
		if _, err := m.AddFace(ctx, Ref{Name: "g"}, sub, testModel, vecs[sub]); err != nil {
			t.Fatal(err)
		}
	}
	kind := func() string {
		g := m.gallery(Ref{Name: "g"}).space(testModel)
		g.mu.RLock()
		defer g.mu.RUnlock()
		return g.kind()
	}
	waitKind := func(want string) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for kind() != want {
			if time.Now().After(deadline) {
				t.Fatalf("index is %s, want %s", kind(), want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitKind(KindHNSW)
	found := 0
	for sub, v := range vecs {
		got, err := m.Search(Ref{Name: "g"}, testModel, v, 1, 0.99)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) == 1 && got[0].Subject == sub {
			found++
		}
	}
	if found < 295 {
		t.Fatalf("graph found %d of 300 exact copies", found)
	}
	// Delete 260: the graph passes its tombstone share and drops below
	// half of ExactBelow, so it becomes exact again.
	n := 0
	for sub := range vecs {
		if n == 260 {
			break
		}
		if _, err := m.DeleteSubject(ctx, Ref{Name: "g"}, sub); err != nil {
			t.Fatal(err)
		}
		delete(vecs, sub)
		n++
	}
	waitKind(KindExact)
	for sub, v := range vecs {
		got, _ := m.Search(Ref{Name: "g"}, testModel, v, 1, 0.99)
		if len(got) != 1 || got[0].Subject != sub {
			t.Fatalf("after compaction %s: %+v", sub, got)
		}
	}
	if st := m.Stats(); st.Faces != 40 {
		t.Fatalf("stats %+v", st)
	}
}

// TestSearchDistinctSubjects: a subject with many near-identical faces
// must not crowd others out of the top k.
func TestSearchDistinctSubjects(t *testing.T) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(7, 8))
	s, err := OpenBolt(filepath.Join(t.TempDir(), "g.db"), time.Second, keys.Config{})
	if err != nil {
		t.Fatal(err)
	}
	m := open(t, s, testConfig())
	if _, _, err := m.CreateGallery(ctx, Ref{Name: "g"}); err != nil {
		t.Fatal(err)
	}
	q := unit(rng)
	for range 60 {
		if _, err := m.AddFace(ctx, Ref{Name: "g"}, "crowd", testModel, near(rng, q)); err != nil && !errors.Is(err, ErrLimit) {
			t.Fatal(err)
		}
	}
	for i := range 5 {
		if _, err := m.AddFace(ctx, Ref{Name: "g"}, fmt.Sprintf("other%d", i), testModel, unit(rng)); err != nil {
			t.Fatal(err)
		}
	}
	got, err := m.Search(Ref{Name: "g"}, testModel, q, 4, -1)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 4 || got[0].Subject != "crowd" {
		t.Fatalf("got %+v", got)
	}
}

// TestConcurrent enrolls, searches and deletes from many goroutines (run
// with -race).
func TestConcurrent(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "g.db")
	s, err := OpenBolt(path, time.Second, keys.Config{})
	if err != nil {
		t.Fatal(err)
	}
	c := testConfig()
	c.Index.ExactBelow = 40
	m := open(t, s, c)
	if _, _, err := m.CreateGallery(ctx, Ref{Name: "g"}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 9))
			for i := range 40 {
				sub := fmt.Sprintf("w%d-%d", w, i%10)
				if _, err := m.AddFace(ctx, Ref{Name: "g"}, sub, testModel, unit(rng)); err != nil && !errors.Is(err, ErrLimit) {
					t.Error(err)
				}
				if _, err := m.Search(Ref{Name: "g"}, testModel, unit(rng), 3, 0); err != nil {
					t.Error(err)
				}
				if i%7 == 0 {
					if _, err := m.DeleteSubject(ctx, Ref{Name: "g"}, sub); err != nil && !errors.Is(err, ErrSubjectNotFound) {
						t.Error(err)
					}
				}
			}
		})
	}
	wg.Wait()
	st := m.Stats()
	m.Close()
	s2, err := OpenBolt(path, time.Second, keys.Config{})
	if err != nil {
		t.Fatal(err)
	}
	m2 := open(t, s2, c)
	if st2 := m2.Stats(); st2.Faces != st.Faces || st2.Subjects != st.Subjects {
		t.Fatalf("memory had %+v, store reloads %+v", st, st2)
	}
}

// TestSpaces: a gallery holding faces of two embedders (stored before the
// embedder changed) keeps one index per embedder, searched only with its
// own vectors; it takes new faces of either, of no third, and a new
// gallery takes the first embedder that comes.
func TestSpaces(t *testing.T) {
	for name, newStore := range stores(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			rng := rand.New(rand.NewPCG(7, 8))
			const old, cur, third = "sha256:old", "sha256:new", "sha256:third"
			s := newStore(t)
			if _, _, err := s.CreateGallery(ctx, Ref{Name: "mixed"}, time.Now()); err != nil {
				t.Fatal(err)
			}
			// Written to the store directly, as an older server did.
			alice, bob := unit(rng), unit(rng)
			for i, f := range []Face{
				{Subject: "alice", Model: old, Embedding: alice},
				{Subject: "alice", Model: old, Embedding: near(rng, alice)},
				{Subject: "bob", Model: cur, Embedding: bob},
			} {
				f.ID, f.Gallery, f.Created = fmt.Sprintf("f%d", i), Ref{Name: "mixed"}, time.Now()
				if ps, ok := s.(*PostgresStore); ok {
					// The store refuses a mixed gallery now; older ones
					// did not check.
					_, err := ps.pool.Exec(ctx, `INSERT INTO visionserve_faces (id, gallery, subject, model, embedding, created) VALUES ($1, $2, $3, $4, $5, $6)`,
						f.ID, f.Gallery.Name, f.Subject, f.Model, clearEmbedding(f.Embedding), f.Created)
					if err != nil {
						t.Fatal(err)
					}
					continue
				}
				if _, err := s.AddFace(ctx, f); err != nil {
					t.Fatal(err)
				}
			}
			m := open(t, s, testConfig())
			if sp := m.Spaces(Ref{Name: "mixed"}); len(sp) != 2 || sp[0] != (Space{old, 2}) || sp[1] != (Space{cur, 1}) {
				t.Fatalf("spaces %+v", sp)
			}
			if st := m.Stats(); st.Faces != 3 || st.Subjects != 2 {
				t.Fatalf("stats %+v", st)
			}
			// alice's vector is searched among the old embedder's faces
			// only: bob (a face of the new embedder) is never compared.
			if got, _ := m.Search(Ref{Name: "mixed"}, old, alice, 5, -1); len(got) != 1 || got[0].Subject != "alice" {
				t.Fatalf("old space: %+v", got)
			}
			if got, _ := m.Search(Ref{Name: "mixed"}, cur, alice, 5, -1); len(got) != 1 || got[0].Subject != "bob" {
				t.Fatalf("new space: %+v", got)
			}
			if got, err := m.Search(Ref{Name: "mixed"}, third, alice, 5, -1); err != nil || len(got) != 0 {
				t.Fatalf("third space: %+v %v", got, err)
			}
			for _, model := range []string{old, cur} {
				if _, err := m.AddFace(ctx, Ref{Name: "mixed"}, "carol", model, unit(rng)); err != nil {
					t.Fatalf("enroll %s: %v", model, err)
				}
			}
			if _, err := m.AddFace(ctx, Ref{Name: "mixed"}, "carol", third, unit(rng)); !errors.Is(err, ErrEmbedderMismatch) {
				t.Fatalf("enroll a third embedder: %v", err)
			}
			if n, err := m.DeleteSubject(ctx, Ref{Name: "mixed"}, "carol"); err != nil || n != 2 {
				t.Fatalf("delete across spaces: %d %v", n, err)
			}
			// A new, empty gallery takes the first embedder that comes.
			if _, _, err := m.CreateGallery(ctx, Ref{Name: "fresh"}); err != nil {
				t.Fatal(err)
			}
			if m.Spaces(Ref{Name: "fresh"}) != nil {
				t.Fatalf("empty gallery spaces %+v", m.Spaces(Ref{Name: "fresh"}))
			}
			if _, err := m.AddFace(ctx, Ref{Name: "fresh"}, "dan", third, unit(rng)); err != nil {
				t.Fatal(err)
			}
			if _, err := m.AddFace(ctx, Ref{Name: "fresh"}, "erin", cur, unit(rng)); !errors.Is(err, ErrEmbedderMismatch) {
				t.Fatalf("second embedder in a new gallery: %v", err)
			}
			// Emptied, a gallery takes any embedder again.
			if _, err := m.DeleteSubject(ctx, Ref{Name: "fresh"}, "dan"); err != nil {
				t.Fatal(err)
			}
			// ... and its empty index is gone, memory and all.
			for start := time.Now(); len(m.gallery(Ref{Name: "fresh"}).indexes()) != 0; time.Sleep(10 * time.Millisecond) {
				if time.Since(start) > 10*time.Second {
					t.Fatalf("the emptied gallery keeps %d indexes", len(m.gallery(Ref{Name: "fresh"}).indexes()))
				}
			}
			if _, err := m.AddFace(ctx, Ref{Name: "fresh"}, "erin", cur, unit(rng)); err != nil {
				t.Fatalf("enroll into the emptied gallery: %v", err)
			}
			m.Close()
			m2 := open(t, newStore(t), testConfig())
			if sp := m2.Spaces(Ref{Name: "mixed"}); len(sp) != 2 {
				t.Fatalf("after restart: %+v", sp)
			}
		})
	}
}
