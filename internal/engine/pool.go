package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
)

// ErrPoolClosed is returned by Acquire after Close.
var ErrPoolClosed = errors.New("engine pool closed")

// Pool hands out a fixed set of engine instances, each to one caller at a
// time. Instances are built once, in NewPool, and reused for the pool's
// life: a request never pays for a model load.
type Pool[T io.Closer] struct {
	idle   chan T
	size   int
	mu     sync.Mutex // serialises Close
	open   int        // instances not yet closed; guarded by mu
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
	p := &Pool[T]{idle: make(chan T, n), size: n, open: n, closed: make(chan struct{})}
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

// Size is the number of instances.
func (p *Pool[T]) Size() int { return p.size }

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

// Close stops new acquisitions, waits until every instance is back and
// closes it. If ctx ends first, Close returns ctx's error and leaves the
// instances still in use alone (freeing an engine under a running request
// would crash the process); calling Close again later finishes the job.
func (p *Pool[T]) Close(ctx context.Context) error {
	p.once.Do(func() { close(p.closed) })
	p.mu.Lock()
	defer p.mu.Unlock()
	var errs []error
	for p.open > 0 {
		select {
		case inst := <-p.idle:
			p.open--
			if err := inst.Close(); err != nil {
				errs = append(errs, err)
			}
		case <-ctx.Done():
			errs = append(errs, fmt.Errorf("engine pool: %d of %d instances still in use: %w", p.open, p.size, ctx.Err()))
			return errors.Join(errs...)
		}
	}
	return errors.Join(errs...)
}
