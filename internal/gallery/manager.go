package gallery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/visionserve/visionserve/internal/gallery/ann"
)

// Config bounds and tunes a Manager. It names no embedder: every face
// carries the id of the embedder that computed it, and the Manager keeps
// each gallery's faces in one index per embedder id, searched only with
// vectors of that id.
type Config struct {
	// MaxGalleries, MaxFaces (over all galleries of all tenants) and
	// MaxFacesPerSubject bound what the manager holds in memory. With a
	// shared store they, and the quotas, are checked against this
	// replica's view, so concurrent writers on several replicas may
	// overshoot by a few.
	MaxGalleries       int
	MaxFaces           int
	MaxFacesPerSubject int
	// TenantQuota bounds each tenant's galleries and faces (the default
	// tenant's too), so that no tenant can take the whole of
	// MaxGalleries or MaxFaces from the others; TenantQuotas overrides
	// it for the tenants it names.
	TenantQuota  Quota
	TenantQuotas map[string]Quota
	Index        IndexConfig
	// PollInterval is how often a replica on a shared store polls its
	// change log even without notifications: the bound on how stale it
	// can be. SyncWait is how long a write through this replica waits
	// to see its own change applied before answering anyway.
	PollInterval time.Duration
	SyncWait     time.Duration
	// Retention is how long a shared store keeps change log entries;
	// a replica away longer reloads everything.
	Retention time.Duration
}

// Quota is what one tenant may hold. Subjects are bounded by Faces (a
// subject exists while it has a face).
type Quota struct {
	Galleries int `yaml:"galleries"`
	Faces     int `yaml:"faces"`
}

// quota returns tenant's quota.
func (c Config) quota(tenant string) Quota {
	if q, ok := c.TenantQuotas[tenant]; ok {
		return q
	}
	return c.TenantQuota
}

// DefaultConfig returns the documented defaults.
func DefaultConfig() Config {
	return Config{
		MaxGalleries: 1000, MaxFaces: 1_000_000, MaxFacesPerSubject: 100,
		TenantQuota: Quota{Galleries: 100, Faces: 100_000},
		Index: IndexConfig{
			ExactBelow: 500_000, HNSW: ann.DefaultParams(), BuildWorkers: 1, MaxDeadFraction: 0.25,
		},
		PollInterval: 2 * time.Second, SyncWait: 5 * time.Second, Retention: time.Hour,
	}
}

// Validate reports unusable settings.
func (c Config) Validate() error {
	var errs []error
	check := func(ok bool, format string, args ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf(format, args...))
		}
	}
	check(c.MaxGalleries >= 1, "max_galleries must be positive, got %d", c.MaxGalleries)
	check(c.MaxFaces >= 1, "max_faces must be positive, got %d", c.MaxFaces)
	check(c.MaxFacesPerSubject >= 1, "max_faces_per_subject must be positive, got %d", c.MaxFacesPerSubject)
	check(c.TenantQuota.Galleries >= 1 && c.TenantQuota.Faces >= 1, "tenant_quota: galleries and faces must be positive, got %d and %d", c.TenantQuota.Galleries, c.TenantQuota.Faces)
	for _, t := range slices.Sorted(maps.Keys(c.TenantQuotas)) {
		q := c.TenantQuotas[t]
		check(ValidTenant(t) == nil, "tenant_quotas: %q is not a tenant name (at most %d bytes of UTF-8 without NUL)", t, MaxTenantName)
		check(q.Galleries >= 1 && q.Faces >= 1, "tenant_quotas.%s: galleries and faces must be positive, got %d and %d", t, q.Galleries, q.Faces)
	}
	check(c.Index.ExactBelow >= 2, "exact_below must be at least 2, got %d", c.Index.ExactBelow)
	check(c.Index.BuildWorkers >= 1, "build_workers must be positive, got %d", c.Index.BuildWorkers)
	check(c.Index.MaxDeadFraction > 0 && c.Index.MaxDeadFraction < 1, "max_dead_fraction must be in (0,1), got %g", c.Index.MaxDeadFraction)
	check(c.PollInterval > 0, "poll_interval must be positive, got %v", c.PollInterval)
	check(c.SyncWait > 0, "sync_wait must be positive, got %v", c.SyncWait)
	check(c.Retention > 0, "retention must be positive, got %v", c.Retention)
	if err := c.Index.HNSW.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("hnsw: %w", err))
	}
	return errors.Join(errs...)
}

// Observer receives the manager's measurements; metrics implement it.
// Every method must be cheap and safe for concurrent use.
type Observer interface {
	// Sizes reports totals over all galleries and the largest gallery.
	Sizes(galleries, subjects, faces, largest int)
	// Searched reports one search's latency by index kind.
	Searched(kind string, d time.Duration)
	// Rebuilt reports a finished background index build.
	Rebuilt(kind string, d time.Duration, err error)
	// Synced reports change log events applied from a shared store, and
	// failed polls.
	Synced(events int, err error)
}

type nopObserver struct{}

func (nopObserver) Sizes(int, int, int, int)             {}
func (nopObserver) Searched(string, time.Duration)       {}
func (nopObserver) Rebuilt(string, time.Duration, error) {}
func (nopObserver) Synced(int, error)                    {}

// Manager serves galleries from memory and writes them through a Store.
// It is safe for concurrent use.
type Manager struct {
	cfg   Config
	store Store
	feed  Feed // nil for a store only this process writes
	obs   Observer
	log   *slog.Logger

	// wmu orders writes with their index updates for an unshared store.
	wmu sync.Mutex

	mu        sync.RWMutex
	tenants   map[string]*tenantState
	galleries int            // over all tenants
	dims      map[string]int // vector length by embedder id, from its first face
	applied   uint64         // last change log sequence applied (shared stores)
	advanced  chan struct{}  // closed and replaced whenever applied grows
	faces     int            // live faces over all galleries

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	builds chan struct{} // one background build at a time
	wake   chan struct{}
	closed bool
}

// tenantState is one tenant's galleries, and its live faces over them.
// A tenant without galleries has none.
type tenantState struct {
	galleries map[string]*galleryState
	faces     int
}

// Open loads every gallery from store into memory and, for a shared store,
// starts following its change log. The Manager owns store from here on
// and closes it in Close. log and obs may be nil.
func Open(ctx context.Context, store Store, cfg Config, log *slog.Logger, obs Observer) (*Manager, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("gallery: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if obs == nil {
		obs = nopObserver{}
	}
	m := &Manager{
		cfg: cfg, store: store, obs: obs, log: log.With("component", "gallery"),
		tenants: map[string]*tenantState{}, dims: map[string]int{}, advanced: make(chan struct{}),
		builds: make(chan struct{}, 1), wake: make(chan struct{}, 1),
	}
	m.feed, _ = store.(Feed)
	m.ctx, m.cancel = context.WithCancel(context.Background())
	start := time.Now()
	if err := m.reload(ctx); err != nil {
		m.cancel()
		return nil, err
	}
	g, s, f, _ := m.sizes()
	m.log.Info("galleries loaded", "galleries", g, "subjects", s, "faces", f, "duration", time.Since(start).Round(time.Millisecond), "shared", m.feed != nil)
	if m.feed != nil {
		m.wg.Go(m.follow)
		m.wg.Go(func() {
			if err := m.feed.Listen(m.ctx, m.poke); err != nil && m.ctx.Err() == nil {
				m.log.Error("change notifications stopped; relying on polling", "err", err)
			}
		})
	}
	return m, nil
}

// reload replaces every index with the store's current content.
func (m *Manager) reload(ctx context.Context) error {
	tenants := map[string]*tenantState{}
	dims := map[string]int{}
	galleries, faces, bad := 0, 0, 0
	seq, err := m.store.Load(ctx, func(ev Event) error {
		t := tenants[ev.Gallery.Tenant]
		switch ev.Op {
		case OpCreateGallery:
			if t == nil {
				t = &tenantState{galleries: map[string]*galleryState{}}
				tenants[ev.Gallery.Tenant] = t
			}
			t.galleries[ev.Gallery.Name] = newGalleryState(m.ctx, ev.Gallery, ev.Created)
			galleries++
		case OpAddFace:
			if t == nil || t.galleries[ev.Gallery.Name] == nil || ev.Face == nil {
				return nil
			}
			dim, err := faceDim(dims, ev.Face)
			if err != nil {
				bad++
				return nil
			}
			if t.galleries[ev.Gallery.Name].spaceFor(ev.Face.Model, dim).add(ev.Face.ID, ev.Subject, ev.Face.Embedding) {
				faces++
				t.faces++
			}
		}
		return nil
	})
	if err != nil {
		for _, t := range tenants {
			for _, g := range t.galleries {
				g.cancel()
			}
		}
		return fmt.Errorf("gallery: load: %w", err)
	}
	if bad > 0 {
		m.log.Warn("stored faces with an unusable embedding (no embedder id, a length unlike the rest of their embedder's, or not finite) were not loaded", "faces", bad)
	}
	if n := len(dims); n > 1 {
		m.log.Info("stored faces come from several embedders; each gallery is searched only with the embedder its faces carry", "embedders", n)
	}
	m.mu.Lock()
	old := m.tenants
	m.tenants, m.galleries, m.dims, m.faces = tenants, galleries, dims, faces
	m.setApplied(seq)
	m.mu.Unlock()
	for _, t := range old {
		for _, g := range t.galleries {
			g.cancel()
		}
	}
	for _, t := range tenants {
		for _, g := range t.galleries {
			for _, idx := range g.indexes() {
				idx.mu.Lock()
				m.maybeRebuild(idx)
				idx.mu.Unlock()
			}
		}
	}
	m.report()
	return nil
}

// faceDim checks a stored face's embedding against the length of its
// embedder's other vectors (recording the first) and returns that length.
func faceDim(dims map[string]int, f *Face) (int, error) {
	if f.Model == "" {
		return 0, fmt.Errorf("%w: no embedder id", ErrEmbedding)
	}
	dim, ok := dims[f.Model]
	if !ok {
		dim = len(f.Embedding)
	}
	if err := checkEmbedding(f.Embedding, dim); err != nil || dim < 1 {
		return 0, fmt.Errorf("%w: length %d", ErrEmbedding, len(f.Embedding))
	}
	dims[f.Model] = dim
	return dim, nil
}

// setApplied records progress through the change log; m.mu must be held.
func (m *Manager) setApplied(seq uint64) {
	if seq != m.applied {
		m.applied = seq
		close(m.advanced)
		m.advanced = make(chan struct{})
	}
}

// Close stops following the change log and background builds, then
// closes the store.
func (m *Manager) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	m.mu.Unlock()
	m.cancel()
	m.wg.Wait()
	return m.store.Close()
}

// Gallery describes one gallery.
type Gallery struct {
	Name     string    `json:"name"`
	Created  time.Time `json:"created"`
	Subjects int       `json:"subjects"`
	Faces    int       `json:"faces"`
}

// CreateGallery creates the gallery if it does not exist; created says
// whether it did not. A new gallery counts against the global bound and
// against its tenant's quota.
func (m *Manager) CreateGallery(ctx context.Context, ref Ref) (Gallery, bool, error) {
	if err := ref.Validate(); err != nil {
		return Gallery{}, false, err
	}
	if g := m.gallery(ref); g != nil {
		return m.describe(g), false, nil
	}
	unlock := m.lockWrite()
	defer unlock()
	m.mu.RLock()
	total, mine, exists := m.galleries, 0, false
	if t := m.tenants[ref.Tenant]; t != nil {
		mine, exists = len(t.galleries), t.galleries[ref.Name] != nil
	}
	m.mu.RUnlock()
	if !exists {
		if q := m.cfg.quota(ref.Tenant); mine >= q.Galleries {
			return Gallery{}, false, &LimitError{What: "galleries per tenant", Limit: q.Galleries}
		}
		if total >= m.cfg.MaxGalleries {
			return Gallery{}, false, &LimitError{What: "galleries", Limit: m.cfg.MaxGalleries}
		}
	}
	ev, created, err := m.store.CreateGallery(ctx, ref, time.Now())
	if err != nil {
		return Gallery{}, false, err
	}
	if created {
		if err := m.commit(ctx, ev); err != nil {
			return Gallery{}, false, err
		}
	} else if m.feed != nil {
		// Created meanwhile by another replica: wait (boundedly) to see it.
		m.poke()
		wctx, cancel := context.WithTimeout(ctx, m.cfg.SyncWait)
		_ = m.waitFor(wctx, func() bool { return m.gallery(ref) != nil })
		cancel()
	}
	g := m.gallery(ref)
	if g == nil {
		return Gallery{Name: ref.Name, Created: ev.Created}, created, nil
	}
	return m.describe(g), created, nil
}

// DeleteGallery removes a gallery and all its faces; it returns how many
// faces.
func (m *Manager) DeleteGallery(ctx context.Context, ref Ref) (int, error) {
	if err := ref.Validate(); err != nil {
		return 0, err
	}
	unlock := m.lockWrite()
	defer unlock()
	ev, n, err := m.store.DeleteGallery(ctx, ref)
	if err != nil {
		return 0, err
	}
	if err := m.commit(ctx, ev); err != nil {
		return 0, err
	}
	return n, nil
}

// Galleries lists up to limit of tenant's galleries whose names sort
// after after, by name; more says whether others follow. It answers from
// this replica's view.
func (m *Manager) Galleries(tenant, after string, limit int) (gs []Gallery, more bool, err error) {
	if err := ValidTenant(tenant); err != nil {
		return nil, false, err
	}
	m.mu.RLock()
	var page []*galleryState
	if t := m.tenants[tenant]; t != nil {
		for name, g := range t.galleries {
			if name > after {
				page = append(page, g)
			}
		}
	}
	m.mu.RUnlock()
	slices.SortFunc(page, func(a, b *galleryState) int { return strings.Compare(a.ref.Name, b.ref.Name) })
	if len(page) > limit {
		page, more = page[:limit], true
	}
	gs = make([]Gallery, len(page))
	for i, g := range page {
		gs[i] = m.describe(g)
	}
	return gs, more, nil
}

// Subjects lists up to limit of a gallery's subjects whose names sort
// after after (bytewise), with their numbers of faces, from the store;
// more says whether others follow.
func (m *Manager) Subjects(ctx context.Context, ref Ref, after string, limit int) (ss []SubjectInfo, more bool, err error) {
	if err := ref.Validate(); err != nil {
		return nil, false, err
	}
	ss, err = m.store.Subjects(ctx, ref, after, limit+1)
	if err != nil {
		return nil, false, err
	}
	if len(ss) > limit {
		ss, more = ss[:limit], true
	}
	return ss, more, nil
}

// AddFace enrolls an embedding that the embedder with id model computed
// for subject, and returns the new face's id. A gallery whose faces all
// carry other embedder ids refuses it (MismatchError).
func (m *Manager) AddFace(ctx context.Context, ref Ref, subject, model string, emb []float32) (string, error) {
	if err := ref.Validate(); err != nil {
		return "", err
	}
	if err := ValidSubjectName(subject); err != nil {
		return "", err
	}
	if model == "" {
		return "", fmt.Errorf("%w: no embedder id", ErrEmbedding)
	}
	if err := m.checkQuery(model, emb); err != nil {
		return "", err
	}
	// A shared store knows galleries this replica may not have seen yet;
	// it answers ErrGalleryNotFound itself.
	g := m.gallery(ref)
	if g == nil && m.feed == nil {
		return "", ErrGalleryNotFound
	}
	unlock := m.lockWrite()
	defer unlock()
	m.mu.RLock()
	total, mine := m.faces, 0
	if t := m.tenants[ref.Tenant]; t != nil {
		mine = t.faces
	}
	m.mu.RUnlock()
	if q := m.cfg.quota(ref.Tenant); mine >= q.Faces {
		return "", &LimitError{What: "faces per tenant", Limit: q.Faces}
	}
	if total >= m.cfg.MaxFaces {
		return "", &LimitError{What: "faces", Limit: m.cfg.MaxFaces}
	}
	if g != nil && g.subjectFaces(subject) >= m.cfg.MaxFacesPerSubject {
		return "", &LimitError{What: "faces per subject", Limit: m.cfg.MaxFacesPerSubject}
	}
	// Under the write lock, an unshared store's view is exact. A shared
	// store's may lag behind other replicas' writes: the store checks in
	// its transaction instead.
	if g != nil && m.feed == nil {
		if held := g.models(); len(held) > 0 && !slices.ContainsFunc(held, func(s Space) bool { return s.Model == model }) {
			return "", &MismatchError{Gallery: ref.Name, Held: held[0].Model, Model: model}
		}
	}
	f := Face{ID: newFaceID(), Gallery: ref, Subject: subject, Model: model, Embedding: emb, Created: time.Now().UTC()}
	ev, err := m.store.AddFace(ctx, f)
	if err != nil {
		return "", err
	}
	if err := m.commit(ctx, ev); err != nil {
		return "", err
	}
	return f.ID, nil
}

// Subject lists a subject's faces, from the store.
func (m *Manager) Subject(ctx context.Context, ref Ref, subject string) ([]FaceInfo, error) {
	if err := ref.Validate(); err != nil {
		return nil, err
	}
	if err := ValidSubjectName(subject); err != nil {
		return nil, err
	}
	return m.store.Faces(ctx, ref, subject)
}

// DeleteSubject removes a subject and all its faces; it returns how many.
func (m *Manager) DeleteSubject(ctx context.Context, ref Ref, subject string) (int, error) {
	if err := ref.Validate(); err != nil {
		return 0, err
	}
	if err := ValidSubjectName(subject); err != nil {
		return 0, err
	}
	unlock := m.lockWrite()
	defer unlock()
	ev, n, err := m.store.DeleteSubject(ctx, ref, subject)
	if err != nil {
		return 0, err
	}
	if err := m.commit(ctx, ev); err != nil {
		return 0, err
	}
	return n, nil
}

// Search identifies q, a vector of the embedder with id model, in
// gallery: up to k subjects by their most similar face of that embedder,
// best first, none below minSim. Faces of other embedders are never
// compared with q.
func (m *Manager) Search(ref Ref, model string, q []float32, k int, minSim float64) ([]Match, error) {
	if err := m.checkQuery(model, q); err != nil {
		return nil, err
	}
	g := m.gallery(ref)
	if g == nil {
		return nil, ErrGalleryNotFound
	}
	idx := g.space(model)
	if idx == nil {
		return nil, nil
	}
	start := time.Now()
	matches, kind := idx.search(q, k, minSim)
	m.obs.Searched(kind, time.Since(start))
	return matches, nil
}

// checkQuery checks v against the length of model's stored vectors (any
// length for an embedder with none yet).
func (m *Manager) checkQuery(model string, v []float32) error {
	m.mu.RLock()
	dim, ok := m.dims[model]
	m.mu.RUnlock()
	if !ok {
		dim = max(len(v), 1)
	}
	return checkEmbedding(v, dim)
}

// Spaces lists the embedder ids of gallery's faces, most faces first; nil
// for an empty or unknown gallery. Callers embed with the first one they
// have loaded, so that a gallery is always searched in its own space.
func (m *Manager) Spaces(ref Ref) []Space {
	g := m.gallery(ref)
	if g == nil {
		return nil
	}
	return g.models()
}

// MayExist is false only when the gallery certainly does not exist, so a
// caller can refuse a request before costly work. With a shared store a
// gallery this replica has not seen yet may exist, so it is always true.
func (m *Manager) MayExist(ref Ref) bool { return m.feed != nil || m.gallery(ref) != nil }

// Stats are totals for metrics and logs.
type Stats struct {
	Galleries, Subjects, Faces, Largest int
	Applied                             uint64 // change log position (shared stores)
}

// Stats returns the current totals.
func (m *Manager) Stats() Stats {
	g, s, f, l := m.sizes()
	m.mu.RLock()
	defer m.mu.RUnlock()
	return Stats{Galleries: g, Subjects: s, Faces: f, Largest: l, Applied: m.applied}
}

func (m *Manager) describe(g *galleryState) Gallery {
	f, s := g.counts()
	return Gallery{Name: g.ref.Name, Created: g.created, Subjects: s, Faces: f}
}

func (m *Manager) gallery(ref Ref) *galleryState {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if t := m.tenants[ref.Tenant]; t != nil {
		return t.galleries[ref.Name]
	}
	return nil
}

func (m *Manager) sizes() (galleries, subjects, faces, largest int) {
	m.mu.RLock()
	gs := make([]*galleryState, 0, m.galleries)
	for _, t := range m.tenants {
		for _, g := range t.galleries {
			gs = append(gs, g)
		}
	}
	m.mu.RUnlock()
	for _, g := range gs {
		f, s := g.counts()
		subjects += s
		faces += f
		largest = max(largest, f)
	}
	return len(gs), subjects, faces, largest
}

func (m *Manager) report() {
	g, s, f, l := m.sizes()
	m.obs.Sizes(g, s, f, l)
}

// lockWrite serialises writes with their index updates when this process
// is the store's only writer. A shared store orders writes itself, and
// its changes reach the indexes through the change log.
func (m *Manager) lockWrite() func() {
	if m.feed != nil {
		return func() {}
	}
	m.wmu.Lock()
	return m.wmu.Unlock
}

// commit makes a committed write visible: applied at once for an unshared
// store; for a shared one, after this replica's follower has applied it
// (bounded by SyncWait, since the write is durable either way).
func (m *Manager) commit(ctx context.Context, ev Event) error {
	if m.feed == nil {
		m.apply(ev)
		m.report()
		return nil
	}
	m.poke()
	wctx, cancel := context.WithTimeout(ctx, m.cfg.SyncWait)
	defer cancel()
	if err := m.waitFor(wctx, func() bool {
		m.mu.RLock()
		defer m.mu.RUnlock()
		return m.applied >= ev.Seq
	}); err != nil {
		m.log.Warn("write committed but not yet applied here", "seq", ev.Seq, "err", err)
	}
	return nil
}

// waitFor waits until cond holds, re-checking whenever the applied
// position advances, or until ctx ends.
func (m *Manager) waitFor(ctx context.Context, cond func() bool) error {
	for {
		m.mu.RLock()
		ch := m.advanced
		m.mu.RUnlock()
		if cond() {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// apply changes the indexes by one event. It is idempotent: a gallery or
// face already present, or a subject or gallery already gone, is left
// alone.
func (m *Manager) apply(ev Event) {
	switch ev.Op {
	case OpCreateGallery:
		m.mu.Lock()
		t := m.tenants[ev.Gallery.Tenant]
		if t == nil {
			t = &tenantState{galleries: map[string]*galleryState{}}
			m.tenants[ev.Gallery.Tenant] = t
		}
		if t.galleries[ev.Gallery.Name] == nil {
			t.galleries[ev.Gallery.Name] = newGalleryState(m.ctx, ev.Gallery, ev.Created)
			m.galleries++
		}
		m.mu.Unlock()
	case OpDeleteGallery:
		g := m.gallery(ev.Gallery)
		if g == nil {
			return
		}
		g.cancel()
		n, _ := g.counts()
		m.mu.Lock()
		if t := m.tenants[ev.Gallery.Tenant]; t != nil && t.galleries[ev.Gallery.Name] == g {
			delete(t.galleries, ev.Gallery.Name)
			m.galleries--
			t.faces -= n
			m.faces -= n
			if len(t.galleries) == 0 {
				delete(m.tenants, ev.Gallery.Tenant)
			}
		}
		m.mu.Unlock()
	case OpAddFace:
		g := m.gallery(ev.Gallery)
		if g == nil || ev.Face == nil {
			return
		}
		m.mu.Lock()
		dim, err := faceDim(m.dims, ev.Face)
		m.mu.Unlock()
		if err != nil {
			m.log.Warn("a stored face has an unusable embedding; not indexed", "face", ev.Face.ID, "err", err)
			return
		}
		idx := g.spaceFor(ev.Face.Model, dim)
		idx.mu.Lock()
		added := idx.add(ev.Face.ID, ev.Subject, ev.Face.Embedding)
		m.maybeRebuild(idx)
		idx.mu.Unlock()
		if added {
			m.countFaces(ev.Gallery.Tenant, 1)
		}
	case OpDeleteSubject:
		g := m.gallery(ev.Gallery)
		if g == nil {
			return
		}
		n := 0
		for _, idx := range g.indexes() {
			idx.mu.Lock()
			n += idx.deleteSubject(ev.Subject)
			m.maybeRebuild(idx)
			idx.mu.Unlock()
		}
		g.dropEmpty()
		m.countFaces(ev.Gallery.Tenant, -n)
	}
}

// countFaces adds n to the faces of tenant and of the whole.
func (m *Manager) countFaces(tenant string, n int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.faces += n
	if t := m.tenants[tenant]; t != nil {
		t.faces += n
	}
}

// maybeRebuild starts a background rebuild of g when its size or its
// share of tombstones calls for one; g.mu must be held.
func (m *Manager) maybeRebuild(g *galleryIndex) {
	kind, ok := g.rebuildWanted(m.cfg.Index)
	if !ok || g.ctx.Err() != nil {
		return
	}
	refs, vecs := g.snapshot()
	m.wg.Go(func() {
		select {
		case m.builds <- struct{}{}:
		case <-g.ctx.Done():
			g.mu.Lock()
			g.building, g.pending = false, nil
			g.mu.Unlock()
			return
		}
		defer func() { <-m.builds }()
		start := time.Now()
		err := g.rebuild(g.ctx, kind, m.cfg.Index, refs, vecs)
		d := time.Since(start)
		m.obs.Rebuilt(kind, d, err)
		if err != nil {
			if g.ctx.Err() == nil {
				m.log.Error("index rebuild failed", "gallery", g.name, "kind", kind, "err", err)
			}
			return
		}
		m.log.Info("index rebuilt", "gallery", g.name, "embedder", g.model, "kind", kind, "faces", len(refs), "duration", d.Round(time.Millisecond))
		// Changes during the build may call for another.
		g.mu.Lock()
		m.maybeRebuild(g)
		g.mu.Unlock()
	})
}

// poke wakes the follower without blocking.
func (m *Manager) poke() {
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// follow applies the shared store's change log: whenever woken by a
// notification or a write through this replica, and every PollInterval.
func (m *Manager) follow() {
	tick := time.NewTicker(m.cfg.PollInterval)
	defer tick.Stop()
	lastPrune := time.Now()
	for {
		if err := m.catchUp(m.ctx); err != nil && m.ctx.Err() == nil {
			m.obs.Synced(0, err)
			m.log.Warn("reading the gallery change log failed; retrying", "err", err)
		}
		if time.Since(lastPrune) > m.cfg.Retention/4 {
			lastPrune = time.Now()
			if err := m.feed.Prune(m.ctx, m.cfg.Retention); err != nil && m.ctx.Err() == nil {
				m.log.Warn("pruning the gallery change log failed", "err", err)
			}
		}
		select {
		case <-m.ctx.Done():
			return
		case <-m.wake:
		case <-tick.C:
		}
	}
}

// catchUp applies every change after the applied position. A gap in the
// log (this replica fell behind its retention) reloads everything.
func (m *Manager) catchUp(ctx context.Context) error {
	const batch = 512
	for {
		m.mu.RLock()
		after := m.applied
		m.mu.RUnlock()
		evs, err := m.feed.Changes(ctx, after, batch)
		if err != nil {
			return err
		}
		if len(evs) == 0 {
			return nil
		}
		if evs[0].Seq != after+1 {
			m.log.Warn("gallery change log was pruned past this replica's position; reloading", "applied", after, "oldest", evs[0].Seq)
			return m.reload(ctx)
		}
		for _, ev := range evs {
			m.apply(ev)
			m.mu.Lock()
			m.setApplied(ev.Seq)
			m.mu.Unlock()
		}
		m.obs.Synced(len(evs), nil)
		m.report()
		if len(evs) < batch {
			return nil
		}
	}
}
