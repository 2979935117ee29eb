package review

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/visionserve/visionserve/internal/gallery/pgtest"
	"github.com/visionserve/visionserve/internal/keys"
	"github.com/visionserve/visionserve/internal/keys/keytest"
)

// rawStore is a store's data with a way around the store.
type rawStore struct {
	open func(enc keys.Config) (Store, error) // a new handle on the same data
	raw  func() [][]byte                      // every form the data takes at rest
}

// rawStores runs fn on a new, empty store of each kind. A PostgreSQL
// store has a server of its own: its files are read as a whole.
func rawStores(t *testing.T, fn func(t *testing.T, rs rawStore)) {
	t.Run("bolt", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "reviews.db")
		fn(t, rawStore{
			open: func(enc keys.Config) (Store, error) { return OpenBolt(path, time.Second, enc) },
			raw: func() [][]byte {
				b, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				return [][]byte{b}
			},
		})
	})
	t.Run("postgres", func(t *testing.T) {
		if testing.Short() {
			t.Skip("starts PostgreSQL")
		}
		srv := pgtest.Start(t)
		fn(t, rawStore{
			open: func(enc keys.Config) (Store, error) { return OpenPostgres(context.Background(), srv.DSN, 2, enc) },
			raw: func() [][]byte {
				// The table as a client reads it, the dump a backup holds,
				// and the server's files, write-ahead log included.
				conn, err := pgx.Connect(context.Background(), srv.DSN)
				if err != nil {
					t.Fatal(err)
				}
				defer conn.Close(context.Background())
				rows, err := conn.Query(context.Background(), `SELECT meta || image FROM visionserve_reviews`)
				if err != nil {
					t.Fatal(err)
				}
				out, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
				if err != nil {
					t.Fatal(err)
				}
				return append(append(out, srv.Dump(t, srv.DSN)), srv.RawFiles(t, true)...)
			},
		})
	})
}

func (rs rawStore) service(t *testing.T, enc keys.Config) *Service {
	t.Helper()
	st, err := rs.open(enc)
	if err != nil {
		t.Fatal(err)
	}
	svc := NewService(st, Config{MaxPerTenant: 100}, nil, nil)
	t.Cleanup(func() { svc.Close() })
	return svc
}

// A review's corrected text and line image never appear in the store's
// file or tables in clear, in any form at rest; the same checks find
// them in a store without encryption. Reviews read back after reopening.
func TestEncryptedAtRest(t *testing.T) {
	for _, v := range keytest.Variants(t) {
		t.Run(v.Name, func(t *testing.T) {
			rawStores(t, func(t *testing.T, rs rawStore) {
				ctx := context.Background()
				svc := rs.service(t, v.Config)
				text := "the corrected line of the " + v.Name + " variant, a name and a number 4711"
				r, err := svc.Create(ctx, input("acme", text, page(t)))
				if err != nil {
					t.Fatal(err)
				}
				got, err := svc.Get(ctx, "acme", r.ID)
				if err != nil {
					t.Fatal(err)
				}
				svc.Close()
				raw := rs.raw()
				clear := v.Name == keytest.Clear
				if leaked := keytest.Leaked(raw, 16, 16, []byte(text)); leaked != clear {
					t.Fatalf("the corrected text readable at rest: %v", leaked)
				}
				if leaked := keytest.Leaked(raw, 16, 16, got.Image); leaked != clear {
					t.Fatalf("the line image readable at rest: %v", leaked)
				}
				svc = rs.service(t, v.Config)
				again, err := svc.Get(ctx, "acme", r.ID)
				if err != nil || again.Corrected != text || !bytes.Equal(again.Image, got.Image) {
					t.Fatalf("after reopening: %+v %v", again, err)
				}
			})
		})
	}
}

// A store of reviews in clear keeps working once encrypted, and
// re-encryption seals them; an encrypted store opens only with its KEK;
// a review's image copied over another's does not open.
func TestEncryptClearStore(t *testing.T) {
	rawStores(t, func(t *testing.T, rs rawStore) {
		ctx := context.Background()
		svc := rs.service(t, keys.Config{})
		a, err := svc.Create(ctx, input("acme", "first line", page(t)))
		if err != nil {
			t.Fatal(err)
		}
		svc.Close()

		enc := keytest.Config(t, keys.SM4GCM)
		st, err := rs.open(enc)
		if err != nil {
			t.Fatal(err)
		}
		ring := st.(interface{ Keys() *keys.Ring }).Keys()
		if !ring.Info().ClearRecords {
			t.Fatal("the keyring of a store with clear reviews does not say so")
		}
		svc = NewService(st, Config{MaxPerTenant: 100}, nil, nil)
		defer svc.Close()
		b, err := svc.Create(ctx, input("acme", "second line", page(t)))
		if err != nil {
			t.Fatal(err)
		}
		if c, err := ring.Census(ctx); err != nil || c.Clear != 2 || c.ByKey[1] != 2 {
			t.Fatalf("census: %+v %v", c, err)
		}
		if c, err := ring.Reencrypt(ctx, true); err != nil || c.Resealed != 2 || c.ByKey[1] != 4 {
			t.Fatalf("re-encryption: %+v %v", c, err)
		}
		for id, want := range map[string]string{a.ID: "first line", b.ID: "second line"} {
			if r, err := svc.Get(ctx, "acme", id); err != nil || r.Corrected != want || len(r.Image) == 0 {
				t.Fatalf("review %s: %+v %v", id, r, err)
			}
		}
		n := 0
		if err := st.Each(ctx, "acme", func(Review) error { n++; return nil }); err != nil || n != 2 {
			t.Fatalf("export: %d %v", n, err)
		}
		svc.Close()
		if _, err := rs.open(keytest.Config(t, keys.SM4GCM)); !errors.Is(err, keys.ErrWrongKEK) {
			t.Fatalf("another KEK: %v", err)
		}
		if _, err := rs.open(keys.Config{}); !errors.Is(err, keys.ErrEncryptedStore) {
			t.Fatalf("no KEK: %v", err)
		}
	})
}

// A database of schema 1 (the review's JSON as jsonb) is migrated: its
// reviews read back, and new ones are sealed.
func TestMigrateSchema1(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL")
	}
	ctx := context.Background()
	srv := pgtest.Start(t)
	conn, err := pgx.Connect(ctx, srv.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	v1 := slices.Concat(migrations[0], []string{
		`CREATE TABLE visionserve_reviews_schema (id int PRIMARY KEY CHECK (id = 1), version int NOT NULL)`,
		`INSERT INTO visionserve_reviews_schema VALUES (1, 1)`,
		`INSERT INTO visionserve_reviews VALUES ('acme', 'r1', now(), 'ocr-eng', '{"id": "r1", "corrected": "an old line"}', '\x89504e47')`,
	})
	for _, q := range v1 {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	st, err := OpenPostgres(ctx, srv.DSN, 2, keytest.Config(t, keys.AES256GCM))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if r, err := st.Get(ctx, "acme", "r1"); err != nil || r.Corrected != "an old line" || string(r.Image) != "\x89PNG" {
		t.Fatalf("a review of schema 1: %+v %v", r, err)
	}
}
