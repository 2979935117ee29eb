package jobs

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/visionserve/visionserve/internal/jobs/claim"
	"github.com/visionserve/visionserve/internal/jobs/store"
)

// Causes of a task's context ending other than a shutdown.
var (
	// errCanceledByUser: the job was canceled or deleted.
	errCanceledByUser = errors.New("job canceled")
	// errLeaseLost: the task is no longer this worker's (its lease was
	// not renewed in time and another claimed it, or the job ended on
	// another replica).
	errLeaseLost = errors.New("task lease lost")
)

// queueOptions wire a queue.
type queueOptions struct {
	Work store.Work
	// Worker names this process in leases.
	Worker string
	// Runners is how many tasks this process runs at once.
	Runners int
	// Lease is how long a claim lasts unless renewed; leases are renewed
	// every Lease/3 while their task runs.
	Lease time.Duration
	// Poll is how often an idle process asks the store for work (tasks
	// submitted here wake a runner at once).
	Poll time.Duration
	Now  func() time.Time
	Log  *slog.Logger
	// Exec runs a claimed task and returns its pages; an error means
	// "stopped, record nothing" (shutdown, cancellation, lease lost).
	Exec func(ctx context.Context, c *store.Claim) ([]store.Page, error)
	// Ended is told of each job whose last task this process recorded.
	Ended func(*store.Job)
}

// queue claims tasks from the store and runs them: Runners at a time,
// each under a lease the keeper renews, each stopped when its job ends.
// Which task comes next is the store's decision (fair across tenants), so
// it holds across replicas.
type queue struct {
	queueOptions
	worker string
	loop   claim.Loop[*store.Claim]

	mu   sync.Mutex
	held map[string]*heldTask // token -> task running here
}

type heldTask struct {
	job    string
	cancel context.CancelCauseFunc
}

func newQueue(o queueOptions) *queue {
	q := &queue{queueOptions: o, worker: o.Worker, held: map[string]*heldTask{}}
	q.loop = claim.Loop[*store.Claim]{
		Claim: func(ctx context.Context) (*store.Claim, bool, error) {
			c, err := q.Work.Claim(ctx, q.worker, q.Now(), q.Lease)
			return c, c != nil, err
		},
		Do:     q.runClaim,
		Failed: func(err error) { q.Log.Error("claiming a task", "err", err) },
		// For work submitted through other replicas and tasks whose lease
		// expired (a submission here pokes at once).
		Wait: func(context.Context) time.Duration { return q.Poll },
	}
	return q
}

// workerID names this process: its host name and a random suffix, so
// two processes on one host (or a restarted one) never share leases.
func workerID() string {
	host, _ := os.Hostname()
	return host + "/" + store.NewID("")[:12]
}

// poke wakes an idle runner: there may be work.
func (q *queue) poke() { q.loop.Poke() }

// run runs the runners and the lease keeper until ctx ends.
func (q *queue) run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Go(func() { q.loop.Run(ctx, q.Runners) })
	wg.Go(func() { claim.Every(ctx, q.Lease/3, func() { q.renew(ctx) }) })
	wg.Wait()
}

// runClaim runs one claimed task and records its pages.
func (q *queue) runClaim(ctx context.Context, c *store.Claim) {
	q.Log.Debug("task claimed", "job", c.Job.ID, "task", c.Task, "tenant", c.Job.Tenant)
	tctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	q.mu.Lock()
	q.held[c.Token] = &heldTask{job: c.Job.ID, cancel: cancel}
	q.mu.Unlock()
	defer func() {
		q.mu.Lock()
		delete(q.held, c.Token)
		q.mu.Unlock()
	}()
	pages, err := q.Exec(tctx, c)
	// Past this point the work is done: record it even when shutting
	// down, within a bound of its own.
	sctx, scancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer scancel()
	if err != nil {
		if ctx.Err() != nil {
			// Shutting down: give the task back so another replica takes
			// it now rather than when the lease expires.
			if err := q.Work.Release(sctx, c.Token); err != nil {
				q.Log.Warn("giving a task back", "job", c.Job.ID, "task", c.Task, "err", err)
			}
		}
		return
	}
	ended, err := q.Work.Complete(sctx, c, pages, q.Now())
	if err != nil {
		// The lease expires and the task runs again.
		q.Log.Error("recording a task", "job", c.Job.ID, "task", c.Task, "err", err)
		return
	}
	if ended != nil {
		q.Ended(ended)
	}
}

// abort stops the tasks of job id running here.
func (q *queue) abort(id string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, h := range q.held {
		if h.job == id {
			h.cancel(errCanceledByUser)
		}
	}
}

// renew renews the leases of the tasks running here (every Lease/3) and
// stops those whose lease was lost.
func (q *queue) renew(ctx context.Context) {
	q.mu.Lock()
	tokens := make([]string, 0, len(q.held))
	for tok := range q.held {
		tokens = append(tokens, tok)
	}
	q.mu.Unlock()
	if len(tokens) == 0 {
		return
	}
	lost, err := q.Work.Renew(ctx, q.worker, tokens, q.Now().Add(q.Lease))
	if err != nil {
		if ctx.Err() == nil {
			q.Log.Warn("renewing task leases", "tasks", len(tokens), "err", err)
		}
		return
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, tok := range lost {
		if h := q.held[tok]; h != nil {
			h.cancel(errLeaseLost)
		}
	}
}
