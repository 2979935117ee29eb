package gallery

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/visionserve/visionserve/internal/keys"
	"github.com/visionserve/visionserve/internal/keys/keybolt"
)

// BoltStore keeps galleries in one bbolt file: the embedded default for a
// single machine. Every write is one bbolt transaction, committed with
// fsync before it returns, so an acknowledged write survives a crash or a
// kill -9. One process holds the file at a time (bbolt's file lock).
type BoltStore struct {
	db   *bolt.DB
	keys *keys.Ring
}

// Interface guard.
var _ Store = (*BoltStore)(nil)

// The file's layout, schema 3:
//
//	meta/schema                                  "3"
//	meta/keyring                                 the keyring (package keys), when encryption is on
//	tenants/<tenant key>/galleries/<name>        {"created": ...}
//	tenants/<tenant key>/faces/<name>/<subject NUL face id>  a face record (record.go)
//
// The tenant key is "t:" and the tenant's name (a bucket needs a
// non-empty key, and the default tenant's name is empty). Schema 1 held
// galleries/ and faces/ at the top level; opening such a file moves both,
// whole, under the default tenant, in one transaction. Schema 3 may hold
// sealed embeddings, which a visionserve of schema 2 would misread: it
// refuses the file instead.
var (
	bucketMeta      = []byte("meta")
	bucketTenants   = []byte("tenants")
	bucketGalleries = []byte("galleries")
	bucketFaces     = []byte("faces")
	keySchema       = []byte("schema")
	keyKeyring      = []byte("keyring")
	schemaV1        = []byte("1")
	schemaV2        = []byte("2")
	schemaVersion   = []byte("3")
)

func tenantKey(tenant string) []byte { return append([]byte("t:"), tenant...) }

// OpenBolt opens (creating if needed) the store at path, moving a file of
// an earlier schema to the current one, and its keyring with enc (see
// keys.Open: a file with a keyring needs its KEK). It waits up to
// lockTimeout for another process to release the file.
func OpenBolt(path string, lockTimeout time.Duration, enc keys.Config) (*BoltStore, error) {
	db, err := keybolt.Open(path, lockTimeout, migrateBolt)
	if err != nil {
		return nil, fmt.Errorf("gallery store: %w", err)
	}
	s := &BoltStore{db: db}
	if s.keys, err = keybolt.OpenRing(db, enc, keyDomain, bucketMeta, keyKeyring, s); err != nil {
		db.Close()
		return nil, fmt.Errorf("gallery store %s: %w", path, err)
	}
	return s, nil
}

// migrateBolt brings a new or earlier file to the current schema.
func migrateBolt(tx *bolt.Tx) error {
	meta, err := tx.CreateBucketIfNotExists(bucketMeta)
	if err != nil {
		return err
	}
	switch v := meta.Get(keySchema); {
	case v == nil:
		if _, err := tx.CreateBucket(bucketTenants); err != nil {
			return err
		}
	case bytes.Equal(v, schemaV1):
		tenants, err := tx.CreateBucket(bucketTenants)
		if err != nil {
			return err
		}
		def, err := tenants.CreateBucket(tenantKey(DefaultTenant))
		if err != nil {
			return err
		}
		for _, b := range [][]byte{bucketGalleries, bucketFaces} {
			if err := tx.MoveBucket(b, nil, def); err != nil {
				return fmt.Errorf("moving schema 1's %s to the default tenant: %w", b, err)
			}
		}
	case bytes.Equal(v, schemaV2):
	case bytes.Equal(v, schemaVersion):
		return nil
	default:
		return fmt.Errorf("schema version %q; this visionserve reads %q and earlier", v, schemaVersion)
	}
	return meta.Put(keySchema, schemaVersion)
}

type galleryMeta struct {
	Created time.Time `json:"created"`
}

// tenantBuckets returns a tenant's galleries and faces buckets: nil when
// the tenant holds nothing, unless create.
func tenantBuckets(tx *bolt.Tx, tenant string, create bool) (gals, faces *bolt.Bucket, err error) {
	tenants := tx.Bucket(bucketTenants)
	t := tenants.Bucket(tenantKey(tenant))
	if t == nil && !create {
		return nil, nil, nil
	}
	if t == nil {
		if t, err = tenants.CreateBucket(tenantKey(tenant)); err != nil {
			return nil, nil, err
		}
		if gals, err = t.CreateBucket(bucketGalleries); err != nil {
			return nil, nil, err
		}
		faces, err = t.CreateBucket(bucketFaces)
		return gals, faces, err
	}
	return t.Bucket(bucketGalleries), t.Bucket(bucketFaces), nil
}

// galleryFaces returns the bucket of g's faces, or nil.
func galleryFaces(tx *bolt.Tx, g Ref) *bolt.Bucket {
	_, faces, _ := tenantBuckets(tx, g.Tenant, false)
	if faces == nil {
		return nil
	}
	return faces.Bucket([]byte(g.Name))
}

// Load implements Store.
func (s *BoltStore) Load(ctx context.Context, fn func(Event) error) (uint64, error) {
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketTenants).ForEachBucket(func(tk []byte) error {
			tenant := string(bytes.TrimPrefix(tk, []byte("t:")))
			gals, faces, _ := tenantBuckets(tx, tenant, false)
			err := gals.ForEach(func(k, v []byte) error {
				var m galleryMeta
				if err := json.Unmarshal(v, &m); err != nil {
					return fmt.Errorf("gallery %s: %w", Ref{tenant, string(k)}, err)
				}
				return fn(Event{Op: OpCreateGallery, Gallery: Ref{tenant, string(k)}, Created: m.Created})
			})
			if err != nil {
				return err
			}
			n := 0
			return gals.ForEach(func(name, _ []byte) error {
				b := faces.Bucket(name)
				if b == nil {
					return nil
				}
				g := Ref{tenant, string(name)}
				return b.ForEach(func(k, v []byte) error {
					if n++; n%4096 == 0 {
						if err := ctx.Err(); err != nil {
							return err
						}
					}
					f, err := decodeFace(s.keys, g, k, v)
					if err != nil {
						return err
					}
					return fn(Event{Op: OpAddFace, Gallery: g, Subject: f.Subject, Face: &f})
				})
			})
		})
	})
	return 0, err
}

// CreateGallery implements Store.
func (s *BoltStore) CreateGallery(_ context.Context, g Ref, at time.Time) (Event, bool, error) {
	created := false
	err := s.db.Update(func(tx *bolt.Tx) error {
		gals, faces, err := tenantBuckets(tx, g.Tenant, true)
		if err != nil || gals.Get([]byte(g.Name)) != nil {
			return err
		}
		v, err := json.Marshal(galleryMeta{Created: at.UTC()})
		if err != nil {
			return err
		}
		if err := gals.Put([]byte(g.Name), v); err != nil {
			return err
		}
		if _, err := faces.CreateBucketIfNotExists([]byte(g.Name)); err != nil {
			return err
		}
		created = true
		return nil
	})
	if err != nil || !created {
		return Event{}, false, storeErr(err)
	}
	return Event{Op: OpCreateGallery, Gallery: g, Created: at.UTC()}, true, nil
}

// DeleteGallery implements Store. A tenant left without galleries loses
// its bucket too.
func (s *BoltStore) DeleteGallery(_ context.Context, g Ref) (Event, int, error) {
	n := 0
	err := s.db.Update(func(tx *bolt.Tx) error {
		gals, faces, _ := tenantBuckets(tx, g.Tenant, false)
		if gals == nil || gals.Get([]byte(g.Name)) == nil {
			return ErrGalleryNotFound
		}
		if b := faces.Bucket([]byte(g.Name)); b != nil {
			n = b.Stats().KeyN
			if err := faces.DeleteBucket([]byte(g.Name)); err != nil {
				return err
			}
		}
		if err := gals.Delete([]byte(g.Name)); err != nil {
			return err
		}
		if k, _ := gals.Cursor().First(); k == nil {
			return tx.Bucket(bucketTenants).DeleteBucket(tenantKey(g.Tenant))
		}
		return nil
	})
	if err != nil {
		return Event{}, 0, storeErr(err)
	}
	return Event{Op: OpDeleteGallery, Gallery: g}, n, nil
}

// AddFace implements Store.
func (s *BoltStore) AddFace(_ context.Context, f Face) (Event, error) {
	rec, err := encodeFace(s.keys, f)
	if err != nil {
		return Event{}, storeErr(err)
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		b := galleryFaces(tx, f.Gallery)
		if b == nil {
			return ErrGalleryNotFound
		}
		return b.Put(faceKey(f.Subject, f.ID), rec)
	})
	if err != nil {
		return Event{}, storeErr(err)
	}
	return Event{Op: OpAddFace, Gallery: f.Gallery, Subject: f.Subject, Face: &f}, nil
}

// DeleteSubject implements Store.
func (s *BoltStore) DeleteSubject(_ context.Context, g Ref, subject string) (Event, int, error) {
	n := 0
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := galleryFaces(tx, g)
		if b == nil {
			return ErrGalleryNotFound
		}
		prefix := faceKey(subject, "")
		var keys [][]byte
		c := b.Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			keys = append(keys, slices.Clone(k))
		}
		if len(keys) == 0 {
			return ErrSubjectNotFound
		}
		for _, k := range keys {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		n = len(keys)
		return nil
	})
	if err != nil {
		return Event{}, 0, storeErr(err)
	}
	return Event{Op: OpDeleteSubject, Gallery: g, Subject: subject}, n, nil
}

// Faces implements Store.
func (s *BoltStore) Faces(_ context.Context, g Ref, subject string) ([]FaceInfo, error) {
	var out []FaceInfo
	err := s.db.View(func(tx *bolt.Tx) error {
		b := galleryFaces(tx, g)
		if b == nil {
			return ErrGalleryNotFound
		}
		prefix := faceKey(subject, "")
		c := b.Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			f, _, err := parseFace(g, k, v)
			if err != nil {
				return err
			}
			out = append(out, FaceInfo{ID: f.ID, Created: f.Created})
		}
		if len(out) == 0 {
			return ErrSubjectNotFound
		}
		return nil
	})
	if err != nil {
		return nil, storeErr(err)
	}
	slices.SortStableFunc(out, func(a, b FaceInfo) int { return a.Created.Compare(b.Created) })
	return out, nil
}

// Subjects implements Store. A subject's faces are one key range (subject,
// NUL, face id), and the ranges sort as the subject names do, so the
// listing is one cursor walk from after's range on.
func (s *BoltStore) Subjects(_ context.Context, g Ref, after string, limit int) ([]SubjectInfo, error) {
	var out []SubjectInfo
	err := s.db.View(func(tx *bolt.Tx) error {
		b := galleryFaces(tx, g)
		if b == nil {
			return ErrGalleryNotFound
		}
		c := b.Cursor()
		k, _ := c.First()
		if after != "" {
			// Past every key of after (after NUL ...), onto the next
			// subject: subject names hold no byte below 0x20.
			k, _ = c.Seek(append([]byte(after), 1))
		}
		var last []byte
		for ; k != nil; k, _ = c.Next() {
			i := bytes.IndexByte(k, 0)
			if i < 0 {
				return fmt.Errorf("gallery %s: malformed face key %q", g, k)
			}
			if last != nil && bytes.Equal(k[:i], last) {
				out[len(out)-1].Faces++
				continue
			}
			if len(out) == limit {
				break
			}
			last = k[:i]
			out = append(out, SubjectInfo{Name: string(last), Faces: 1})
		}
		return nil
	})
	if err != nil {
		return nil, storeErr(err)
	}
	return out, nil
}

// Close implements Store.
func (s *BoltStore) Close() error { return s.db.Close() }

// Keys returns the ring that seals the store's embeddings.
func (s *BoltStore) Keys() *keys.Ring { return s.keys }

// Reseal implements keys.Records: every face's embedding, gallery by
// gallery.
func (s *BoltStore) Reseal(ctx context.Context, fn func(ref string, stored []byte) ([]byte, error)) error {
	type walk struct {
		g    Ref
		path [][]byte
	}
	var walks []walk
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketTenants).ForEachBucket(func(tk []byte) error {
			tenant := string(bytes.TrimPrefix(tk, []byte("t:")))
			_, faces, _ := tenantBuckets(tx, tenant, false)
			return faces.ForEachBucket(func(name []byte) error {
				walks = append(walks, walk{Ref{tenant, string(name)}, [][]byte{bucketTenants, bytes.Clone(tk), bucketFaces, bytes.Clone(name)}})
				return nil
			})
		})
	})
	if err != nil {
		return storeErr(err)
	}
	for _, w := range walks {
		err := keybolt.Rewrite(ctx, s.db, w.path, func(k, v []byte) ([]byte, error) {
			f, emb, err := parseFace(w.g, k, v)
			if err != nil {
				return nil, err
			}
			sealed, err := fn(sealRef(w.g, f.Subject, f.ID, f.Model), emb)
			if sealed == nil || err != nil {
				return nil, err
			}
			return append(bytes.Clone(v[:len(v)-len(emb)]), sealed...), nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// storeErr passes the package's sentinels through and marks anything else
// as a storage failure.
func storeErr(err error) error {
	switch {
	case err == nil, errors.Is(err, ErrGalleryNotFound), errors.Is(err, ErrSubjectNotFound):
		return err
	case errors.Is(err, berrors.ErrDatabaseNotOpen):
		return ErrClosed
	}
	return fmt.Errorf("gallery store: %w", err)
}
