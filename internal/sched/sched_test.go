package sched

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestAdmissionBound(t *testing.T) {
	s := New(2, 3, nil)
	var tickets []*Ticket
	for i := 0; i < 5; i++ {
		tk, err := s.Admit()
		if err != nil {
			t.Fatalf("admit %d: %v", i, err)
		}
		tickets = append(tickets, tk)
	}
	if _, err := s.Admit(); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("6th admit: %v, want ErrQueueFull", err)
	}
	tickets[0].Done()
	tickets[0].Done() // idempotent: must not free a second slot
	if _, err := s.Admit(); err != nil {
		t.Fatalf("admit after Done: %v", err)
	}
	if _, err := s.Admit(); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("double Done freed two slots: %v", err)
	}
	s.Drain()
	for _, tk := range tickets[1:] {
		tk.Done()
	}
	if _, err := s.Admit(); !errors.Is(err, ErrDraining) {
		t.Fatalf("admit while draining: %v", err)
	}
}

func TestRunBoundsConcurrency(t *testing.T) {
	s := New(3, 100, nil)
	var cur, peak atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < 40; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := s.Run(context.Background(), func(context.Context) error {
				n := cur.Add(1)
				for {
					p := peak.Load()
					if n <= p || peak.CompareAndSwap(p, n) {
						break
					}
				}
				time.Sleep(time.Millisecond)
				cur.Add(-1)
				return nil
			})
			if err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if peak.Load() > 3 {
		t.Fatalf("peak concurrency %d > 3 workers", peak.Load())
	}
	if !s.Idle() {
		t.Fatal("not idle after all runs")
	}
}

func TestRunWaitHonoursContext(t *testing.T) {
	s := New(1, 1, nil)
	release := make(chan struct{})
	started := make(chan struct{})
	go s.Run(context.Background(), func(context.Context) error {
		close(started)
		<-release
		return nil
	})
	<-started
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	ran := false
	if err := s.Run(ctx, func(context.Context) error { ran = true; return nil }); !errors.Is(err, context.Canceled) || ran {
		t.Fatalf("err = %v, ran = %v", err, ran)
	}
	close(release)
}

func TestRetryAfterAtLeastOneSecond(t *testing.T) {
	if d := New(2, 2, nil).RetryAfter(); d < time.Second {
		t.Fatalf("RetryAfter = %v", d)
	}
}
