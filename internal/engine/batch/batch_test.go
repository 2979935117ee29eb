package batch_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/visionserve/visionserve/internal/engine"
	"github.com/visionserve/visionserve/internal/engine/batch"
	"github.com/visionserve/visionserve/internal/sched"
)

// doubler is a fake model: y = 2x on INT64 [-1, -1], plus the number of
// rows it ran on, per row, in a second output [-1].
type doubler struct {
	mu      sync.Mutex
	batches []int // rows of each run
	seen    []int64
	running atomic.Int32
	maxRun  atomic.Int32
	block   chan struct{} // when set, runs wait for it (or ctx)
	badOut  bool
}

func (d *doubler) Run(ctx context.Context, in []engine.Tensor) ([]engine.Tensor, error) {
	n := d.running.Add(1)
	defer d.running.Add(-1)
	for {
		m := d.maxRun.Load()
		if n <= m || d.maxRun.CompareAndSwap(m, n) {
			break
		}
	}
	if d.block != nil {
		select {
		case <-d.block:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	x := in[0].Data.([]int64)
	rows := in[0].Shape[0]
	d.mu.Lock()
	d.batches = append(d.batches, int(rows))
	d.seen = append(d.seen, x...)
	d.mu.Unlock()
	y := make([]int64, len(x))
	for i, v := range x {
		y[i] = 2 * v
	}
	r := make([]int64, rows)
	for i := range r {
		r[i] = rows
	}
	if d.badOut {
		return []engine.Tensor{engine.NewTensor(in[0].Shape, y), engine.NewTensor([]int64{1}, []int64{rows})}, nil
	}
	return []engine.Tensor{engine.NewTensor(in[0].Shape, y), engine.NewTensor([]int64{rows}, r)}, nil
}

var (
	inputs  = []engine.TensorInfo{{Name: "x", DType: engine.INT64, Shape: []int64{-1, -1}}}
	outputs = []engine.TensorInfo{{Name: "y", DType: engine.INT64, Shape: []int64{-1, -1}}, {Name: "rows", DType: engine.INT64, Shape: []int64{-1}}}
)

type observer struct {
	mu   sync.Mutex
	runs [][2]int
}

func (o *observer) Batch(rows, requests int) {
	o.mu.Lock()
	o.runs = append(o.runs, [2]int{rows, requests})
	o.mu.Unlock()
}

func newBatcher(t *testing.T, d *doubler, s batch.Scheduler, opts batch.Options, parallel int) (*batch.Batcher, *observer) {
	t.Helper()
	obs := &observer{}
	b, err := batch.New(batch.Config{Runner: d, Inputs: inputs, Outputs: outputs, Scheduler: s, Options: opts, Parallel: parallel, Observer: obs})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close(context.Background()) })
	return b, obs
}

func opts(maxBatch int, delay time.Duration, queue int) batch.Options {
	return batch.Options{MaxBatchSize: maxBatch, MaxQueueDelay: batch.Duration(delay), MaxQueue: queue}
}

func rowsOf(id int64, rows, width int) engine.Tensor {
	x := make([]int64, rows*width)
	for i := range x {
		x[i] = id*1000 + int64(i)
	}
	return engine.NewTensor([]int64{int64(rows), int64(width)}, x)
}

// Concurrent callers each get exactly their own rows back, batches never
// exceed MaxBatchSize, and some runs do batch.
func TestBatcherConcurrentCallers(t *testing.T) {
	d := &doubler{}
	s := sched.New(2, 64, nil)
	b, obs := newBatcher(t, d, s, opts(8, 20*time.Millisecond, 64), 2)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 16 {
		wg.Go(func() {
			for i := range 5 {
				rows := 1 + (g+i)%3
				width := 2 + g%2 // two trailing shapes: never batched together
				in := rowsOf(int64(100*g+i), rows, width)
				out, err := b.Run(context.Background(), []engine.Tensor{in})
				if err != nil {
					errs <- err
					return
				}
				x, y := in.Data.([]int64), out[0].Data.([]int64)
				if !slices.Equal(out[0].Shape, in.Shape) || len(y) != len(x) {
					errs <- fmt.Errorf("caller %d: output shape %v for input %v", g, out[0].Shape, in.Shape)
					return
				}
				for k := range x {
					if y[k] != 2*x[k] {
						errs <- fmt.Errorf("caller %d run %d: y[%d] = %d, want %d", g, i, k, y[k], 2*x[k])
						return
					}
				}
				if got := out[1].Shape; !slices.Equal(got, []int64{int64(rows)}) {
					errs <- fmt.Errorf("caller %d: second output shape %v, want [%d]", g, got, rows)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	batched := false
	for _, r := range obs.runs {
		if r[0] > 8 {
			t.Errorf("a run of %d rows exceeds max_batch_size 8", r[0])
		}
		batched = batched || r[1] > 1
	}
	if !batched {
		t.Errorf("no run held more than one request: %v", obs.runs)
	}
}

// Every batch holds one scheduler worker: with one worker, runs never
// overlap however many batches may run at once.
func TestBatcherHoldsSchedulerWorker(t *testing.T) {
	d := &doubler{}
	s := sched.New(1, 64, nil)
	b, _ := newBatcher(t, d, s, opts(2, time.Millisecond, 64), 4)
	var wg sync.WaitGroup
	for g := range 12 {
		wg.Go(func() {
			if _, err := b.Run(context.Background(), []engine.Tensor{rowsOf(int64(g), 1, 1)}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if m := d.maxRun.Load(); m != 1 {
		t.Errorf("%d runs overlapped on a scheduler with one worker", m)
	}
}

func TestBatcherOversizeRunsAlone(t *testing.T) {
	d := &doubler{}
	b, obs := newBatcher(t, d, sched.New(1, 8, nil), opts(2, time.Millisecond, 8), 1)
	out, err := b.Run(context.Background(), []engine.Tensor{rowsOf(1, 5, 1)})
	if err != nil {
		t.Fatal(err)
	}
	if len(out[0].Data.([]int64)) != 5 || len(obs.runs) != 1 || obs.runs[0] != [2]int{5, 1} {
		t.Errorf("a 5-row request with max_batch_size 2: out %v, runs %v", out[0].Shape, obs.runs)
	}
}

// A request cancelled while it waits leaves at once and is never run; one
// whose deadline passes while its batch runs gets its error at once.
func TestBatcherCancellation(t *testing.T) {
	d := &doubler{block: make(chan struct{})}
	s := sched.New(1, 8, nil)
	b, _ := newBatcher(t, d, s, opts(1, 0, 8), 1)

	// The first request occupies the only worker.
	first := make(chan error, 1)
	go func() {
		_, err := b.Run(context.Background(), []engine.Tensor{rowsOf(1, 1, 1)})
		first <- err
	}()
	waitFor(t, func() bool { return d.running.Load() == 1 })

	// A second waits behind it; cancel it.
	ctx, cancel := context.WithCancel(context.Background())
	second := make(chan error, 1)
	go func() {
		_, err := b.Run(ctx, []engine.Tensor{rowsOf(7, 1, 1)})
		second <- err
	}()
	time.Sleep(10 * time.Millisecond)
	cancel()
	if err := <-second; !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled waiting request: %v", err)
	}

	// A third with a deadline that passes while it waits.
	dctx, dcancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer dcancel()
	if _, err := b.Run(dctx, []engine.Tensor{rowsOf(8, 1, 1)}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("request past its deadline: %v", err)
	}

	close(d.block)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	// Let anything wrongly queued run, then check it never did.
	if _, err := b.Run(context.Background(), []engine.Tensor{rowsOf(9, 1, 1)}); err != nil {
		t.Fatal(err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, v := range d.seen {
		if v/1000 == 7 || v/1000 == 8 {
			t.Errorf("the model ran on a request that had left (%d); runs saw %v", v, d.seen)
		}
	}
}

// When every request of a running batch has gone, the run is cancelled.
func TestBatcherCancelsAbandonedRun(t *testing.T) {
	d := &doubler{block: make(chan struct{})}
	defer close(d.block)
	b, _ := newBatcher(t, d, sched.New(1, 8, nil), opts(4, 0, 8), 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := b.Run(ctx, []engine.Tensor{rowsOf(1, 1, 1)})
		done <- err
	}()
	waitFor(t, func() bool { return d.running.Load() == 1 })
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Run = %v", err)
	}
	// The blocked run sees its context end and returns.
	waitFor(t, func() bool { return d.running.Load() == 0 })
}

func TestBatcherQueueFullAndClose(t *testing.T) {
	d := &doubler{block: make(chan struct{})}
	s := sched.New(1, 8, nil)
	b, err := batch.New(batch.Config{Runner: d, Inputs: inputs, Outputs: outputs, Scheduler: s, Options: opts(1, 0, 2), Parallel: 1})
	if err != nil {
		t.Fatal(err)
	}
	results := make(chan error, 3)
	run := func(id int64) {
		_, err := b.Run(context.Background(), []engine.Tensor{rowsOf(id, 1, 1)})
		results <- err
	}
	go run(1) // runs and blocks
	waitFor(t, func() bool { return d.running.Load() == 1 })
	go run(2) // waits
	go run(3) // waits
	waitFor(t, func() bool { return b.Queued() == 2 })
	if _, err := b.Run(context.Background(), []engine.Tensor{rowsOf(4, 1, 1)}); !errors.Is(err, batch.ErrQueueFull) || !errors.Is(err, sched.ErrQueueFull) {
		t.Errorf("a third waiting request with max_queue 2: %v", err)
	}
	closed := make(chan error, 1)
	go func() { closed <- b.Close(context.Background()) }()
	for range 2 {
		if err := <-results; !errors.Is(err, engine.ErrPoolClosed) {
			t.Errorf("waiting request at Close: %v", err)
		}
	}
	close(d.block) // the running batch finishes; Close waits for it
	if err := <-results; err != nil {
		t.Errorf("running request at Close: %v", err)
	}
	if err := <-closed; err != nil {
		t.Errorf("Close: %v", err)
	}
	if _, err := b.Run(context.Background(), []engine.Tensor{rowsOf(5, 1, 1)}); !errors.Is(err, batch.ErrClosed) {
		t.Errorf("Run after Close: %v", err)
	}
}

func TestBatcherBadModel(t *testing.T) {
	s := sched.New(1, 8, nil)
	static := []engine.TensorInfo{{Name: "x", DType: engine.INT64, Shape: []int64{1, -1}}}
	if _, err := batch.New(batch.Config{Runner: &doubler{}, Inputs: static, Outputs: outputs, Scheduler: s, Options: opts(4, 0, 8)}); err == nil {
		t.Error("a model with a fixed first dimension was accepted for batching")
	}
	if _, err := batch.New(batch.Config{Runner: &doubler{}, Inputs: inputs, Outputs: outputs, Scheduler: s, Options: opts(0, 0, 8)}); err == nil {
		t.Error("max_batch_size 0 was accepted")
	}
	d := &doubler{badOut: true}
	b, obs := newBatcher(t, d, s, opts(2, time.Second, 8), 1)
	var wg sync.WaitGroup
	var failed atomic.Int32
	for g := range 2 {
		wg.Go(func() {
			if _, err := b.Run(context.Background(), []engine.Tensor{rowsOf(int64(g), 1, 1)}); err != nil {
				failed.Add(1)
			}
		})
	}
	wg.Wait()
	// max_batch_size 2 and a 1s delay: the two requests run together.
	if len(obs.runs) != 1 || failed.Load() != 2 {
		t.Errorf("a batched run whose output is not batch-shaped: runs %v, %d of 2 requests failed", obs.runs, failed.Load())
	}
}

// Inputs that disagree on the batch size run alone (the model may
// broadcast them), not as an error.
func TestBatcherRaggedInputsRunAlone(t *testing.T) {
	two := []engine.TensorInfo{{Name: "x", DType: engine.INT64, Shape: []int64{-1, -1}}, {Name: "w", DType: engine.INT64, Shape: []int64{-1}}}
	d := &doubler{}
	b, err := batch.New(batch.Config{Runner: d, Inputs: two, Outputs: outputs, Scheduler: sched.New(1, 8, nil), Options: opts(4, time.Second, 8)})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(context.Background())
	out, err := b.Run(context.Background(), []engine.Tensor{rowsOf(1, 2, 1), engine.NewTensor([]int64{1}, []int64{0})})
	if err != nil || len(out[0].Data.([]int64)) != 2 {
		t.Errorf("ragged inputs: %v, %v", out, err)
	}
}

func TestUnbatched(t *testing.T) {
	d := &doubler{}
	r := batch.Unbatched(d, sched.New(1, 8, nil))
	out, err := r.Run(context.Background(), []engine.Tensor{rowsOf(3, 2, 2)})
	if err != nil || !slices.Equal(out[0].Data.([]int64), []int64{6000, 6002, 6004, 6006}) {
		t.Errorf("Unbatched.Run = %v, %v", out, err)
	}
}

func TestOptionsJSON(t *testing.T) {
	var o batch.Options
	if err := o.MaxQueueDelay.UnmarshalJSON([]byte(`"2ms"`)); err != nil || time.Duration(o.MaxQueueDelay) != 2*time.Millisecond {
		t.Errorf("2ms: %v %v", time.Duration(o.MaxQueueDelay), err)
	}
	if err := o.MaxQueueDelay.UnmarshalJSON([]byte(`2`)); err == nil {
		t.Error("a bare number was accepted as a duration")
	}
	if err := batch.DefaultOptions().Validate(); err != nil {
		t.Error(err)
	}
	if err := opts(1, 2*time.Second, 1).Validate(); err == nil {
		t.Error("a 2s queue delay was accepted")
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(time.Millisecond)
	}
}
