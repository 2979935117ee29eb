package sched

import (
	"errors"
	"sync"
)

// Refusals of Memory.
var (
	// ErrMemoryFull: the request bodies held now take the whole budget.
	ErrMemoryFull = errors.New("server busy: the memory for request bodies is in use")
	// ErrShareFull: the caller's own bodies take its whole share.
	ErrShareFull = errors.New("too many request bodies of this client are being read or waiting")
)

// Reasons Memory reports to Observer.Rejected.
const (
	ReasonBodyMemory = "body_memory"
	ReasonBodyShare  = "body_share"
)

// Memory bounds the bytes of request bodies held at once: those being
// read, those waiting for admission and those running. Bodies are read
// before admission (a slow client must not hold a worker or a queue place
// while it uploads), so without a bound the number of connections times
// the largest body would be the only limit. Each key (a principal) may
// hold at most a share of the total, so that one client's uploads, slow
// or many, leave room for everyone else's.
type Memory struct {
	total, share int64
	obs          Observer

	mu    sync.Mutex
	used  int64
	byKey map[string]int64
}

// NewMemory returns a budget of total bytes of which one key may hold
// share. obs may be nil.
func NewMemory(total, share int64, obs Observer) *Memory {
	if obs == nil {
		obs = nopObserver{}
	}
	return &Memory{total: total, share: min(share, total), obs: obs, byKey: map[string]int64{}}
}

// Total is the budget.
func (m *Memory) Total() int64 { return m.total }

// Share is what one key may hold.
func (m *Memory) Share() int64 { return m.share }

// Used is the number of bytes held now.
func (m *Memory) Used() int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.used
}

// Hold is the memory one body holds; it grows as the body arrives.
// Release must be called once the body's bytes are no longer needed.
type Hold struct {
	m   *Memory
	key string
	n   int64
}

// Hold starts an empty hold for key.
func (m *Memory) Hold(key string) *Hold { return &Hold{m: m, key: key} }

// Size is the number of bytes held.
func (h *Hold) Size() int64 { return h.n }

// Grow holds n more bytes, or refuses with ErrShareFull or ErrMemoryFull
// and holds nothing more.
func (h *Hold) Grow(n int64) error {
	if n <= 0 {
		return nil
	}
	m := h.m
	m.mu.Lock()
	mine := m.byKey[h.key]
	var err error
	switch {
	case mine+n > m.share:
		err = ErrShareFull
	case m.used+n > m.total:
		err = ErrMemoryFull
	default:
		m.byKey[h.key] = mine + n
		m.used += n
		h.n += n
		m.obs.BodyBytes(m.used)
	}
	m.mu.Unlock()
	switch err {
	case ErrShareFull:
		m.obs.Rejected(ReasonBodyShare)
	case ErrMemoryFull:
		m.obs.Rejected(ReasonBodyMemory)
	}
	return err
}

// Release gives back everything held; later calls do nothing.
func (h *Hold) Release() {
	if h.n == 0 {
		return
	}
	m := h.m
	m.mu.Lock()
	m.used -= h.n
	if left := m.byKey[h.key] - h.n; left > 0 {
		m.byKey[h.key] = left
	} else {
		delete(m.byKey, h.key)
	}
	m.obs.BodyBytes(m.used)
	m.mu.Unlock()
	h.n = 0
}
