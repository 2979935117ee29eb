package review

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/visionserve/visionserve/internal/keys"
	"github.com/visionserve/visionserve/internal/keys/keybolt"
)

// BoltStore keeps reviews in one bbolt file, the embedded store of a
// single machine. Every write is one transaction committed with fsync
// before it returns. One process holds the file at a time.
type BoltStore struct {
	db   *bolt.DB
	keys *keys.Ring
}

// Interface guard.
var _ Store = (*BoltStore)(nil)

// The file's layout, schema 2 (1 had no keyring; it is upgraded in
// place, and a visionserve that reads 1 refuses 2, whose records may be
// sealed):
//
//	meta/schema                       "2"
//	meta/keyring                      the keyring (package keys), when encryption is on
//	tenants/t:<tenant>/count          number of reviews (uint64, big endian)
//	tenants/t:<tenant>/reviews/<id>   the review's JSON, without the image
//	tenants/t:<tenant>/images/<id>    the line's PNG
//
// Listings read reviews/ only; the images are read for one review or an
// export.
var (
	bucketMeta    = []byte("meta")
	bucketTenants = []byte("tenants")
	bucketReviews = []byte("reviews")
	bucketImages  = []byte("images")
	keySchema     = []byte("schema")
	keyCount      = []byte("count")
	keyKeyring    = []byte("keyring")
	schemaVersion = []byte("2")
	schema1       = []byte("1")
)

func tenantKey(tenant string) []byte { return append([]byte("t:"), tenant...) }

// OpenBolt opens (creating if needed) the store at path, waiting up to
// lockTimeout for another process to release the file, and its keyring
// with enc (see keys.Open: a file with a keyring needs its KEK).
func OpenBolt(path string, lockTimeout time.Duration, enc keys.Config) (*BoltStore, error) {
	db, err := keybolt.Open(path, lockTimeout, migrateBolt)
	if err != nil {
		return nil, fmt.Errorf("review store: %w", err)
	}
	s := &BoltStore{db: db}
	if s.keys, err = keybolt.OpenRing(db, enc, keyDomain, bucketMeta, keyKeyring, s); err != nil {
		db.Close()
		return nil, fmt.Errorf("review store %s: %w", path, err)
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
		if _, err := tx.CreateBucketIfNotExists(bucketTenants); err != nil {
			return err
		}
		return meta.Put(keySchema, schemaVersion)
	case bytes.Equal(v, schemaVersion):
		return nil
	case bytes.Equal(v, schema1):
		return meta.Put(keySchema, schemaVersion)
	default:
		return fmt.Errorf("schema version %q; this visionserve reads %q", v, schemaVersion)
	}
}

// tenantBucket returns the tenant's bucket: nil when it holds nothing,
// unless create.
func tenantBucket(tx *bolt.Tx, tenant string, create bool) (*bolt.Bucket, error) {
	tenants := tx.Bucket(bucketTenants)
	if t := tenants.Bucket(tenantKey(tenant)); t != nil || !create {
		return t, nil
	}
	t, err := tenants.CreateBucket(tenantKey(tenant))
	if err != nil {
		return nil, err
	}
	for _, b := range [][]byte{bucketReviews, bucketImages} {
		if _, err := t.CreateBucket(b); err != nil {
			return nil, err
		}
	}
	return t, nil
}

func count(t *bolt.Bucket) uint64 {
	if v := t.Get(keyCount); len(v) == 8 {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

func setCount(t *bolt.Bucket, n uint64) error {
	return t.Put(keyCount, binary.BigEndian.AppendUint64(nil, n))
}

// Add implements Store.
func (s *BoltStore) Add(_ context.Context, r Review, max int) error {
	meta, image, err := seal(s.keys, r)
	if err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		t, err := tenantBucket(tx, r.Tenant, true)
		if err != nil {
			return err
		}
		n := count(t)
		if max > 0 && n >= uint64(max) {
			return limitErr(max)
		}
		if err := t.Bucket(bucketReviews).Put([]byte(r.ID), meta); err != nil {
			return err
		}
		if err := t.Bucket(bucketImages).Put([]byte(r.ID), image); err != nil {
			return err
		}
		return setCount(t, n+1)
	})
}

func limitErr(max int) error {
	return fmt.Errorf("%w: at most %d reviews per tenant; export them and delete the ones calibrated on", ErrLimit, max)
}

// Get implements Store.
func (s *BoltStore) Get(_ context.Context, tenant, id string) (r Review, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		t, _ := tenantBucket(tx, tenant, false)
		if t == nil {
			return ErrNotFound
		}
		meta := t.Bucket(bucketReviews).Get([]byte(id))
		if meta == nil {
			return ErrNotFound
		}
		r, err = decode(s.keys, tenant, id, meta, t.Bucket(bucketImages).Get([]byte(id)))
		return err
	})
	return r, err
}

// List implements Store.
func (s *BoltStore) List(_ context.Context, tenant string, p Page) (out []Review, more bool, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		out, more, err = s.page(tx, tenant, p.After, p.Limit, false)
		return err
	})
	return out, more, err
}

// page reads up to limit reviews after the id after, with their images
// when images is set.
func (s *BoltStore) page(tx *bolt.Tx, tenant, after string, limit int, images bool) ([]Review, bool, error) {
	t, _ := tenantBucket(tx, tenant, false)
	if t == nil {
		return nil, false, nil
	}
	var out []Review
	c := t.Bucket(bucketReviews).Cursor()
	k, v := c.Seek([]byte(after))
	if k != nil && string(k) == after {
		k, v = c.Next()
	}
	for ; k != nil; k, v = c.Next() {
		if len(out) == limit {
			return out, true, nil
		}
		var img []byte
		if images {
			img = t.Bucket(bucketImages).Get(k)
		}
		r, err := decode(s.keys, tenant, string(k), v, img)
		if err != nil {
			return nil, false, err
		}
		out = append(out, r)
	}
	return out, false, nil
}

// Each implements Store.
func (s *BoltStore) Each(ctx context.Context, tenant string, fn func(Review) error) error {
	return eachPage(ctx, fn, func(after string) (batch []Review, more bool, err error) {
		err = s.db.View(func(tx *bolt.Tx) error {
			batch, more, err = s.page(tx, tenant, after, eachBatch, true)
			return err
		})
		return batch, more, err
	})
}

// Delete implements Store.
func (s *BoltStore) Delete(_ context.Context, tenant, id string) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		t, _ := tenantBucket(tx, tenant, false)
		if t == nil || t.Bucket(bucketReviews).Get([]byte(id)) == nil {
			return ErrNotFound
		}
		if err := t.Bucket(bucketReviews).Delete([]byte(id)); err != nil {
			return err
		}
		if err := t.Bucket(bucketImages).Delete([]byte(id)); err != nil {
			return err
		}
		return setCount(t, count(t)-1)
	})
}

// Close implements Store.
func (s *BoltStore) Close() error { return s.db.Close() }

// Keys returns the ring that seals the store's reviews.
func (s *BoltStore) Keys() *keys.Ring { return s.keys }

// Reseal implements keys.Records: each tenant's reviews, then its images.
func (s *BoltStore) Reseal(ctx context.Context, fn func(ref string, stored []byte) ([]byte, error)) error {
	var tenants [][]byte
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketTenants).ForEachBucket(func(k []byte) error {
			tenants = append(tenants, bytes.Clone(k))
			return nil
		})
	})
	if err != nil {
		return err
	}
	for _, t := range tenants {
		tenant := string(bytes.TrimPrefix(t, []byte("t:")))
		for _, b := range [][]byte{bucketReviews, bucketImages} {
			err := keybolt.Rewrite(ctx, s.db, [][]byte{bucketTenants, t, b}, func(k, v []byte) ([]byte, error) {
				return fn(ref(tenant, string(k), string(b)), v)
			})
			if err != nil {
				return err
			}
		}
	}
	return nil
}
