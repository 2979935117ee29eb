package gallery

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
)

// BoltStore keeps galleries in one bbolt file: the embedded default for a
// single machine. Every write is one bbolt transaction, committed with
// fsync before it returns, so an acknowledged write survives a crash or a
// kill -9. One process holds the file at a time (bbolt's file lock).
type BoltStore struct {
	db *bolt.DB
}

// Interface guard.
var _ Store = (*BoltStore)(nil)

var (
	bucketMeta      = []byte("meta")
	bucketGalleries = []byte("galleries")
	bucketFaces     = []byte("faces") // one nested bucket per gallery
	keySchema       = []byte("schema")
	schemaVersion   = []byte("1")
)

// OpenBolt opens (creating if needed) the store at path. It waits up to
// lockTimeout for another process to release the file.
func OpenBolt(path string, lockTimeout time.Duration) (*BoltStore, error) {
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return nil, fmt.Errorf("gallery store: %w", err)
		}
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: lockTimeout})
	if err != nil {
		if errors.Is(err, bolt.ErrTimeout) {
			return nil, fmt.Errorf("gallery store %s: another process holds it: %w", path, err)
		}
		return nil, fmt.Errorf("gallery store %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		meta, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return err
		}
		switch v := meta.Get(keySchema); {
		case v == nil:
			if err := meta.Put(keySchema, schemaVersion); err != nil {
				return err
			}
		case !bytes.Equal(v, schemaVersion):
			return fmt.Errorf("schema version %q; this visionserve reads %q", v, schemaVersion)
		}
		if _, err := tx.CreateBucketIfNotExists(bucketGalleries); err != nil {
			return err
		}
		_, err = tx.CreateBucketIfNotExists(bucketFaces)
		return err
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("gallery store %s: %w", path, err)
	}
	return &BoltStore{db: db}, nil
}

type galleryMeta struct {
	Created time.Time `json:"created"`
}

// Load implements Store.
func (s *BoltStore) Load(ctx context.Context, fn func(Event) error) (uint64, error) {
	err := s.db.View(func(tx *bolt.Tx) error {
		gals := tx.Bucket(bucketGalleries)
		err := gals.ForEach(func(k, v []byte) error {
			var m galleryMeta
			if err := json.Unmarshal(v, &m); err != nil {
				return fmt.Errorf("gallery %q: %w", k, err)
			}
			return fn(Event{Op: OpCreateGallery, Gallery: string(k), Created: m.Created})
		})
		if err != nil {
			return err
		}
		faces := tx.Bucket(bucketFaces)
		n := 0
		return gals.ForEach(func(g, _ []byte) error {
			b := faces.Bucket(g)
			if b == nil {
				return nil
			}
			return b.ForEach(func(k, v []byte) error {
				if n++; n%4096 == 0 {
					if err := ctx.Err(); err != nil {
						return err
					}
				}
				f, err := decodeFace(string(g), k, v)
				if err != nil {
					return err
				}
				return fn(Event{Op: OpAddFace, Gallery: f.Gallery, Subject: f.Subject, Face: &f})
			})
		})
	})
	return 0, err
}

// CreateGallery implements Store.
func (s *BoltStore) CreateGallery(_ context.Context, name string, at time.Time) (Event, bool, error) {
	created := false
	err := s.db.Update(func(tx *bolt.Tx) error {
		gals := tx.Bucket(bucketGalleries)
		if gals.Get([]byte(name)) != nil {
			return nil
		}
		v, err := json.Marshal(galleryMeta{Created: at.UTC()})
		if err != nil {
			return err
		}
		if err := gals.Put([]byte(name), v); err != nil {
			return err
		}
		if _, err := tx.Bucket(bucketFaces).CreateBucketIfNotExists([]byte(name)); err != nil {
			return err
		}
		created = true
		return nil
	})
	if err != nil || !created {
		return Event{}, false, storeErr(err)
	}
	return Event{Op: OpCreateGallery, Gallery: name, Created: at.UTC()}, true, nil
}

// AddFace implements Store.
func (s *BoltStore) AddFace(_ context.Context, f Face) (Event, error) {
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketFaces).Bucket([]byte(f.Gallery))
		if b == nil {
			return ErrGalleryNotFound
		}
		return b.Put(faceKey(f.Subject, f.ID), encodeFace(f))
	})
	if err != nil {
		return Event{}, storeErr(err)
	}
	return Event{Op: OpAddFace, Gallery: f.Gallery, Subject: f.Subject, Face: &f}, nil
}

// DeleteSubject implements Store.
func (s *BoltStore) DeleteSubject(_ context.Context, gallery, subject string) (Event, int, error) {
	n := 0
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketFaces).Bucket([]byte(gallery))
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
	return Event{Op: OpDeleteSubject, Gallery: gallery, Subject: subject}, n, nil
}

// Faces implements Store.
func (s *BoltStore) Faces(_ context.Context, gallery, subject string) ([]FaceInfo, error) {
	var out []FaceInfo
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketFaces).Bucket([]byte(gallery))
		if b == nil {
			return ErrGalleryNotFound
		}
		prefix := faceKey(subject, "")
		c := b.Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			f, err := decodeFace(gallery, k, v)
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

// Close implements Store.
func (s *BoltStore) Close() error { return s.db.Close() }

// storeErr passes the package's sentinels through and marks anything else
// as a storage failure.
func storeErr(err error) error {
	switch {
	case err == nil, errors.Is(err, ErrGalleryNotFound), errors.Is(err, ErrSubjectNotFound):
		return err
	case errors.Is(err, bolt.ErrDatabaseNotOpen):
		return ErrClosed
	}
	return fmt.Errorf("gallery store: %w", err)
}
