package gallery

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/visionserve/visionserve/internal/gallery/pgtest"
	"github.com/visionserve/visionserve/internal/keys"
)

// Item 6 of issue 11: galleries are namespaced per tenant. Two tenants'
// galleries of one name are two galleries; nothing one tenant does
// reaches the other's, and another tenant's gallery answers exactly as a
// missing one does (ErrGalleryNotFound, never a different error that
// would tell it exists). The default tenant is a namespace like the
// others. It holds across a restart, on both stores.
func TestTenantsAreNamespaces(t *testing.T) {
	for name, newStore := range stores(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			rng := rand.New(rand.NewPCG(21, 22))
			m := open(t, newStore(t), testConfig())
			acme, globex, def := Ref{"acme", "staff"}, Ref{"globex", "staff"}, Ref{Name: "staff"}
			for _, g := range []Ref{acme, globex, def} {
				if _, created, err := m.CreateGallery(ctx, g); err != nil || !created {
					t.Fatalf("create %s: created=%v %v", g, created, err)
				}
			}
			alice, bob, carol := unit(rng), unit(rng), unit(rng)
			for _, e := range []struct {
				g       Ref
				subject string
				v       []float32
			}{{acme, "alice", alice}, {globex, "bob", bob}, {def, "carol", carol}} {
				if _, err := m.AddFace(ctx, e.g, e.subject, testModel, e.v); err != nil {
					t.Fatal(err)
				}
			}
			if _, _, err := m.CreateGallery(ctx, Ref{"acme", "acme-only"}); err != nil {
				t.Fatal(err)
			}
			if _, err := m.AddFace(ctx, Ref{"acme", "acme-only"}, "alice", testModel, alice); err != nil {
				t.Fatal(err)
			}

			check := func(t *testing.T, m *Manager) {
				t.Helper()
				// Each tenant's "staff" holds its own subject only.
				for _, c := range []struct {
					g    Ref
					want string
				}{{acme, "alice"}, {globex, "bob"}, {def, "carol"}} {
					for _, v := range [][]float32{alice, bob, carol} {
						got, err := m.Search(c.g, testModel, v, 5, 0.99)
						if err != nil {
							t.Fatal(err)
						}
						for _, g := range got {
							if g.Subject != c.want {
								t.Fatalf("%s found %s", c.g, g.Subject)
							}
						}
					}
					if ss, _, err := m.Subjects(ctx, c.g, "", 10); err != nil || len(ss) != 1 || ss[0].Name != c.want {
						t.Fatalf("%s subjects: %+v %v", c.g, ss, err)
					}
				}
				// acme's gallery does not exist for anyone else.
				for _, other := range []string{"globex", DefaultTenant} {
					g := Ref{other, "acme-only"}
					notFound := map[string]error{}
					_, notFound["search"] = m.Search(g, testModel, alice, 1, 0)
					_, notFound["enroll"] = m.AddFace(ctx, g, "mallory", testModel, unit(rng))
					_, notFound["subject"] = m.Subject(ctx, g, "alice")
					_, notFound["delete subject"] = m.DeleteSubject(ctx, g, "alice")
					_, _, notFound["subjects"] = m.Subjects(ctx, g, "", 10)
					_, notFound["delete gallery"] = m.DeleteGallery(ctx, g)
					for op, err := range notFound {
						if !errors.Is(err, ErrGalleryNotFound) {
							t.Errorf("%s of %s from tenant %q: %v, want gallery not found", op, g.Name, other, err)
						}
					}
					if sp := m.Spaces(g); sp != nil {
						t.Errorf("spaces of %s from tenant %q: %+v", g.Name, other, sp)
					}
					if name == "bolt" && m.MayExist(g) {
						t.Errorf("%s may exist for tenant %q", g.Name, other)
					}
					gs, _, err := m.Galleries(other, "", 10)
					if err != nil || len(gs) != 1 || gs[0].Name != "staff" {
						t.Errorf("galleries of %q: %+v %v", other, gs, err)
					}
				}
				if faces, err := m.Subject(ctx, Ref{"acme", "acme-only"}, "alice"); err != nil || len(faces) != 1 {
					t.Fatalf("acme's own subject: %+v %v", faces, err)
				}
			}
			check(t, m)
			m.Close()
			check(t, open(t, newStore(t), testConfig()))
		})
	}
}

// A tenant is at most 256 bytes of UTF-8 without NUL, whatever a
// credential carries.
func TestTenantNames(t *testing.T) {
	m := open(t, boltStore(t), testConfig())
	for _, bad := range []string{strings.Repeat("t", MaxTenantName+1), "a\x00b", "\xff"} {
		if _, _, err := m.CreateGallery(context.Background(), Ref{bad, "g"}); !errors.Is(err, ErrInvalidName) {
			t.Errorf("tenant %q: %v", bad, err)
		}
	}
	if _, _, err := m.CreateGallery(context.Background(), Ref{strings.Repeat("é", 128), "g"}); err != nil {
		t.Errorf("a 256-byte tenant: %v", err)
	}
}

func boltStore(t *testing.T) *BoltStore {
	t.Helper()
	s, err := OpenBolt(filepath.Join(t.TempDir(), "g.db"), time.Second, keys.Config{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Item 6 of issue 11: quotas are per tenant. One tenant filling its quota
// of galleries or faces leaves the others theirs (on 6a6482c a tenant
// could take the whole max_galleries), a configured tenant gets its own
// quota, the global bounds still hold, and deleting frees quota.
func TestTenantQuotas(t *testing.T) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(23, 24))
	c := testConfig()
	c.MaxGalleries, c.MaxFaces = 6, 9
	c.TenantQuota = Quota{Galleries: 2, Faces: 3}
	c.TenantQuotas = map[string]Quota{"big": {Galleries: 3, Faces: 5}}
	m := open(t, boltStore(t), c)
	var le *LimitError
	create := func(tenant, name string) error {
		_, _, err := m.CreateGallery(ctx, Ref{tenant, name})
		return err
	}
	for _, g := range []string{"a", "b"} {
		if err := create("greedy", g); err != nil {
			t.Fatal(err)
		}
	}
	if err := create("greedy", "c"); !errors.As(err, &le) || le.What != "galleries per tenant" || le.Limit != 2 {
		t.Fatalf("greedy's third gallery: %v", err)
	}
	if err := create("greedy", "a"); err != nil {
		t.Fatalf("an existing gallery at the quota: %v", err)
	}
	// Others still have theirs; the default tenant is a tenant too.
	for _, r := range []Ref{{"modest", "a"}, {DefaultTenant, "a"}, {"big", "a"}, {"big", "b"}} {
		if err := create(r.Tenant, r.Name); err != nil {
			t.Fatalf("%s: %v", r, err)
		}
	}
	// The global bound holds over all tenants (6 galleries now).
	if err := create("big", "c"); !errors.As(err, &le) || le.What != "galleries" {
		t.Fatalf("seventh gallery: %v", err)
	}

	for i := range 3 {
		if _, err := m.AddFace(ctx, Ref{"greedy", "a"}, fmt.Sprint("s", i), testModel, unit(rng)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := m.AddFace(ctx, Ref{"greedy", "b"}, "s9", testModel, unit(rng)); !errors.As(err, &le) || le.What != "faces per tenant" || le.Limit != 3 {
		t.Fatalf("greedy's fourth face: %v", err)
	}
	for i := range 5 {
		if _, err := m.AddFace(ctx, Ref{"big", "a"}, fmt.Sprint("s", i), testModel, unit(rng)); err != nil {
			t.Fatalf("big's face %d: %v", i, err)
		}
	}
	// 8 faces held; the ninth fits, the tenth is over max_faces.
	if _, err := m.AddFace(ctx, Ref{"modest", "a"}, "x", testModel, unit(rng)); err != nil {
		t.Fatal(err)
	}
	if _, err := m.AddFace(ctx, Ref{DefaultTenant, "a"}, "x", testModel, unit(rng)); !errors.As(err, &le) || le.What != "faces" {
		t.Fatalf("tenth face: %v", err)
	}

	// Deleting gives quota back.
	if n, err := m.DeleteGallery(ctx, Ref{"greedy", "a"}); err != nil || n != 3 {
		t.Fatalf("delete greedy/a: %d %v", n, err)
	}
	if err := create("greedy", "c"); err != nil {
		t.Fatalf("after a delete: %v", err)
	}
	for i := range 3 {
		if _, err := m.AddFace(ctx, Ref{"greedy", "c"}, fmt.Sprint("s", i), testModel, unit(rng)); err != nil {
			t.Fatalf("greedy's faces after the delete: %v", err)
		}
	}
	if st := m.Stats(); st.Galleries != 6 || st.Faces != 9 {
		t.Fatalf("stats %+v", st)
	}
}

// Deleting a gallery removes it and its faces from the store and the
// indexes, on both stores; listing pages through galleries and subjects
// in byte order, the same on both.
func TestDeleteAndListGalleries(t *testing.T) {
	for name, newStore := range stores(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			rng := rand.New(rand.NewPCG(25, 26))
			m := open(t, newStore(t), testConfig())
			const tenant = "acme"
			var names []string
			for _, g := range []string{"g5", "G1", "g2", "g10", "g3"} {
				if _, _, err := m.CreateGallery(ctx, Ref{tenant, g}); err != nil {
					t.Fatal(err)
				}
				names = append(names, g)
			}
			if _, _, err := m.CreateGallery(ctx, Ref{"other", "g0"}); err != nil {
				t.Fatal(err)
			}
			slices.Sort(names)
			var listed []string
			for after, pages := "", 0; ; pages++ {
				gs, more, err := m.Galleries(tenant, after, 2)
				if err != nil || len(gs) > 2 || pages > 3 {
					t.Fatalf("page %d: %+v %v", pages, gs, err)
				}
				for _, g := range gs {
					listed = append(listed, g.Name)
				}
				if !more {
					break
				}
				after = gs[len(gs)-1].Name
			}
			if !slices.Equal(listed, names) {
				t.Fatalf("galleries %v, want %v", listed, names)
			}

			// Subjects whose names are prefixes of others', spaces,
			// upper case and non-ASCII: one byte order on both stores.
			subjects := map[string]int{"al": 2, "al b": 1, "alice": 3, "Zed": 1, "émile": 2, "al-x": 1, "~": 1}
			g := Ref{tenant, "g2"}
			for s, n := range subjects {
				for range n {
					if _, err := m.AddFace(ctx, g, s, testModel, unit(rng)); err != nil {
						t.Fatal(err)
					}
				}
			}
			want := make([]string, 0, len(subjects))
			for s := range subjects {
				want = append(want, s)
			}
			slices.SortFunc(want, func(a, b string) int { return bytes.Compare([]byte(a), []byte(b)) })
			var got []string
			for after := ""; ; {
				ss, more, err := m.Subjects(ctx, g, after, 3)
				if err != nil {
					t.Fatal(err)
				}
				for _, s := range ss {
					if s.Faces != subjects[s.Name] {
						t.Errorf("%q has %d faces, want %d", s.Name, s.Faces, subjects[s.Name])
					}
					got = append(got, s.Name)
				}
				if !more {
					break
				}
				after = ss[len(ss)-1].Name
			}
			if !slices.Equal(got, want) {
				t.Fatalf("subjects %q, want %q", got, want)
			}
			if ss, more, err := m.Subjects(ctx, Ref{tenant, "g3"}, "", 3); err != nil || len(ss) != 0 || more {
				t.Fatalf("an empty gallery's subjects: %+v %v %v", ss, more, err)
			}

			before := m.Stats()
			if n, err := m.DeleteGallery(ctx, g); err != nil || n != 11 {
				t.Fatalf("delete: %d %v", n, err)
			}
			if _, err := m.DeleteGallery(ctx, g); !errors.Is(err, ErrGalleryNotFound) {
				t.Fatalf("delete again: %v", err)
			}
			if st := m.Stats(); st.Galleries != before.Galleries-1 || st.Faces != before.Faces-11 {
				t.Fatalf("stats %+v after deleting from %+v", st, before)
			}
			gone := func(m *Manager) {
				t.Helper()
				if _, err := m.Search(g, testModel, unit(rng), 1, -1); !errors.Is(err, ErrGalleryNotFound) {
					t.Fatalf("search a deleted gallery: %v", err)
				}
				if _, _, err := m.Subjects(ctx, g, "", 3); !errors.Is(err, ErrGalleryNotFound) {
					t.Fatalf("subjects of a deleted gallery: %v", err)
				}
				if gs, _, _ := m.Galleries(tenant, "", 10); len(gs) != len(names)-1 {
					t.Fatalf("galleries after the delete: %+v", gs)
				}
			}
			gone(m)
			m.Close()
			m = open(t, newStore(t), testConfig())
			gone(m)
			// The name is free again, and the new gallery is empty.
			if gal, created, err := m.CreateGallery(ctx, g); err != nil || !created || gal.Faces != 0 {
				t.Fatalf("recreate: %+v %v %v", gal, created, err)
			}
			if ss, _, err := m.Subjects(ctx, g, "", 3); err != nil || len(ss) != 0 {
				t.Fatalf("the recreated gallery holds %+v %v", ss, err)
			}
		})
	}
}

// A bbolt file of schema 1 (before tenants) opens as schema 3 with its
// galleries and faces in the default tenant.
func TestBoltSchema1Migrates(t *testing.T) {
	path := filepath.Join(t.TempDir(), "old.db")
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	created := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	f := Face{ID: "f1", Subject: "alice", Model: testModel, Embedding: unit(rand.New(rand.NewPCG(1, 1))), Created: created}
	err = db.Update(func(tx *bolt.Tx) error {
		meta, _ := tx.CreateBucket([]byte("meta"))
		if err := meta.Put([]byte("schema"), []byte("1")); err != nil {
			return err
		}
		gals, _ := tx.CreateBucket([]byte("galleries"))
		if err := gals.Put([]byte("legacy"), []byte(`{"created":"2025-01-02T03:04:05Z"}`)); err != nil {
			return err
		}
		faces, _ := tx.CreateBucket([]byte("faces"))
		b, _ := faces.CreateBucket([]byte("legacy"))
		return b.Put(faceKey(f.Subject, f.ID), clearFace(t, f))
	})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()

	for range 2 { // and again: opening a migrated file changes nothing
		m := open(t, mustOpenBolt(t, path), testConfig())
		legacy := Ref{DefaultTenant, "legacy"}
		faces, err := m.Subject(context.Background(), legacy, "alice")
		if err != nil || len(faces) != 1 || faces[0].ID != "f1" || !faces[0].Created.Equal(created) {
			t.Fatalf("migrated subject: %+v %v", faces, err)
		}
		if got, err := m.Search(legacy, testModel, f.Embedding, 1, 0.99); err != nil || len(got) != 1 {
			t.Fatalf("migrated face not found: %+v %v", got, err)
		}
		if _, err := m.Search(Ref{"acme", "legacy"}, testModel, f.Embedding, 1, 0.99); !errors.Is(err, ErrGalleryNotFound) {
			t.Fatalf("another tenant sees the migrated gallery: %v", err)
		}
		m.Close()
	}
	db, err = bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	_ = db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket([]byte("meta")).Get([]byte("schema")); string(v) != "3" || tx.Bucket([]byte("galleries")) != nil {
			t.Errorf("schema %q, top-level galleries bucket left: %v", v, tx.Bucket([]byte("galleries")) != nil)
		}
		return nil
	})
}

func mustOpenBolt(t *testing.T, path string) *BoltStore {
	t.Helper()
	s, err := OpenBolt(path, time.Second, keys.Config{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// A PostgreSQL database of schema 1 (before tenants), with data and
// replicas' change log, migrates on the first start: its galleries belong
// to the default tenant, the log still replays, and a database newer than
// this code is refused.
func TestPostgresSchema1Migrates(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL")
	}
	ctx := context.Background()
	srv := pgtest.Start(t)
	old, err := openPostgres(ctx, srv.DSN, 2, 1)
	if err != nil {
		t.Fatal(err)
	}
	v := unit(rand.New(rand.NewPCG(2, 2)))
	for _, stmt := range []string{
		`INSERT INTO visionserve_galleries (name, created) VALUES ('legacy', now())`,
		`INSERT INTO visionserve_faces (id, gallery, subject, model, embedding, created) VALUES ('f1', 'legacy', 'alice', $1, $2, now())`,
		`INSERT INTO visionserve_changes (seq, op, gallery) VALUES (1, 'create_gallery', 'legacy')`,
		`INSERT INTO visionserve_changes (seq, op, gallery, subject, face_id) VALUES (2, 'add_face', 'legacy', 'alice', 'f1')`,
		`UPDATE visionserve_seq SET seq = 2`,
		// A version-1 database has no visionserve_schema table.
		`DROP TABLE visionserve_schema`,
	} {
		var args []any
		if strings.Contains(stmt, "$1") {
			args = []any{testModel, clearEmbedding(v)}
		}
		if _, err := old.pool.Exec(ctx, stmt, args...); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	old.Close()

	s, err := OpenPostgres(ctx, srv.DSN, 4, keys.Config{})
	if err != nil {
		t.Fatal(err)
	}
	m := open(t, s, testConfig())
	legacy := Ref{DefaultTenant, "legacy"}
	if got, err := m.Search(legacy, testModel, v, 1, 0.99); err != nil || len(got) != 1 || got[0].Subject != "alice" {
		t.Fatalf("migrated face: %+v %v", got, err)
	}
	if _, err := m.Search(Ref{"acme", "legacy"}, testModel, v, 1, 0.99); !errors.Is(err, ErrGalleryNotFound) {
		t.Fatalf("another tenant sees the migrated gallery: %v", err)
	}
	// The old log replays (a replica that was behind) and new writes
	// carry tenants.
	evs, err := s.Changes(ctx, 0, 10)
	if err != nil || len(evs) != 2 || evs[1].Face == nil || evs[1].Gallery != legacy {
		t.Fatalf("old changes: %+v %v", evs, err)
	}
	if _, _, err := m.CreateGallery(ctx, Ref{"acme", "legacy"}); err != nil {
		t.Fatalf("a tenant's gallery named like the default tenant's: %v", err)
	}
	if _, err := m.AddFace(ctx, Ref{"acme", "legacy"}, "bob", testModel, unit(rand.New(rand.NewPCG(3, 3)))); err != nil {
		t.Fatal(err)
	}
	if ss, _, err := m.Subjects(ctx, legacy, "", 10); err != nil || len(ss) != 1 || ss[0] != (SubjectInfo{"alice", 1}) {
		t.Fatalf("default tenant's subjects: %+v %v", ss, err)
	}
	m.Close()

	// Opening again changes nothing; a newer schema is refused.
	s2, err := OpenPostgres(ctx, srv.DSN, 2, keys.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s2.pool.Exec(ctx, `UPDATE visionserve_schema SET version = 99`); err != nil {
		t.Fatal(err)
	}
	s2.Close()
	if _, err := OpenPostgres(ctx, srv.DSN, 2, keys.Config{}); err == nil || !strings.Contains(err.Error(), "schema version 99") {
		t.Fatalf("a newer schema: %v", err)
	}
}

// Shared mode follows tenant-scoped changes: a gallery deleted through
// one replica disappears from the others (notified and polling), and a
// tenant's gallery never appears in another tenant's namespace on any
// replica.
func TestSharedTenantGalleries(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL")
	}
	ctx := context.Background()
	openPG := replicas(t)
	a, b, c := openPG(false), openPG(false), openPG(true)
	rng := rand.New(rand.NewPCG(27, 28))
	acme := Ref{"acme", "staff"}
	if _, _, err := a.CreateGallery(ctx, acme); err != nil {
		t.Fatal(err)
	}
	v := unit(rng)
	if _, err := a.AddFace(ctx, acme, "alice", testModel, v); err != nil {
		t.Fatal(err)
	}
	seen := func(m *Manager, g Ref) func() bool {
		return func() bool {
			got, err := m.Search(g, testModel, v, 1, 0.99)
			return err == nil && len(got) == 1
		}
	}
	eventually(t, "acme's enroll on b", seen(b, acme))
	eventually(t, "acme's enroll on c", seen(c, acme))
	for _, m := range []*Manager{a, b, c} {
		for _, other := range []Ref{{"globex", "staff"}, {Name: "staff"}} {
			if _, err := m.Search(other, testModel, v, 1, 0.99); !errors.Is(err, ErrGalleryNotFound) {
				t.Fatalf("%s on a replica: %v", other, err)
			}
		}
	}
	if n, err := b.DeleteGallery(ctx, acme); err != nil || n != 1 {
		t.Fatalf("delete through b: %d %v", n, err)
	}
	gone := func(m *Manager) func() bool {
		return func() bool {
			_, err := m.Search(acme, testModel, v, 1, 0.99)
			return errors.Is(err, ErrGalleryNotFound) && m.Stats().Faces == 0
		}
	}
	eventually(t, "the delete on a", gone(a))
	eventually(t, "the delete on c", gone(c))
	if _, err := a.AddFace(ctx, acme, "alice", testModel, v); !errors.Is(err, ErrGalleryNotFound) {
		t.Fatalf("enroll into the deleted gallery through another replica: %v", err)
	}
}
