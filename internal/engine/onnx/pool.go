package onnx

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/visionserve/visionserve/internal/engine"
)

// Pool holds Options.Sessions sessions of one model and lends each to one
// goroutine at a time. Its Run is safe for concurrent use and waits for a
// free session, so the pool size bounds how many runs of the model happen at
// once.
type Pool struct {
	idle      chan *Session
	all       []*Session
	done      chan struct{}
	closeOnce sync.Once
	closeErr  error
	inputs    []engine.TensorInfo
	outputs   []engine.TensorInfo
}

// NewPool reads model's metadata once and creates opts.Sessions sessions.
// If any session fails, the ones already made are freed before it returns.
func NewPool(model []byte, opts Options) (*Pool, error) {
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("onnx: %w", err)
	}
	in, out, err := ModelInfo(model)
	if err != nil {
		return nil, err
	}
	return newPool(opts.Sessions, in, out, func() (*Session, error) {
		return newSession(model, opts, in, out)
	})
}

// newPool is NewPool with the session constructor as a seam for tests.
func newPool(n int, in, out []engine.TensorInfo, mk func() (*Session, error)) (*Pool, error) {
	p := &Pool{
		idle:    make(chan *Session, n),
		done:    make(chan struct{}),
		inputs:  in,
		outputs: out,
	}
	for i := range n {
		s, err := mk()
		if err != nil {
			return nil, errors.Join(fmt.Errorf("onnx: session %d of %d: %w", i+1, n, err), p.Close())
		}
		p.all = append(p.all, s)
		p.idle <- s
	}
	return p, nil
}

// Inputs describes the model's inputs in the order Run expects them.
func (p *Pool) Inputs() []engine.TensorInfo { return p.inputs }

// Outputs describes the model's outputs in the order Run returns them.
func (p *Pool) Outputs() []engine.TensorInfo { return p.outputs }

// Size is the number of sessions in the pool.
func (p *Pool) Size() int { return len(p.all) }

// Acquire waits for a free session and lends it to the caller, who must
// hand it back with Release. It fails with ctx's error when ctx is done
// first and with ErrClosed once Close has begun.
func (p *Pool) Acquire(ctx context.Context) (*Session, error) {
	select {
	case <-p.done:
		return nil, ErrClosed
	default:
	}
	select {
	case s := <-p.idle:
		select {
		case <-p.done: // Close began while we waited; it is collecting sessions.
			p.idle <- s
			return nil, ErrClosed
		default:
			return s, nil
		}
	case <-p.done:
		return nil, ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Release returns a session obtained from Acquire. Releasing a session twice
// is a bug and panics.
func (p *Pool) Release(s *Session) {
	select {
	case p.idle <- s:
	default:
		panic("onnx: Pool.Release of a session that was not acquired")
	}
}

// Run runs the model on a free session; see Session.Run.
func (p *Pool) Run(ctx context.Context, inputs []engine.Tensor) ([]engine.Tensor, error) {
	// Check the request before queueing for a session, so a bad request
	// never waits behind good ones.
	if err := CheckInputs(p.inputs, inputs); err != nil {
		return nil, err
	}
	s, err := p.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer p.Release(s)
	return s.Run(ctx, inputs)
}

// Close stops lending sessions, waits until every lent session has been
// released, and frees them all. It is idempotent and safe on a pool whose
// construction failed part way.
func (p *Pool) Close() error {
	if p == nil {
		return nil
	}
	p.closeOnce.Do(func() {
		close(p.done)
		var errs []error
		for range p.all {
			errs = append(errs, (<-p.idle).Close())
		}
		p.closeErr = errors.Join(errs...)
	})
	return p.closeErr
}
