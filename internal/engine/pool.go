package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
)

// ErrPoolClosed is returned by Acquire after Close.
var ErrPoolClosed = errors.New("engine pool closed")

// DefaultGrace is how long a pool waits for an abandoned call to return
// before it gives up on the instance (ReleaseAfter). An engine that honours
// its context returns within a fraction of it.
const DefaultGrace = 5 * time.Second

// Pool hands out a fixed set of engine instances, each to one caller at a
// time. Instances are built once, in NewPool, and reused for the pool's
// life: a request never pays for a model load. The one exception is an
// instance stuck in a call that never returns: the pool quarantines it and
// builds a replacement (ReleaseAfter).
type Pool[T io.Closer] struct {
	idle   chan T
	size   int
	build  func(i int) (T, error)
	grace  time.Duration
	mu     sync.Mutex    // serialises Close
	cmu    sync.Mutex    // guards open, built and quarantined
	open   int           // instances neither closed nor quarantined
	built  int           // instances ever built (the next build's index)
	stuck  int           // instances quarantined and not yet closed
	change chan struct{} // signalled when open drops without an instance coming back
	closed chan struct{}
	once   sync.Once
}

// NewPool builds n instances with build, in parallel (model loads are slow
// and independent). If any build fails, the instances already built are
// closed and the first error is returned.
func NewPool[T io.Closer](n int, build func(i int) (T, error)) (*Pool[T], error) {
	if n < 1 {
		return nil, fmt.Errorf("engine pool: size %d, want at least 1", n)
	}
	type built struct {
		inst T
		err  error
	}
	results := make(chan built, n)
	for i := 0; i < n; i++ {
		go func() {
			inst, err := build(i)
			results <- built{inst, err}
		}()
	}
	p := &Pool[T]{idle: make(chan T, n), size: n, build: build, grace: DefaultGrace, open: n, built: n,
		change: make(chan struct{}, 1), closed: make(chan struct{})}
	var firstErr error
	for i := 0; i < n; i++ {
		r := <-results
		switch {
		case r.err != nil && firstErr == nil:
			firstErr = r.err
		case r.err == nil:
			p.idle <- r.inst
		}
	}
	if firstErr != nil {
		close(p.idle)
		for inst := range p.idle {
			inst.Close()
		}
		return nil, firstErr
	}
	return p, nil
}

// SetGrace changes how long ReleaseAfter waits for an abandoned call
// (DefaultGrace); call it before the pool is used.
func (p *Pool[T]) SetGrace(d time.Duration) { p.grace = d }

// Size is the number of instances.
func (p *Pool[T]) Size() int { return p.size }

// Quarantined is the number of instances stuck in a call that has not
// returned long after its caller gave up on it.
func (p *Pool[T]) Quarantined() int {
	p.cmu.Lock()
	defer p.cmu.Unlock()
	return p.stuck
}

// Acquire takes an idle instance, waiting until one is released, ctx ends
// or the pool closes.
func (p *Pool[T]) Acquire(ctx context.Context) (T, error) {
	var zero T
	select {
	case inst := <-p.idle:
		return inst, nil
	default:
	}
	select {
	case inst := <-p.idle:
		return inst, nil
	case <-ctx.Done():
		return zero, ctx.Err()
	case <-p.closed:
		return zero, ErrPoolClosed
	}
}

// Release returns an instance taken with Acquire.
func (p *Pool[T]) Release(inst T) { p.idle <- inst }

// ReleaseAfter returns an instance whose caller stopped waiting for a call
// on it (Call's pending channel; nil means the call returned, as Release).
// The instance goes back to the pool when the call returns. If the call is
// still running after the pool's grace period, the instance is
// quarantined: it is never handed out again, Close stops waiting for it,
// and it is closed only if its call ever returns (freeing it under a
// running call would crash the process). A replacement is built so the
// pool keeps its size, and onStuck (if not nil) is called. It does not
// block.
func (p *Pool[T]) ReleaseAfter(inst T, pending <-chan struct{}, onStuck func()) {
	if pending == nil {
		p.Release(inst)
		return
	}
	go func() {
		t := time.NewTimer(p.grace)
		defer t.Stop()
		select {
		case <-pending:
			p.Release(inst)
			return
		case <-t.C:
		}
		if onStuck != nil {
			onStuck()
		}
		p.quarantine()
		<-pending
		inst.Close()
		p.cmu.Lock()
		p.stuck--
		p.cmu.Unlock()
	}()
}

// quarantine takes a stuck instance out of the count Close waits for and
// starts building its replacement.
func (p *Pool[T]) quarantine() {
	p.cmu.Lock()
	p.open--
	p.stuck++
	i := p.built
	p.built++
	p.cmu.Unlock()
	select {
	case p.change <- struct{}{}:
	default:
	}
	select {
	case <-p.closed:
		return // nobody needs a replacement
	default:
	}
	go func() {
		inst, err := p.build(i)
		if err != nil {
			return // the pool serves with one instance fewer
		}
		p.cmu.Lock()
		select {
		case <-p.closed:
			p.cmu.Unlock()
			inst.Close()
			return
		default:
		}
		p.open++
		p.cmu.Unlock()
		p.idle <- inst
	}()
}

// Close stops new acquisitions, waits until every instance is back and
// closes it. If ctx ends first, Close returns ctx's error and leaves the
// instances still in use alone (freeing an engine under a running request
// would crash the process); calling Close again later finishes the job.
// Quarantined instances are not waited for.
func (p *Pool[T]) Close(ctx context.Context) error {
	p.cmu.Lock()
	p.once.Do(func() { close(p.closed) })
	p.cmu.Unlock()
	p.mu.Lock()
	defer p.mu.Unlock()
	var errs []error
	for {
		p.cmu.Lock()
		open := p.open
		p.cmu.Unlock()
		if open <= 0 {
			return errors.Join(errs...)
		}
		select {
		case inst := <-p.idle:
			p.cmu.Lock()
			p.open--
			p.cmu.Unlock()
			if err := inst.Close(); err != nil {
				errs = append(errs, err)
			}
		case <-p.change:
		case <-ctx.Done():
			errs = append(errs, fmt.Errorf("engine pool: %d of %d instances still in use: %w", open, p.size, ctx.Err()))
			return errors.Join(errs...)
		}
	}
}
