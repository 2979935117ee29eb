package claim

import (
	"context"
	"sync"
	"testing"
	"time"
)

// Workers drain what there is; work added later is found through a poke,
// or, without one, through the poller.
func TestLoop(t *testing.T) {
	var mu sync.Mutex
	var work []int
	done := make(chan int, 100)
	polls := make(chan struct{}, 100)
	l := &Loop[int]{
		Claim: func(context.Context) (int, bool, error) {
			mu.Lock()
			defer mu.Unlock()
			if len(work) == 0 {
				return 0, false, nil
			}
			w := work[0]
			work = work[1:]
			return w, true, nil
		},
		Do: func(_ context.Context, w int) { done <- w },
		Wait: func(context.Context) time.Duration {
			polls <- struct{}{}
			return time.Millisecond
		},
	}
	add := func(ws ...int) {
		mu.Lock()
		work = append(work, ws...)
		mu.Unlock()
	}
	add(1, 2, 3, 4, 5)
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() { l.Run(ctx, 3); close(stopped) }()
	got := map[int]bool{}
	for len(got) < 5 {
		got[<-done] = true
	}
	add(6)
	l.Poke()
	if w := <-done; w != 6 {
		t.Fatalf("after a poke: %d", w)
	}
	<-polls
	add(7) // no poke: the poller finds it
	if w := <-done; w != 7 {
		t.Fatalf("after a poll: %d", w)
	}
	cancel()
	<-stopped
	if len(done) != 0 {
		t.Fatalf("work done twice: %d more", len(done))
	}
}
