// Package tier decides when an overloaded server reads a model's requests
// in the model's cheaper quality tier: when requests have queued for a
// worker for a sustained time, a model that has a cheaper tier serves new
// requests with it (faster, less confident) until the queue has stayed
// short for as long. Falling confidence is what the operator's autoscaler
// answers with replicas; then the queue drains and quality comes back.
//
// The Switch is a small state machine with hysteresis (separate enter and
// exit thresholds, each held for Sustain), so a blip of queueing changes
// nothing. It never decides what the cheaper tier is: the model does.
package tier

import (
	"fmt"
	"sync"
	"time"
)

// Name is a tier, the value of the "tier" metric label and response field.
type Name string

// Tiers.
const (
	Full  Name = "full"
	Cheap Name = "cheap"
)

// Policy says when to switch. The zero Policy never switches.
type Policy struct {
	// EnterQueue: switch to the cheaper tier once at least this many
	// requests have waited for a worker for Sustain. 0: never switch.
	EnterQueue int `yaml:"enter_queue"`
	// ExitQueue: switch back once at most this many have waited for Sustain.
	ExitQueue int `yaml:"exit_queue"`
	// Sustain is how long a condition must hold.
	Sustain time.Duration `yaml:"sustain"`
}

// Enabled reports whether the policy ever switches.
func (p Policy) Enabled() bool { return p.EnterQueue > 0 }

// Validate reports an inconsistent policy.
func (p Policy) Validate() error {
	switch {
	case !p.Enabled():
		return nil
	case p.ExitQueue < 0 || p.ExitQueue >= p.EnterQueue:
		return fmt.Errorf("tier.exit_queue %d must be at least 0 and below tier.enter_queue %d", p.ExitQueue, p.EnterQueue)
	case p.Sustain < 0:
		return fmt.Errorf("tier.sustain %s is negative", p.Sustain)
	}
	return nil
}

// Switch holds a process's current tier. Safe for concurrent use.
type Switch struct {
	p Policy

	mu      sync.Mutex
	cur     Name
	holding time.Time // since when the condition to leave cur holds; zero: it does not
}

// NewSwitch starts in the full tier.
func NewSwitch(p Policy) *Switch { return &Switch{p: p, cur: Full} }

// Observe records the queue length seen at now and returns the tier a
// request starting now is served in.
func (s *Switch) Observe(queue int, now time.Time) Name {
	if s == nil || !s.p.Enabled() {
		return Full
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	leave := queue >= s.p.EnterQueue
	if s.cur == Cheap {
		leave = queue <= s.p.ExitQueue
	}
	switch {
	case !leave:
		s.holding = time.Time{}
	case s.holding.IsZero():
		s.holding = now
	}
	if leave && now.Sub(s.holding) >= s.p.Sustain {
		s.cur = map[Name]Name{Full: Cheap, Cheap: Full}[s.cur]
		s.holding = time.Time{}
	}
	return s.cur
}
