package gallery

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/visionserve/visionserve/internal/gallery/pgtest"
	"github.com/visionserve/visionserve/internal/keys"
	"github.com/visionserve/visionserve/internal/keys/keybolt"
	"github.com/visionserve/visionserve/internal/keys/keytest"
)

// clearFace and clearEmbedding are the stored forms of a store without
// encryption, for tests that write records behind the store's back.
func clearFace(t *testing.T, f Face) []byte {
	t.Helper()
	b, err := encodeFace(keys.Clear(keyDomain), f)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func clearEmbedding(v []float32) []byte {
	b, _ := encodeEmbedding(keys.Clear(keyDomain), "", v)
	return b
}

// keyedStore is one store's data with ways around the store: what it
// looks like at rest, and how to change a face's stored embedding.
type keyedStore struct {
	open func(t *testing.T, enc keys.Config) (Store, error) // a new handle on the same data
	// raw returns every form the data takes at rest.
	raw func(t *testing.T) [][]byte
	// scrub drops what a rewrite left behind (bbolt's freed pages, dead
	// PostgreSQL rows), and live is raw without what scrubbing cannot
	// reach (PostgreSQL's write-ahead log, until it is recycled).
	scrub func(t *testing.T)
	live  func(t *testing.T) [][]byte
	// stored and put read and write a face's embedding as stored.
	stored func(t *testing.T, id string) []byte
	put    func(t *testing.T, id string, emb []byte)
}

func (k keyedStore) mustOpen(t *testing.T, enc keys.Config) Store {
	t.Helper()
	s, err := k.open(t, enc)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// keyedStores returns a maker per store kind; each call makes a new,
// empty store (a bbolt file, a PostgreSQL database on one server).
func keyedStores(t *testing.T) map[string]func(t *testing.T) keyedStore {
	out := map[string]func(t *testing.T) keyedStore{"bolt": boltKeyed}
	if !testing.Short() {
		var srv *pgtest.Server
		var n atomic.Int64
		parent := t
		out["postgres"] = func(t *testing.T) keyedStore {
			if srv == nil {
				srv = pgtest.Start(parent)
			}
			return pgKeyed(srv, srv.CreateDatabase(t, fmt.Sprintf("enc%d", n.Add(1))))
		}
	}
	return out
}

func boltKeyed(t *testing.T) keyedStore {
	path := filepath.Join(t.TempDir(), "galleries.db")
	// findFace calls fn with the bucket and key of face id.
	findFace := func(t *testing.T, id string, fn func(b *bolt.Bucket, k []byte) error) {
		t.Helper()
		db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		found := false
		err = db.Update(func(tx *bolt.Tx) error {
			return tx.Bucket(bucketTenants).ForEachBucket(func(tk []byte) error {
				faces := tx.Bucket(bucketTenants).Bucket(tk).Bucket(bucketFaces)
				return faces.ForEachBucket(func(name []byte) error {
					b := faces.Bucket(name)
					return b.ForEach(func(k, _ []byte) error {
						if bytes.HasSuffix(k, []byte("\x00"+id)) {
							found = true
							return fn(b, k)
						}
						return nil
					})
				})
			})
		})
		if err != nil || !found {
			t.Fatalf("face %s: found %v, %v", id, found, err)
		}
	}
	raw := func(t *testing.T) [][]byte {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return [][]byte{b}
	}
	return keyedStore{
		open: func(t *testing.T, enc keys.Config) (Store, error) { return OpenBolt(path, time.Second, enc) },
		raw:  raw,
		live: raw,
		scrub: func(t *testing.T) {
			if err := keybolt.Compact(path, time.Second); err != nil {
				t.Fatal(err)
			}
		},
		stored: func(t *testing.T, id string) []byte {
			var emb []byte
			findFace(t, id, func(b *bolt.Bucket, k []byte) error {
				_, e, err := parseFace(Ref{}, k, b.Get(k))
				emb = bytes.Clone(e)
				return err
			})
			return emb
		},
		put: func(t *testing.T, id string, emb []byte) {
			findFace(t, id, func(b *bolt.Bucket, k []byte) error {
				v := b.Get(k)
				_, old, err := parseFace(Ref{}, k, v)
				if err != nil {
					return err
				}
				return b.Put(k, append(bytes.Clone(v[:len(v)-len(old)]), emb...))
			})
		},
	}
}

func pgKeyed(srv *pgtest.Server, dsn string) keyedStore {
	exec := func(t *testing.T, q string, args ...any) *PostgresStore {
		t.Helper()
		s, err := openPostgres(context.Background(), dsn, 2, len(migrations))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		if q != "" {
			if _, err := s.pool.Exec(context.Background(), q, args...); err != nil {
				t.Fatal(err)
			}
		}
		return s
	}
	// raw is the table as a client reads it, the dump a backup holds, and
	// the server's files.
	raw := func(t *testing.T, wal bool) [][]byte {
		s := exec(t, "")
		var table [][]byte
		rows, err := s.pool.Query(context.Background(), `SELECT embedding FROM visionserve_faces`)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var b []byte
			if err := rows.Scan(&b); err != nil {
				t.Fatal(err)
			}
			table = append(table, b)
		}
		if len(table) == 0 {
			t.Fatal("no faces in the table")
		}
		return append(append(table, srv.Dump(t, dsn)), srv.RawFiles(t, wal)...)
	}
	return keyedStore{
		open: func(t *testing.T, enc keys.Config) (Store, error) {
			return OpenPostgres(context.Background(), dsn, 4, enc)
		},
		raw:   func(t *testing.T) [][]byte { return raw(t, true) },
		live:  func(t *testing.T) [][]byte { return raw(t, false) },
		scrub: func(t *testing.T) { exec(t, `VACUUM FULL visionserve_faces`) },
		stored: func(t *testing.T, id string) []byte {
			var emb []byte
			if err := exec(t, "").pool.QueryRow(context.Background(), `SELECT embedding FROM visionserve_faces WHERE id = $1`, id).Scan(&emb); err != nil {
				t.Fatal(err)
			}
			return emb
		},
		put: func(t *testing.T, id string, emb []byte) {
			exec(t, `UPDATE visionserve_faces SET embedding = $2 WHERE id = $1`, id, emb)
		},
	}
}

// leaks reports whether any 8-byte window of an embedding (two floats)
// appears in blobs, raw or as the hex a dump writes bytea in.
func leaks(blobs [][]byte, embs [][]float32) bool {
	for _, e := range embs {
		if keytest.Leaked(blobs, 8, 4, clearEmbedding(e)) {
			return true
		}
	}
	return false
}

// enroll adds a face per subject to gallery g and returns their ids and
// embeddings.
func enroll(t *testing.T, m *Manager, g Ref, rng *rand.Rand, subjects ...string) ([]string, [][]float32) {
	t.Helper()
	ctx := context.Background()
	if _, _, err := m.CreateGallery(ctx, g); err != nil {
		t.Fatal(err)
	}
	var ids []string
	var embs [][]float32
	for _, s := range subjects {
		v := unit(rng)
		id, err := m.AddFace(ctx, g, s, testModel, v)
		if err != nil {
			t.Fatal(err)
		}
		ids, embs = append(ids, id), append(embs, v)
	}
	return ids, embs
}

func openManager(t *testing.T, s Store) (*Manager, error) {
	m, err := Open(context.Background(), s, testConfig(), nil, nil)
	if err != nil {
		s.Close()
		return nil, err
	}
	t.Cleanup(func() { m.Close() })
	return m, nil
}

// The database file or tables never hold an embedding in clear, in any
// form at rest (for PostgreSQL: the table's bytes, pg_dump's output and
// the server's files, write-ahead log included); the same checks find
// the embeddings of a store without encryption, so they can fail.
func TestEncryptedAtRest(t *testing.T) {
	for kind, makeStore := range keyedStores(t) {
		for _, v := range keytest.Variants(t) {
			alg, enc := v.Name, v.Config
			t.Run(kind+"/"+alg, func(t *testing.T) {
				ks := makeStore(t)
				m, err := openManager(t, ks.mustOpen(t, enc))
				if err != nil {
					t.Fatal(err)
				}
				rng := rand.New(rand.NewPCG(7, v.Seed))
				g := Ref{"acme", "staff"}
				_, embs := enroll(t, m, g, rng, "alice", "bob", "carol", "dan")
				m.Close()
				if got := leaks(ks.raw(t), embs); got != (alg == keytest.Clear) {
					t.Fatalf("embeddings readable at rest: %v", got)
				}
				// Read back through the store, they identify as before.
				m, err = openManager(t, ks.mustOpen(t, enc))
				if err != nil {
					t.Fatal(err)
				}
				if got, err := m.Search(g, testModel, embs[2], 1, 0.99); err != nil || len(got) != 1 || got[0].Subject != "carol" {
					t.Fatalf("identify after reopening: %+v %v", got, err)
				}
			})
		}
	}
}

// A sealed embedding is bound to its face: copied over another face's
// record (another subject, gallery or tenant) it does not open, and the
// store refuses to load rather than serve it. A record in clear is
// refused in a store encrypted from the start.
func TestSealedRecordBound(t *testing.T) {
	for kind, makeStore := range keyedStores(t) {
		t.Run(kind, func(t *testing.T) {
			ks := makeStore(t)
			enc := keytest.Config(t, keys.AES256GCM)
			m, err := openManager(t, ks.mustOpen(t, enc))
			if err != nil {
				t.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(8, 8))
			ids, embs := enroll(t, m, Ref{"acme", "staff"}, rng, "alice", "bob")
			other, _ := enroll(t, m, Ref{"globex", "staff"}, rng, "alice")
			m.Close()
			alice, bob := ks.stored(t, ids[0]), ks.stored(t, ids[1])
			for name, tc := range map[string]struct {
				id   string
				emb  []byte
				want error
			}{
				"another subject's": {ids[1], alice, keys.ErrUnauthentic},
				"another tenant's":  {other[0], alice, keys.ErrUnauthentic},
				"altered":           {ids[1], append(bytes.Clone(bob[:len(bob)-1]), bob[len(bob)-1]^1), keys.ErrUnauthentic},
				"in clear":          {ids[1], clearEmbedding(embs[0]), keys.ErrClearRecord},
			} {
				orig := ks.stored(t, tc.id)
				ks.put(t, tc.id, tc.emb)
				_, err := openManager(t, ks.mustOpen(t, enc))
				if !errors.Is(err, tc.want) {
					t.Errorf("%s embedding: %v, want %v", name, err, tc.want)
				}
				ks.put(t, tc.id, orig)
			}
			if _, err := openManager(t, ks.mustOpen(t, enc)); err != nil {
				t.Fatalf("restored: %v", err)
			}
		})
	}
}

// A store opens only with the KEK that wraps its data keys: another one
// is refused at once with both fingerprints, and none at all is refused
// too (no server writes clear records into an encrypted store).
func TestWrongKEK(t *testing.T) {
	for kind, makeStore := range keyedStores(t) {
		t.Run(kind, func(t *testing.T) {
			ks := makeStore(t)
			enc, other := keytest.Config(t, keys.SM4GCM), keytest.Config(t, keys.SM4GCM)
			m, err := openManager(t, ks.mustOpen(t, enc))
			if err != nil {
				t.Fatal(err)
			}
			enroll(t, m, Ref{Name: "staff"}, rand.New(rand.NewPCG(9, 9)), "alice")
			m.Close()
			_, err = ks.open(t, other)
			if !errors.Is(err, keys.ErrWrongKEK) || !strings.Contains(err.Error(), enc.KEK.ID()) || !strings.Contains(err.Error(), other.KEK.ID()) {
				t.Fatalf("another KEK: %v", err)
			}
			if _, err := ks.open(t, keys.Config{}); !errors.Is(err, keys.ErrEncryptedStore) {
				t.Fatalf("no KEK: %v", err)
			}
			ks.mustOpen(t, enc).Close()
		})
	}
}

// Rotation: records sealed under data key 1 stay readable once key 2 is
// active; the keyring re-wrapped under a new KEK opens only with it; and
// re-encryption moves every record to the active key.
func TestKeyRotation(t *testing.T) {
	ctx := context.Background()
	for kind, makeStore := range keyedStores(t) {
		t.Run(kind, func(t *testing.T) {
			ks := makeStore(t)
			kek1, kek2 := keytest.Config(t, keys.AES256GCM), keytest.Config(t, keys.SM4GCM)
			rng := rand.New(rand.NewPCG(10, 10))
			s := ks.mustOpen(t, kek1)
			m, err := openManager(t, s)
			if err != nil {
				t.Fatal(err)
			}
			g := Ref{Name: "staff"}
			_, old := enroll(t, m, g, rng, "alice", "bob")
			ring := s.(interface{ Keys() *keys.Ring }).Keys()
			if id, err := ring.AddKey(ctx, keys.SM4GCM); err != nil || id != 2 {
				t.Fatalf("new data key: %d %v", id, err)
			}
			if _, err := m.AddFace(ctx, g, "carol", testModel, unit(rng)); err != nil {
				t.Fatal(err)
			}
			if c, err := ring.Census(ctx); err != nil || c.ByKey[1] != 2 || c.ByKey[2] != 1 || c.Clear != 0 {
				t.Fatalf("census after the new data key: %+v %v", c, err)
			}
			if err := ring.Rewrap(ctx, kek2.KEK); err != nil {
				t.Fatal(err)
			}
			m.Close()
			if _, err := ks.open(t, kek1); !errors.Is(err, keys.ErrWrongKEK) {
				t.Fatalf("the old KEK after re-wrapping: %v", err)
			}
			s = ks.mustOpen(t, kek2)
			ring = s.(interface{ Keys() *keys.Ring }).Keys()
			c, err := ring.Reencrypt(ctx, false)
			if err != nil || c.Resealed != 2 || c.ByKey[2] != 3 || c.ByKey[1] != 0 {
				t.Fatalf("re-encryption: %+v %v", c, err)
			}
			m, err = openManager(t, s)
			if err != nil {
				t.Fatal(err)
			}
			for i, v := range old {
				if got, err := m.Search(g, testModel, v, 1, 0.99); err != nil || len(got) != 1 || got[0].Subject != []string{"alice", "bob"}[i] {
					t.Fatalf("face %d after rotation: %+v %v", i, got, err)
				}
			}
		})
	}
}

// A store of clear records keeps working when encryption is turned on:
// its records read, new ones are sealed, and encrypting the store seals
// the rest, after which a record in clear is refused.
func TestEncryptClearStore(t *testing.T) {
	ctx := context.Background()
	for kind, makeStore := range keyedStores(t) {
		t.Run(kind, func(t *testing.T) {
			ks := makeStore(t)
			rng := rand.New(rand.NewPCG(11, 11))
			m, err := openManager(t, ks.mustOpen(t, keys.Config{}))
			if err != nil {
				t.Fatal(err)
			}
			g := Ref{Name: "staff"}
			ids, embs := enroll(t, m, g, rng, "alice", "bob")
			m.Close()

			enc := keytest.Config(t, keys.AES256GCM)
			s := ks.mustOpen(t, enc)
			ring := s.(interface{ Keys() *keys.Ring }).Keys()
			if !ring.Info().ClearRecords {
				t.Fatal("a keyring made over clear records does not say so")
			}
			if m, err = openManager(t, s); err != nil {
				t.Fatalf("clear records under encryption: %v", err)
			}
			if _, err := m.AddFace(ctx, g, "carol", testModel, unit(rng)); err != nil {
				t.Fatal(err)
			}
			if c, _ := ring.Census(ctx); c.Clear != 2 || c.ByKey[1] != 1 {
				t.Fatalf("census before encrypting: %+v", c)
			}
			if c, err := ring.Reencrypt(ctx, true); err != nil || c.Resealed != 2 || c.Clear != 0 || c.ByKey[1] != 3 {
				t.Fatalf("encrypting the store: %+v %v", c, err)
			}
			m.Close()
			// Until its freed pages or dead rows are gone, the file or
			// table still holds the clear records that were overwritten.
			ks.scrub(t)
			if leaks(ks.live(t), embs) {
				t.Fatal("an embedding is still readable at rest")
			}
			s = ks.mustOpen(t, enc)
			clearOK := s.(interface{ Keys() *keys.Ring }).Keys().Info().ClearRecords
			s.Close()
			if clearOK {
				t.Fatal("the keyring still takes records in clear")
			}
			ks.put(t, ids[0], clearEmbedding(embs[0]))
			if _, err := openManager(t, ks.mustOpen(t, enc)); !errors.Is(err, keys.ErrClearRecord) {
				t.Fatalf("a clear record after encrypting: %v", err)
			}
		})
	}
}

// Replicas share a PostgreSQL keyring: a data key added through one (as
// keys rotate does) is picked up by the other when it meets a record
// sealed under it.
func TestSharedKeyringRotation(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL")
	}
	ctx := context.Background()
	srv := pgtest.Start(t)
	enc := keytest.Config(t, keys.AES256GCM)
	open := func() *PostgresStore {
		s, err := OpenPostgres(ctx, srv.DSN, 4, enc)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	a, b := open(), open()
	if _, _, err := a.CreateGallery(ctx, Ref{Name: "g"}, time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Keys().AddKey(ctx, keys.AES256GCM); err != nil {
		t.Fatal(err)
	}
	v := unit(rand.New(rand.NewPCG(12, 12)))
	if _, err := a.AddFace(ctx, Face{ID: "f1", Gallery: Ref{Name: "g"}, Subject: "alice", Model: testModel, Embedding: v, Created: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if id, _ := b.Keys().Active(); id != 1 {
		t.Fatalf("b's active key %d before reading", id)
	}
	evs, err := b.Changes(ctx, 0, 10)
	if err != nil || len(evs) != 2 || evs[1].Face == nil || evs[1].Face.Embedding[0] != v[0] {
		t.Fatalf("b reads a's face: %+v %v", evs, err)
	}
	if id, _ := b.Keys().Active(); id != 2 {
		t.Fatalf("b's active key %d after reading", id)
	}
}
