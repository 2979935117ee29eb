// Package sched decides which requests run now, which wait and which are
// turned away. It holds two bounds: Workers requests run at once (one per
// core by default), and at most Workers+Queue requests are admitted at all.
// A request beyond that is refused at once with ErrQueueFull and a
// Retry-After estimate, never parked indefinitely. Memory bounds the bytes
// of request bodies held meanwhile, which are read before admission, in
// total and per client.
package sched

import (
	"context"
	"errors"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// Sentinel errors.
var (
	// ErrQueueFull: every worker is busy and the queue is at its bound.
	ErrQueueFull = errors.New("server busy: queue full")
	// ErrDraining: the server is shutting down and admits nothing new.
	ErrDraining = errors.New("server shutting down")
)

// Reasons for a refusal, as Observer.Rejected reports them (a metric label).
const (
	ReasonQueueFull = "queue_full"
	ReasonDraining  = "draining"
)

// RejectReasons lists every reason Observer.Rejected is given, so that a
// metric can start each at zero.
var RejectReasons = []string{ReasonQueueFull, ReasonDraining, ReasonBodyMemory, ReasonBodyShare}

// Observer receives the scheduler's measurements; metrics implement it.
// Every method must be cheap and safe for concurrent use.
type Observer interface {
	QueueWait(d time.Duration)
	Queued(n int)  // requests admitted and waiting for a worker
	Running(n int) // requests holding a worker
	Rejected(reason string)
	BodyBytes(n int64) // bytes of request bodies held (Memory)
}

type nopObserver struct{}

func (nopObserver) QueueWait(time.Duration) {}
func (nopObserver) Queued(int)              {}
func (nopObserver) Running(int)             {}
func (nopObserver) Rejected(string)         {}
func (nopObserver) BodyBytes(int64)         {}

// Scheduler is an admission queue in front of a fixed number of workers.
type Scheduler struct {
	workers  chan struct{}
	admitted chan struct{}
	obs      Observer

	queued   atomic.Int64
	running  atomic.Int64
	draining atomic.Bool

	mu      sync.Mutex
	service float64 // EWMA of seconds a job holds a worker

	// changed is closed (and replaced) whenever a worker is released or a
	// waiting request leaves the queue: background work waits on it.
	cmu     sync.Mutex
	changed chan struct{}
	// backgroundWaiting counts background work waiting for a worker.
	backgroundWaiting atomic.Int64
	// maxBackgroundWait: past it, background work competes as an equal.
	maxBackgroundWait time.Duration
}

// DefaultMaxBackgroundWait is how long background work yields to
// interactive requests before it competes with them as an equal.
const DefaultMaxBackgroundWait = 10 * time.Second

// New returns a scheduler with the given number of workers and queue
// slots. obs may be nil.
func New(workers, queue int, obs Observer) *Scheduler {
	workers, queue = max(workers, 1), max(queue, 0)
	if obs == nil {
		obs = nopObserver{}
	}
	return &Scheduler{
		workers:  make(chan struct{}, workers),
		admitted: make(chan struct{}, workers+queue),
		obs:      obs,
		service:  0.1,
		changed:  make(chan struct{}),

		maxBackgroundWait: DefaultMaxBackgroundWait,
	}
}

// Workers is the number of requests that run at once.
func (s *Scheduler) Workers() int { return cap(s.workers) }

// QueueCap is the number of admitted requests that may wait.
func (s *Scheduler) QueueCap() int { return cap(s.admitted) - cap(s.workers) }

// Ticket is an admitted request. Done must be called exactly once.
type Ticket struct {
	s    *Scheduler
	done atomic.Bool
}

// Admit lets a request in, or refuses it without waiting.
func (s *Scheduler) Admit() (*Ticket, error) {
	if s.draining.Load() {
		s.obs.Rejected(ReasonDraining)
		return nil, ErrDraining
	}
	select {
	case s.admitted <- struct{}{}:
		return &Ticket{s: s}, nil
	default:
		s.obs.Rejected(ReasonQueueFull)
		return nil, ErrQueueFull
	}
}

// Done releases the admission.
func (t *Ticket) Done() {
	if t != nil && t.done.CompareAndSwap(false, true) {
		<-t.s.admitted
	}
}

// Run waits for a worker (or ctx), runs fn holding it and returns fn's
// error. Time spent waiting is reported to the Observer.
func (s *Scheduler) Run(ctx context.Context, fn func(context.Context) error) error {
	start := time.Now()
	s.obs.Queued(int(s.queued.Add(1)))
	select {
	case s.workers <- struct{}{}:
	case <-ctx.Done():
		s.obs.Queued(int(s.queued.Add(-1)))
		s.obs.QueueWait(time.Since(start))
		s.signal()
		return ctx.Err()
	}
	s.obs.Queued(int(s.queued.Add(-1)))
	s.obs.QueueWait(time.Since(start))
	s.signal()
	return s.hold(ctx, fn)
}

// hold runs fn on the worker slot the caller has taken.
func (s *Scheduler) hold(ctx context.Context, fn func(context.Context) error) error {
	s.obs.Running(int(s.running.Add(1)))
	began := time.Now()
	defer func() {
		s.observeService(time.Since(began))
		s.obs.Running(int(s.running.Add(-1)))
		<-s.workers
		s.signal()
	}()
	return fn(ctx)
}

func (s *Scheduler) signal() {
	s.cmu.Lock()
	close(s.changed)
	s.changed = make(chan struct{})
	s.cmu.Unlock()
}

func (s *Scheduler) changes() <-chan struct{} {
	s.cmu.Lock()
	defer s.cmu.Unlock()
	return s.changed
}

// Background runs work that should not slow interactive requests (async
// jobs) on the same workers. Its Run takes a free worker only while no
// interactive request is waiting for one, so a synchronous request never
// queues behind a job's page for longer than the page already running.
// To keep jobs from starving under sustained load, work that has waited
// DefaultMaxBackgroundWait competes as an equal from then on.
type Background struct{ s *Scheduler }

// Background returns the scheduler's background runner.
func (s *Scheduler) Background() Background { return Background{s} }

// Run waits for a worker as described on Background, then runs fn. It
// refuses with ErrDraining once the scheduler drains.
func (b Background) Run(ctx context.Context, fn func(context.Context) error) error {
	s := b.s
	if s.draining.Load() {
		return ErrDraining
	}
	s.backgroundWaiting.Add(1)
	defer s.backgroundWaiting.Add(-1)
	patience := time.NewTimer(s.maxBackgroundWait)
	defer patience.Stop()
	for {
		ch := s.changes()
		if s.queued.Load() == 0 {
			select {
			case s.workers <- struct{}{}:
				return s.hold(ctx, fn)
			default:
			}
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		case <-patience.C:
			// Waited long enough: queue like an interactive request.
			select {
			case s.workers <- struct{}{}:
				return s.hold(ctx, fn)
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if s.draining.Load() {
			return ErrDraining
		}
	}
}

func (s *Scheduler) observeService(d time.Duration) {
	s.mu.Lock()
	s.service = 0.9*s.service + 0.1*d.Seconds()
	s.mu.Unlock()
}

// RetryAfter estimates when a refused client should try again: the time
// for the workers to clear what is queued now, rounded up to whole seconds
// (the Retry-After header's unit), at least one.
func (s *Scheduler) RetryAfter() time.Duration {
	s.mu.Lock()
	svc := s.service
	s.mu.Unlock()
	pending := float64(s.queued.Load() + s.running.Load())
	secs := math.Ceil(pending * svc / float64(cap(s.workers)))
	return time.Duration(max(secs, 1)) * time.Second
}

// QueueLength is the number of admitted requests waiting for a worker now.
func (s *Scheduler) QueueLength() int { return int(s.queued.Load()) }

// Drain stops admitting requests. Admitted ones still run.
func (s *Scheduler) Drain() { s.draining.Store(true) }

// Idle reports whether no admitted request remains.
func (s *Scheduler) Idle() bool { return len(s.admitted) == 0 && s.running.Load() == 0 }
