package modelrepo

import (
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"slices"
	"sort"
	"strconv"
	"sync/atomic"
)

// Sentinel errors of the repository.
var (
	// ErrModelNotFound: no model of that name is in the repository.
	ErrModelNotFound = errors.New("model not found")
	// ErrVersionNotFound: the model has no such version (pinned requests:
	// no such ready version).
	ErrVersionNotFound = errors.New("model version not found")
	// ErrNoReadyVersion: the model exists but no version of it is ready
	// (it is loading, or every version failed).
	ErrNoReadyVersion = errors.New("model has no ready version")
	// ErrNoRepository: the server runs without a model repository, so
	// models cannot be loaded, unloaded or weighted at run time.
	ErrNoRepository = errors.New("no model repository configured")
	// ErrBadWeights: traffic weights that cannot be applied.
	ErrBadWeights = errors.New("invalid traffic weights")
	// ErrClosed: the repository is shutting down.
	ErrClosed = errors.New("model repository closed")
)

// version is a loaded, published version. Its reference count is 1 for
// the routing tables while it is published plus 1 per request holding it;
// when it reaches 0 it can never be taken again, drained is closed and its
// Instance may be freed.
type version struct {
	model   string
	number  int
	kind    string
	inst    Instance
	refs    atomic.Int64
	drained chan struct{}
}

func newVersion(model string, number int, kind string, inst Instance) *version {
	v := &version{model: model, number: number, kind: kind, inst: inst, drained: make(chan struct{})}
	v.refs.Store(1)
	return v
}

// tryAcquire takes a reference unless the version has already drained.
func (v *version) tryAcquire() bool {
	for {
		n := v.refs.Load()
		if n <= 0 {
			return false
		}
		if v.refs.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

func (v *version) release() {
	if v.refs.Add(-1) == 0 {
		close(v.drained)
	}
}

// inFlight is the number of requests holding v.
func (v *version) inFlight() int64 { return max(v.refs.Load()-1, 0) }

// route is one model's routing table. Published tables are immutable.
type route struct {
	ready map[int]*version // every ready version, for pinned requests
	picks []pick           // versions with traffic, by version number
	// shares is the share of unpinned requests per version (string keys,
	// as in the API).
	shares map[string]float64
}

// pick is one version of a weighted split; it takes the requests whose
// position falls below upto (positions are uniform in [0, 2^32)).
type pick struct {
	v    *version
	upto uint64
}

const positions = 1 << 32

// newRoute builds the table for the ready versions with the configured
// weights (nil: the newest ready version takes every unpinned request).
// Weights naming versions that are not ready are ignored; if none of the
// weighted versions is ready, the newest ready version takes everything.
func newRoute(ready map[int]*version, weights map[int]int) *route {
	rt := &route{ready: ready, shares: map[string]float64{}}
	if len(ready) == 0 {
		return rt
	}
	nums := make([]int, 0, len(ready))
	for n := range ready {
		nums = append(nums, n)
	}
	slices.Sort(nums)
	eff := map[int]int{}
	total := 0
	for _, n := range nums {
		if w := weights[n]; w > 0 {
			eff[n] = w
			total += w
		}
	}
	if total == 0 {
		newest := nums[len(nums)-1]
		eff, total = map[int]int{newest: 1}, 1
	}
	// Cumulative thresholds in version order on a fixed scale: moving
	// weight from an old version to a new one moves only the keys in
	// between, and every other sticky key keeps its version.
	cum := 0
	for _, n := range nums {
		w := eff[n]
		if w == 0 {
			continue
		}
		cum += w
		rt.picks = append(rt.picks, pick{v: ready[n], upto: uint64(cum) * positions / uint64(total)})
		rt.shares[strconv.Itoa(n)] = float64(w) / float64(total)
	}
	return rt
}

// choose returns the version for an unpinned request: by the request key's
// hash when there is one (same key, same version while the table is
// unchanged), at random otherwise.
func (rt *route) choose(key string) *version {
	if len(rt.picks) == 0 {
		return nil
	}
	var pos uint64
	if key != "" {
		h := fnv.New64a()
		_, _ = h.Write([]byte(key))
		pos = h.Sum64() >> 32
	} else {
		pos = uint64(rand.Uint32())
	}
	i := sort.Search(len(rt.picks), func(i int) bool { return rt.picks[i].upto > pos })
	return rt.picks[min(i, len(rt.picks)-1)].v
}

// routes is a published snapshot: every model's table.
type routes map[string]*route

// Selector says which version a request wants.
type Selector struct {
	Model string
	// Version pins a version; 0 lets the traffic weights decide.
	Version int
	// Key makes routing sticky: the same key reaches the same version while
	// the model's traffic shares are unchanged.
	Key string
}

// Handle is a version pinned for one request. Release must be called
// exactly once (further calls do nothing).
type Handle struct {
	v        *version
	released atomic.Bool
}

// Instance returns the loaded version, for the pipeline to use.
func (h *Handle) Instance() Instance { return h.v.inst }

// Model returns the model name.
func (h *Handle) Model() string { return h.v.model }

// Version returns the version number.
func (h *Handle) Version() int { return h.v.number }

// Kind returns the package kind.
func (h *Handle) Kind() string { return h.v.kind }

// Release unpins the version.
func (h *Handle) Release() {
	if h.released.CompareAndSwap(false, true) {
		h.v.release()
	}
}

// Acquire routes sel to a ready version and pins it until the handle is
// released. It reads the published table and never waits for a load or a
// publish.
func (r *Repository) Acquire(sel Selector) (*Handle, error) {
	for {
		rts := *r.routes.Load()
		rt, ok := rts[sel.Model]
		if !ok {
			return nil, fmt.Errorf("%w: %q", ErrModelNotFound, sel.Model)
		}
		var v *version
		if sel.Version != 0 {
			if v = rt.ready[sel.Version]; v == nil {
				return nil, fmt.Errorf("%w: %s has no ready version %d (ready: %s)", ErrVersionNotFound, sel.Model, sel.Version, readyList(rt))
			}
		} else if v = rt.choose(sel.Key); v == nil {
			return nil, fmt.Errorf("%w: %s", ErrNoReadyVersion, sel.Model)
		}
		if v.tryAcquire() {
			return &Handle{v: v}, nil
		}
		// v drained after we read the table: the table that replaced
		// it no longer holds it, so reading again makes progress.
	}
}

func readyList(rt *route) string {
	nums := make([]int, 0, len(rt.ready))
	for n := range rt.ready {
		nums = append(nums, n)
	}
	slices.Sort(nums)
	if len(nums) == 0 {
		return "none"
	}
	var s string
	for i, n := range nums {
		if i > 0 {
			s += ", "
		}
		s += strconv.Itoa(n)
	}
	return s
}

// AcquireNewest pins the newest ready version of model whose Instance
// match accepts, whatever the traffic weights say: for a caller that needs
// a property of the loaded version itself rather than a routing decision
// (the face core needs an embedder of a given embedding space, which an
// older version kept loaded may hold). Like Acquire it never waits. It
// fails with ErrVersionNotFound when no ready version matches.
func (r *Repository) AcquireNewest(model string, match func(Instance) bool) (*Handle, error) {
	for {
		rt, ok := (*r.routes.Load())[model]
		if !ok {
			return nil, fmt.Errorf("%w: %q", ErrModelNotFound, model)
		}
		nums := make([]int, 0, len(rt.ready))
		for n := range rt.ready {
			nums = append(nums, n)
		}
		slices.Sort(nums)
		stale := false
		for i := len(nums) - 1; i >= 0; i-- {
			v := rt.ready[nums[i]]
			if !v.tryAcquire() {
				stale = true // drained since the table was read
				continue
			}
			if match(v.inst) {
				return &Handle{v: v}, nil
			}
			v.release()
		}
		if !stale {
			return nil, fmt.Errorf("%w: no ready version of %s matches (ready: %s)", ErrVersionNotFound, model, readyList(rt))
		}
		// A newer table replaced the one read: a version it holds may
		// match.
	}
}
