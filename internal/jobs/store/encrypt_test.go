package store_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	bolt "go.etcd.io/bbolt"

	"github.com/visionserve/visionserve/internal/jobs/store"
	"github.com/visionserve/visionserve/internal/keys"
	"github.com/visionserve/visionserve/internal/keys/keybolt"
	"github.com/visionserve/visionserve/internal/keys/keytest"
)

// rawStore is one store's data with ways around the store.
type rawStore struct {
	open func(t *testing.T, enc keys.Config) (store.Store, error) // a new handle on the same data
	// raw returns every form the data takes at rest.
	raw func(t *testing.T) [][]byte
	// stored and put read and write a payload as stored: table or
	// bucket "inputs" or "pages", a job id and an index.
	stored func(t *testing.T, kind, id string, i int) []byte
	put    func(t *testing.T, kind, id string, i int, b []byte)
}

func (r rawStore) mustOpen(t *testing.T, enc keys.Config) store.Store {
	t.Helper()
	s, err := r.open(t, enc)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func opts(enc keys.Config) store.Options {
	o := defaults(store.Options{})
	o.Keys = enc
	return o
}

// rawStores returns a maker per store kind; each call makes a new, empty
// store.
func rawStores(t *testing.T) map[string]func(t *testing.T) rawStore {
	out := map[string]func(t *testing.T) rawStore{"bolt": boltRaw}
	if pg := startPostgres(t); pg != nil {
		out["postgres"] = func(t *testing.T) rawStore { return pgRaw(pg, pg.database(t)) }
	}
	return out
}

func boltRaw(t *testing.T) rawStore {
	dir := t.TempDir()
	path := filepath.Join(dir, "jobs.db")
	key := func(id string, i int) []byte { return fmt.Appendf(nil, "%s/%06d", id, i) }
	return rawStore{
		open: func(t *testing.T, enc keys.Config) (store.Store, error) { return store.OpenBolt(dir, opts(enc)) },
		raw: func(t *testing.T) [][]byte {
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			return [][]byte{b}
		},
		stored: func(t *testing.T, kind, id string, i int) []byte {
			var out []byte
			rewrite(t, path, kind, func(k, v []byte) ([]byte, error) {
				if bytes.Equal(k, key(id, i)) {
					out = bytes.Clone(v)
				}
				return nil, nil
			})
			if out == nil {
				t.Fatalf("no %s %s/%d", kind, id, i)
			}
			return out
		},
		put: func(t *testing.T, kind, id string, i int, b []byte) {
			rewrite(t, path, kind, func(k, v []byte) ([]byte, error) {
				if bytes.Equal(k, key(id, i)) {
					return b, nil
				}
				return nil, nil
			})
		},
	}
}

func pgRaw(pg *pg, dsn string) rawStore {
	conn := func(t *testing.T) *pgx.Conn {
		c, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close(context.Background()) })
		return c
	}
	col := map[string]string{"inputs": "item", "pages": "idx"}
	return rawStore{
		open: func(t *testing.T, enc keys.Config) (store.Store, error) {
			return store.OpenPostgres(ctx, dsn, 4, opts(enc))
		},
		raw: func(t *testing.T) [][]byte {
			// The tables as a client reads them, the dump a backup holds,
			// and the server's files, write-ahead log included.
			var out [][]byte
			for _, q := range []string{`SELECT data FROM visionserve_job_inputs`, `SELECT data FROM visionserve_job_pages`} {
				rows, err := conn(t).Query(ctx, q)
				if err != nil {
					t.Fatal(err)
				}
				b, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
				if err != nil {
					t.Fatal(err)
				}
				out = append(out, b...)
			}
			return append(append(out, pg.srv.Dump(t, dsn)), pg.srv.RawFiles(t, true)...)
		},
		stored: func(t *testing.T, kind, id string, i int) []byte {
			var b []byte
			q := `SELECT data FROM visionserve_job_` + kind + ` WHERE job_id = $1 AND ` + col[kind] + ` = $2`
			if err := conn(t).QueryRow(ctx, q, id, i).Scan(&b); err != nil {
				t.Fatal(err)
			}
			return b
		},
		put: func(t *testing.T, kind, id string, i int, b []byte) {
			q := `UPDATE visionserve_job_` + kind + ` SET data = $3 WHERE job_id = $1 AND ` + col[kind] + ` = $2`
			if _, err := conn(t).Exec(ctx, q, id, i, b); err != nil {
				t.Fatal(err)
			}
		},
	}
}

// rewrite walks a bucket of a store's file behind its back (the store
// closed).
func rewrite(t *testing.T, path, bucket string, edit func(k, v []byte) ([]byte, error)) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := keybolt.Rewrite(ctx, db, [][]byte{[]byte(bucket)}, edit); err != nil {
		t.Fatal(err)
	}
}

func randomBytes(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// submit stores a job of two inputs and two one-page tasks, and returns
// it with its inputs.
func submit(t *testing.T, s store.Store, rng *rand.Rand) (*store.Job, [][]byte) {
	t.Helper()
	j := newJob("key:a", "acme", 2, 0)
	in := [][]byte{randomBytes(rng, 4096), randomBytes(rng, 4096)}
	if _, err := s.Create(ctx, j, in, store.Limits{}); err != nil {
		t.Fatal(err)
	}
	return j, in
}

// run records each task of the queue with a page of random bytes and
// returns the pages by job.
func run(t *testing.T, s store.Store, rng *rand.Rand) map[string][][]byte {
	t.Helper()
	out := map[string][][]byte{}
	for {
		c := claim(t, s, "w", t0)
		if c == nil {
			return out
		}
		data := randomBytes(rng, 2048)
		if _, err := s.Complete(ctx, c, []store.Page{{Index: c.Task, Data: data}}, t0); err != nil {
			t.Fatal(err)
		}
		pages := out[c.Job.ID]
		for len(pages) <= c.Task {
			pages = append(pages, nil)
		}
		pages[c.Task] = data
		out[c.Job.ID] = pages
	}
}

func readPages(s store.Store, id string) ([][]byte, error) {
	var out [][]byte
	for p, err := range s.Pages(ctx, id) {
		if err != nil {
			return nil, err
		}
		out = append(out, p.Data)
	}
	return out, nil
}

// Job inputs and results never appear in the database file or tables in
// clear, in any form at rest (for PostgreSQL: the tables' bytes,
// pg_dump's output and the server's files, write-ahead log included);
// the same checks find them in a store without encryption.
func TestEncryptedAtRest(t *testing.T) {
	for kind, makeStore := range rawStores(t) {
		for _, v := range keytest.Variants(t) {
			alg, enc := v.Name, v.Config
			t.Run(kind+"/"+alg, func(t *testing.T) {
				rs := makeStore(t)
				rng := rand.New(rand.NewPCG(1, v.Seed))
				s := rs.mustOpen(t, enc)
				j, inputs := submit(t, s, rng)
				s.Close()
				if got := keytest.Leaked(rs.raw(t), 16, 16, inputs...); got != (alg == keytest.Clear) {
					t.Fatalf("inputs readable at rest: %v", got)
				}
				s = rs.mustOpen(t, enc)
				for i, want := range inputs {
					if got, err := s.Input(ctx, j.ID, i); err != nil || !bytes.Equal(got, want) {
						t.Fatalf("input %d reads back: %v", i, err)
					}
				}
				results := run(t, s, rng)[j.ID]
				s.Close()
				if got := keytest.Leaked(rs.raw(t), 16, 16, results...); got != (alg == keytest.Clear) {
					t.Fatalf("results readable at rest: %v", got)
				}
				s = rs.mustOpen(t, enc)
				defer s.Close()
				if got, err := readPages(s, j.ID); err != nil || len(got) != 2 || !bytes.Equal(got[1], results[1]) {
					t.Fatalf("pages read back: %d %v", len(got), err)
				}
			})
		}
	}
}

// A sealed payload is bound to its place: another job's page, another
// page of the same job, or an input where a page was does not open; a
// store encrypted from the start refuses a payload in clear; and a store
// opens only with its KEK.
func TestSealedPayloadBound(t *testing.T) {
	for kind, makeStore := range rawStores(t) {
		t.Run(kind, func(t *testing.T) {
			rs := makeStore(t)
			enc := keytest.Config(t, keys.AES256GCM)
			rng := rand.New(rand.NewPCG(2, 2))
			s := rs.mustOpen(t, enc)
			a, _ := submit(t, s, rng)
			b, _ := submit(t, s, rng)
			run(t, s, rng)
			c, _ := submit(t, s, rng) // unfinished: its inputs stay
			s.Close()
			if _, err := rs.open(t, keytest.Config(t, keys.AES256GCM)); !errors.Is(err, keys.ErrWrongKEK) {
				t.Fatalf("another KEK: %v", err)
			}
			if _, err := rs.open(t, keys.Config{}); !errors.Is(err, keys.ErrEncryptedStore) {
				t.Fatalf("no KEK: %v", err)
			}
			aPage0, bPage0 := rs.stored(t, "pages", a.ID, 0), rs.stored(t, "pages", b.ID, 0)
			for name, tc := range map[string]struct {
				payload []byte
				want    error
			}{
				"another job's page":    {aPage0, keys.ErrUnauthentic},
				"another page":          {rs.stored(t, "pages", b.ID, 1), keys.ErrUnauthentic},
				"an input":              {rs.stored(t, "inputs", c.ID, 0), keys.ErrUnauthentic},
				"a page in clear":       {[]byte(`{"text":"planted"}`), keys.ErrClearRecord},
				"an altered page":       {append(bytes.Clone(bPage0[:len(bPage0)-1]), ^bPage0[len(bPage0)-1]), keys.ErrUnauthentic},
				"a page of unknown key": {append(append(bytes.Clone(bPage0[:5]), 0, 0, 0, 9), bPage0[9:]...), keys.ErrUnknownKey},
			} {
				rs.put(t, "pages", b.ID, 0, tc.payload)
				s := rs.mustOpen(t, enc)
				if _, err := readPages(s, b.ID); !errors.Is(err, tc.want) {
					t.Errorf("%s: %v, want %v", name, err, tc.want)
				}
				s.Close()
			}
			rs.put(t, "pages", b.ID, 0, bPage0)
			rs.put(t, "inputs", c.ID, 1, rs.stored(t, "inputs", c.ID, 0))
			s = rs.mustOpen(t, enc)
			defer s.Close()
			if _, err := readPages(s, b.ID); err != nil {
				t.Fatalf("restored page: %v", err)
			}
			if _, err := s.Input(ctx, c.ID, 1); !errors.Is(err, keys.ErrUnauthentic) {
				t.Fatalf("an input copied over another: %v", err)
			}
		})
	}
}

type keyed interface{ Keys() *keys.Ring }

// Rotation and migration: a store of clear jobs keeps working once
// encrypted; records under data key 1 read after key 2 is active and the
// keyring is re-wrapped under a new KEK; re-encryption seals everything
// under the active key.
func TestKeyRotation(t *testing.T) {
	for kind, makeStore := range rawStores(t) {
		t.Run(kind, func(t *testing.T) {
			rs := makeStore(t)
			rng := rand.New(rand.NewPCG(3, 3))
			s := rs.mustOpen(t, keys.Config{})
			clearJob, clearInputs := submit(t, s, rng)
			s.Close()

			kek1, kek2 := keytest.Config(t, keys.AES256GCM), keytest.Config(t, keys.SM4GCM)
			s = rs.mustOpen(t, kek1)
			ring := s.(keyed).Keys()
			if !ring.Info().ClearRecords {
				t.Fatal("the keyring of a store with clear jobs does not say so")
			}
			if got, err := s.Input(ctx, clearJob.ID, 0); err != nil || !bytes.Equal(got, clearInputs[0]) {
				t.Fatalf("a clear input under encryption: %v", err)
			}
			first, _ := submit(t, s, rng)
			if _, err := ring.AddKey(ctx, keys.SM4GCM); err != nil {
				t.Fatal(err)
			}
			second, _ := submit(t, s, rng)
			if c, err := ring.Census(ctx); err != nil || c.Clear != 2 || c.ByKey[1] != 2 || c.ByKey[2] != 2 {
				t.Fatalf("census: %+v %v", c, err)
			}
			if err := ring.Rewrap(ctx, kek2.KEK); err != nil {
				t.Fatal(err)
			}
			s.Close()
			if _, err := rs.open(t, kek1); !errors.Is(err, keys.ErrWrongKEK) {
				t.Fatalf("the old KEK: %v", err)
			}
			s = rs.mustOpen(t, kek2)
			defer s.Close()
			for _, j := range []*store.Job{clearJob, first, second} {
				if _, err := s.Input(ctx, j.ID, 1); err != nil {
					t.Fatalf("job %s after rotation: %v", j.ID, err)
				}
			}
			c, err := s.(keyed).Keys().Reencrypt(ctx, false)
			if err != nil || c.Resealed != 4 || c.ByKey[2] != 6 || c.Clear != 0 {
				t.Fatalf("re-encryption: %+v %v", c, err)
			}
			if s.(keyed).Keys().Info().ClearRecords {
				t.Fatal("clear records still taken after re-encryption")
			}
			results := run(t, s, rng)
			for _, j := range []*store.Job{clearJob, first, second} {
				if got, err := readPages(s, j.ID); err != nil || !bytes.Equal(got[0], results[j.ID][0]) {
					t.Fatalf("job %s's pages: %v", j.ID, err)
				}
			}
			if err := s.(keyed).Keys().Rewrap(ctx, kek2.KEK); err == nil || !strings.Contains(err.Error(), "in use") {
				t.Fatalf("re-wrap under the same KEK: %v", err)
			}
		})
	}
}
