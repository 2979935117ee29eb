// Package keybolt gives a store kept in a bbolt file what package keys
// needs from it: Open, which opens and migrates the file; a Keyring kept
// under one key of a bucket; Rewrite, a walk that re-seals a bucket's
// records in batches of transactions; and Compact.
package keybolt

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/visionserve/visionserve/internal/keys"
)

// Open opens (creating it and its directory if needed) the bbolt file at
// path, waiting up to lockTimeout for another process to release it, and
// runs migrate in one transaction: it brings a new or earlier file to the
// store's current schema. Errors name the path; the caller names the
// store.
func Open(path string, lockTimeout time.Duration, migrate func(*bolt.Tx) error) (*bolt.DB, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, err
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: lockTimeout})
	if err != nil {
		if errors.Is(err, berrors.ErrTimeout) {
			return nil, fmt.Errorf("%s: another process holds it: %w", path, err)
		}
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if err := db.Update(migrate); err != nil {
		db.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return db, nil
}

// OpenRing opens the keyring of a store kept in db, under key of the
// top-level bucket, with enc (keys.Open).
func OpenRing(db *bolt.DB, enc keys.Config, domain string, bucket, key []byte, records keys.Records) (*keys.Ring, error) {
	return keys.Open(context.Background(), enc, keys.Store{Domain: domain, Keyring: Keyring{DB: db, Bucket: bucket, Key: key}, Records: records})
}

// Keyring keeps the keyring document under Key in the top-level Bucket
// (which the store creates). One process holds a bbolt file at a time, so
// it is not a keys.SharedKeyring.
type Keyring struct {
	DB     *bolt.DB
	Bucket []byte
	Key    []byte
}

// Interface guard.
var _ keys.Keyring = Keyring{}

// Load implements keys.Keyring.
func (k Keyring) Load(context.Context) ([]byte, error) {
	var doc []byte
	err := k.DB.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(k.Bucket); b != nil {
			doc = bytes.Clone(b.Get(k.Key))
		}
		return nil
	})
	return doc, err
}

// Save implements keys.Keyring.
func (k Keyring) Save(_ context.Context, prev, next []byte) error {
	return k.DB.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(k.Bucket)
		if err != nil {
			return err
		}
		if !bytes.Equal(b.Get(k.Key), prev) {
			return keys.ErrConflict
		}
		return b.Put(k.Key, next)
	})
}

// batch is how many records one transaction reads (and rewrites).
const batch = 256

// Rewrite walks the bucket at path (top-level bucket, then nested ones)
// in key order, batch records per read transaction: edit gets each
// record (bytes valid only during the call) and returns its new value, or
// nil to leave it. Each batch's new values are written in one transaction,
// each only if its record is unchanged since it was read. An error from
// edit stops the walk. A missing bucket has nothing to walk.
func Rewrite(ctx context.Context, db *bolt.DB, path [][]byte, edit func(k, v []byte) ([]byte, error)) error {
	type change struct{ k, old, new []byte }
	var from []byte
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		var changes []change
		more := false
		err := db.View(func(tx *bolt.Tx) error {
			b := bucketAt(tx, path)
			if b == nil {
				return nil
			}
			c := b.Cursor()
			k, v := c.First()
			if from != nil {
				if k, v = c.Seek(from); bytes.Equal(k, from) {
					k, v = c.Next()
				}
			}
			for n := 0; k != nil; k, v = c.Next() {
				if v == nil {
					continue // a nested bucket
				}
				if n == batch {
					more = true
					return nil
				}
				n++
				from = bytes.Clone(k)
				nv, err := edit(k, v)
				if err != nil {
					return err
				}
				if nv != nil {
					changes = append(changes, change{from, bytes.Clone(v), nv})
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		if len(changes) > 0 {
			err := db.Update(func(tx *bolt.Tx) error {
				b := bucketAt(tx, path)
				for _, ch := range changes {
					if b != nil && bytes.Equal(b.Get(ch.k), ch.old) {
						if err := b.Put(ch.k, ch.new); err != nil {
							return err
						}
					}
				}
				return nil
			})
			if err != nil {
				return err
			}
		}
		if !more {
			return nil
		}
	}
}

func bucketAt(tx *bolt.Tx, path [][]byte) *bolt.Bucket {
	if len(path) == 0 {
		return nil
	}
	b := tx.Bucket(path[0])
	for _, name := range path[1:] {
		if b == nil {
			return nil
		}
		b = b.Bucket(name)
	}
	return b
}

// Compact rewrites the bbolt file at path into a new file that holds
// only its live data, and puts it in the old one's place. bbolt reuses
// freed pages without clearing them, so a value that was overwritten (a
// record in clear, re-encrypted) stays readable in the file until it is
// compacted. No process may hold the file: Compact waits up to
// lockTimeout for it.
func Compact(path string, lockTimeout time.Duration) error {
	src, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: lockTimeout, ReadOnly: true})
	if err != nil {
		if errors.Is(err, berrors.ErrTimeout) {
			return fmt.Errorf("compacting %s: another process holds it (stop the server first): %w", path, err)
		}
		return fmt.Errorf("compacting %s: %w", path, err)
	}
	defer src.Close()
	tmp := path + ".compact"
	_ = os.Remove(tmp)
	dst, err := bolt.Open(tmp, 0o600, nil)
	if err != nil {
		return fmt.Errorf("compacting %s: %w", path, err)
	}
	if err := bolt.Compact(dst, src, 64<<20); err != nil {
		dst.Close()
		os.Remove(tmp)
		return fmt.Errorf("compacting %s: %w", path, err)
	}
	if err := dst.Close(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("compacting %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("compacting %s: %w", path, err)
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}
