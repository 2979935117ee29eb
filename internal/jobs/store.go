package jobs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
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

// store keeps the jobs in one bbolt file. Every change is one of its
// verbs, each one transaction.
type store struct {
	db *bolt.DB
	// retention is how long a final job is kept.
	retention time.Duration
}

// openStore opens (creating) dir/jobs.db. A second process on the same
// file fails after a second instead of waiting for the lock.
func openStore(dir string, retention time.Duration) (*store, error) {
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
	return &store{db: db, retention: retention}, nil
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

// create stores rec and its inputs, unless rec's owner has a job under
// its idempotency key already: that one is returned instead.
func (s *store) create(rec *record, inputs []Input) (prev *record, err error) {
	err = s.db.Update(func(tx *bolt.Tx) error {
		if rec.IdempotencyKey != "" {
			k := idemKey(rec.Owner, rec.IdempotencyKey)
			if id := tx.Bucket(bucketIdem).Get(k); id != nil {
				p, err := getRecord(tx, string(id))
				if err == nil {
					prev = p
					return nil
				}
			}
			if err := tx.Bucket(bucketIdem).Put(k, []byte(rec.ID)); err != nil {
				return err
			}
		}
		for i, in := range inputs {
			if err := tx.Bucket(bucketInputs).Put(subKey(rec.ID, i), in.Data); err != nil {
				return err
			}
		}
		return putRecord(tx, rec)
	})
	return prev, err
}

// idempotent returns owner's job under key, or nil.
func (s *store) idempotent(owner, key string) (prev *record, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		id := tx.Bucket(bucketIdem).Get(idemKey(owner, key))
		if id == nil {
			return nil
		}
		p, err := getRecord(tx, string(id))
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		prev = p
		return err
	})
	return prev, err
}

// finish moves r to a final state inside tx: it frees the inputs and
// queues the webhook in the same transaction, so a completion is never
// recorded without its notification.
func (s *store) finish(tx *bolt.Tx, r *record, state State, now time.Time) error {
	r.State, r.Updated, r.Finished, r.Expires = state, now, now, now.Add(s.retention)
	if err := deletePrefix(tx, bucketInputs, r.ID); err != nil {
		return err
	}
	if r.WebhookURL != "" {
		body, err := json.Marshal(Event{Type: "job." + string(state), Timestamp: now, Data: r.status()})
		if err != nil {
			return err
		}
		if err := putDelivery(tx, &webhook.Delivery{ID: newID("msg_"), JobID: r.ID, URL: r.WebhookURL, Body: body, Next: now, Created: now}); err != nil {
			return err
		}
	}
	return putRecord(tx, r)
}

// cancel ends unfinished job id as canceled; changed is false for a job
// already final.
func (s *store) cancel(id string, now time.Time) (r *record, changed bool, err error) {
	err = s.db.Update(func(tx *bolt.Tx) error {
		if r, err = getRecord(tx, id); err != nil || r.State.Terminal() {
			return err
		}
		changed = true
		return s.finish(tx, r, StateCanceled, now)
	})
	return r, changed, err
}

// remove cancels job id if it is unfinished and deletes it.
func (s *store) remove(id string, now time.Time) (r *record, canceled bool, err error) {
	err = s.db.Update(func(tx *bolt.Tx) error {
		if r, err = getRecord(tx, id); err != nil {
			return err
		}
		if !r.State.Terminal() {
			canceled = true
			if err := s.finish(tx, r, StateCanceled, now); err != nil {
				return err
			}
		}
		return deleteJob(tx, r)
	})
	return r, canceled, err
}

// setRunning marks queued job id running; ok is false when the job is
// gone or final.
func (s *store) setRunning(id string, now time.Time) (ok bool, err error) {
	err = s.db.Update(func(tx *bolt.Tx) error {
		r, err := getRecord(tx, id)
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		if err != nil || r.State.Terminal() {
			return err
		}
		ok = true
		r.State, r.Updated = StateRunning, now
		return putRecord(tx, r)
	})
	return ok, err
}

// recordTask stores task ti's result with the progress it adds; stop is
// true when the job is gone or final (nothing is recorded).
func (s *store) recordTask(id string, ti int, body []byte, pages, failed int, now time.Time) (stop bool, err error) {
	err = s.db.Update(func(tx *bolt.Tx) error {
		r, err := getRecord(tx, id)
		if errors.Is(err, ErrNotFound) {
			stop = true
			return nil
		}
		if err != nil {
			return err
		}
		if r.State.Terminal() {
			stop = true
			return nil
		}
		key := subKey(id, ti)
		if tx.Bucket(bucketResults).Get(key) != nil {
			return nil // already recorded (cannot happen with one runner per job; harmless)
		}
		if err := tx.Bucket(bucketResults).Put(key, body); err != nil {
			return err
		}
		r.PagesDone += pages
		r.PagesFail += failed
		r.Updated = now
		return putRecord(tx, r)
	})
	return stop, err
}

// finishDone ends job id, every task of which is recorded: succeeded, or
// failed when every page failed. final is nil when the job is gone or
// was final already.
func (s *store) finishDone(id string, now time.Time) (final *record, err error) {
	err = s.db.Update(func(tx *bolt.Tx) error {
		r, err := getRecord(tx, id)
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		if err != nil || r.State.Terminal() {
			return err
		}
		if r.PagesDone != r.PagesTotal {
			return fmt.Errorf("job %s: %d of %d pages recorded at the end", id, r.PagesDone, r.PagesTotal)
		}
		state := StateSucceeded
		if r.PagesFail == r.PagesTotal {
			state = StateFailed
		}
		final = r
		return s.finish(tx, r, state, now)
	})
	return final, err
}

// expire deletes the final jobs past their retention; it returns how
// many.
func (s *store) expire(now time.Time) (int, error) {
	var expired []string
	err := s.all(func(r *record) error {
		if r.State.Terminal() && !r.Expires.IsZero() && now.After(r.Expires) {
			expired = append(expired, r.ID)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	n := 0
	for _, id := range expired {
		err := s.db.Update(func(tx *bolt.Tx) error {
			r, err := getRecord(tx, id)
			if err != nil || !r.State.Terminal() || !now.After(r.Expires) {
				return nil
			}
			n++
			return deleteJob(tx, r)
		})
		if err != nil {
			return n, err
		}
	}
	return n, nil
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
