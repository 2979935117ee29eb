package store_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/visionserve/visionserve/internal/gallery/pgtest"
	"github.com/visionserve/visionserve/internal/jobs/store"
)

// Replicas starting at once against a new database: one applies the
// migrations under the advisory lock, the others find them applied. A
// database from a newer visionserve is refused.
func TestPostgresMigrations(t *testing.T) {
	srv := pgtest.Start(t)
	var wg sync.WaitGroup
	stores := make([]*store.Postgres, 4)
	errs := make([]error, 4)
	for i := range stores {
		wg.Go(func() {
			stores[i], errs[i] = store.OpenPostgres(context.Background(), srv.DSN, 2, store.Options{Retention: time.Hour})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("replica %d: %v", i, err)
		}
		stores[i].Close()
	}
	conn, err := pgx.Connect(context.Background(), srv.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var version int
	if err := conn.QueryRow(context.Background(), `SELECT version FROM visionserve_jobs_schema`).Scan(&version); err != nil || version != store.SchemaVersion() {
		t.Fatalf("schema version %d %v, want %d", version, err, store.SchemaVersion())
	}
	if _, err := conn.Exec(context.Background(), `UPDATE visionserve_jobs_schema SET version = 99`); err != nil {
		t.Fatal(err)
	}
	if s, err := store.OpenPostgres(context.Background(), srv.DSN, 2, store.Options{}); err == nil || !strings.Contains(err.Error(), "newer") {
		if s != nil {
			s.Close()
		}
		t.Fatalf("a newer schema: %v", err)
	}
}

// Two stores on one database are two replicas: a job created through one
// is visible, claimable and recorded through the other, and a lease held
// by one keeps the task from the other.
func TestPostgresReplicasShare(t *testing.T) {
	srv := pgtest.Start(t)
	open := func() *store.Postgres {
		s, err := store.OpenPostgres(context.Background(), srv.DSN, 4, store.Options{Retention: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	a, b := open(), open()
	j := newJob("key:x", "X", 2, 0)
	if _, err := a.Create(ctx, j, [][]byte{[]byte("in")}, store.Limits{}); err != nil {
		t.Fatal(err)
	}
	if got, err := b.Get(ctx, j.ID); err != nil || got.Tasks != 2 {
		t.Fatalf("the other replica: %+v %v", got, err)
	}
	ca, _ := a.Claim(ctx, "a", t0, time.Minute)
	cb, _ := b.Claim(ctx, "b", t0, time.Minute)
	if ca == nil || cb == nil || ca.Task == cb.Task {
		t.Fatalf("claims %+v %+v", ca, cb)
	}
	if c, _ := b.Claim(ctx, "b", t0, time.Minute); c != nil {
		t.Fatalf("a third claim %+v", c)
	}
	a.Complete(ctx, ca, page(ca), t0)
	if ended, err := b.Complete(ctx, cb, page(cb), t0); err != nil || ended == nil {
		t.Fatalf("the last task on the other replica: %+v %v", ended, err)
	}
	if got := pages(t, a, j.ID); len(got) != 2 {
		t.Fatalf("pages %v", got)
	}
}

// Migration 3 finds the final jobs that kept their inputs under schema 2
// and counts them, so the bound applies to them from the first end: the
// next job's end evicts the oldest down to it.
func TestPostgresMigrationKeptInputs(t *testing.T) {
	srv := pgtest.Start(t)
	open := func(opts store.Options) *store.Postgres {
		s, err := store.OpenPostgres(context.Background(), srv.DSN, 4, defaults(opts))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	s := open(store.Options{KeepInputs: true})
	ids := finishJobs(t, s, 3, 0)
	s.Close()
	// Back to schema 2: no record of which inputs are kept.
	conn, err := pgx.Connect(context.Background(), srv.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(context.Background(), `ALTER TABLE visionserve_jobs DROP COLUMN inputs_kept;
		UPDATE visionserve_jobs_schema SET version = 2`); err != nil {
		t.Fatal(err)
	}
	s = open(store.Options{KeepInputs: true, MaxKeptBytes: 20})
	defer s.Close()
	wantKeptEvicted(t, s, ids)
}
