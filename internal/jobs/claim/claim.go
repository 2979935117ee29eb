// Package claim runs the loops that take work from a shared store: a
// few workers, each claiming until nothing is left and then sleeping
// until poked, and one poller that pokes them now and then, so work
// queued by other processes (or left by one that died) is found while
// idle processes cost the store one query per interval, not one per
// worker.
package claim

import (
	"context"
	"sync"
	"time"
)

// Loop runs workers over one kind of work.
type Loop[T any] struct {
	// Claim takes the next piece of work; ok is false when there is none.
	Claim func(ctx context.Context) (work T, ok bool, err error)
	// Do does it.
	Do func(ctx context.Context, work T)
	// Failed is told of claim errors (the worker then sleeps until
	// poked); nil: ignored.
	Failed func(error)
	// Wait is how long the poller sleeps before its next poke.
	Wait func(ctx context.Context) time.Duration

	once sync.Once
	wake chan struct{}
}

func (l *Loop[T]) init() { l.once.Do(func() { l.wake = make(chan struct{}, 1) }) }

// Poke wakes one sleeping worker: there may be work.
func (l *Loop[T]) Poke() {
	l.init()
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// Run runs workers and the poller until ctx ends.
func (l *Loop[T]) Run(ctx context.Context, workers int) {
	l.init()
	var wg sync.WaitGroup
	for i := 0; i < max(workers, 1); i++ {
		wg.Go(func() { l.worker(ctx) })
	}
	wg.Go(func() {
		for {
			t := time.NewTimer(l.Wait(ctx))
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
				l.Poke()
			}
		}
	})
	wg.Wait()
}

func (l *Loop[T]) worker(ctx context.Context) {
	for ctx.Err() == nil {
		work, ok, err := l.Claim(ctx)
		if err != nil && ctx.Err() == nil && l.Failed != nil {
			l.Failed(err)
		}
		if !ok {
			select { // sleep until poked: work here, a worker that found some, or the poller
			case <-ctx.Done():
			case <-l.wake:
			}
			continue
		}
		l.Poke() // another worker may find more
		l.Do(ctx, work)
	}
}

// Every calls fn every d until ctx ends.
func Every(ctx context.Context, d time.Duration, fn func()) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			fn()
		}
	}
}
