package modelrepo_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/visionserve/visionserve/internal/modelrepo"
)

func TestStartLoadsAndServes(t *testing.T) {
	e := newEnv(t, nil)
	e.publish("ocr-eng", 1, nil)
	e.publish("ocr-eng", 2, nil)
	e.start()
	if v := e.mustServe("ocr-eng", 0); v != 2 {
		t.Fatalf("served version %d, want the newest, 2", v)
	}
	// Latest 1: version 1 is discovered but not loaded.
	if st := e.state("ocr-eng", 1); st.State != modelrepo.StateDiscovered {
		t.Errorf("version 1: %+v", st)
	}
	if _, err := e.serve("ocr-eng", 1, ""); !errors.Is(err, modelrepo.ErrVersionNotFound) {
		t.Errorf("pin to an unloaded version: %v", err)
	}
	if _, err := e.serve("nope", 0, ""); !errors.Is(err, modelrepo.ErrModelNotFound) {
		t.Errorf("unknown model: %v", err)
	}
	// The lifecycle, in order, with durations.
	var seen []modelrepo.EventType
	for _, ev := range e.repo.Events() {
		if ev.Version == "2" {
			seen = append(seen, ev.Type)
		}
		if ev.Version == "2" && ev.Type == modelrepo.EventType(modelrepo.StateReady) {
			for _, p := range []string{modelrepo.PhaseVerify, modelrepo.PhaseLoad, modelrepo.PhaseWarmup} {
				if _, ok := ev.PhasesMS[p]; !ok {
					t.Errorf("ready event lacks phase %s: %+v", p, ev)
				}
			}
			if ev.Signer == nil || ev.Signer.KeyID != "test" {
				t.Errorf("ready event signer: %+v", ev.Signer)
			}
		}
	}
	want := fmt.Sprint([]modelrepo.EventType{"discovered", "verifying", "loading", "warming", "ready"})
	if fmt.Sprint(seen) != want {
		t.Errorf("events of version 2: %v, want %v", seen, want)
	}
	if err := e.repo.Ready("ocr-eng"); err != nil {
		t.Error(err)
	}
}

// Temporary names, non-canonical numbers and files are never versions.
func TestDiscoveryIgnoresNonVersions(t *testing.T) {
	e := newEnv(t, nil)
	e.publish("ocr-eng", 1, nil)
	for _, name := range []string{".incoming-2", "02", "3.tmp", "+4", "0"} {
		if err := os.MkdirAll(filepath.Join(e.dir, "ocr-eng", name), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(e.dir, "ocr-eng", "5"), []byte("a file"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{".hidden", "Upper", "bad name"} {
		if err := os.MkdirAll(filepath.Join(e.dir, name, "1"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	e.start()
	if names := e.repo.Names(); fmt.Sprint(names) != "[ocr-eng]" {
		t.Errorf("models %v", names)
	}
	st, _ := e.repo.Model("ocr-eng")
	if len(st.Versions) != 1 {
		t.Errorf("versions %+v", st.Versions)
	}
}

func TestFailureKeepsPreviousVersion(t *testing.T) {
	for _, tc := range []struct {
		name    string
		markers map[string]string
		reason  modelrepo.Reason
		phase   string
	}{
		{"digest", map[string]string{"FAIL": "digest_mismatch"}, modelrepo.ReasonDigestMismatch, modelrepo.PhaseVerify},
		{"untrusted", map[string]string{"FAIL": "untrusted_key"}, modelrepo.ReasonUntrustedKey, modelrepo.PhaseVerify},
		{"identity", map[string]string{"IDENTITY": "ocr-eng 1"}, modelrepo.ReasonManifestInvalid, modelrepo.PhaseVerify},
		{"load", map[string]string{"LOADFAIL": ""}, modelrepo.ReasonLoadError, modelrepo.PhaseLoad},
		{"warmup", map[string]string{"WARMFAIL": ""}, modelrepo.ReasonWarmupError, modelrepo.PhaseWarmup},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, nil)
			e.publish("ocr-eng", 1, nil)
			e.start()
			e.publish("ocr-eng", 2, tc.markers)
			e.sync()
			ev := e.waitEvent(is("ocr-eng", 2, modelrepo.StateFailed))
			if ev.Reason != tc.reason || ev.Phase != tc.phase {
				t.Errorf("failed event %+v, want reason %s in %s", ev, tc.reason, tc.phase)
			}
			if v := e.mustServe("ocr-eng", 0); v != 1 {
				t.Errorf("after a failed version 2, served %d", v)
			}
			if st := e.state("ocr-eng", 1); st.State != modelrepo.StateReady {
				t.Errorf("version 1 is %s", st.State)
			}
			if st := e.state("ocr-eng", 2); st.State != modelrepo.StateFailed || st.Reason != tc.reason {
				t.Errorf("version 2 status %+v", st)
			}
			// A failed version is not retried while unchanged.
			calls := e.ver.calls.Load()
			e.sync()
			if e.ver.calls.Load() != calls {
				t.Error("an unchanged failed version was verified again")
			}
		})
	}
}

// A failed version whose directory changes (the copy completed, the
// publisher fixed it) is tried again.
func TestFailedVersionRetriedWhenItChanges(t *testing.T) {
	e := newEnv(t, nil)
	e.publish("ocr-eng", 1, nil)
	e.start()
	e.publish("ocr-eng", 2, map[string]string{"FAIL": "missing_file"})
	e.sync()
	e.waitEvent(is("ocr-eng", 2, modelrepo.StateFailed))
	if err := os.Remove(filepath.Join(e.dir, "ocr-eng", "2", "FAIL")); err != nil {
		t.Fatal(err)
	}
	e.sync()
	e.waitEvent(is("ocr-eng", 2, modelrepo.StateReady))
	if v := e.mustServe("ocr-eng", 0); v != 2 {
		t.Errorf("served %d", v)
	}
}

// A replaced version leaves the routing table at once, stays usable by
// the requests that hold it, and is closed after the last one ends.
func TestSwapDrainsThenCloses(t *testing.T) {
	e := newEnv(t, nil)
	e.publish("ocr-eng", 1, nil)
	e.start()
	held, err := e.repo.Acquire(modelrepo.Selector{Model: "ocr-eng"})
	if err != nil {
		t.Fatal(err)
	}
	old := held.Instance().(*fakeInstance)
	e.publish("ocr-eng", 2, nil)
	e.sync()
	if v := e.mustServe("ocr-eng", 0); v != 2 {
		t.Fatalf("after the swap, served %d", v)
	}
	ev := e.waitEvent(is("ocr-eng", 1, modelrepo.StateDraining))
	if ev.InFlight != 1 {
		t.Errorf("draining event in_flight=%d, want 1", ev.InFlight)
	}
	if old.closed.Load() {
		t.Fatal("version 1 closed while a request holds it")
	}
	if _, err := e.serve("ocr-eng", 1, ""); !errors.Is(err, modelrepo.ErrVersionNotFound) {
		t.Errorf("a draining version took a pinned request: %v", err)
	}
	held.Release()
	held.Release() // idempotent
	e.waitEvent(is("ocr-eng", 1, modelrepo.StateUnloaded))
	if !old.closed.Load() {
		t.Error("version 1 not closed after draining")
	}
}

func TestPolicyLatestAndListed(t *testing.T) {
	e := newEnv(t, func(o *modelrepo.Options) {
		o.Policies = map[string]modelrepo.Policy{"ocr-eng": {Latest: 2, Versions: []int{1}}}
	})
	for v := 1; v <= 5; v++ {
		e.publish("ocr-eng", v, nil)
	}
	e.start()
	ready := map[string]bool{}
	st, _ := e.repo.Model("ocr-eng")
	for _, v := range st.Versions {
		if v.State == modelrepo.StateReady {
			ready[v.Version] = true
		}
	}
	if fmt.Sprint(ready) != "map[1:true 4:true 5:true]" {
		t.Errorf("ready versions %v, want 1, 4, 5", ready)
	}
	for _, pin := range []int{1, 4, 5} {
		if v := e.mustServe("ocr-eng", pin); v != pin {
			t.Errorf("pinned %d, served %d", pin, v)
		}
	}
	if v := e.mustServe("ocr-eng", 0); v != 5 {
		t.Errorf("unpinned served %d", v)
	}
	if err := (modelrepo.Policy{}).Validate(); err == nil {
		t.Error("an empty policy validated")
	}
}

// Removing the serving version's directory (rollback) keeps it serving
// until the version replacing it is ready.
func TestRollbackByRemovalKeepsServingUntilReplaced(t *testing.T) {
	e := newEnv(t, nil)
	e.publish("ocr-eng", 1, map[string]string{"BLOCK": ""})
	e.publish("ocr-eng", 2, nil)
	e.start()
	if err := os.Rename(filepath.Join(e.dir, "ocr-eng", "2"), filepath.Join(e.dir, "ocr-eng", ".retired-2")); err != nil {
		t.Fatal(err)
	}
	if err := e.repo.Sync(); err != nil {
		t.Fatal(err)
	}
	<-e.loader.entered // version 1 is loading, and blocked
	for range 20 {
		if v := e.mustServe("ocr-eng", 0); v != 2 {
			t.Fatalf("while version 1 loads, served %d", v)
		}
	}
	close(e.loader.gate)
	e.waitEvent(is("ocr-eng", 2, modelrepo.StateUnloaded))
	if v := e.mustServe("ocr-eng", 0); v != 1 {
		t.Errorf("after rollback served %d", v)
	}
	// A removed, unloaded version is forgotten.
	if st := e.state("ocr-eng", 2); st.Version != "" {
		t.Errorf("version 2 still listed: %+v", st)
	}
}

// With an old version kept for pinned clients, a swap keeps the current
// version serving until the new one is ready: traffic never falls back to
// the old one in between.
func TestSwapNeverFallsBackToAnOlderKeptVersion(t *testing.T) {
	e := newEnv(t, func(o *modelrepo.Options) { o.DefaultPolicy = modelrepo.Policy{Latest: 1, Versions: []int{1}} })
	e.publish("ocr-eng", 1, nil)
	e.publish("ocr-eng", 2, nil)
	e.start()
	e.publish("ocr-eng", 3, map[string]string{"BLOCK": ""})
	if err := e.repo.Sync(); err != nil {
		t.Fatal(err)
	}
	<-e.loader.entered
	for range 20 {
		if v := e.mustServe("ocr-eng", 0); v != 2 {
			t.Fatalf("while version 3 loads, unpinned served %d, want 2", v)
		}
	}
	close(e.loader.gate)
	e.waitEvent(is("ocr-eng", 2, modelrepo.StateUnloaded))
	if v := e.mustServe("ocr-eng", 0); v != 3 {
		t.Errorf("after the swap served %d", v)
	}
	if v := e.mustServe("ocr-eng", 1); v != 1 {
		t.Errorf("pinned 1 served %d", v)
	}
}

// Removing every version unloads the model: nothing is left to serve.
func TestRemovingTheModelUnloadsIt(t *testing.T) {
	e := newEnv(t, nil)
	e.publish("ocr-eng", 1, nil)
	e.start()
	if err := os.RemoveAll(filepath.Join(e.dir, "ocr-eng")); err != nil {
		t.Fatal(err)
	}
	e.sync()
	e.waitEvent(is("ocr-eng", 1, modelrepo.StateUnloaded))
	if _, err := e.serve("ocr-eng", 0, ""); !errors.Is(err, modelrepo.ErrModelNotFound) {
		t.Errorf("after removal: %v", err)
	}
}

// An unreadable repository changes nothing.
func TestUnreadableRootKeepsEverything(t *testing.T) {
	e := newEnv(t, nil)
	e.publish("ocr-eng", 1, nil)
	e.start()
	moved := e.dir + ".moved"
	if err := os.Rename(e.dir, moved); err != nil {
		t.Fatal(err)
	}
	defer os.Rename(moved, e.dir)
	if err := e.repo.Sync(); err == nil {
		t.Error("scan of a missing root succeeded")
	}
	if v := e.mustServe("ocr-eng", 0); v != 1 {
		t.Errorf("served %d", v)
	}
}

func TestTrafficWeightsAndStickyKeys(t *testing.T) {
	e := newEnv(t, func(o *modelrepo.Options) { o.DefaultPolicy = modelrepo.Policy{Latest: 2} })
	e.publish("ocr-eng", 3, nil)
	e.publish("ocr-eng", 4, nil)
	e.start()
	const keys = 20000
	route := func() (map[int]int, map[string]int) {
		count, byKey := map[int]int{}, map[string]int{}
		for i := range keys {
			k := "user-" + strconv.Itoa(i)
			v, err := e.serve("ocr-eng", 0, k)
			if err != nil {
				t.Fatal(err)
			}
			count[v]++
			byKey[k] = v
		}
		return count, byKey
	}
	if count, _ := route(); count[4] != keys {
		t.Fatalf("latest mode: %v", count)
	}
	st, err := e.repo.SetTraffic("ocr-eng", map[int]int{3: 90, 4: 10})
	if err != nil {
		t.Fatal(err)
	}
	if st.Traffic.Mode != modelrepo.TrafficWeights || st.Traffic.Shares["3"] != 0.9 || st.Traffic.Shares["4"] != 0.1 {
		t.Errorf("traffic %+v", st.Traffic)
	}
	ev := e.waitEvent(func(ev modelrepo.Event) bool { return ev.Type == modelrepo.EventTraffic && ev.Traffic["4"] == 0.1 })
	if ev.Traffic["3"] != 0.9 {
		t.Errorf("traffic event %+v", ev)
	}
	count, before := route()
	// FNV over fixed keys is deterministic: the split is exact to within
	// the hash's uniformity, and the same every run.
	if share := float64(count[4]) / keys; share < 0.08 || share > 0.12 {
		t.Errorf("version 4 took %.3f of keyed requests, want about 0.10 (%v)", share, count)
	}
	// Same key, same version while the weights are unchanged.
	_, again := route()
	for k, v := range before {
		if again[k] != v {
			t.Fatalf("key %s moved from %d to %d with unchanged weights", k, v, again[k])
		}
	}
	// Ramping the new version up moves keys only towards it.
	if _, err := e.repo.SetTraffic("ocr-eng", map[int]int{3: 50, 4: 50}); err != nil {
		t.Fatal(err)
	}
	_, after := route()
	for k, v := range before {
		if v == 4 && after[k] != 4 {
			t.Fatalf("key %s left version 4 when its weight grew", k)
		}
	}
	// Unkeyed requests split too.
	unkeyed := map[int]int{}
	for range 4000 {
		v, _ := e.serve("ocr-eng", 0, "")
		unkeyed[v]++
	}
	if unkeyed[3] == 0 || unkeyed[4] == 0 {
		t.Errorf("unkeyed split %v", unkeyed)
	}
	// Pins ignore weights.
	if _, err := e.repo.SetTraffic("ocr-eng", map[int]int{4: 1}); err != nil {
		t.Fatal(err)
	}
	if v := e.mustServe("ocr-eng", 3); v != 3 {
		t.Errorf("pin 3 served %d", v)
	}
	// Weights of versions that are not ready are ignored: all to the newest.
	st, err = e.repo.SetTraffic("ocr-eng", map[int]int{9: 100})
	if err != nil {
		t.Fatal(err)
	}
	if st.Traffic.Shares["4"] != 1 || st.Traffic.Weights["9"] != 100 {
		t.Errorf("weights for an absent version: %+v", st.Traffic)
	}
	for _, bad := range []map[int]int{{3: 0}, {3: -1}, {0: 5}, {3: modelrepo.MaxWeight + 1}} {
		if _, err := e.repo.SetTraffic("ocr-eng", bad); !errors.Is(err, modelrepo.ErrBadWeights) {
			t.Errorf("weights %v: %v", bad, err)
		}
	}
	if _, err := e.repo.SetTraffic("nope", map[int]int{1: 1}); !errors.Is(err, modelrepo.ErrModelNotFound) {
		t.Errorf("unknown model: %v", err)
	}
	st, _ = e.repo.SetTraffic("ocr-eng", nil)
	if st.Traffic.Mode != modelrepo.TrafficLatest {
		t.Errorf("reset: %+v", st.Traffic)
	}
}

// A canary prepared before the version exists takes effect when it is
// ready.
func TestWeightsPreparedForAFutureVersion(t *testing.T) {
	e := newEnv(t, func(o *modelrepo.Options) { o.DefaultPolicy = modelrepo.Policy{Latest: 2} })
	e.publish("ocr-eng", 3, nil)
	e.start()
	if _, err := e.repo.SetTraffic("ocr-eng", map[int]int{3: 75, 4: 25}); err != nil {
		t.Fatal(err)
	}
	if v := e.mustServe("ocr-eng", 0); v != 3 {
		t.Fatalf("served %d", v)
	}
	e.publish("ocr-eng", 4, nil)
	e.sync()
	st, _ := e.repo.Model("ocr-eng")
	if st.Traffic.Shares["3"] != 0.75 || st.Traffic.Shares["4"] != 0.25 {
		t.Errorf("after version 4 is ready: %+v", st.Traffic)
	}
}

func TestAdminLoadAndUnload(t *testing.T) {
	e := newEnv(t, nil)
	e.publish("ocr-eng", 1, nil)
	e.publish("ocr-eng", 2, nil)
	e.start()
	ctx := context.Background()
	// Load an old version beside the newest.
	st, err := e.repo.Load(ctx, "ocr-eng", 1)
	if err != nil || st.State != modelrepo.StateReady || st.Pinned != "load" {
		t.Fatalf("load: %+v %v", st, err)
	}
	if v := e.mustServe("ocr-eng", 1); v != 1 {
		t.Errorf("pin 1 served %d", v)
	}
	if v := e.mustServe("ocr-eng", 0); v != 2 {
		t.Errorf("unpinned served %d", v)
	}
	// Unload the newest: version 1 is ready, so 2 leaves at once and 1
	// takes the traffic.
	st, err = e.repo.Unload(ctx, "ocr-eng", 2)
	if err != nil || st.Pinned != "unload" {
		t.Fatalf("unload: %+v %v", st, err)
	}
	if v := e.mustServe("ocr-eng", 0); v != 1 {
		t.Errorf("after unloading 2, served %d", v)
	}
	e.waitEvent(is("ocr-eng", 2, modelrepo.StateUnloaded))
	// A rescan does not bring it back.
	e.sync()
	if st := e.state("ocr-eng", 2); st.State != modelrepo.StateUnloaded {
		t.Errorf("version 2 after a rescan: %s", st.State)
	}
	// Load brings it back; a failed version is retried by Load.
	if _, err := e.repo.Load(ctx, "ocr-eng", 2); err != nil {
		t.Fatal(err)
	}
	if v := e.mustServe("ocr-eng", 0); v != 2 {
		t.Errorf("after loading 2 again, served %d", v)
	}
	e.publish("ocr-eng", 3, map[string]string{"LOADFAIL": ""})
	e.sync()
	_, err = e.repo.Load(ctx, "ocr-eng", 3)
	if modelrepo.ReasonOf(err) != modelrepo.ReasonLoadError {
		t.Errorf("load of a broken version: %v", err)
	}
	if _, err := e.repo.Load(ctx, "ocr-eng", 9); !errors.Is(err, modelrepo.ErrVersionNotFound) {
		t.Errorf("load of a missing version: %v", err)
	}
	if _, err := e.repo.Unload(ctx, "nope", 1); !errors.Is(err, modelrepo.ErrModelNotFound) {
		t.Errorf("unload of a missing model: %v", err)
	}
}

// Unloading the only version there is takes it out of service.
func TestUnloadLastVersion(t *testing.T) {
	e := newEnv(t, nil)
	e.publish("ocr-eng", 1, nil)
	e.start()
	if _, err := e.repo.Unload(context.Background(), "ocr-eng", 1); err != nil {
		t.Fatal(err)
	}
	if _, err := e.serve("ocr-eng", 0, ""); !errors.Is(err, modelrepo.ErrNoReadyVersion) {
		t.Errorf("after unloading the last version: %v", err)
	}
	if err := e.repo.Ready("ocr-eng"); !errors.Is(err, modelrepo.ErrNoReadyVersion) {
		t.Errorf("ready: %v", err)
	}
}

// Publishing never blocks requests: while the repository's lock is held
// (here, by an observer that does not return), Acquire still routes.
func TestAcquireNeverWaitsForThePublisher(t *testing.T) {
	block := make(chan struct{})
	var blocking atomic.Bool
	e := newEnv(t, func(o *modelrepo.Options) {
		o.Observer = func(ev modelrepo.Event) {
			if ev.Version == "2" && ev.Type == modelrepo.EventType(modelrepo.StateWarming) {
				blocking.Store(true)
				<-block
			}
		}
	})
	e.publish("ocr-eng", 1, nil)
	e.start()
	e.publish("ocr-eng", 2, nil)
	go e.repo.Sync()
	for !blocking.Load() {
		time.Sleep(time.Millisecond)
	}
	done := make(chan int)
	go func() {
		v, _ := e.serve("ocr-eng", 0, "")
		done <- v
	}()
	select {
	case v := <-done:
		if v != 1 {
			t.Errorf("served %d", v)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Acquire waited for the repository lock")
	}
	close(block)
	e.idle()
}

// Many goroutines acquire and release while versions swap and fail; no
// request ever gets a closed or unwarmed instance (checked in serve), and
// every replaced instance is closed in the end (checked at cleanup).
// Meant for the race detector.
func TestConcurrentAcquireDuringSwaps(t *testing.T) {
	e := newEnv(t, nil)
	e.publish("ocr-eng", 1, nil)
	e.start()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var served atomic.Int64
	var failures atomic.Int64
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := e.serve("ocr-eng", 0, ""); err != nil {
					failures.Add(1)
					t.Errorf("request failed during swaps: %v", err)
					return
				}
				served.Add(1)
			}
		}()
	}
	for v := 2; v <= 40; v++ {
		markers := map[string]string(nil)
		if v%7 == 0 {
			markers = map[string]string{"FAIL": "bad_signature"}
		}
		e.publish("ocr-eng", v, markers)
		e.sync()
	}
	close(stop)
	wg.Wait()
	if failures.Load() != 0 || served.Load() == 0 {
		t.Fatalf("served %d, failed %d", served.Load(), failures.Load())
	}
	if v := e.mustServe("ocr-eng", 0); v != 40 {
		t.Errorf("final version %d", v)
	}
}

func TestCloseWaitsForDrain(t *testing.T) {
	e := newEnv(t, nil)
	e.publish("ocr-eng", 1, nil)
	e.start()
	h, err := e.repo.Acquire(modelrepo.Selector{Model: "ocr-eng"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := e.repo.Close(ctx); err == nil {
		t.Error("Close returned while a request held a version")
	}
	if h.Instance().(*fakeInstance).closed.Load() {
		t.Fatal("instance closed under a request")
	}
	h.Release()
	if err := e.repo.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := e.serve("ocr-eng", 0, ""); !errors.Is(err, modelrepo.ErrModelNotFound) {
		t.Errorf("after close: %v", err)
	}
}

// The filesystem watch finds a version renamed into place without a scan
// being asked for.
func TestWatchDiscoversPublishedVersions(t *testing.T) {
	e := newEnv(t, func(o *modelrepo.Options) { o.NoWatch = false; o.Debounce = 10 * time.Millisecond })
	e.publish("ocr-eng", 1, nil)
	e.start()
	e.publish("ocr-eng", 2, nil)
	e.waitEvent(is("ocr-eng", 2, modelrepo.StateReady))
	// A model directory created after start is watched too.
	e.publish("face-det", 1, nil)
	e.waitEvent(is("face-det", 1, modelrepo.StateReady))
	e.publish("face-det", 2, nil)
	e.waitEvent(is("face-det", 2, modelrepo.StateReady))
}

// Without a watch, the periodic rescan finds new versions.
func TestPeriodicRescan(t *testing.T) {
	e := newEnv(t, func(o *modelrepo.Options) { o.RescanInterval = 20 * time.Millisecond })
	e.publish("ocr-eng", 1, nil)
	e.start()
	e.publish("ocr-eng", 2, nil)
	e.waitEvent(is("ocr-eng", 2, modelrepo.StateReady))
}

func TestUnknownKindFails(t *testing.T) {
	e := newEnv(t, func(o *modelrepo.Options) { o.Loaders = nil })
	e.publish("ocr-eng", 1, nil)
	e.start()
	if st := e.state("ocr-eng", 1); st.State != modelrepo.StateFailed || st.Reason != modelrepo.ReasonLoadError {
		t.Errorf("%+v", st)
	}
}

func TestEventReplayAndSlowSubscribers(t *testing.T) {
	e := newEnv(t, nil)
	e.publish("ocr-eng", 1, nil)
	e.start()
	all := e.repo.Events()
	if len(all) < 5 {
		t.Fatalf("%d events", len(all))
	}
	sub, replay := e.repo.Subscribe(all[1].Seq)
	defer sub.Close()
	if len(replay) != len(all)-2 || replay[0].Seq != all[2].Seq {
		t.Errorf("replay from %d: %d events starting at %d", all[1].Seq, len(replay), replay[0].Seq)
	}
	// A subscriber that never reads is dropped, not waited for.
	slow, _ := e.repo.Subscribe(0)
	for v := 2; v <= 60; v++ {
		e.publish("ocr-eng", v, nil)
		e.sync()
	}
	n := 0
	for range slow.C {
		n++
	}
	if !slow.Lagged() || n == 0 {
		t.Errorf("slow subscriber: lagged=%v after %d events", slow.Lagged(), n)
	}
}

// AcquireNewest finds the newest ready version with a property, outside
// the traffic weights, and pins it like Acquire.
func TestAcquireNewest(t *testing.T) {
	e := newEnv(t, func(o *modelrepo.Options) {
		o.Policies = map[string]modelrepo.Policy{"face-embed": {Latest: 3}}
	})
	for v := 1; v <= 3; v++ {
		e.publish("face-embed", v, nil)
	}
	e.start()
	below := func(n int) func(modelrepo.Instance) bool {
		return func(i modelrepo.Instance) bool { return i.(*fakeInstance).version < n }
	}
	h, err := e.repo.AcquireNewest("face-embed", below(3))
	if err != nil || h.Version() != 2 {
		t.Fatalf("newest below 3: %v %v", h, err)
	}
	// The pinned version drains only once released.
	e.publish("face-embed", 4, nil)
	e.sync()
	if e.state("face-embed", 2).State != modelrepo.StateReady {
		t.Fatalf("version 2 is %s", e.state("face-embed", 2).State)
	}
	if err := os.RemoveAll(filepath.Join(e.dir, "face-embed", "2")); err != nil {
		t.Fatal(err)
	}
	e.sync()
	if st := e.state("face-embed", 2).State; st != modelrepo.StateDraining {
		t.Fatalf("removed version 2 pinned by a handle is %s, want draining", st)
	}
	h.Release()
	e.waitEvent(is("face-embed", 2, modelrepo.StateUnloaded))
	two := func(i modelrepo.Instance) bool { return i.(*fakeInstance).version == 2 }
	if h, err := e.repo.AcquireNewest("face-embed", two); !errors.Is(err, modelrepo.ErrVersionNotFound) {
		h.Release()
		t.Fatalf("no match: %v", err)
	}
	if _, err := e.repo.AcquireNewest("nope", below(9)); !errors.Is(err, modelrepo.ErrModelNotFound) {
		t.Fatalf("unknown model: %v", err)
	}
	h, err = e.repo.AcquireNewest("face-embed", below(9))
	if err != nil || h.Version() != 4 {
		t.Fatalf("newest: %v %v", h, err)
	}
	h.Release()
}
