package engine

import (
	"context"
	"fmt"
)

// Call runs fn on a goroutine of its own and waits until it returns or ctx
// ends, whichever comes first. Engines must return promptly once their
// context ends, and do; but an engine stuck inside a C call that never
// returns (a corrupt model, a debug mode waiting for a viewer) would hold
// its caller past any deadline. Call does not wait for it: when ctx ends
// first it returns ctx's error at once and a pending channel that closes
// when fn returns; hand the instance fn ran on to its pool with
// Pool.ReleaseAfter, never back to Release. pending is nil when fn
// returned, and fn's results are then Call's.
func Call[R any](ctx context.Context, fn func() (R, error)) (r R, pending <-chan struct{}, err error) {
	if err := ctx.Err(); err != nil {
		return r, nil, err
	}
	type result struct {
		r   R
		err error
	}
	done := make(chan struct{})
	var res result
	go func() {
		defer close(done)
		res.r, res.err = fn()
	}()
	select {
	case <-done:
		return res.r, nil, res.err
	case <-ctx.Done():
	}
	// Prefer fn's own answer when it came with the cancellation.
	select {
	case <-done:
		return res.r, nil, res.err
	default:
	}
	return r, done, fmt.Errorf("engine call abandoned at the request's end: %w", ctx.Err())
}

// Guard collects the outcome of the calls one caller makes on an instance
// it borrowed: Pending is nil while every call returned, else the pending
// channel of the call it stopped waiting for. Lend the instance back with
// Pool.ReleaseAfter(inst, guard.Pending()).
type Guard struct {
	pending <-chan struct{}
}

// Pending is the abandoned call's channel, or nil.
func (g *Guard) Pending() <-chan struct{} { return g.pending }

// Guarded runs fn through Call and records an abandoned call in g.
func Guarded[R any](ctx context.Context, g *Guard, fn func() (R, error)) (R, error) {
	r, pending, err := Call(ctx, fn)
	if pending != nil {
		g.pending = pending
	}
	return r, err
}
