package modelrepo

import (
	"sync"
	"time"
)

// State is where a version is in its lifecycle:
//
//	discovered -> verifying -> loading -> warming -> ready -> draining -> unloaded
//	                 \____________\___________\____> failed(reason)
//
// A failed version is retried when its directory changes or when the admin
// API asks for it; an unloaded version is loaded again when the policy or
// the admin API wants it.
type State string

// The states.
const (
	StateDiscovered State = "discovered"
	StateVerifying  State = "verifying"
	StateLoading    State = "loading"
	StateWarming    State = "warming"
	StateReady      State = "ready"
	StateFailed     State = "failed"
	StateDraining   State = "draining"
	StateUnloaded   State = "unloaded"
	// StateRemoved: the version's directory disappeared. Only events carry
	// it; the version is then forgotten.
	StateRemoved State = "removed"
)

// EventType names an event: a version entering a State, or EventTraffic.
type EventType string

// EventTraffic reports the new traffic shares of a model. It is sent
// whenever they change: weights set, a version ready or gone.
const EventTraffic EventType = "traffic"

// Phases of a load, the keys of Event.PhasesMS and the values of the
// metrics' phase label. PhaseCheck, the isolated check (Options.Checker),
// runs between verify and load, in the loading state; a version it refuses
// fails in the phase the check process was in (load or warmup), with a
// detail that says it was the check.
const (
	PhaseVerify = "verify"
	PhaseCheck  = "check"
	PhaseLoad   = "load"
	PhaseWarmup = "warmup"
)

// Event is one lifecycle event. Every event of a version carries the time
// it spent in its previous state (DurationMS); a ready event also carries
// the duration of each phase, a failed event the phase, reason and detail,
// a draining event the requests still holding the version, an unloaded
// event how long draining took.
type Event struct {
	Seq        uint64             `json:"seq"`
	Time       time.Time          `json:"time"`
	Type       EventType          `json:"type"`
	Model      string             `json:"model"`
	Version    string             `json:"version,omitempty"`
	Kind       string             `json:"kind,omitempty"`
	DurationMS float64            `json:"duration_ms,omitempty"`
	PhasesMS   map[string]float64 `json:"phases_ms,omitempty"`
	Phase      string             `json:"phase,omitempty"`
	Reason     Reason             `json:"reason,omitempty"`
	Detail     string             `json:"detail,omitempty"`
	InFlight   int64              `json:"in_flight,omitempty"`
	// Traffic is, on EventTraffic, the share in [0,1] of unpinned requests
	// each ready version receives.
	Traffic map[string]float64 `json:"traffic,omitempty"`
	// Signer is on ready events.
	Signer *Signer `json:"signer,omitempty"`
}

// eventRing is how many recent events are kept for subscribers that
// reconnect (Subscribe's since).
const eventRing = 1024

// subscriberBuffer is how many events a subscriber may fall behind before
// it is dropped; it then reconnects and catches up from the ring.
const subscriberBuffer = 256

// bus numbers events, keeps the recent ones, hands each to the observer
// and fans them out to subscribers. It never blocks a publisher.
type bus struct {
	mu       sync.Mutex
	seq      uint64
	ring     []Event
	subs     map[*Subscription]struct{}
	observer func(Event)
	closed   bool
}

func newBus(observer func(Event)) *bus {
	return &bus{subs: map[*Subscription]struct{}{}, observer: observer}
}

// publish stamps e and delivers it. The observer runs synchronously, in
// event order.
func (b *bus) publish(e Event) Event {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.seq++
	e.Seq = b.seq
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	if len(b.ring) == eventRing {
		copy(b.ring, b.ring[1:])
		b.ring = b.ring[:eventRing-1]
	}
	b.ring = append(b.ring, e)
	if b.observer != nil {
		b.observer(e)
	}
	for s := range b.subs {
		select {
		case s.c <- e:
		default:
			// Too slow: drop it rather than block a load or buffer
			// without bound. It reconnects with its last Seq.
			s.lagged = true
			b.dropLocked(s)
		}
	}
	return e
}

// Subscription receives events as they happen on C, which is closed when
// the subscription ends (Close, a subscriber too slow to keep up, or the
// repository closing).
type Subscription struct {
	C      <-chan Event
	c      chan Event
	b      *bus
	lagged bool
}

// subscribe returns the events after since still in the ring (none when
// since is 0) and a subscription for those that follow.
func (b *bus) subscribe(since uint64) (*Subscription, []Event) {
	b.mu.Lock()
	defer b.mu.Unlock()
	c := make(chan Event, subscriberBuffer)
	s := &Subscription{C: c, c: c, b: b}
	if b.closed {
		close(c)
		return s, nil
	}
	b.subs[s] = struct{}{}
	var replay []Event
	if since > 0 {
		for _, e := range b.ring {
			if e.Seq > since {
				replay = append(replay, e)
			}
		}
	}
	return s, replay
}

// Close ends the subscription. It is idempotent.
func (s *Subscription) Close() {
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	s.b.dropLocked(s)
}

// Lagged reports whether the subscription was ended for falling behind.
func (s *Subscription) Lagged() bool {
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	return s.lagged
}

func (b *bus) dropLocked(s *Subscription) {
	if _, ok := b.subs[s]; ok {
		delete(b.subs, s)
		close(s.c)
	}
}

// close ends every subscription; later subscriptions end at once.
func (b *bus) close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	for s := range b.subs {
		b.dropLocked(s)
	}
}

// recent returns a copy of the events in the ring.
func (b *bus) recent() []Event {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]Event(nil), b.ring...)
}
