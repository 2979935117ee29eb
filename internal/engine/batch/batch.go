package batch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/visionserve/visionserve/internal/engine"
	"github.com/visionserve/visionserve/internal/sched"
)

// Errors. They wrap the scheduler's and the engine pool's sentinels, so
// transports map them to the same statuses (429 and 503).
var (
	// ErrQueueFull: MaxQueue requests already wait to be batched.
	ErrQueueFull = fmt.Errorf("batch queue full: %w", sched.ErrQueueFull)
	// ErrClosed: the batcher was closed.
	ErrClosed = fmt.Errorf("batcher closed: %w", engine.ErrPoolClosed)
)

// Scheduler runs fn holding one of the process's workers (sched.Scheduler).
type Scheduler interface {
	Run(ctx context.Context, fn func(context.Context) error) error
}

// Observer receives one call per batch run; metrics implement it.
type Observer interface {
	// Batch reports a run of rows batch rows made of requests requests.
	Batch(rows, requests int)
}

// Options configure batching for one model. They are JSON-tagged so they
// can live in a model package manifest's runtime options.
type Options struct {
	// MaxBatchSize is the most rows (first-dimension entries, summed over
	// the requests) one run takes. A request with more rows runs alone.
	MaxBatchSize int `json:"max_batch_size"`
	// MaxQueueDelay is how long the oldest waiting request may wait for
	// others before its batch is dispatched anyway.
	MaxQueueDelay Duration `json:"max_queue_delay"`
	// MaxQueue bounds the requests waiting to be batched; beyond it a
	// request fails at once with ErrQueueFull.
	MaxQueue int `json:"max_queue"`
}

// DefaultOptions batch up to 8 rows, wait at most 5 ms, queue 64 requests.
func DefaultOptions() Options {
	return Options{MaxBatchSize: 8, MaxQueueDelay: Duration(5 * time.Millisecond), MaxQueue: 64}
}

// Validate reports options the batcher cannot work with.
func (o Options) Validate() error {
	var errs []error
	if o.MaxBatchSize < 1 {
		errs = append(errs, fmt.Errorf("max_batch_size must be at least 1, got %d", o.MaxBatchSize))
	}
	if o.MaxQueueDelay < 0 || time.Duration(o.MaxQueueDelay) > time.Second {
		errs = append(errs, fmt.Errorf("max_queue_delay must be between 0 and 1s, got %v", time.Duration(o.MaxQueueDelay)))
	}
	if o.MaxQueue < 1 {
		errs = append(errs, fmt.Errorf("max_queue must be at least 1, got %d", o.MaxQueue))
	}
	return errors.Join(errs...)
}

// Duration is a time.Duration written in JSON as a string such as "5ms".
type Duration time.Duration

// UnmarshalJSON implements json.Unmarshaler.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("a duration is a string such as \"5ms\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// MarshalJSON implements json.Marshaler.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// Config is what a Batcher runs on.
type Config struct {
	// Runner runs one batch; it must be safe for concurrent use when
	// Parallel is above 1 (an onnx.Pool is).
	Runner engine.TensorRunner
	// Inputs and Outputs describe the model; every one must have a
	// variable first dimension.
	Inputs, Outputs []engine.TensorInfo
	Scheduler       Scheduler
	Options         Options
	// Parallel is how many batches may run at once (the runner's
	// capacity, such as the session pool size); at least 1.
	Parallel int
	Observer Observer // may be nil
}

// Batcher is an engine.TensorRunner that batches concurrent runs.
type Batcher struct {
	cfg  Config
	wake chan struct{} // a request arrived
	slot chan struct{} // one token per batch that may run now

	mu      sync.Mutex
	pending []*call // FIFO; guarded by mu
	live    int     // pending calls not abandoned; guarded by mu
	closed  bool    // guarded by mu

	stop      chan struct{}
	collector sync.WaitGroup
	running   sync.WaitGroup
}

var _ engine.TensorRunner = (*Batcher)(nil)

// New checks cfg and starts the batcher's collector.
func New(cfg Config) (*Batcher, error) {
	if cfg.Runner == nil || cfg.Scheduler == nil {
		return nil, errors.New("batch: a runner and a scheduler are required")
	}
	if err := cfg.Options.Validate(); err != nil {
		return nil, fmt.Errorf("batch: %w", err)
	}
	for _, t := range append(append([]engine.TensorInfo(nil), cfg.Inputs...), cfg.Outputs...) {
		if len(t.Shape) == 0 || t.Shape[0] >= 0 {
			return nil, fmt.Errorf("batch: %q has shape %v; batching needs a variable first dimension on every input and output", t.Name, t.Shape)
		}
	}
	if len(cfg.Inputs) == 0 {
		return nil, errors.New("batch: the model has no inputs")
	}
	cfg.Parallel = max(cfg.Parallel, 1)
	b := &Batcher{cfg: cfg, wake: make(chan struct{}, 1), slot: make(chan struct{}, cfg.Parallel), stop: make(chan struct{})}
	b.collector.Add(1)
	go b.collect()
	return b, nil
}

// call is one Run waiting for its share of a batch.
type call struct {
	ctx    context.Context
	inputs []engine.Tensor
	rows   int64
	key    string
	since  time.Time
	done   chan result // buffered: the batch never waits for a departed caller
	state  atomic.Int32
}

const (
	statePending int32 = iota
	stateTaken
	stateAbandoned
)

type result struct {
	out []engine.Tensor
	err error
}

// Run queues inputs to be run in a batch and waits for its outputs, or
// until ctx ends.
func (b *Batcher) Run(ctx context.Context, inputs []engine.Tensor) ([]engine.Tensor, error) {
	c, ok := b.newCall(ctx, inputs)
	if !ok {
		// Inputs that do not share one batch dimension (the model may
		// broadcast them) cannot join a batch; they run alone.
		return Unbatched(b.cfg.Runner, b.cfg.Scheduler).Run(ctx, inputs)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	b.mu.Lock()
	switch {
	case b.closed:
		b.mu.Unlock()
		return nil, ErrClosed
	case b.live >= b.cfg.Options.MaxQueue:
		b.mu.Unlock()
		return nil, ErrQueueFull
	}
	b.pending = append(b.pending, c)
	b.live++
	b.mu.Unlock()
	select {
	case b.wake <- struct{}{}:
	default:
	}

	select {
	case r := <-c.done:
		return r.out, r.err
	case <-ctx.Done():
		if c.state.CompareAndSwap(statePending, stateAbandoned) {
			b.mu.Lock()
			b.live--
			b.mu.Unlock()
		}
		// Taken calls are dropped by their batch when it starts, or
		// their share of the output is discarded.
		return nil, ctx.Err()
	}
}

// newCall describes a call for batching: ok is false when its inputs do not
// agree on a batch size.
func (b *Batcher) newCall(ctx context.Context, inputs []engine.Tensor) (*call, bool) {
	if len(inputs) != len(b.cfg.Inputs) {
		return nil, false
	}
	var key strings.Builder
	rows := int64(-1)
	for _, t := range inputs {
		if len(t.Shape) == 0 || rows >= 0 && t.Shape[0] != rows {
			return nil, false
		}
		rows = t.Shape[0]
		key.WriteString(string(t.DType))
		for _, d := range t.Shape[1:] {
			key.WriteByte(',')
			key.WriteString(strconv.FormatInt(d, 10))
		}
		key.WriteByte(';')
	}
	return &call{ctx: ctx, inputs: inputs, rows: rows, key: key.String(), since: time.Now(), done: make(chan result, 1)}, true
}

// collect forms batches: it waits for a free slot, then for the oldest
// request's batch to fill or its delay to pass, and hands the batch to a
// goroutine that runs it on a worker.
func (b *Batcher) collect() {
	defer b.collector.Done()
	for {
		select {
		case b.slot <- struct{}{}:
		case <-b.stop:
			return
		}
		batch := b.next()
		if batch == nil {
			return // stopped
		}
		b.running.Add(1)
		go func() {
			defer b.running.Done()
			defer func() { <-b.slot }()
			b.execute(batch)
		}()
	}
}

// next waits until a batch is ready and takes it from the queue; nil when
// the batcher stops.
func (b *Batcher) next() []*call {
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		b.mu.Lock()
		b.prune()
		var wait time.Duration = -1
		if len(b.pending) > 0 {
			first := b.pending[0]
			wait = time.Until(first.since.Add(time.Duration(b.cfg.Options.MaxQueueDelay)))
			if wait <= 0 || b.rowsFor(first.key) >= int64(b.cfg.Options.MaxBatchSize) {
				batch := b.take(first.key)
				b.mu.Unlock()
				return batch
			}
		}
		b.mu.Unlock()
		var fire <-chan time.Time
		if wait > 0 {
			if timer == nil {
				timer = time.NewTimer(wait)
			} else {
				timer.Reset(wait)
			}
			fire = timer.C
		}
		select {
		case <-b.wake:
		case <-fire:
		case <-b.stop:
			return nil
		}
	}
}

// prune drops abandoned calls from the head of the queue. Caller holds mu.
func (b *Batcher) prune() {
	i := 0
	for i < len(b.pending) && b.pending[i].state.Load() == stateAbandoned {
		i++
	}
	if i > 0 {
		b.pending = append(b.pending[:0], b.pending[i:]...)
	}
}

func (b *Batcher) rowsFor(key string) int64 {
	var rows int64
	for _, c := range b.pending {
		if c.key == key && c.state.Load() == statePending {
			rows += c.rows
		}
	}
	return rows
}

// take removes, oldest first, the pending calls of key that fit in one
// batch; the first always goes, however many rows it has. Caller holds mu.
func (b *Batcher) take(key string) []*call {
	var batch []*call
	var rows int64
	keep := b.pending[:0]
	for _, c := range b.pending {
		switch {
		case c.state.Load() != statePending:
			// abandoned: drop
		case c.key == key && (len(batch) == 0 || rows+c.rows <= int64(b.cfg.Options.MaxBatchSize)) && c.state.CompareAndSwap(statePending, stateTaken):
			batch = append(batch, c)
			rows += c.rows
			b.live--
		default:
			keep = append(keep, c)
		}
	}
	clear(b.pending[len(keep):])
	b.pending = keep
	return batch
}

// execute runs a batch on a worker. Requests that arrived while it waited
// for the worker join it first, up to MaxBatchSize rows. The run's context
// ends when every member's has: a batch nobody waits for stops.
func (b *Batcher) execute(batch []*call) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var (
		mm     sync.Mutex // guards alive and gone, and orders joins before a cancel
		alive  int
		gone   bool
		leaves []func() bool
	)
	defer func() {
		for _, stop := range leaves {
			stop()
		}
	}()
	join := func(c *call) { // caller holds mm
		alive++
		leaves = append(leaves, context.AfterFunc(c.ctx, func() {
			mm.Lock()
			defer mm.Unlock()
			if alive--; alive == 0 {
				gone = true
				cancel()
			}
		}))
	}
	mm.Lock()
	for _, c := range batch {
		join(c)
	}
	mm.Unlock()
	err := b.cfg.Scheduler.Run(ctx, func(ctx context.Context) error {
		var rows int64
		for _, c := range batch {
			rows += c.rows
		}
		b.mu.Lock()
		mm.Lock()
		if room := int64(b.cfg.Options.MaxBatchSize) - rows; room > 0 && !gone {
			for _, c := range b.takeUpTo(batch[0].key, room) {
				join(c)
				batch = append(batch, c)
			}
		}
		mm.Unlock()
		b.mu.Unlock()
		live := batch[:0]
		for _, c := range batch {
			if c.ctx.Err() == nil {
				live = append(live, c)
			}
		}
		batch = live
		if len(batch) == 0 {
			return nil
		}
		b.run(ctx, batch)
		return nil
	})
	if err != nil {
		for _, c := range batch {
			c.done <- result{err: err}
		}
	}
}

// takeUpTo takes pending calls of key totalling at most room rows. Caller
// holds mu.
func (b *Batcher) takeUpTo(key string, room int64) []*call {
	var more []*call
	keep := b.pending[:0]
	for _, c := range b.pending {
		switch {
		case c.state.Load() != statePending:
		case c.key == key && c.rows <= room && c.state.CompareAndSwap(statePending, stateTaken):
			more = append(more, c)
			room -= c.rows
			b.live--
		default:
			keep = append(keep, c)
		}
	}
	clear(b.pending[len(keep):])
	b.pending = keep
	return more
}

// run joins the batch's inputs, runs them once and gives each call its rows
// of every output.
func (b *Batcher) run(ctx context.Context, batch []*call) {
	var rows int64
	for _, c := range batch {
		rows += c.rows
	}
	if b.cfg.Observer != nil {
		b.cfg.Observer.Batch(int(rows), len(batch))
	}
	fail := func(err error) {
		for _, c := range batch {
			c.done <- result{err: err}
		}
	}
	if len(batch) == 1 {
		out, err := b.cfg.Runner.Run(ctx, batch[0].inputs)
		batch[0].done <- result{out, err}
		return
	}
	inputs := make([]engine.Tensor, len(b.cfg.Inputs))
	parts := make([]engine.Tensor, len(batch))
	for i := range inputs {
		for k, c := range batch {
			parts[k] = c.inputs[i]
		}
		t, err := concat(parts, rows)
		if err != nil {
			fail(fmt.Errorf("batch: input %q: %w", b.cfg.Inputs[i].Name, err))
			return
		}
		inputs[i] = t
	}
	out, err := b.cfg.Runner.Run(ctx, inputs)
	if err != nil {
		fail(err)
		return
	}
	shares := make([][]engine.Tensor, len(batch))
	for k := range shares {
		shares[k] = make([]engine.Tensor, len(out))
	}
	for i, t := range out {
		if len(t.Shape) == 0 || t.Shape[0] != rows {
			fail(fmt.Errorf("batch: output %d has shape %v for a batch of %d rows; the model does not batch along its first dimension", i, t.Shape, rows))
			return
		}
		var start int64
		for k, c := range batch {
			s, err := slice(t, start, c.rows)
			if err != nil {
				fail(fmt.Errorf("batch: output %d: %w", i, err))
				return
			}
			shares[k][i] = s
			start += c.rows
		}
	}
	for k, c := range batch {
		c.done <- result{out: shares[k]}
	}
}

// Queued is the number of requests waiting to be batched.
func (b *Batcher) Queued() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.live
}

// Close stops batching: waiting requests fail with ErrClosed, and Close
// waits (until ctx ends) for the batches already running. The runner is
// the caller's to close afterwards.
func (b *Batcher) Close(ctx context.Context) error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	close(b.stop)
	waiting := b.pending
	b.pending = nil
	b.mu.Unlock()
	b.collector.Wait()
	for _, c := range waiting {
		if c.state.CompareAndSwap(statePending, stateTaken) {
			c.done <- result{err: ErrClosed}
		}
	}
	done := make(chan struct{})
	go func() { b.running.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("batch: batches still running: %w", ctx.Err())
	}
}

// Unbatched returns a runner that runs every call on its own, holding one
// worker of s while it runs: what a model without batching does, and the
// baseline batching is measured against.
func Unbatched(r engine.TensorRunner, s Scheduler) engine.TensorRunner { return unbatched{r, s} }

type unbatched struct {
	r engine.TensorRunner
	s Scheduler
}

func (u unbatched) Run(ctx context.Context, inputs []engine.Tensor) ([]engine.Tensor, error) {
	var out []engine.Tensor
	err := u.s.Run(ctx, func(ctx context.Context) error {
		var err error
		out, err = u.r.Run(ctx, inputs)
		return err
	})
	return out, err
}
