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
