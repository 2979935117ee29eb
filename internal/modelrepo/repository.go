package modelrepo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Options configure a Repository.
type Options struct {
	// Dir is the repository root: <Dir>/<model>/<version>/.
	Dir string
	// Verifier checks every version before it is loaded. Required.
	Verifier Verifier
	// Loaders build instances, by package kind. A version of a kind with
	// no loader fails with ReasonLoadError.
	Loaders map[string]Loader
	// Policies are the version policies by model name; models not listed
	// use DefaultPolicy.
	Policies      map[string]Policy
	DefaultPolicy Policy
	// RescanInterval is how often the whole repository is listed again
	// (watch events are lossy on some filesystems). 0 means 30s; negative
	// turns the periodic rescan off.
	RescanInterval time.Duration
	// NoWatch turns the filesystem watch off.
	NoWatch bool
	// Debounce gathers watch events for this long before a rescan, so a
	// burst of renames costs one scan. 0 means 100ms.
	Debounce time.Duration
	// MaxParallelLoads bounds loads in flight across models (each model
	// loads one version at a time). 0 means 2.
	MaxParallelLoads int
	// Checker, when set, tries each verified version in isolation (a child
	// process) before it is loaded in this one; a version it refuses fails
	// and is never loaded here.
	Checker Checker
	// StateDir keeps the failure memory (FailuresFile): versions whose
	// load or warm-up failed, so that a restart does not try them again
	// until their files change. "" keeps it in the process only.
	StateDir string
	// Observer sees every event, synchronously and in order (metrics).
	// It must be fast and must not call the Repository.
	Observer func(Event)
	Log      *slog.Logger
}

// Repository serves the versions of the models under one directory. It is
// safe for concurrent use.
type Repository struct {
	opts    Options
	log     *slog.Logger
	bus     *bus
	memory  *memory
	routes  atomic.Pointer[routes]
	watcher *fsnotify.Watcher

	ctx     context.Context // ends at Close; parent of every load
	cancel  context.CancelFunc
	kick    chan struct{}
	loadSem chan struct{}
	syncMu  sync.Mutex // one scan-and-merge at a time
	wg      sync.WaitGroup

	mu      sync.Mutex // guards everything below
	changed *sync.Cond // a load or a drain finished
	models  map[string]*model
	watched map[string]bool
	started bool
	closed  bool
}

// model is one model's mutable state; guarded by Repository.mu.
type model struct {
	name     string
	policy   Policy
	onDisk   bool
	versions map[int]*record
	weights  map[int]int // nil: the newest ready version takes everything
	loading  *record     // at most one load per model
	shares   map[string]float64
}

// record is one version's mutable state; guarded by Repository.mu.
type record struct {
	number    int
	dir       string
	onDisk    bool
	state     State
	since     time.Time
	kind      string
	signer    *Signer
	phases    map[string]time.Duration
	fail      *failure
	live      *version // published (ready)
	draining  *version // left the table, not yet closed
	cancel    context.CancelFunc
	pinLoad   bool // the admin API asked to keep it loaded
	pinUnload bool // the admin API asked to keep it unloaded
	waiters   []waiter
}

type failure struct {
	reason      Reason
	detail      string
	phase       string
	fingerprint string
}

// waiter is an admin call waiting for a version to become ready (load) or
// to leave the routing table (unload).
type waiter struct {
	unload bool
	ch     chan error
}

// New returns a repository over opts.Dir. Nothing is read until Start.
func New(opts Options) (*Repository, error) {
	if opts.Dir == "" {
		return nil, errors.New("model repository: no directory")
	}
	if opts.Verifier == nil {
		return nil, errors.New("model repository: no verifier")
	}
	if opts.DefaultPolicy.Latest == 0 && len(opts.DefaultPolicy.Versions) == 0 {
		opts.DefaultPolicy = DefaultPolicy()
	}
	if err := opts.DefaultPolicy.Validate(); err != nil {
		return nil, fmt.Errorf("model repository: default policy: %w", err)
	}
	for name, p := range opts.Policies {
		if err := p.Validate(); err != nil {
			return nil, fmt.Errorf("model repository: policy for %s: %w", name, err)
		}
	}
	if opts.RescanInterval == 0 {
		opts.RescanInterval = 30 * time.Second
	}
	if opts.Debounce <= 0 {
		opts.Debounce = 100 * time.Millisecond
	}
	if opts.MaxParallelLoads <= 0 {
		opts.MaxParallelLoads = 2
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &Repository{
		opts:    opts,
		log:     opts.Log.With("component", "modelrepo"),
		bus:     newBus(opts.Observer),
		memory:  newMemory(opts.StateDir, opts.Log.With("component", "modelrepo")),
		ctx:     ctx,
		cancel:  cancel,
		kick:    make(chan struct{}, 1),
		loadSem: make(chan struct{}, opts.MaxParallelLoads),
		models:  map[string]*model{},
		watched: map[string]bool{},
	}
	r.changed = sync.NewCond(&r.mu)
	r.routes.Store(&routes{})
	return r, nil
}

// Dir returns the repository root.
func (r *Repository) Dir() string { return r.opts.Dir }

// Start scans the repository, loads what the policies want and waits until
// those loads have finished (or ctx ends), then keeps watching and
// rescanning in the background until Close. Failed versions do not fail
// Start; an unreadable repository root does.
func (r *Repository) Start(ctx context.Context) error {
	r.mu.Lock()
	if r.started || r.closed {
		r.mu.Unlock()
		return errors.New("model repository: already started")
	}
	r.started = true
	r.mu.Unlock()
	if !r.opts.NoWatch {
		w, err := fsnotify.NewWatcher()
		if err != nil {
			r.log.Warn("filesystem watch unavailable; relying on the periodic rescan", "err", err)
		} else if err := w.Add(r.opts.Dir); err != nil {
			w.Close()
			r.log.Warn("cannot watch the repository; relying on the periodic rescan", "dir", r.opts.Dir, "err", err)
		} else {
			r.watcher = w
		}
	}
	if err := r.sync(); err != nil {
		r.stopWatch()
		return err
	}
	err := r.waitIdle(ctx)
	r.wg.Add(1)
	go r.loop()
	return err
}

// Rescan asks for a scan of the repository soon; it does not wait.
func (r *Repository) Rescan() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// Sync scans the repository now and applies what changed. Loads it starts
// run in the background; WaitIdle waits for them.
func (r *Repository) Sync() error { return r.sync() }

// WaitIdle waits until no load is in flight.
func (r *Repository) WaitIdle(ctx context.Context) error { return r.waitIdle(ctx) }

func (r *Repository) loop() {
	defer r.wg.Done()
	var tick <-chan time.Time
	if r.opts.RescanInterval > 0 {
		t := time.NewTicker(r.opts.RescanInterval)
		defer t.Stop()
		tick = t.C
	}
	var events <-chan fsnotify.Event
	var errs <-chan error
	if r.watcher != nil {
		events, errs = r.watcher.Events, r.watcher.Errors
	}
	var fire <-chan time.Time
	for {
		select {
		case <-r.ctx.Done():
			return
		case <-tick:
			r.syncLogged("rescan")
		case <-r.kick:
			r.syncLogged("requested")
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			r.log.Debug("watch event", "path", ev.Name, "op", ev.Op.String())
			if fire == nil {
				fire = time.After(r.opts.Debounce)
			}
		case err, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			// Overflow or similar: the watch lost events; rescan now.
			r.log.Warn("filesystem watch error; rescanning", "err", err)
			r.syncLogged("watch error")
		case <-fire:
			fire = nil
			r.syncLogged("watch")
		}
	}
}

func (r *Repository) syncLogged(why string) {
	if err := r.sync(); err != nil && !errors.Is(err, ErrClosed) {
		r.log.Warn("repository scan failed; keeping every loaded version", "why", why, "err", err)
	}
}

// sync lists the repository and applies the differences: new versions,
// vanished ones, failed versions whose files changed.
func (r *Repository) sync() error {
	r.syncMu.Lock()
	defer r.syncMu.Unlock()
	disk, err := scanRoot(r.opts.Dir)
	if err != nil {
		return err
	}
	// Fingerprint the failed versions outside the lock (it reads the disk).
	type key struct {
		model   string
		version int
	}
	r.mu.Lock()
	failed := map[key]string{}
	for name, m := range r.models {
		for n, rec := range m.versions {
			if rec.fail != nil && rec.onDisk {
				failed[key{name, n}] = rec.dir
			}
		}
	}
	r.mu.Unlock()
	fps := map[key]string{}
	for k, dir := range failed {
		fps[k] = fingerprint(dir)
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return ErrClosed
	}
	for name, vers := range disk {
		m := r.models[name]
		if m == nil {
			m = r.newModelLocked(name)
		}
		m.onDisk = true
		r.watchLocked(vers.dir)
		if vers.versions == nil {
			continue // unreadable this time: change nothing
		}
		for n, dir := range vers.versions {
			rec := m.versions[n]
			switch {
			case rec == nil:
				rec = &record{number: n, dir: dir, onDisk: true}
				m.versions[n] = rec
				r.setStateLocked(m, rec, StateDiscovered, Event{})
			case !rec.onDisk:
				rec.onDisk, rec.dir = true, dir
				if rec.live == nil && rec.draining == nil && m.loading != rec {
					rec.fail = nil
					r.setStateLocked(m, rec, StateDiscovered, Event{Detail: "reappeared"})
				}
			case rec.fail != nil:
				if fp, ok := fps[key{name, n}]; ok && fp != rec.fail.fingerprint {
					rec.fail = nil
					r.setStateLocked(m, rec, StateDiscovered, Event{Detail: "changed on disk; retrying"})
				}
			}
		}
		for n, rec := range m.versions {
			if _, ok := vers.versions[n]; !ok && rec.onDisk {
				r.goneLocked(m, rec)
			}
		}
	}
	for name, m := range r.models {
		if _, ok := disk[name]; ok {
			continue
		}
		m.onDisk = false
		for _, rec := range m.versions {
			if rec.onDisk {
				r.goneLocked(m, rec)
			}
		}
	}
	for _, m := range r.models {
		r.reconcileLocked(m)
	}
	r.publishLocked()
	return nil
}

func (r *Repository) newModelLocked(name string) *model {
	p, ok := r.opts.Policies[name]
	if !ok {
		p = r.opts.DefaultPolicy
	}
	m := &model{name: name, policy: p, versions: map[int]*record{}}
	r.models[name] = m
	return m
}

func (r *Repository) watchLocked(dir string) {
	if r.watcher == nil || r.watched[dir] {
		return
	}
	if err := r.watcher.Add(dir); err != nil {
		r.log.Warn("cannot watch a model directory; the periodic rescan covers it", "dir", dir, "err", err)
		return
	}
	r.watched[dir] = true
}

func (r *Repository) stopWatch() {
	if r.watcher != nil {
		_ = r.watcher.Close()
	}
}

// goneLocked handles a version whose directory disappeared.
func (r *Repository) goneLocked(m *model, rec *record) {
	rec.onDisk = false
	switch {
	case m.loading == rec:
		rec.cancel() // the load finishes as cancelled and forgets it
	case rec.live != nil:
		// Keeps serving until reconcile finds it a replacement.
	case rec.draining != nil:
		// Forgotten when its drain ends.
	default:
		r.setStateLocked(m, rec, StateRemoved, Event{})
		delete(m.versions, rec.number)
	}
}

// reconcileLocked brings one model towards what its policy and the admin
// overrides want: it starts the next load, cancels a load nobody wants any
// more, and retires versions that are no longer wanted once a wanted
// version is ready to take their traffic.
func (r *Repository) reconcileLocked(m *model) {
	if r.closed {
		return
	}
	var candidates []int
	for n, rec := range m.versions {
		if rec.onDisk && rec.fail == nil && !rec.pinUnload {
			candidates = append(candidates, n)
		}
	}
	want := m.policy.wanted(candidates)
	for n, rec := range m.versions {
		if rec.pinLoad && rec.onDisk && rec.fail == nil {
			want[n] = true
		}
	}
	if l := m.loading; l != nil && !want[l.number] {
		l.cancel()
	}
	if m.loading == nil {
		var next *record
		for n := range want {
			rec := m.versions[n]
			if rec.live == nil && rec.draining == nil && (next == nil || n > next.number) {
				next = rec
			}
		}
		if next != nil {
			r.startLoadLocked(m, next)
		}
	}
	// A version nobody wants leaves once its traffic has somewhere better
	// to go: a wanted version newer than it is ready, or the newest wanted
	// version (the one that takes unpinned traffic) is ready, or nothing
	// is wanted at all. Until then it keeps serving: a swap never sends
	// traffic back to an older version kept loaded for pinned clients.
	target := 0
	for n := range want {
		target = max(target, n)
	}
	targetReady := target != 0 && m.versions[target].live != nil
	for _, rec := range m.versions {
		if rec.live == nil || want[rec.number] {
			continue
		}
		newerReady := false
		for n := range want {
			if n > rec.number && m.versions[n].live != nil {
				newerReady = true
			}
		}
		if len(want) == 0 || targetReady || newerReady {
			r.retireLocked(m, rec)
		}
	}
	if !m.onDisk && len(m.versions) == 0 {
		delete(r.models, m.name)
	}
}

func (r *Repository) startLoadLocked(m *model, rec *record) {
	ctx, cancel := context.WithCancel(r.ctx)
	rec.cancel = cancel
	rec.phases = map[string]time.Duration{}
	m.loading = rec
	r.wg.Add(1)
	go r.runLoad(ctx, m, rec, rec.dir)
}

// attempt is one run of a version's load pipeline.
type attempt struct {
	ctx context.Context
	m   *model
	rec *record
	dir string
	// fp is the directory's fingerprint, taken before verifying: if the
	// files change while or after they are read, the next scan sees a
	// different one and tries again.
	fp string
	// digest is the verified package's Digest, the failure memory's key.
	digest string
	// remembered: the attempt ended on a remembered failure.
	remembered bool
}

// runLoad runs the load pipeline of one version and records its outcome.
// It publishes nothing itself; finishLoad does, under the lock.
func (r *Repository) runLoad(ctx context.Context, m *model, rec *record, dir string) {
	defer r.wg.Done()
	a := &attempt{ctx: ctx, m: m, rec: rec, dir: dir}
	select {
	case r.loadSem <- struct{}{}:
		defer func() { <-r.loadSem }()
	case <-ctx.Done():
		r.finishLoad(a, nil, "", ctx.Err())
		return
	}
	a.fp = fingerprint(dir)
	inst, phase, err := r.pipeline(a)
	r.finishLoad(a, inst, phase, err)
}

// pipeline runs the phases in the order of what can fail: verify, the
// isolated check, load, warm up. It returns the warmed-up instance, or the
// phase that failed and why (with the instance, when it was the warm-up,
// for finishLoad to close).
func (r *Repository) pipeline(a *attempt) (Instance, string, error) {
	r.mu.Lock()
	r.setStateLocked(a.m, a.rec, StateVerifying, Event{})
	r.mu.Unlock()
	var pkg *Package
	err := r.timed(a, PhaseVerify, StateLoading, func() error {
		var err error
		pkg, err = r.verify(a)
		return err
	})
	if err != nil {
		return nil, PhaseVerify, err
	}
	// These very files failed before: fail again without a second try.
	a.digest = pkg.Digest()
	if e, ok := r.memory.lookup(a.m.name, a.rec.number, a.digest); ok {
		a.remembered = true
		return nil, e.Phase, e.error()
	}
	if r.opts.Checker != nil {
		err = r.timed(a, PhaseCheck, "", func() error { return r.opts.Checker.Check(a.ctx, pkg) })
		if err != nil {
			return nil, checkPhase(err), withReason(err, ReasonLoadError)
		}
	}
	var inst Instance
	err = r.timed(a, PhaseLoad, StateWarming, func() error {
		var err error
		inst, err = r.load(a.ctx, pkg)
		return err
	})
	if err != nil {
		return nil, PhaseLoad, err
	}
	err = r.timed(a, PhaseWarmup, "", func() error { return withReason(inst.Warmup(a.ctx), ReasonWarmupError) })
	if err != nil {
		return inst, PhaseWarmup, err
	}
	return inst, "", nil
}

// checkPhase is the phase a version refused by the isolated check failed
// in: the check loads and warms up the version as this process would.
func checkPhase(err error) string {
	if ReasonOf(err) == ReasonWarmupError {
		return PhaseWarmup
	}
	return PhaseLoad
}

// timed runs one phase, records its duration and, when it succeeded and
// the attempt goes on, moves the version to the next state.
func (r *Repository) timed(a *attempt, phase string, next State, fn func() error) error {
	start := time.Now()
	err := fn()
	d := time.Since(start)
	r.mu.Lock()
	defer r.mu.Unlock()
	a.rec.phases[phase] = d
	if err == nil && next != "" && a.ctx.Err() == nil {
		r.setStateLocked(a.m, a.rec, next, Event{})
	}
	return err
}

// verify has the Verifier check the version and makes sure it is the
// version its directory says.
func (r *Repository) verify(a *attempt) (*Package, error) {
	pkg, err := r.opts.Verifier.Verify(a.ctx, a.dir)
	if err != nil {
		return nil, err
	}
	if err := checkIdentity(pkg, a.m.name, a.rec.number); err != nil {
		return nil, err
	}
	if rc, ok := r.opts.Loaders[pkg.Kind].(RuntimeChecker); ok {
		if err := rc.CheckRuntime(pkg); err != nil {
			return nil, withReason(err, ReasonManifestInvalid)
		}
	}
	r.mu.Lock()
	a.rec.kind, a.rec.signer = pkg.Kind, &pkg.Signer
	r.mu.Unlock()
	return pkg, nil
}

// load builds the version's instance with the loader of its kind.
func (r *Repository) load(ctx context.Context, pkg *Package) (Instance, error) {
	loader := r.opts.Loaders[pkg.Kind]
	if loader == nil {
		return nil, NewError(ReasonLoadError, "", fmt.Sprintf("this server has no loader for kind %q", pkg.Kind))
	}
	inst, err := loader.Load(ctx, pkg)
	if err == nil && inst == nil {
		err = errors.New("the loader returned no instance")
	}
	return inst, withReason(err, ReasonLoadError)
}

// checkIdentity refuses a package whose manifest names another model or
// version than its directory: copying ocr-eng/3 to ocr-eng/4 must not
// make the server announce version 4.
func checkIdentity(pkg *Package, name string, number int) error {
	if pkg.Name != name || pkg.Version != number {
		return NewError(ReasonManifestInvalid, "manifest.json",
			fmt.Sprintf("the manifest describes %s version %d, but the directory is %s/%d", pkg.Name, pkg.Version, name, number))
	}
	return nil
}

// withReason gives an error without a Reason the reason of the phase it
// happened in; errors that already carry one (a loader reading a file
// that changed since verification: digest_mismatch) and cancellations
// keep theirs.
func withReason(err error, reason Reason) error {
	if err == nil || errors.Is(err, context.Canceled) || ReasonOf(err) != ReasonUnknown {
		return err
	}
	return &Error{Reason: reason, Err: err}
}

// finishLoad records the outcome of a load and publishes a ready version.
func (r *Repository) finishLoad(a *attempt, inst Instance, phase string, err error) {
	m, rec := a.m, a.rec
	r.mu.Lock()
	defer r.mu.Unlock()
	defer r.changed.Broadcast()
	cancelled := a.ctx.Err() != nil || r.closed
	rec.cancel()
	m.loading = nil
	if err == nil && cancelled {
		err = context.Canceled
	}
	if err != nil && inst != nil {
		r.closeInstance(m.name, rec.number, inst)
	}
	switch {
	case err != nil && cancelled:
		// Not the package's fault: it went away or is not wanted now.
		r.notifyLocked(rec, false, fmt.Errorf("load of %s version %d cancelled: %w", m.name, rec.number, ErrVersionNotFound))
		if !rec.onDisk {
			r.setStateLocked(m, rec, StateRemoved, Event{Detail: "removed while loading"})
			delete(m.versions, rec.number)
		} else {
			r.setStateLocked(m, rec, StateUnloaded, Event{Detail: "load cancelled"})
		}
	case err != nil:
		reason := ReasonOf(err)
		detail := err.Error()
		rec.fail = &failure{reason: reason, detail: detail, phase: phase, fingerprint: a.fp}
		if !a.remembered && a.digest != "" && remembers(phase, reason) {
			r.memory.remember(Remembered{Model: m.name, Version: rec.number, Digest: a.digest, Reason: reason, Phase: phase,
				Detail: strings.TrimPrefix(detail, string(reason)+": "), Time: time.Now()})
		}
		r.log.Warn("model version failed; the previous version keeps serving",
			"model", m.name, "version", rec.number, "phase", phase, "reason", reason, "err", detail)
		r.setStateLocked(m, rec, StateFailed, Event{Phase: phase, Reason: reason, Detail: detail, PhasesMS: phasesMS(rec.phases)})
		r.notifyLocked(rec, false, err)
	default:
		r.memory.forget(m.name, rec.number)
		rec.live = newVersion(m.name, rec.number, rec.kind, inst)
		ev := Event{PhasesMS: phasesMS(rec.phases), Signer: rec.signer}
		r.log.Info("model version ready", "model", m.name, "version", rec.number, "kind", rec.kind,
			"verify", rec.phases[PhaseVerify].Round(time.Millisecond), "check", rec.phases[PhaseCheck].Round(time.Millisecond),
			"load", rec.phases[PhaseLoad].Round(time.Millisecond),
			"warmup", rec.phases[PhaseWarmup].Round(time.Millisecond))
		r.setStateLocked(m, rec, StateReady, ev)
		r.notifyLocked(rec, false, nil)
	}
	r.reconcileLocked(m)
	r.publishLocked()
}

// retireLocked takes a version out of the routing table, then lets it
// drain and frees it when the last request holding it ends.
func (r *Repository) retireLocked(m *model, rec *record) {
	v := rec.live
	rec.live, rec.draining = nil, v
	// Publish first: the draining event must follow the moment the version
	// stopped taking new requests.
	r.publishLocked()
	r.setStateLocked(m, rec, StateDraining, Event{InFlight: v.inFlight()})
	r.notifyLocked(rec, true, nil)
	v.release() // the routing table's reference
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		<-v.drained
		r.closeInstance(m.name, rec.number, v.inst)
		r.mu.Lock()
		defer r.mu.Unlock()
		defer r.changed.Broadcast()
		rec.draining = nil
		unloaded := r.recordStateLocked(m, rec, StateUnloaded, Event{})
		if !rec.onDisk && rec.live == nil && m.loading != rec {
			delete(m.versions, rec.number)
		}
		r.reconcileLocked(m)
		r.publishLocked()
		// After the store: whoever sees "unloaded" finds the routing
		// table without the version (and without the model, if it was
		// the model's last).
		r.bus.publish(unloaded)
	}()
}

func (r *Repository) closeInstance(model string, number int, inst Instance) {
	if err := inst.Close(); err != nil {
		r.log.Warn("closing a model version", "model", model, "version", number, "err", err)
	}
}

// notifyLocked answers the admin calls waiting on rec.
func (r *Repository) notifyLocked(rec *record, unload bool, err error) {
	kept := rec.waiters[:0]
	for _, w := range rec.waiters {
		if w.unload == unload {
			w.ch <- err
		} else {
			kept = append(kept, w)
		}
	}
	rec.waiters = kept
}

// setStateLocked moves rec to s and publishes the event, completed with
// the version's identity and the time spent in its previous state.
func (r *Repository) setStateLocked(m *model, rec *record, s State, e Event) {
	r.bus.publish(r.recordStateLocked(m, rec, s, e))
}

// recordStateLocked is setStateLocked without publishing: it returns the
// event for the caller to publish when observers may see it.
func (r *Repository) recordStateLocked(m *model, rec *record, s State, e Event) Event {
	now := time.Now()
	e.Type, e.Time, e.Model = EventType(s), now, m.name
	e.Version = strconv.Itoa(rec.number)
	if e.Kind == "" {
		e.Kind = rec.kind
	}
	if !rec.since.IsZero() && e.DurationMS == 0 {
		e.DurationMS = ms(now.Sub(rec.since))
	}
	rec.state, rec.since = s, now
	return e
}

// publishLocked rebuilds the routing tables and publishes them with one
// atomic store, then announces changed traffic shares. The order matters
// to observers: a ready event precedes the store that routes to the
// version, and a traffic or draining event follows the store that stops
// routing to one.
func (r *Repository) publishLocked() {
	next := make(routes, len(r.models))
	var changed []Event
	for name, m := range r.models {
		ready := map[int]*version{}
		for n, rec := range m.versions {
			if rec.live != nil {
				ready[n] = rec.live
			}
		}
		rt := newRoute(ready, m.weights)
		next[name] = rt
		if !maps.Equal(rt.shares, m.shares) {
			m.shares = rt.shares
			changed = append(changed, Event{Type: EventTraffic, Model: name, Traffic: maps.Clone(rt.shares)})
		}
	}
	for name, rt := range *r.routes.Load() {
		if _, ok := next[name]; !ok && len(rt.shares) > 0 {
			changed = append(changed, Event{Type: EventTraffic, Model: name, Traffic: map[string]float64{}})
		}
	}
	r.routes.Store(&next)
	for _, e := range changed {
		r.bus.publish(e)
	}
}

func (r *Repository) waitIdle(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() {
		r.mu.Lock()
		r.changed.Broadcast()
		r.mu.Unlock()
	})
	defer stop()
	r.mu.Lock()
	defer r.mu.Unlock()
	for r.busyLocked() {
		if err := ctx.Err(); err != nil {
			return err
		}
		r.changed.Wait()
	}
	return nil
}

// busyLocked reports whether a load is in flight.
func (r *Repository) busyLocked() bool {
	for _, m := range r.models {
		if m.loading != nil {
			return true
		}
	}
	return false
}

// Close stops discovery, cancels loads, takes every version out of the
// routing table and waits (within ctx) until they have drained and been
// freed. Requests that arrive afterwards get ErrModelNotFound. Calling
// Close again waits again: a first Close cut short by its ctx can be
// finished by a second.
func (r *Repository) Close(ctx context.Context) error {
	r.mu.Lock()
	first := !r.closed
	if first {
		r.closed = true
		r.cancel()
		for _, m := range r.models {
			for _, rec := range m.versions {
				if rec.live != nil {
					r.retireLocked(m, rec)
				}
			}
		}
		r.models = map[string]*model{}
		r.publishLocked()
	}
	r.mu.Unlock()
	if first {
		r.stopWatch()
		r.bus.close()
	}
	done := make(chan struct{})
	go func() {
		r.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("model repository: versions still in use at shutdown: %w", ctx.Err())
	}
}

// CloseEvents ends every event subscription (streams must end before an
// HTTP server can shut down) without touching the models.
func (r *Repository) CloseEvents() { r.bus.close() }

// Subscribe returns the recent events after since (none for 0) and a
// subscription to the events that follow.
func (r *Repository) Subscribe(since uint64) (*Subscription, []Event) { return r.bus.subscribe(since) }

// Events returns the recent events (up to about a thousand).
func (r *Repository) Events() []Event { return r.bus.recent() }

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func phasesMS(p map[string]time.Duration) map[string]float64 {
	out := make(map[string]float64, len(p))
	for k, d := range p {
		out[k] = ms(d)
	}
	return out
}
