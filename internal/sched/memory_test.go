package sched

import (
	"errors"
	"testing"
	"time"
)

type countRejections map[string]int

func (countRejections) QueueWait(time.Duration) {}
func (countRejections) Queued(int)              {}
func (countRejections) Running(int)             {}
func (c countRejections) Rejected(r string)     { c[r]++ }
func (countRejections) BodyBytes(int64)         {}

// One key's bodies stop at its share while others still fit; the total
// stops everyone; releasing gives the bytes back, once.
func TestMemoryShares(t *testing.T) {
	obs := countRejections{}
	m := NewMemory(100, 40, obs)
	a1, a2, b, c := m.Hold("a"), m.Hold("a"), m.Hold("b"), m.Hold("c")
	for _, step := range []struct {
		h    *Hold
		n    int64
		want error
	}{
		{a1, 30, nil},
		{a2, 10, nil},
		{a2, 1, ErrShareFull}, // a holds 40 of its 40
		{b, 40, nil},
		{c, 21, ErrMemoryFull}, // 80 held of 100
		{c, 20, nil},
	} {
		if err := step.h.Grow(step.n); !errors.Is(err, step.want) {
			t.Fatalf("Grow(%d) for %s: %v, want %v", step.n, step.h.key, err, step.want)
		}
	}
	if m.Used() != 100 || a2.Size() != 10 || c.Size() != 20 {
		t.Fatalf("used %d, a2 %d, c %d", m.Used(), a2.Size(), c.Size())
	}
	if obs[ReasonBodyShare] != 1 || obs[ReasonBodyMemory] != 1 {
		t.Fatalf("rejections %v", obs)
	}
	a1.Release()
	a1.Release() // a second release gives nothing back
	if m.Used() != 70 {
		t.Fatalf("used %d after releasing 30", m.Used())
	}
	if err := a2.Grow(30); err != nil {
		t.Fatalf("a after its release: %v", err)
	}
	for _, h := range []*Hold{a2, b, c} {
		h.Release()
	}
	if m.Used() != 0 || len(m.byKey) != 0 {
		t.Fatalf("used %d, keys %v after every release", m.Used(), m.byKey)
	}
}
