package modelrepo

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"
)

// ModelStatus describes one model for the admin API.
type ModelStatus struct {
	Name string `json:"name"`
	// Kind is the package kind of the newest ready version, if any.
	Kind     string          `json:"kind,omitempty"`
	Policy   *Policy         `json:"policy,omitempty"`
	Traffic  Traffic         `json:"traffic"`
	Versions []VersionStatus `json:"versions"`
}

// Traffic is a model's split of unpinned requests.
type Traffic struct {
	// Mode is "latest" (the newest ready version takes everything),
	// "weights" (set with SetTraffic) or "static" (a server without a
	// repository).
	Mode string `json:"mode"`
	// Weights are the configured weights by version, in "weights" mode.
	Weights map[string]int `json:"weights,omitempty"`
	// Shares is what each ready version receives now, in [0,1].
	Shares map[string]float64 `json:"shares"`
}

// Traffic modes.
const (
	TrafficLatest  = "latest"
	TrafficWeights = "weights"
	TrafficStatic  = "static"
)

// VersionStatus describes one version.
type VersionStatus struct {
	Version string    `json:"version"`
	State   State     `json:"state"`
	Since   time.Time `json:"since"`
	Kind    string    `json:"kind,omitempty"`
	// OnDisk is false for a loaded version whose directory was removed.
	OnDisk bool `json:"on_disk"`
	// InFlight is the number of requests holding the version.
	InFlight int64 `json:"in_flight"`
	// Pinned is "load" or "unload" when the admin API overrides the policy.
	Pinned string             `json:"pinned,omitempty"`
	LoadMS map[string]float64 `json:"load_ms,omitempty"`
	Signer *Signer            `json:"signer,omitempty"`
	Reason Reason             `json:"reason,omitempty"`
	Phase  string             `json:"phase,omitempty"`
	Detail string             `json:"detail,omitempty"`
}

// Names returns the model names, sorted.
func (r *Repository) Names() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Sorted(maps.Keys(r.models))
}

// Models returns the status of every model, sorted by name.
func (r *Repository) Models() []ModelStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]ModelStatus, 0, len(r.models))
	for _, name := range slices.Sorted(maps.Keys(r.models)) {
		out = append(out, r.statusLocked(r.models[name]))
	}
	return out
}

// Model returns one model's status.
func (r *Repository) Model(name string) (ModelStatus, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	m, ok := r.models[name]
	if !ok {
		return ModelStatus{}, fmt.Errorf("%w: %q", ErrModelNotFound, name)
	}
	return r.statusLocked(m), nil
}

// Ready reports nil when the model has a version taking traffic.
func (r *Repository) Ready(name string) error {
	rt, ok := (*r.routes.Load())[name]
	switch {
	case !ok:
		return fmt.Errorf("%w: %q", ErrModelNotFound, name)
	case len(rt.picks) == 0:
		return fmt.Errorf("%w: %s", ErrNoReadyVersion, name)
	}
	return nil
}

func (r *Repository) statusLocked(m *model) ModelStatus {
	policy := m.policy
	st := ModelStatus{Name: m.name, Policy: &policy, Traffic: Traffic{Mode: TrafficLatest, Shares: maps.Clone(m.shares)}}
	if st.Traffic.Shares == nil {
		st.Traffic.Shares = map[string]float64{}
	}
	if m.weights != nil {
		st.Traffic.Mode = TrafficWeights
		st.Traffic.Weights = map[string]int{}
		for n, w := range m.weights {
			st.Traffic.Weights[strconv.Itoa(n)] = w
		}
	}
	newestReady := 0
	for _, n := range slices.Sorted(maps.Keys(m.versions)) {
		rec := m.versions[n]
		st.Versions = append(st.Versions, versionStatus(rec))
		if rec.live != nil && n > newestReady {
			newestReady, st.Kind = n, rec.kind
		}
	}
	if st.Versions == nil {
		st.Versions = []VersionStatus{}
	}
	return st
}

func versionStatus(rec *record) VersionStatus {
	vs := VersionStatus{
		Version: strconv.Itoa(rec.number), State: rec.state, Since: rec.since, Kind: rec.kind,
		OnDisk: rec.onDisk, Signer: rec.signer,
	}
	if rec.live != nil {
		vs.InFlight = rec.live.inFlight()
	} else if rec.draining != nil {
		vs.InFlight = rec.draining.inFlight()
	}
	switch {
	case rec.pinLoad:
		vs.Pinned = "load"
	case rec.pinUnload:
		vs.Pinned = "unload"
	}
	if len(rec.phases) > 0 {
		vs.LoadMS = phasesMS(rec.phases)
	}
	if f := rec.fail; f != nil {
		vs.Reason, vs.Phase, vs.Detail = f.reason, f.phase, f.detail
	}
	return vs
}

// lookupLocked finds a version known to the repository.
func (r *Repository) lookupLocked(name string, number int) (*model, *record, error) {
	if r.closed {
		return nil, nil, ErrClosed
	}
	m, ok := r.models[name]
	if !ok {
		return nil, nil, fmt.Errorf("%w: %q", ErrModelNotFound, name)
	}
	rec, ok := m.versions[number]
	if !ok || (!rec.onDisk && rec.live == nil) {
		return nil, nil, fmt.Errorf("%w: %s has no version %d in the repository", ErrVersionNotFound, name, number)
	}
	return m, rec, nil
}

// Load loads a version and keeps it loaded whatever the policy says, until
// Unload. A failed version is tried again. Load waits until the version is
// ready or has failed (the error then carries the Reason), or ctx ends;
// the load goes on in the background after ctx ends.
func (r *Repository) Load(ctx context.Context, name string, number int) (VersionStatus, error) {
	r.mu.Lock()
	m, rec, err := r.lookupLocked(name, number)
	if err != nil {
		r.mu.Unlock()
		return VersionStatus{}, err
	}
	rec.pinLoad, rec.pinUnload = true, false
	r.notifyLocked(rec, true, errors.New("a load request superseded this unload"))
	if rec.live != nil {
		st := versionStatus(rec)
		r.mu.Unlock()
		return st, nil
	}
	if rec.fail != nil {
		rec.fail = nil
		r.memory.forget(name, number)
		r.setStateLocked(m, rec, StateDiscovered, Event{Detail: "load requested"})
	}
	ch := make(chan error, 1)
	rec.waiters = append(rec.waiters, waiter{ch: ch})
	r.reconcileLocked(m)
	r.publishLocked()
	r.mu.Unlock()
	select {
	case err = <-ch:
	case <-ctx.Done():
		err = ctx.Err()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return versionStatus(rec), err
}

// Unload takes a version out of service and keeps it out, whatever the
// policy says, until Load. Like a version removed from disk, it keeps
// serving until a version the policy wants is ready to take its traffic
// (the policy then loads one, if it has one to load); Unload waits for
// that moment, or for ctx. The version then drains and is freed in the
// background.
func (r *Repository) Unload(ctx context.Context, name string, number int) (VersionStatus, error) {
	r.mu.Lock()
	m, rec, err := r.lookupLocked(name, number)
	if err != nil {
		r.mu.Unlock()
		return VersionStatus{}, err
	}
	rec.pinLoad, rec.pinUnload = false, true
	r.notifyLocked(rec, false, errors.New("an unload request superseded this load"))
	if rec.live == nil {
		r.reconcileLocked(m) // cancels a load in flight
		st := versionStatus(rec)
		r.mu.Unlock()
		return st, nil
	}
	ch := make(chan error, 1)
	rec.waiters = append(rec.waiters, waiter{unload: true, ch: ch})
	r.reconcileLocked(m)
	r.publishLocked()
	r.mu.Unlock()
	select {
	case err = <-ch:
	case <-ctx.Done():
		err = ctx.Err()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return versionStatus(rec), err
}

// MaxWeight bounds one traffic weight.
const MaxWeight = 1_000_000

// SetTraffic sets the split of unpinned requests between versions, by
// version number. Weights may name versions that are not ready yet (to
// prepare a canary): they take effect when the version is ready. Weights
// of versions that are not ready are ignored, and if no weighted version
// is ready the newest ready version takes everything. Empty or nil weights
// return the model to "latest" mode.
func (r *Repository) SetTraffic(name string, weights map[int]int) (ModelStatus, error) {
	total := 0
	for v, w := range weights {
		if v < 1 || v > MaxVersion {
			return ModelStatus{}, fmt.Errorf("%w: %d is not a version number", ErrBadWeights, v)
		}
		if w < 0 || w > MaxWeight {
			return ModelStatus{}, fmt.Errorf("%w: weight %d for version %d is outside 0..%d", ErrBadWeights, w, v, MaxWeight)
		}
		total += w
	}
	if len(weights) > 0 && total == 0 {
		return ModelStatus{}, fmt.Errorf("%w: every weight is 0; send {} to return to the newest version", ErrBadWeights)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return ModelStatus{}, ErrClosed
	}
	m, ok := r.models[name]
	if !ok {
		return ModelStatus{}, fmt.Errorf("%w: %q", ErrModelNotFound, name)
	}
	if len(weights) == 0 {
		m.weights = nil
	} else {
		m.weights = maps.Clone(weights)
	}
	r.log.Info("traffic weights set", "model", name, "weights", fmt.Sprint(weights))
	r.publishLocked()
	return r.statusLocked(m), nil
}
