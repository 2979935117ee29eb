package sched

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// waitFor polls cond; the tests use it to reach a state, never to time
// anything.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for i := 0; i < 10000; i++ {
		if cond() {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

// An interactive request that is waiting goes before background work that
// was waiting first.
func TestBackgroundYieldsToInteractive(t *testing.T) {
	s := New(1, 10, nil)
	release := make(chan struct{})
	held := make(chan struct{})
	go s.Run(context.Background(), func(context.Context) error { close(held); <-release; return nil })
	<-held

	var mu sync.Mutex
	var order []string
	var wg sync.WaitGroup
	record := func(name string) func(context.Context) error {
		return func(context.Context) error { mu.Lock(); order = append(order, name); mu.Unlock(); return nil }
	}
	wg.Add(2)
	go func() { defer wg.Done(); s.Background().Run(context.Background(), record("job")) }()
	waitFor(t, "the job to wait", func() bool { return s.backgroundWaiting.Load() == 1 })
	go func() { defer wg.Done(); s.Run(context.Background(), record("interactive")) }()
	waitFor(t, "the request to queue", func() bool { return s.queued.Load() == 1 })
	close(release)
	wg.Wait()
	if len(order) != 2 || order[0] != "interactive" {
		t.Fatalf("order %v: the job went first", order)
	}
}

func TestBackgroundRunsWhenIdle(t *testing.T) {
	s := New(2, 0, nil)
	ran := false
	if err := s.Background().Run(context.Background(), func(context.Context) error { ran = true; return nil }); err != nil || !ran {
		t.Fatalf("ran %v, err %v", ran, err)
	}
	if s.running.Load() != 0 || len(s.workers) != 0 {
		t.Fatal("worker not released")
	}
}

// Under a queue that never empties, background work still runs once it
// has been patient long enough: jobs are not starved either.
func TestBackgroundNotStarved(t *testing.T) {
	s := New(1, 10, nil)
	s.maxBackgroundWait = 5 * time.Millisecond
	s.queued.Store(1) // an interactive request that never leaves the queue
	ran := false
	if err := s.Background().Run(context.Background(), func(context.Context) error { ran = true; return nil }); err != nil || !ran {
		t.Fatalf("ran %v, err %v", ran, err)
	}
}

func TestBackgroundCancelAndDrain(t *testing.T) {
	s := New(1, 10, nil)
	s.queued.Store(1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Background().Run(ctx, func(context.Context) error { return nil }) }()
	waitFor(t, "the job to wait", func() bool { return s.backgroundWaiting.Load() == 1 })
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled: %v", err)
	}
	s.Drain()
	if err := s.Background().Run(context.Background(), func(context.Context) error { return nil }); !errors.Is(err, ErrDraining) {
		t.Fatalf("draining: %v", err)
	}
}
