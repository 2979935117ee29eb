package store_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/visionserve/visionserve/internal/gallery/pgtest"
	"github.com/visionserve/visionserve/internal/jobs/store"
	"github.com/visionserve/visionserve/internal/keys"
	"github.com/visionserve/visionserve/internal/keys/keytest"
)

// The conformance suite: every case runs against both stores, the
// embedded one in a temporary directory and PostgreSQL in a database of
// its own on one throwaway server.

const retention = time.Hour

var t0 = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

type opener func(t *testing.T, opts store.Options) store.Store

func TestConformance(t *testing.T) {
	impls := map[string]opener{
		"bolt": func(t *testing.T, opts store.Options) store.Store {
			s, err := store.OpenBolt(t.TempDir(), opts)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		},
	}
	if pg := startPostgres(t); pg != nil {
		impls["postgres"] = pg.open
	}
	// The same cases with the payloads sealed at rest.
	for name, alg := range map[string]keys.Algorithm{"bolt": keys.SM4GCM, "postgres": keys.AES256GCM} {
		if open := impls[name]; open != nil {
			enc := keytest.Config(t, alg)
			impls[name+"+"+string(alg)] = func(t *testing.T, opts store.Options) store.Store {
				if opts.Codec == nil {
					opts.Keys = enc
				}
				return open(t, opts)
			}
		}
	}
	cases := map[string]func(t *testing.T, open opener){
		"CreateAndIdempotency": testCreateAndIdempotency,
		"Limits":               testLimits,
		"ClaimAndComplete":     testClaimAndComplete,
		"LeaseExpiry":          testLeaseExpiry,
		"RenewAndRelease":      testRenewAndRelease,
		"FairAcrossTenants":    testFairAcrossTenants,
		"CancelAndDelete":      testCancelAndDelete,
		"Expire":               testExpire,
		"AllPagesFailed":       testAllPagesFailed,
		"Outbox":               testOutbox,
		"ConcurrentWorkers":    testConcurrentWorkers,
		"Codec":                testCodec,
		"ManyPages":            testManyPages,
		"KeepInputs":           testKeepInputs,
		"KeptBound":            testKeptBound,
		"KeptBoundConcurrent":  testKeptBoundConcurrent,
	}
	for _, name := range []string{"bolt", "postgres", "bolt+sm4-gcm", "postgres+aes-256-gcm"} {
		open := impls[name]
		if open == nil {
			continue
		}
		for cn, c := range cases {
			t.Run(name+"/"+cn, func(t *testing.T) { c(t, open) })
		}
	}
}

// pg is a PostgreSQL server whose databases the cases share out.
type pg struct {
	srv *pgtest.Server
	n   atomic.Int64
}

func startPostgres(t *testing.T) *pg {
	if testing.Short() {
		return nil
	}
	return &pg{srv: pgtest.Start(t)}
}

// database creates a fresh database and returns its DSN.
func (p *pg) database(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("case%d", p.n.Add(1))
	conn, err := pgx.Connect(context.Background(), p.srv.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(context.Background(), "CREATE DATABASE "+name); err != nil {
		t.Fatal(err)
	}
	return replaceDB(p.srv.DSN, name)
}

func replaceDB(dsn, name string) string {
	i := bytes.LastIndexByte([]byte(dsn), '/')
	q := bytes.IndexByte([]byte(dsn), '?')
	return dsn[:i+1] + name + dsn[q:]
}

func (p *pg) open(t *testing.T, opts store.Options) store.Store {
	t.Helper()
	s, err := store.OpenPostgres(context.Background(), p.database(t), 8, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func defaults(opts store.Options) store.Options {
	opts.Retention = retention
	if opts.Event == nil {
		opts.Event = func(j *store.Job) ([]byte, error) {
			return []byte(`{"job":"` + j.ID + `","state":"` + string(j.State) + `"}`), nil
		}
	}
	return opts
}

var ctx = context.Background()

// newJob is a job of tasks tasks, one page each, created at t0+created.
func newJob(owner, tenant string, tasks int, created time.Duration) *store.Job {
	now := t0.Add(created)
	return &store.Job{ID: store.NewID("job_"), Owner: owner, Tenant: tenant, Tasks: tasks, PagesTotal: tasks, InputBytes: 10,
		Fingerprint: "fp", Created: now, Updated: now, Plan: []byte(`{"plan":true}`)}
}

func create(t *testing.T, s store.Store, j *store.Job, lim store.Limits) {
	t.Helper()
	if existing, err := s.Create(ctx, j, [][]byte{[]byte("input-" + j.ID)}, lim); err != nil || existing != nil {
		t.Fatalf("create: %v %v", existing, err)
	}
}

func claim(t *testing.T, s store.Store, worker string, now time.Time) *store.Claim {
	t.Helper()
	c, err := s.Claim(ctx, worker, now, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// page is the page a task records: its task index as text.
func page(c *store.Claim) []store.Page {
	return []store.Page{{Index: c.Task, Data: []byte(fmt.Sprintf("%s#%d", c.Job.ID, c.Task))}}
}

func complete(t *testing.T, s store.Store, c *store.Claim, now time.Time) *store.Job {
	t.Helper()
	j, err := s.Complete(ctx, c, page(c), now)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

func pages(t *testing.T, s store.Store, id string) []string {
	t.Helper()
	var out []string
	for p, err := range s.Pages(ctx, id) {
		if err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf("%s#%d", id, p.Index); string(p.Data) != want {
			t.Fatalf("page %d holds %q, want %q", p.Index, p.Data, want)
		}
		out = append(out, string(p.Data))
	}
	return out
}

func get(t *testing.T, s store.Store, id string) *store.Job {
	t.Helper()
	j, err := s.Get(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

func testCreateAndIdempotency(t *testing.T, open opener) {
	s := open(t, defaults(store.Options{}))
	j := newJob("key:a", "acme", 2, 0)
	j.IdempotencyKey, j.WebhookURL = "k1", "https://example.com/hook"
	create(t, s, j, store.Limits{})
	got := get(t, s, j.ID)
	if got.Owner != "key:a" || got.Tenant != "acme" || got.State != store.StateQueued || got.Tasks != 2 || got.IdempotencyKey != "k1" ||
		got.WebhookURL != j.WebhookURL || !got.Created.Equal(t0) || string(got.Plan) != `{"plan":true}` || got.Fingerprint != "fp" {
		t.Fatalf("stored %+v", got)
	}
	if in, err := s.Input(ctx, j.ID, 0); err != nil || string(in) != "input-"+j.ID {
		t.Fatalf("input %q %v", in, err)
	}
	if _, err := s.Input(ctx, j.ID, 1); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("missing input: %v", err)
	}
	if _, err := s.Get(ctx, "job_none"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("missing job: %v", err)
	}
	// The same key from the same owner names the first job; nothing is
	// stored for the second.
	twin := newJob("key:a", "acme", 2, time.Second)
	twin.IdempotencyKey = "k1"
	existing, err := s.Create(ctx, twin, [][]byte{[]byte("x")}, store.Limits{})
	if err != nil || existing == nil || existing.ID != j.ID {
		t.Fatalf("replay: %+v %v", existing, err)
	}
	if _, err := s.Get(ctx, twin.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the replay was stored: %v", err)
	}
	if p, err := s.Idempotent(ctx, "key:a", "k1"); err != nil || p == nil || p.ID != j.ID {
		t.Fatalf("idempotent lookup: %+v %v", p, err)
	}
	if p, err := s.Idempotent(ctx, "key:b", "k1"); err != nil || p != nil {
		t.Fatalf("another owner's key: %+v %v", p, err)
	}
	other := newJob("key:b", "acme", 1, 0)
	other.IdempotencyKey = "k1"
	create(t, s, other, store.Limits{})
	// Concurrent twins make one job.
	var wg sync.WaitGroup
	ids := make([]string, 6)
	for i := range ids {
		wg.Go(func() {
			j := newJob("key:c", "acme", 1, 0)
			j.IdempotencyKey = "race"
			existing, err := s.Create(ctx, j, [][]byte{[]byte("x")}, store.Limits{})
			if err != nil {
				t.Error(err)
				return
			}
			ids[i] = j.ID
			if existing != nil {
				ids[i] = existing.ID
			}
		})
	}
	wg.Wait()
	for _, id := range ids {
		if id != ids[0] {
			t.Fatalf("concurrent twins made several jobs: %v", ids)
		}
	}
}

func testLimits(t *testing.T, open opener) {
	s := open(t, defaults(store.Options{}))
	lim := store.Limits{MaxJobs: 3, MaxBytes: 100, TenantMaxJobs: 2, TenantMaxBytes: 60}
	a1, a2 := newJob("a", "A", 1, 0), newJob("a", "A", 1, 0)
	create(t, s, a1, lim)
	create(t, s, a2, lim)
	var le *store.LimitError
	if _, err := s.Create(ctx, newJob("a", "A", 1, 0), nil, lim); !errors.As(err, &le) || !le.Tenant || le.What != "jobs" {
		t.Fatalf("the tenant's third job: %v", err)
	}
	b := newJob("b", "B", 1, 0)
	b.InputBytes = 61
	if _, err := s.Create(ctx, b, nil, lim); !errors.As(err, &le) || !le.Tenant || le.What != "bytes" {
		t.Fatalf("over the tenant's bytes: %v", err)
	}
	b.InputBytes = 50
	create(t, s, b, lim)
	if _, err := s.Create(ctx, newJob("c", "C", 1, 0), nil, lim); !errors.As(err, &le) || le.Tenant || le.What != "jobs" || !errors.Is(err, store.ErrLimit) {
		t.Fatalf("over the server's jobs: %v", err)
	}
	st, err := s.Stats(ctx)
	if err != nil || st.Jobs != 3 || st.Bytes != 70 {
		t.Fatalf("stats %+v %v", st, err)
	}
	// A job that ends frees its room.
	if _, _, err := s.Cancel(ctx, a1.ID, t0); err != nil {
		t.Fatal(err)
	}
	create(t, s, newJob("a", "A", 1, 0), lim)
	if _, _, err := s.Cancel(ctx, a2.ID, t0); err != nil {
		t.Fatal(err)
	}
	big := newJob("c", "C", 1, 0)
	big.InputBytes = 41
	if _, err := s.Create(ctx, big, nil, lim); !errors.As(err, &le) || le.Tenant || le.What != "bytes" {
		t.Fatalf("over the server's bytes: %v", err)
	}
}

func testClaimAndComplete(t *testing.T, open opener) {
	s := open(t, defaults(store.Options{}))
	j := newJob("a", "A", 3, 0)
	j.WebhookURL = "https://example.com/hook"
	create(t, s, j, store.Limits{})
	var claims []*store.Claim
	for i := 0; i < 3; i++ {
		c := claim(t, s, "w1", t0)
		if c == nil || c.Job.ID != j.ID || c.Task != i || c.Token == "" || string(c.Job.Plan) != `{"plan":true}` {
			t.Fatalf("claim %d: %+v", i, c)
		}
		claims = append(claims, c)
	}
	if c := claim(t, s, "w2", t0); c != nil {
		t.Fatalf("a fourth claim of a 3-task job: %+v", c)
	}
	if got := get(t, s, j.ID); got.State != store.StateRunning {
		t.Fatalf("state after a claim: %s", got.State)
	}
	// Out of order, and one twice: each task's pages once.
	if ended := complete(t, s, claims[2], t0); ended != nil {
		t.Fatal("ended after one task")
	}
	if ended := complete(t, s, claims[2], t0); ended != nil {
		t.Fatal("ended after a repeat")
	}
	complete(t, s, claims[0], t0)
	if got := get(t, s, j.ID); got.PagesDone != 2 || got.State != store.StateRunning {
		t.Fatalf("after two tasks %+v", got)
	}
	if _, ok, _ := s.NextDelivery(ctx); ok {
		t.Fatal("a webhook before the end")
	}
	ended := complete(t, s, claims[1], t0.Add(time.Second))
	if ended == nil || ended.State != store.StateSucceeded || ended.PagesDone != 3 || !ended.Finished.Equal(t0.Add(time.Second)) ||
		!ended.Expires.Equal(t0.Add(time.Second+retention)) {
		t.Fatalf("ended %+v", ended)
	}
	if got := pages(t, s, j.ID); len(got) != 3 {
		t.Fatalf("pages %v", got)
	}
	if _, err := s.Input(ctx, j.ID, 0); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the input outlived the job: %v", err)
	}
	if again := complete(t, s, claims[1], t0); again != nil {
		t.Fatal("a finished job ended twice")
	}
	d, err := s.ClaimDelivery(ctx, "w1", t0.Add(time.Second), time.Minute, 1)
	if err != nil || d == nil || d.JobID != j.ID || d.URL != j.WebhookURL || string(d.Body) != `{"job":"`+j.ID+`","state":"succeeded"}` {
		t.Fatalf("delivery %+v %v", d, err)
	}
}

// A dead worker's lease expires and another takes the task; whichever
// records it first wins, and the page is stored once.
func testLeaseExpiry(t *testing.T, open opener) {
	s := open(t, defaults(store.Options{}))
	j := newJob("a", "A", 1, 0)
	create(t, s, j, store.Limits{})
	dead := claim(t, s, "dead", t0)
	if c := claim(t, s, "alive", t0.Add(59*time.Second)); c != nil {
		t.Fatalf("claimed under a live lease: %+v", c)
	}
	c := claim(t, s, "alive", t0.Add(61*time.Second))
	if c == nil || c.Task != dead.Task || c.Token == dead.Token {
		t.Fatalf("claim after expiry: %+v", c)
	}
	lost, err := s.Renew(ctx, "dead", []string{dead.Token}, t0.Add(2*time.Minute))
	if err != nil || !slices.Equal(lost, []string{dead.Token}) {
		t.Fatalf("the dead worker's renew: %v %v", lost, err)
	}
	if ended := complete(t, s, dead, t0.Add(62*time.Second)); ended == nil {
		t.Fatal("the first to record did not end the job")
	}
	if ended := complete(t, s, c, t0.Add(63*time.Second)); ended != nil {
		t.Fatal("recorded twice")
	}
	if got := pages(t, s, j.ID); len(got) != 1 {
		t.Fatalf("pages %v", got)
	}
	if got := get(t, s, j.ID); got.PagesDone != 1 {
		t.Fatalf("progress counted twice: %+v", got)
	}
}

func testRenewAndRelease(t *testing.T, open opener) {
	s := open(t, defaults(store.Options{}))
	create(t, s, newJob("a", "A", 2, 0), store.Limits{})
	c1, c2 := claim(t, s, "w1", t0), claim(t, s, "w1", t0)
	if lost, err := s.Renew(ctx, "w1", []string{c1.Token, c2.Token}, t0.Add(3*time.Minute)); err != nil || len(lost) != 0 {
		t.Fatalf("renew: %v %v", lost, err)
	}
	if lost, _ := s.Renew(ctx, "w2", []string{c1.Token}, t0.Add(3*time.Minute)); len(lost) != 1 {
		t.Fatal("another worker renewed w1's lease")
	}
	if c := claim(t, s, "w2", t0.Add(2*time.Minute)); c != nil {
		t.Fatalf("claimed under a renewed lease: %+v", c)
	}
	if err := s.Release(ctx, c2.Token); err != nil {
		t.Fatal(err)
	}
	c := claim(t, s, "w2", t0.Add(2*time.Minute))
	if c == nil || c.Task != c2.Task {
		t.Fatalf("claim after release: %+v", c)
	}
	if lost, _ := s.Renew(ctx, "w1", []string{c2.Token}, t0.Add(3*time.Minute)); len(lost) != 1 {
		t.Fatal("a released lease renewed")
	}
}

// Tenant A floods; B's job, submitted after all of A's, is claimed
// within the next two claims; and a tenant with tasks running waits for
// one with none.
func testFairAcrossTenants(t *testing.T, open opener) {
	s := open(t, defaults(store.Options{}))
	var aJobs []string
	for i := 0; i < 20; i++ {
		j := newJob("a", "A", 1, time.Duration(i)*time.Millisecond)
		create(t, s, j, store.Limits{})
		aJobs = append(aJobs, j.ID)
	}
	// One worker, A has been served.
	complete(t, s, claim(t, s, "w", t0), t0)
	b := newJob("b", "B", 2, time.Second)
	create(t, s, b, store.Limits{})
	var order []string
	now := t0.Add(2 * time.Second)
	for {
		c := claim(t, s, "w", now)
		if c == nil {
			break
		}
		order = append(order, c.Job.Tenant)
		complete(t, s, c, now)
	}
	if len(order) != 21 || order[0] != "B" || order[1] != "A" || order[2] != "B" {
		t.Fatalf("claim order %v: B's tasks should alternate with A's from the start", order)
	}
	// Within A, oldest job first.
	c := newJob("c", "C", 3, 0)
	create(t, s, c, store.Limits{})
	d := newJob("d", "D", 1, time.Hour)
	create(t, s, d, store.Limits{})
	first := claim(t, s, "w", now)  // C or D, whichever was served less recently: both never
	second := claim(t, s, "w", now) // the other: the first has a task running
	if first == nil || second == nil || first.Job.Tenant == second.Job.Tenant {
		t.Fatalf("with C running, D goes next: %+v %+v", first, second)
	}
	_ = aJobs
}

func testCancelAndDelete(t *testing.T, open opener) {
	s := open(t, defaults(store.Options{}))
	j := newJob("a", "A", 3, 0)
	j.WebhookURL, j.IdempotencyKey = "https://example.com/hook", "k"
	create(t, s, j, store.Limits{})
	c := claim(t, s, "w", t0)
	complete(t, s, c, t0)
	running := claim(t, s, "w", t0)
	got, changed, err := s.Cancel(ctx, j.ID, t0.Add(time.Second))
	if err != nil || !changed || got.State != store.StateCanceled || got.PagesDone != 1 {
		t.Fatalf("cancel: %+v %v %v", got, changed, err)
	}
	if got, changed, err := s.Cancel(ctx, j.ID, t0.Add(2*time.Second)); err != nil || changed || !got.Finished.Equal(t0.Add(time.Second)) {
		t.Fatalf("second cancel: %+v %v %v", got, changed, err)
	}
	if c := claim(t, s, "w", t0.Add(time.Hour)); c != nil {
		t.Fatalf("a canceled job's task claimed: %+v", c)
	}
	if lost, _ := s.Renew(ctx, "w", []string{running.Token}, t0.Add(time.Minute)); len(lost) != 1 {
		t.Fatal("a canceled job's lease renewed")
	}
	if ended := complete(t, s, running, t0); ended != nil || len(pages(t, s, j.ID)) != 1 {
		t.Fatal("a canceled job recorded a page")
	}
	if _, err := s.Input(ctx, j.ID, 0); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("input after cancel: %v", err)
	}
	if next, ok, err := s.NextDelivery(ctx); err != nil || !ok || !next.Equal(t0.Add(time.Second)) {
		t.Fatalf("the cancel's webhook: %v %v %v", next, ok, err)
	}
	// Delete removes the job, its pages and its key; the webhook stays.
	del, canceled, err := s.Delete(ctx, j.ID, t0)
	if err != nil || canceled || del.ID != j.ID {
		t.Fatalf("delete: %+v %v %v", del, canceled, err)
	}
	if _, err := s.Get(ctx, j.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("after delete: %v", err)
	}
	if got := pages(t, s, j.ID); len(got) != 0 {
		t.Fatalf("pages after delete: %v", got)
	}
	if p, _ := s.Idempotent(ctx, "a", "k"); p != nil {
		t.Fatal("the key outlived its job")
	}
	if _, _, err := s.Delete(ctx, j.ID, t0); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
	if _, ok, _ := s.NextDelivery(ctx); !ok {
		t.Fatal("the webhook went with the job")
	}
	// Deleting a running job cancels it (and queues its webhook).
	k := newJob("a", "A", 1, 0)
	k.WebhookURL = "https://example.com/other"
	create(t, s, k, store.Limits{})
	if _, canceled, err := s.Delete(ctx, k.ID, t0); err != nil || !canceled {
		t.Fatalf("delete of a queued job: %v %v", canceled, err)
	}
	if st, _ := s.Stats(ctx); st.Jobs != 0 {
		t.Fatalf("stats after deletes %+v", st)
	}
	n := 0
	for d, _ := s.ClaimDelivery(ctx, "w", t0.Add(time.Hour), time.Minute, 5); d != nil; d, _ = s.ClaimDelivery(ctx, "w", t0.Add(time.Hour), time.Minute, 5) {
		n++
	}
	if n != 2 {
		t.Fatalf("%d webhooks, want 2 (cancel, delete)", n)
	}
}

func testExpire(t *testing.T, open opener) {
	s := open(t, defaults(store.Options{}))
	done, queued := newJob("a", "A", 1, 0), newJob("a", "A", 1, 0)
	create(t, s, done, store.Limits{})
	complete(t, s, claim(t, s, "w", t0), t0)
	create(t, s, queued, store.Limits{})
	if n, err := s.Expire(ctx, t0.Add(retention-time.Second)); err != nil || n != 0 {
		t.Fatalf("expired early: %d %v", n, err)
	}
	if n, err := s.Expire(ctx, t0.Add(retention+time.Second)); err != nil || n != 1 {
		t.Fatalf("expire: %d %v", n, err)
	}
	if _, err := s.Get(ctx, done.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("kept past retention: %v", err)
	}
	if len(pages(t, s, done.ID)) != 0 {
		t.Fatal("pages kept past retention")
	}
	get(t, s, queued.ID)
}

// With KeepInputs, a job's input outlives its end (succeeded or
// canceled) and goes with the job: deleted, or expired.
func testKeepInputs(t *testing.T, open opener) {
	s := open(t, defaults(store.Options{KeepInputs: true}))
	input := func(j *store.Job) error {
		t.Helper()
		in, err := s.Input(ctx, j.ID, 0)
		if err == nil && string(in) != "input-"+j.ID {
			t.Fatalf("input of %s: %q", j.ID, in)
		}
		return err
	}
	done, canceled := newJob("a", "A", 1, 0), newJob("a", "A", 2, 0)
	create(t, s, done, store.Limits{})
	if ended := complete(t, s, claim(t, s, "w", t0), t0); ended == nil || ended.ID != done.ID {
		t.Fatalf("ended %+v", ended)
	}
	create(t, s, canceled, store.Limits{})
	if _, changed, err := s.Cancel(ctx, canceled.ID, t0); err != nil || !changed {
		t.Fatalf("cancel: %v %v", changed, err)
	}
	for _, j := range []*store.Job{done, canceled} {
		if err := input(j); err != nil {
			t.Fatalf("the input of %s did not outlive its end: %v", get(t, s, j.ID).State, err)
		}
	}
	if st, err := s.Stats(ctx); err != nil || st.Jobs != 0 || st.Bytes != 0 {
		t.Fatalf("kept inputs count as pending: %+v %v", st, err)
	}
	if _, _, err := s.Delete(ctx, done.ID, t0); err != nil {
		t.Fatal(err)
	}
	if err := input(done); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("input after delete: %v", err)
	}
	if n, err := s.Expire(ctx, t0.Add(retention+time.Second)); err != nil || n != 1 {
		t.Fatalf("expire: %d %v", n, err)
	}
	if err := input(canceled); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("input after expiry: %v", err)
	}
}

// The inputs kept for final jobs are bounded: a job's end that would
// pass the tenant's share deletes the tenant's oldest kept inputs, one
// that would pass the whole deletes anyone's oldest, and a job too big
// for its share alone keeps nothing. Every job's record and pages stay.
func testKeptBound(t *testing.T, open opener) {
	var evictions atomic.Int64
	s := open(t, defaults(store.Options{KeepInputs: true, MaxKeptBytes: 30, TenantMaxKeptBytes: 20,
		Evicted: func(n int) { evictions.Add(int64(n)) }}))
	at := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Second) }
	finish := func(tenant string, bytes int64, n int) *store.Job {
		t.Helper()
		j := newJob("o", tenant, 1, time.Duration(n)*time.Second)
		j.InputBytes = bytes
		create(t, s, j, store.Limits{})
		if ended := complete(t, s, claim(t, s, "w", at(n)), at(n)); ended == nil || ended.ID != j.ID {
			t.Fatalf("ended %+v, want %s", ended, j.ID)
		}
		return j
	}
	kept := func(want int64, have, gone []*store.Job) {
		t.Helper()
		for _, j := range have {
			if _, err := s.Input(ctx, j.ID, 0); err != nil {
				t.Fatalf("the input of %s (tenant %s) is gone: %v", j.ID, j.Tenant, err)
			}
		}
		for _, j := range gone {
			if _, err := s.Input(ctx, j.ID, 0); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("the input of %s (tenant %s) was not evicted: %v", j.ID, j.Tenant, err)
			}
			if len(pages(t, s, j.ID)) != 1 || get(t, s, j.ID).State != store.StateSucceeded {
				t.Fatalf("eviction took more than the input of %s", j.ID)
			}
		}
		if st, err := s.Stats(ctx); err != nil || st.KeptBytes != want || st.Jobs != 0 {
			t.Fatalf("stats %+v %v, want %d bytes kept", st, err, want)
		}
	}
	a1, a2, b1 := finish("A", 10, 1), finish("A", 10, 2), finish("B", 10, 3)
	kept(30, []*store.Job{a1, a2, b1}, nil)
	a3 := finish("A", 10, 4) // A over its share of 20: A's oldest goes
	kept(30, []*store.Job{a2, b1, a3}, []*store.Job{a1})
	b2 := finish("B", 10, 5) // the whole over 30: the oldest goes, A's
	kept(30, []*store.Job{b1, a3, b2}, []*store.Job{a1, a2})
	c := finish("C", 50, 6) // too big for any share: only its own goes
	kept(30, []*store.Job{b1, a3, b2}, []*store.Job{a1, a2, c})
	if n := evictions.Load(); n != 3 {
		t.Fatalf("%d evictions reported, want 3", n)
	}
	// A cancellation keeps inputs too, and evicts as well.
	d := newJob("o", "B", 1, 7*time.Second)
	create(t, s, d, store.Limits{})
	if _, changed, err := s.Cancel(ctx, d.ID, at(7)); err != nil || !changed {
		t.Fatalf("cancel: %v %v", changed, err)
	}
	kept(30, []*store.Job{a3, b2, d}, []*store.Job{b1})
	// Deleted and expired jobs leave the count.
	if _, _, err := s.Delete(ctx, a3.ID, at(8)); err != nil {
		t.Fatal(err)
	}
	kept(20, []*store.Job{b2, d}, nil)
	if n, err := s.Expire(ctx, at(5).Add(retention+time.Millisecond)); err != nil || n != 4 {
		t.Fatalf("expired %d %v, want 4", n, err)
	}
	kept(10, []*store.Job{d}, nil)
}

// Workers ending jobs at once (replicas, with PostgreSQL) never leave
// more kept than the bound: each end counts what the others committed.
func testKeptBoundConcurrent(t *testing.T, open opener) {
	const jobs, bound = 60, 50
	s := open(t, defaults(store.Options{KeepInputs: true, MaxKeptBytes: bound}))
	var ids []string
	for i := 0; i < jobs; i++ {
		j := newJob("o", fmt.Sprintf("T%d", i%4), 1, time.Duration(i)*time.Millisecond)
		create(t, s, j, store.Limits{})
		ids = append(ids, j.ID)
	}
	// What is committed never passes the bound, not even for a moment.
	done := make(chan struct{})
	var watch sync.WaitGroup
	watch.Go(func() {
		for {
			if st, err := s.Stats(ctx); err != nil || st.KeptBytes > bound {
				t.Errorf("kept %d bytes (%v), past the bound %d", st.KeptBytes, err, bound)
				return
			}
			select {
			case <-done:
				return
			default:
			}
		}
	})
	defer watch.Wait()
	defer close(done)
	var wg sync.WaitGroup
	for w := 0; w < 6; w++ {
		wg.Go(func() {
			for {
				c, err := s.Claim(ctx, fmt.Sprint("w", w), t0, time.Hour)
				if err != nil || c == nil {
					if err != nil {
						t.Error(err)
					}
					return
				}
				if _, err := s.Complete(ctx, c, page(c), t0.Add(time.Duration(w)*time.Second)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	var have int64
	for _, id := range ids {
		if _, err := s.Input(ctx, id, 0); err == nil {
			have += 10
		} else if !errors.Is(err, store.ErrNotFound) {
			t.Fatal(err)
		}
	}
	st, err := s.Stats(ctx)
	if err != nil || st.KeptBytes != have || have != bound {
		t.Fatalf("%d bytes of input left, stats %+v %v; want exactly the bound %d, counted", have, st, err, bound)
	}
}

// finishJobs runs n one-page jobs of 10 bytes of input to their end, a
// second apart from t0+from seconds, and returns their ids.
func finishJobs(t *testing.T, s store.Store, n, from int) []string {
	t.Helper()
	var ids []string
	for i := range n {
		j := newJob("o", "T", 1, time.Duration(from+i)*time.Second)
		create(t, s, j, store.Limits{})
		complete(t, s, claim(t, s, "w", j.Created), j.Created)
		ids = append(ids, j.ID)
	}
	return ids
}

// wantKeptEvicted checks a store reopened with a bound of 20 bytes over
// the three jobs of finishJobs: it counts their 30 bytes, and the next
// job's end evicts the two oldest.
func wantKeptEvicted(t *testing.T, s store.Store, ids []string) {
	t.Helper()
	if st, err := s.Stats(ctx); err != nil || st.KeptBytes != 30 {
		t.Fatalf("reopened: %+v %v, want the 30 bytes kept before", st, err)
	}
	ids = append(ids, finishJobs(t, s, 1, 10)...)
	for i, id := range ids {
		_, err := s.Input(ctx, id, 0)
		if evicted := errors.Is(err, store.ErrNotFound); evicted != (i < 2) {
			t.Fatalf("job %d: input %v, want the two oldest evicted", i, err)
		}
	}
}

func testAllPagesFailed(t *testing.T, open opener) {
	s := open(t, defaults(store.Options{}))
	j := newJob("a", "A", 2, 0)
	create(t, s, j, store.Limits{})
	c1, c2 := claim(t, s, "w", t0), claim(t, s, "w", t0)
	if _, err := s.Complete(ctx, c1, []store.Page{{Index: 0, Failed: true, Data: []byte(j.ID + "#0")}}, t0); err != nil {
		t.Fatal(err)
	}
	ended, err := s.Complete(ctx, c2, []store.Page{{Index: 1, Failed: true, Data: []byte(j.ID + "#1")}}, t0)
	if err != nil || ended == nil || ended.State != store.StateFailed || ended.PagesFailed != 2 {
		t.Fatalf("ended %+v %v", ended, err)
	}
	k := newJob("a", "A", 2, 0)
	create(t, s, k, store.Limits{})
	c1, c2 = claim(t, s, "w", t0), claim(t, s, "w", t0)
	s.Complete(ctx, c1, []store.Page{{Index: 0, Failed: true, Data: []byte(k.ID + "#0")}}, t0)
	if ended := complete(t, s, c2, t0); ended == nil || ended.State != store.StateSucceeded || ended.PagesFailed != 1 {
		t.Fatalf("one page of two failed: %+v", ended)
	}
}

func testOutbox(t *testing.T, open opener) {
	s := open(t, defaults(store.Options{}))
	// Three jobs to one receiver, one to another.
	var ids []string
	for i, url := range []string{"https://slow.example/a", "https://SLOW.example:443/b", "https://slow.example/c", "https://fast.example/"} {
		j := newJob("a", "A", 1, time.Duration(i)*time.Second)
		j.WebhookURL = url
		create(t, s, j, store.Limits{})
		complete(t, s, claim(t, s, "w", t0), t0.Add(time.Duration(i)*time.Second))
		ids = append(ids, j.ID)
	}
	now := t0.Add(time.Minute)
	// Two per destination: the slow receiver's third waits, the fast one
	// does not.
	d1, _ := s.ClaimDelivery(ctx, "w1", now, time.Minute, 2)
	d2, _ := s.ClaimDelivery(ctx, "w2", now, time.Minute, 2)
	d3, err := s.ClaimDelivery(ctx, "w3", now, time.Minute, 2)
	if err != nil || d1 == nil || d2 == nil || d3 == nil || d1.JobID != ids[0] || d2.JobID != ids[1] || d3.JobID != ids[3] {
		t.Fatalf("claims %+v %+v %+v %v", d1, d2, d3, err)
	}
	if d, _ := s.ClaimDelivery(ctx, "w4", now, time.Minute, 2); d != nil {
		t.Fatalf("a third delivery to one destination: %+v", d)
	}
	// A retry frees the destination and is due later.
	d1.Attempts, d1.Next = 1, now.Add(time.Hour)
	if err := s.DeliveryRetry(ctx, d1); err != nil {
		t.Fatal(err)
	}
	d4, _ := s.ClaimDelivery(ctx, "w4", now, time.Minute, 2)
	if d4 == nil || d4.JobID != ids[2] {
		t.Fatalf("after a retry %+v", d4)
	}
	for _, d := range []*store.Delivery{d2, d3, d4} {
		if err := s.DeliveryDone(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	if next, ok, err := s.NextDelivery(ctx); err != nil || !ok || !next.Equal(now.Add(time.Hour)) {
		t.Fatalf("next %v %v %v", next, ok, err)
	}
	if d, _ := s.ClaimDelivery(ctx, "w", now.Add(59*time.Minute), time.Minute, 2); d != nil {
		t.Fatalf("claimed before it was due: %+v", d)
	}
	again, _ := s.ClaimDelivery(ctx, "w", now.Add(61*time.Minute), time.Minute, 2)
	if again == nil || again.ID != d1.ID || again.Attempts != 1 || !bytes.Equal(again.Body, d1.Body) {
		t.Fatalf("the retry %+v", again)
	}
	// A claimer that died: its lease expires and another takes it, with
	// the same id and body.
	taken, _ := s.ClaimDelivery(ctx, "w2", now.Add(63*time.Minute), time.Minute, 2)
	if taken == nil || taken.ID != d1.ID || taken.Token == again.Token {
		t.Fatalf("after the lease expired %+v", taken)
	}
	s.DeliveryDone(ctx, taken)
	if _, ok, _ := s.NextDelivery(ctx); ok {
		t.Fatal("the outbox is not empty")
	}
}

// Workers claiming and recording at once: every task once.
func testConcurrentWorkers(t *testing.T, open opener) {
	s := open(t, defaults(store.Options{}))
	const jobs, tasks = 12, 5
	var ids []string
	for i := 0; i < jobs; i++ {
		j := newJob("o", fmt.Sprintf("T%d", i%3), tasks, time.Duration(i)*time.Millisecond)
		create(t, s, j, store.Limits{})
		ids = append(ids, j.ID)
	}
	var mu sync.Mutex
	seen := map[string]int{}
	var ended atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < 6; w++ {
		wg.Go(func() {
			for {
				c, err := s.Claim(ctx, fmt.Sprint("w", w), t0, time.Hour)
				if err != nil {
					t.Error(err)
					return
				}
				if c == nil {
					return
				}
				mu.Lock()
				seen[fmt.Sprintf("%s/%d", c.Job.ID, c.Task)]++
				mu.Unlock()
				j, err := s.Complete(ctx, c, page(c), t0)
				if err != nil {
					t.Error(err)
					return
				}
				if j != nil {
					ended.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if len(seen) != jobs*tasks || ended.Load() != jobs {
		t.Fatalf("%d tasks claimed, %d jobs ended", len(seen), ended.Load())
	}
	for k, n := range seen {
		if n != 1 {
			t.Fatalf("task %s claimed %d times under live leases", k, n)
		}
	}
	for _, id := range ids {
		if got := pages(t, s, id); len(got) != tasks {
			t.Fatalf("job %s has %d pages", id, len(got))
		}
	}
}

// xor is a Codec that changes every byte, so a payload that skipped the
// seam reads back wrong.
type xor struct{ refs sync.Map }

func (x *xor) Seal(ref string, b []byte) ([]byte, error) {
	x.refs.Store(ref, true)
	out := make([]byte, len(b))
	for i := range b {
		out[i] = b[i] ^ 0x5a
	}
	return out, nil
}

func (x *xor) Open(ref string, b []byte) ([]byte, error) {
	if _, ok := x.refs.Load(ref); !ok {
		return nil, fmt.Errorf("opening %s, never sealed", ref)
	}
	return x.Seal(ref, b)
}

func testCodec(t *testing.T, open opener) {
	x := &xor{}
	s := open(t, defaults(store.Options{Codec: x}))
	j := newJob("a", "A", 2, 0)
	create(t, s, j, store.Limits{})
	if in, err := s.Input(ctx, j.ID, 0); err != nil || string(in) != "input-"+j.ID {
		t.Fatalf("input through the codec: %q %v", in, err)
	}
	complete(t, s, claim(t, s, "w", t0), t0)
	complete(t, s, claim(t, s, "w", t0), t0)
	pages(t, s, j.ID)
	for _, ref := range []string{"input/" + j.ID + "/0", "page/" + j.ID + "/0", "page/" + j.ID + "/1"} {
		if _, ok := x.refs.Load(ref); !ok {
			t.Errorf("%s did not pass the codec", ref)
		}
	}
}

// Pages are read a batch at a time; a job of several batches reads back
// whole and in order, whatever order its tasks were recorded in.
func testManyPages(t *testing.T, open opener) {
	s := open(t, defaults(store.Options{}))
	const n = 70
	j := newJob("a", "A", n, 0)
	create(t, s, j, store.Limits{})
	var claims []*store.Claim
	for i := 0; i < n; i++ {
		claims = append(claims, claim(t, s, "w", t0))
	}
	for i := n - 1; i >= 0; i-- {
		complete(t, s, claims[i], t0)
	}
	got := pages(t, s, j.ID)
	if len(got) != n {
		t.Fatalf("%d pages, want %d", len(got), n)
	}
	for i, p := range got {
		if want := fmt.Sprintf("%s#%d", j.ID, i); p != want {
			t.Fatalf("page %d is %q", i, p)
		}
	}
	// A consumer that stops early stops the reading.
	read := 0
	for range s.Pages(ctx, j.ID) {
		if read++; read == 40 {
			break
		}
	}
}
