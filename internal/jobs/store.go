package jobs

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/visionserve/visionserve/internal/jobs/webhook"
)

// The database layout: one bucket per kind of record. Keys inside a job
// are "<job id>/<%06d index>", so a cursor seek on "<job id>/" walks them
// in order.
var (
	bucketJobs    = []byte("jobs")    // id -> record (JSON)
	bucketInputs  = []byte("inputs")  // id/item -> file bytes, deleted when the job ends
	bucketResults = []byte("results") // id/task -> taskResult (JSON)
	bucketIdem    = []byte("idem")    // owner \x00 key -> id
	bucketOutbox  = []byte("outbox")  // delivery id -> delivery (JSON)
)

type store struct{ db *bolt.DB }

// openStore opens (creating) dir/jobs.db. A second process on the same
// file fails after a second instead of waiting for the lock.
func openStore(dir string) (*store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	db, err := bolt.Open(filepath.Join(dir, "jobs.db"), 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		return nil, fmt.Errorf("opening the job database: %w", err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketJobs, bucketInputs, bucketResults, bucketIdem, bucketOutbox} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, err
	}
	return &store{db: db}, nil
}

func (s *store) close() error { return s.db.Close() }

func subKey(id string, i int) []byte { return fmt.Appendf(nil, "%s/%06d", id, i) }

func idemKey(owner, key string) []byte { return []byte(owner + "\x00" + key) }

func getRecord(tx *bolt.Tx, id string) (*record, error) {
	v := tx.Bucket(bucketJobs).Get([]byte(id))
	if v == nil {
		return nil, ErrNotFound
	}
	var r record
	if err := json.Unmarshal(v, &r); err != nil {
		return nil, fmt.Errorf("job %s: corrupt record: %w", id, err)
	}
	return &r, nil
}

func putRecord(tx *bolt.Tx, r *record) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return tx.Bucket(bucketJobs).Put([]byte(r.ID), b)
}

// deletePrefix removes every key of bucket starting with id + "/".
func deletePrefix(tx *bolt.Tx, bucket []byte, id string) error {
	prefix := []byte(id + "/")
	c := tx.Bucket(bucket).Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Seek(prefix) {
		if err := c.Delete(); err != nil {
			return err
		}
	}
	return nil
}

// get reads one job.
func (s *store) get(id string) (*record, error) {
	var r *record
	err := s.db.View(func(tx *bolt.Tx) (err error) {
		r, err = getRecord(tx, id)
		return err
	})
	return r, err
}

// input copies item i of job id out of the database.
func (s *store) input(id string, i int) ([]byte, error) {
	var data []byte
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketInputs).Get(subKey(id, i))
		if v == nil {
			return fmt.Errorf("job %s: input %d is missing", id, i)
		}
		data = bytes.Clone(v)
		return nil
	})
	return data, err
}

// done returns the tasks of job id that have a stored result.
func (s *store) done(id string) (map[int]bool, error) {
	out := map[int]bool{}
	prefix := []byte(id + "/")
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketResults).Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			var i int
			if _, err := fmt.Sscanf(string(k[len(prefix):]), "%d", &i); err != nil {
				return fmt.Errorf("job %s: corrupt result key %q", id, k)
			}
			out[i] = true
		}
		return nil
	})
	return out, err
}

// results calls fn with every stored task result of job id, in task order.
func (s *store) results(id string, fn func(task int, r *taskResult) error) error {
	prefix := []byte(id + "/")
	return s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketResults).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			var i int
			if _, err := fmt.Sscanf(string(k[len(prefix):]), "%d", &i); err != nil {
				return fmt.Errorf("job %s: corrupt result key %q", id, k)
			}
			var r taskResult
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("job %s task %d: corrupt result: %w", id, i, err)
			}
			if err := fn(i, &r); err != nil {
				return err
			}
		}
		return nil
	})
}

// all calls fn with every job record.
func (s *store) all(fn func(r *record) error) error {
	return s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketJobs).ForEach(func(k, v []byte) error {
			var r record
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("job %s: corrupt record: %w", k, err)
			}
			return fn(&r)
		})
	})
}

// deleteJob removes a job and everything stored under it (not its
// pending webhook deliveries: those carry their own copy of the body).
func deleteJob(tx *bolt.Tx, r *record) error {
	if err := tx.Bucket(bucketJobs).Delete([]byte(r.ID)); err != nil {
		return err
	}
	if r.IdempotencyKey != "" {
		k := idemKey(r.Owner, r.IdempotencyKey)
		if string(tx.Bucket(bucketIdem).Get(k)) == r.ID {
			if err := tx.Bucket(bucketIdem).Delete(k); err != nil {
				return err
			}
		}
	}
	if err := deletePrefix(tx, bucketInputs, r.ID); err != nil {
		return err
	}
	return deletePrefix(tx, bucketResults, r.ID)
}

func putDelivery(tx *bolt.Tx, d *webhook.Delivery) error {
	b, err := json.Marshal(d)
	if err != nil {
		return err
	}
	return tx.Bucket(bucketOutbox).Put([]byte(d.ID), b)
}

// outbox is the store's webhook.Outbox.
type outbox struct{ s *store }

var _ webhook.Outbox = outbox{}

// Pending implements webhook.Outbox.
func (o outbox) Pending(context.Context) ([]*webhook.Delivery, error) {
	var out []*webhook.Delivery
	err := o.s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketOutbox).ForEach(func(k, v []byte) error {
			var d webhook.Delivery
			if err := json.Unmarshal(v, &d); err != nil {
				return fmt.Errorf("delivery %s: corrupt record: %w", k, err)
			}
			out = append(out, &d)
			return nil
		})
	})
	return out, err
}

// Done implements webhook.Outbox.
func (o outbox) Done(_ context.Context, d *webhook.Delivery) error {
	return o.s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketOutbox).Delete([]byte(d.ID)) })
}

// Retry implements webhook.Outbox.
func (o outbox) Retry(_ context.Context, d *webhook.Delivery) error {
	return o.s.db.Update(func(tx *bolt.Tx) error { return putDelivery(tx, d) })
}
