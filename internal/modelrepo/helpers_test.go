package modelrepo_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/visionserve/visionserve/internal/modelrepo"
)

// The fake package format: a version directory holds files whose names
// steer the fake verifier and loader:
//
//	FAIL      its content is the Reason verification fails with
//	IDENTITY  "name version" the manifest would claim (default: the path's)
//	LOADFAIL  the loader fails
//	WARMFAIL  warm-up fails
//	BLOCK     the loader waits until the test closes fakeLoader.gate
const fakeKind = "fake"

type fakeVerifier struct{ calls atomic.Int64 }

func (f *fakeVerifier) Verify(ctx context.Context, dir string) (*modelrepo.Package, error) {
	f.calls.Add(1)
	name := filepath.Base(filepath.Dir(dir))
	n, _ := strconv.Atoi(filepath.Base(dir))
	if b, err := os.ReadFile(filepath.Join(dir, "FAIL")); err == nil {
		return nil, modelrepo.NewError(modelrepo.Reason(strings.TrimSpace(string(b))), "", "fake failure")
	}
	if b, err := os.ReadFile(filepath.Join(dir, "IDENTITY")); err == nil {
		fmt.Sscan(string(b), &name, &n)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, &modelrepo.Error{Reason: modelrepo.ReasonMissingFile, Err: err}
	}
	files := map[string]modelrepo.File{}
	for _, ent := range entries {
		b, err := os.ReadFile(filepath.Join(dir, ent.Name()))
		if err != nil {
			return nil, &modelrepo.Error{Reason: modelrepo.ReasonIOError, Err: err}
		}
		sum := sha256.Sum256(b)
		files[ent.Name()] = modelrepo.File{SHA256: hex.EncodeToString(sum[:]), Size: int64(len(b))}
	}
	return &modelrepo.Package{Dir: dir, Name: name, Version: n, Kind: fakeKind, Files: files, Signer: modelrepo.Signer{Method: "key", KeyID: "test"}}, nil
}

// fakeInstance records its lifecycle; using it after Close is a test
// failure that the repository's reference counting must prevent.
type fakeInstance struct {
	name    string
	version int
	warm    bool
	closed  atomic.Bool
	failOn  string
}

func (i *fakeInstance) Warmup(ctx context.Context) error {
	if i.failOn == "warmup" {
		return errors.New("sample input rejected")
	}
	i.warm = true
	return nil
}

func (i *fakeInstance) Close() error {
	if !i.closed.CompareAndSwap(false, true) {
		return errors.New("closed twice")
	}
	return nil
}

type fakeLoader struct {
	mu        sync.Mutex
	instances []*fakeInstance
	gate      chan struct{}
	entered   chan int // receives the version number when a BLOCK load starts
}

func newFakeLoader() *fakeLoader {
	return &fakeLoader{gate: make(chan struct{}), entered: make(chan int, 16)}
}

func (l *fakeLoader) Load(ctx context.Context, pkg *modelrepo.Package) (modelrepo.Instance, error) {
	if _, err := os.Stat(filepath.Join(pkg.Dir, "BLOCK")); err == nil {
		l.entered <- pkg.Version
		select {
		case <-l.gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if _, err := os.Stat(filepath.Join(pkg.Dir, "LOADFAIL")); err == nil {
		return nil, errors.New("engine refused the model")
	}
	inst := &fakeInstance{name: pkg.Name, version: pkg.Version}
	if _, err := os.Stat(filepath.Join(pkg.Dir, "WARMFAIL")); err == nil {
		inst.failOn = "warmup"
	}
	l.mu.Lock()
	l.instances = append(l.instances, inst)
	l.mu.Unlock()
	return inst, nil
}

func (l *fakeLoader) all() []*fakeInstance {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]*fakeInstance(nil), l.instances...)
}

// env is one test repository.
type env struct {
	t      *testing.T
	dir    string
	repo   *modelrepo.Repository
	loader *fakeLoader
	ver    *fakeVerifier
	events *modelrepo.Subscription
}

// newEnv creates a repository over a fresh directory (not started).
// mutate may adjust the options.
func newEnv(t *testing.T, mutate func(*modelrepo.Options)) *env {
	t.Helper()
	return newEnvAt(t, t.TempDir(), mutate)
}

// newEnvAt is newEnv over an existing directory: a restart.
func newEnvAt(t *testing.T, dir string, mutate func(*modelrepo.Options)) *env {
	t.Helper()
	e := &env{t: t, dir: dir, loader: newFakeLoader(), ver: &fakeVerifier{}}
	opts := modelrepo.Options{
		Dir:            e.dir,
		Verifier:       e.ver,
		Loaders:        map[string]modelrepo.Loader{fakeKind: e.loader},
		RescanInterval: -1,
		NoWatch:        true,
	}
	if mutate != nil {
		mutate(&opts)
	}
	r, err := modelrepo.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	e.repo = r
	e.events, _ = r.Subscribe(0)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := r.Close(ctx); err != nil {
			t.Errorf("close: %v", err)
		}
		for _, inst := range e.loader.all() {
			if !inst.closed.Load() {
				t.Errorf("%s/%d: instance not closed after Close", inst.name, inst.version)
			}
		}
	})
	return e
}

// publish creates <dir>/<model>/<version> with the given marker files,
// under a temporary name renamed into place, as operators should.
func (e *env) publish(model string, version int, markers map[string]string) {
	e.t.Helper()
	mdir := filepath.Join(e.dir, model)
	if err := os.MkdirAll(mdir, 0o755); err != nil {
		e.t.Fatal(err)
	}
	tmp, err := os.MkdirTemp(mdir, ".incoming-")
	if err != nil {
		e.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tmp, "weights.bin"), []byte(fmt.Sprint(model, version)), 0o644); err != nil {
		e.t.Fatal(err)
	}
	for name, content := range markers {
		if err := os.WriteFile(filepath.Join(tmp, name), []byte(content), 0o644); err != nil {
			e.t.Fatal(err)
		}
	}
	if err := os.Rename(tmp, filepath.Join(mdir, strconv.Itoa(version))); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) start() {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.repo.Start(ctx); err != nil {
		e.t.Fatal(err)
	}
}

// sync rescans and waits for the loads it started.
func (e *env) sync() {
	e.t.Helper()
	if err := e.repo.Sync(); err != nil {
		e.t.Fatal(err)
	}
	e.idle()
}

func (e *env) idle() {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.repo.WaitIdle(ctx); err != nil {
		e.t.Fatal(err)
	}
}

// waitEvent waits for an event matching ok; it fails the test after a
// generous timeout (a hang, not a speed requirement).
func (e *env) waitEvent(ok func(modelrepo.Event) bool) modelrepo.Event {
	e.t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case ev, open := <-e.events.C:
			if !open {
				e.t.Fatal("event subscription ended")
			}
			if ok(ev) {
				return ev
			}
		case <-timeout:
			e.t.Fatal("timed out waiting for an event")
		}
	}
}

func is(model string, version int, typ modelrepo.State) func(modelrepo.Event) bool {
	return func(ev modelrepo.Event) bool {
		return ev.Model == model && ev.Version == strconv.Itoa(version) && ev.Type == modelrepo.EventType(typ)
	}
}

// serve acquires the routed version of model and returns its number.
func (e *env) serve(model string, pin int, key string) (int, error) {
	h, err := e.repo.Acquire(modelrepo.Selector{Model: model, Version: pin, Key: key})
	if err != nil {
		return 0, err
	}
	defer h.Release()
	inst := h.Instance().(*fakeInstance)
	if inst.closed.Load() || !inst.warm {
		e.t.Errorf("%s/%d handed out closed=%v warm=%v", inst.name, inst.version, inst.closed.Load(), inst.warm)
	}
	return h.Version(), nil
}

func (e *env) mustServe(model string, pin int) int {
	e.t.Helper()
	v, err := e.serve(model, pin, "")
	if err != nil {
		e.t.Fatal(err)
	}
	return v
}

func (e *env) state(model string, version int) modelrepo.VersionStatus {
	e.t.Helper()
	st, err := e.repo.Model(model)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, v := range st.Versions {
		if v.Version == strconv.Itoa(version) {
			return v
		}
	}
	return modelrepo.VersionStatus{}
}
