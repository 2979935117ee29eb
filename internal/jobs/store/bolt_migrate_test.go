package store

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// A database written by the version before the store had verbs (layout
// 1) opens with its jobs, results and pending webhook intact: a job
// interrupted after one of three tasks resumes at the second, and one
// whose every task had a result but was not yet finished ends at open.
func TestBoltLayout1(t *testing.T) {
	dir := t.TempDir()
	db, err := bolt.Open(filepath.Join(dir, "jobs.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	created := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	record := func(id string, tasks int) []byte {
		var ts []map[string]int
		for i := 0; i < tasks; i++ {
			ts = append(ts, map[string]int{"item": i, "pages": 1, "first": i})
		}
		b, _ := json.Marshal(map[string]any{"id": id, "owner": "key:a", "state": "running", "options": map[string]string{"lang": "eng"},
			"items": []map[string]any{{"kind": "image", "bytes": 3, "pages": 1}}, "tasks": ts, "input_bytes": 3, "created": created,
			"updated": created, "pages_total": tasks, "pages_done": 1, "idempotency_key": "k", "fingerprint": "fp", "traceparent": "00-abc"})
		return b
	}
	page := func(i int) []byte { b, _ := json.Marshal(map[string]any{"index": i, "text": "x"}); return b }
	err = db.Update(func(tx *bolt.Tx) error {
		jobs, _ := tx.CreateBucket([]byte("jobs"))
		inputs, _ := tx.CreateBucket([]byte("inputs"))
		results, _ := tx.CreateBucket([]byte("results"))
		idem, _ := tx.CreateBucket([]byte("idem"))
		outbox, _ := tx.CreateBucket([]byte("outbox"))
		jobs.Put([]byte("job_1"), record("job_1", 3))
		jobs.Put([]byte("job_2"), record("job_2", 1))
		for i := 0; i < 3; i++ {
			inputs.Put(subKey("job_1", i), []byte("img"))
		}
		results.Put(subKey("job_1", 0), fmt.Appendf(nil, `{"pages":[%s]}`, page(0)))
		results.Put(subKey("job_2", 0), fmt.Appendf(nil, `{"pages":[%s]}`, page(0)))
		idem.Put([]byte("key:a\x00k"), []byte("job_1"))
		return outbox.Put([]byte("msg_1"), []byte(`{"id":"msg_1","job_id":"job_0","url":"https://example.com/","body":"e30=","next":"2030-01-01T00:00:00Z"}`))
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	s, err := OpenBolt(dir, Options{Retention: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	j, err := s.Get(ctx, "job_1")
	if err != nil || j.Tasks != 3 || j.Tenant != "key:a" || j.PagesDone != 1 || j.State != StateRunning {
		t.Fatalf("job_1 %+v %v", j, err)
	}
	var plan struct {
		Options     map[string]string `json:"options"`
		Tasks       []map[string]int  `json:"tasks"`
		TraceParent string            `json:"traceparent"`
	}
	if err := json.Unmarshal(j.Plan, &plan); err != nil || plan.Options["lang"] != "eng" || len(plan.Tasks) != 3 || plan.TraceParent != "00-abc" {
		t.Fatalf("plan %s: %v", j.Plan, err)
	}
	if p, _ := s.Idempotent(ctx, "key:a", "k"); p == nil || p.ID != "job_1" {
		t.Fatal("the idempotency key was lost")
	}
	var got []int
	for p, err := range s.Pages(ctx, "job_1") {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, p.Index)
	}
	if len(got) != 1 || got[0] != 0 {
		t.Fatalf("pages %v", got)
	}
	for want := 1; want <= 2; want++ {
		c, err := s.Claim(ctx, "w", created, time.Minute)
		if err != nil || c == nil || c.Job.ID != "job_1" || c.Task != want {
			t.Fatalf("claim %d: %+v %v", want, c, err)
		}
	}
	if j2, _ := s.Get(ctx, "job_2"); j2.State != StateSucceeded {
		t.Fatalf("job_2, fully recorded, is %s", j2.State)
	}
	if next, ok, _ := s.NextDelivery(ctx); !ok || !next.Equal(created) {
		t.Fatal("the pending webhook was lost")
	}
}
