package engine

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

type fakeInst struct {
	id     int
	closed atomic.Bool
	inUse  atomic.Int32
}

func (f *fakeInst) Close() error { f.closed.Store(true); return nil }

func TestPoolExclusive(t *testing.T) {
	var insts []*fakeInst
	var mu sync.Mutex
	p, err := NewPool(3, func(i int) (*fakeInst, error) {
		f := &fakeInst{id: i}
		mu.Lock()
		insts = append(insts, f)
		mu.Unlock()
		return f, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var overlap atomic.Bool
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				f, err := p.Acquire(context.Background())
				if err != nil {
					t.Error(err)
					return
				}
				if f.inUse.Add(1) != 1 {
					overlap.Store(true)
				}
				f.inUse.Add(-1)
				p.Release(f)
			}
		}()
	}
	wg.Wait()
	if overlap.Load() {
		t.Fatal("an instance was handed to two callers at once")
	}
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, f := range insts {
		if !f.closed.Load() {
			t.Errorf("instance %d not closed", f.id)
		}
	}
	if _, err := p.Acquire(context.Background()); !errors.Is(err, ErrPoolClosed) {
		t.Errorf("Acquire after Close: %v", err)
	}
}

func TestPoolBuildFailureClosesBuilt(t *testing.T) {
	var built []*fakeInst
	var mu sync.Mutex
	_, err := NewPool(4, func(i int) (*fakeInst, error) {
		if i == 2 {
			return nil, errors.New("boom")
		}
		f := &fakeInst{id: i}
		mu.Lock()
		built = append(built, f)
		mu.Unlock()
		return f, nil
	})
	if err == nil {
		t.Fatal("want error")
	}
	for _, f := range built {
		if !f.closed.Load() {
			t.Errorf("instance %d leaked after a failed build", f.id)
		}
	}
}

func TestPoolAcquireHonoursContext(t *testing.T) {
	p, _ := NewPool(1, func(int) (*fakeInst, error) { return &fakeInst{}, nil })
	f, _ := p.Acquire(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if _, err := p.Acquire(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
	// Close waits for the instance in use; with a short deadline it says so
	// and leaves the instance open, then finishes once it is released.
	short, cancel2 := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel2()
	if err := p.Close(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close with instance out: %v", err)
	}
	if f.closed.Load() {
		t.Fatal("closed an instance still in use")
	}
	p.Release(f)
	if err := p.Close(context.Background()); err != nil || !f.closed.Load() {
		t.Fatalf("second Close: %v, closed=%v", err, f.closed.Load())
	}
}

// stuckInst is an engine whose call blocks, ignoring its context, until
// the test lets it go: an engine stuck in a C call.
type stuckInst struct {
	fakeInst
	release chan struct{}
}

func (s *stuckInst) run(ctx context.Context) (int, error) {
	<-s.release
	return s.id, nil
}

// A call that ignores its context still ends for its caller at the
// deadline; its instance never serves again while the call runs, the pool
// replaces it, Close does not wait for it, and it is closed once the call
// finally returns.
func TestPoolQuarantinesAnInstanceStuckPastItsDeadline(t *testing.T) {
	var mu sync.Mutex
	var insts []*stuckInst
	p, err := NewPool(1, func(i int) (*stuckInst, error) {
		s := &stuckInst{fakeInst: fakeInst{id: i}, release: make(chan struct{})}
		mu.Lock()
		insts = append(insts, s)
		mu.Unlock()
		return s, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	p.SetGrace(10 * time.Millisecond)
	first, _ := p.Acquire(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, pending, err := Call(ctx, func() (int, error) { return first.run(ctx) })
	if !errors.Is(err, context.DeadlineExceeded) || pending == nil {
		t.Fatalf("Call = %v, pending %v; want the deadline and a pending call", err, pending)
	}
	stuck := make(chan struct{})
	p.ReleaseAfter(first, pending, func() { close(stuck) })

	// The next caller gets the replacement, never the stuck instance.
	next, err := p.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if next == first {
		t.Fatal("the stuck instance was handed out again")
	}
	<-stuck
	if p.Quarantined() != 1 {
		t.Errorf("Quarantined() = %d, want 1", p.Quarantined())
	}
	p.Release(next)
	// Close does not wait for the stuck call.
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if first.closed.Load() {
		t.Fatal("closed an instance under a running call")
	}
	close(first.release)
	deadline := time.Now().Add(time.Minute)
	for !first.closed.Load() || p.Quarantined() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the stuck instance was not closed after its call returned")
		}
		time.Sleep(time.Millisecond)
	}
}

// A call that returns within the grace period after its deadline hands
// its instance back; a call whose context already ended does not run.
func TestPoolTakesBackAnInstanceWhoseCallReturnsLate(t *testing.T) {
	inst := &stuckInst{release: make(chan struct{})}
	p, _ := NewPool(1, func(int) (*stuckInst, error) { return inst, nil })
	p.SetGrace(time.Hour)
	s, _ := p.Acquire(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Millisecond)
	defer cancel()
	_, pending, err := Call(ctx, func() (int, error) { return s.run(ctx) })
	if !errors.Is(err, context.DeadlineExceeded) || pending == nil {
		t.Fatalf("Call = %v, pending %v", err, pending)
	}
	p.ReleaseAfter(s, pending, func() { t.Error("quarantined an instance whose call returned within the grace period") })
	close(inst.release)
	if got, err := p.Acquire(context.Background()); err != nil || got != inst || p.Quarantined() != 0 {
		t.Fatalf("Acquire = %v, %v; quarantined %d", got, err, p.Quarantined())
	}
	ran := false
	if _, pending, err := Call(ctx, func() (int, error) { ran = true; return 0, nil }); !errors.Is(err, context.DeadlineExceeded) || pending != nil || ran {
		t.Fatalf("a call after its deadline: %v %v, ran %v", err, pending, ran)
	}
}
