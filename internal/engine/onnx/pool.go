package onnx

import (
	"context"
	"fmt"

	"github.com/visionserve/visionserve/internal/engine"
)

// Pool holds Options.Sessions sessions of one model in an engine.Pool and
// lends each to one goroutine at a time. Its Run is safe for concurrent use
// and waits for a free session, so the pool size bounds how many runs of the
// model happen at once.
type Pool struct {
	sessions *engine.Pool[*Session]
	inputs   []engine.TensorInfo
	outputs  []engine.TensorInfo
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
	sessions, err := engine.NewPool(opts.Sessions, func(int) (*Session, error) {
		return newSession(model, opts, in, out)
	})
	if err != nil {
		return nil, err
	}
	return &Pool{sessions: sessions, inputs: in, outputs: out}, nil
}

// Inputs describes the model's inputs in the order Run expects them.
func (p *Pool) Inputs() []engine.TensorInfo { return p.inputs }

// Outputs describes the model's outputs in the order Run returns them.
func (p *Pool) Outputs() []engine.TensorInfo { return p.outputs }

// Size is the number of sessions in the pool.
func (p *Pool) Size() int { return p.sessions.Size() }

// Acquire waits for a free session and lends it to the caller, who must
// hand it back with Release. It fails with ctx's error when ctx is done
// first and with engine.ErrPoolClosed once Close has begun.
func (p *Pool) Acquire(ctx context.Context) (*Session, error) { return p.sessions.Acquire(ctx) }

// Release returns a session obtained from Acquire.
func (p *Pool) Release(s *Session) { p.sessions.Release(s) }

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
	// ORT stops a run when told to (RunOptions.Terminate), between
	// operators; a run stuck inside one is abandoned at the deadline and
	// its session set aside until it returns.
	out, pending, err := engine.Call(ctx, func() ([]engine.Tensor, error) { return s.Run(ctx, inputs) })
	p.sessions.ReleaseAfter(s, pending, nil)
	return out, err
}

// Close stops lending sessions, waits until every lent session is back and
// frees them all. If ctx ends first it returns ctx's error and leaves the
// sessions still in use alone; calling Close again later finishes the job.
func (p *Pool) Close(ctx context.Context) error {
	if p == nil {
		return nil
	}
	return p.sessions.Close(ctx)
}
