package store

import (
	"encoding/json"
	"fmt"
	"strconv"

	bolt "go.etcd.io/bbolt"
)

// migrateBolt brings a database to boltSchema: a new file gets the
// buckets; a file of layout 1 (no meta bucket, written before the store
// had verbs) is converted in place, in the same transaction, so an
// upgrade keeps every job, result and pending webhook.
func migrateBolt(tx *bolt.Tx) error {
	version := 0
	if m := tx.Bucket(bucketMeta); m != nil {
		v, err := strconv.Atoi(string(m.Get([]byte("schema"))))
		if err != nil {
			return fmt.Errorf("corrupt schema version %q", m.Get([]byte("schema")))
		}
		version = v
	} else if tx.Bucket(bucketJobs) != nil {
		version = 1
	}
	if version > boltSchema {
		return fmt.Errorf("layout version %d was written by a newer visionserve (this one knows %d)", version, boltSchema)
	}
	for _, b := range [][]byte{bucketMeta, bucketJobs, bucketTasks, bucketInputs, bucketPages, bucketIdem, bucketOutbox} {
		if _, err := tx.CreateBucketIfNotExists(b); err != nil {
			return err
		}
	}
	if version == 1 {
		if err := migrateBolt1(tx); err != nil {
			return fmt.Errorf("converting layout 1: %w", err)
		}
	}
	return tx.Bucket(bucketMeta).Put([]byte("schema"), []byte(strconv.Itoa(boltSchema)))
}

// bucketResults1 is layout 1's results: id/task -> {"pages": [...]}.
var bucketResults1 = []byte("results")

// migrateBolt1 converts layout 1. Its job record carried the plan's
// fields (options, items, tasks, traceparent) beside the store's; they
// move into Plan under the same names. Its results were one record per
// task; they become one per page, and a task without a result becomes a
// task to run.
func migrateBolt1(tx *bolt.Tx) error {
	jobs := tx.Bucket(bucketJobs)
	done := map[string]map[int]bool{}
	if res := tx.Bucket(bucketResults1); res != nil {
		err := res.ForEach(func(k, v []byte) error {
			id, task, err := splitKey(k)
			if err != nil {
				return err
			}
			var tr struct {
				Pages []json.RawMessage `json:"pages"`
			}
			if err := json.Unmarshal(v, &tr); err != nil {
				return fmt.Errorf("result %s: %w", k, err)
			}
			for _, raw := range tr.Pages {
				var p struct {
					Index int `json:"index"`
				}
				if err := json.Unmarshal(raw, &p); err != nil {
					return fmt.Errorf("result %s: %w", k, err)
				}
				if err := tx.Bucket(bucketPages).Put(subKey(id, p.Index), raw); err != nil {
					return err
				}
			}
			if done[id] == nil {
				done[id] = map[int]bool{}
			}
			done[id][task] = true
			return nil
		})
		if err != nil {
			return err
		}
		if err := tx.DeleteBucket(bucketResults1); err != nil {
			return err
		}
	}
	type old struct {
		Job
		Tasks       []json.RawMessage `json:"tasks"`
		Options     json.RawMessage   `json:"options"`
		Items       json.RawMessage   `json:"items"`
		TraceParent string            `json:"traceparent,omitempty"`
	}
	var converted []*Job
	err := jobs.ForEach(func(k, v []byte) error {
		var o old
		if err := json.Unmarshal(v, &o); err != nil {
			return fmt.Errorf("job %s: %w", k, err)
		}
		plan, err := json.Marshal(map[string]any{"options": o.Options, "items": o.Items, "tasks": o.Tasks, "traceparent": o.TraceParent})
		if err != nil {
			return err
		}
		j := o.Job
		j.Tenant, j.Tasks, j.Plan = j.Owner, len(o.Tasks), plan
		converted = append(converted, &j)
		return nil
	})
	if err != nil {
		return err
	}
	for _, j := range converted {
		if !j.State.Terminal() {
			for t := 0; t < j.Tasks; t++ {
				if !done[j.ID][t] {
					if err := tx.Bucket(bucketTasks).Put(subKey(j.ID, t), nil); err != nil {
						return err
					}
				}
			}
		}
		if err := putJSON(tx, bucketJobs, j.ID, j); err != nil {
			return err
		}
	}
	return nil
}
