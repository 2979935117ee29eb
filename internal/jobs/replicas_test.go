package jobs_test

import (
	"errors"
	"testing"
	"time"

	"github.com/visionserve/visionserve/internal/gallery/pgtest"
	"github.com/visionserve/visionserve/internal/jobs"
)

// Two managers on one PostgreSQL database are two replicas: a job
// submitted to one is visible (to its owner only) through the other, its
// tasks run on both at once, its result reads the same everywhere, and a
// cancel through one replica stops the task running on the other (at its
// next lease renewal).
func TestReplicasSharePostgres(t *testing.T) {
	srv := pgtest.Start(t)
	open := func() (*jobs.Manager, *fakeOCR) {
		o := &fakeOCR{gate: make(chan struct{}), arrived: make(chan struct{}, 10)}
		cfg := jobs.DefaultConfig()
		cfg.Store, cfg.Postgres = jobs.StorePostgres, srv.DSN
		cfg.Lease, cfg.PollInterval = 3*time.Second, 20*time.Millisecond
		cfg.Webhook.SecretEnv = ""
		m, err := jobs.Open(jobs.Options{Config: cfg, OCR: o})
		if err != nil {
			t.Fatal(err)
		}
		m.Start()
		t.Cleanup(func() { m.Close() })
		return m, o
	}
	a, ocrA := open()
	b, ocrB := open()
	var imgs [][]byte
	var want []string
	for i := 0; i < 4; i++ {
		imgs = append(imgs, png(t, 20+i, 20))
		want = append(want, digest(imgs[i])+"#0")
	}
	owner := jobs.Owner{ID: "key:x", Tenant: "X"}
	st, _, err := a.Submit(ctx, owner, &jobs.Submission{Inputs: inputs(imgs...)})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := b.Get(ctx, "key:x", st.ID); err != nil || got.Progress.PagesTotal != 4 {
		t.Fatalf("through the other replica: %+v %v", got, err)
	}
	if _, err := b.Get(ctx, "key:y", st.ID); !errors.Is(err, jobs.ErrNotFound) {
		t.Fatalf("another principal through the other replica: %v", err)
	}
	// Each replica holds a task of the job at once.
	<-ocrA.arrived
	<-ocrB.arrived
	ocrA.gate <- struct{}{}
	ocrB.gate <- struct{}{}
	for done := 2; done < 4; done++ {
		select {
		case <-ocrA.arrived:
			ocrA.gate <- struct{}{}
		case <-ocrB.arrived:
			ocrB.gate <- struct{}{}
		}
	}
	final := waitManager(t, b, "key:x", st.ID)
	if final.State != jobs.StateSucceeded || final.Progress.PagesDone != 4 {
		t.Fatalf("final %+v", final)
	}
	for _, m := range []*jobs.Manager{a, b} {
		res, err := m.Result(ctx, "key:x", st.ID)
		if err != nil {
			t.Fatal(err)
		}
		checkPages(t, res, want)
	}

	// A cancel through one replica stops the task on the other.
	st, _, err = a.Submit(ctx, owner, &jobs.Submission{Inputs: inputs(png(t, 40, 40))})
	if err != nil {
		t.Fatal(err)
	}
	var holder *fakeOCR
	other := a
	select {
	case <-ocrA.arrived:
		holder, other = ocrA, b
	case <-ocrB.arrived:
		holder = ocrB
	}
	if _, err := other.Cancel(ctx, "key:x", st.ID); err != nil {
		t.Fatal(err)
	}
	for i := 0; holder.canceled.Load() == 0; i++ {
		if i > 3000 {
			t.Fatal("the task kept running on the replica that holds it")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitManager polls until job id is final.
func waitManager(t *testing.T, m *jobs.Manager, owner, id string) jobs.Status {
	t.Helper()
	for i := 0; i < 20000; i++ {
		st, err := m.Get(ctx, owner, id)
		if err != nil {
			t.Fatal(err)
		}
		if st.State.Terminal() {
			return st
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("job %s did not finish", id)
	return jobs.Status{}
}
