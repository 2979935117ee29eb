package modelrepo_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/visionserve/visionserve/internal/modelrepo"
)

// fakeChecker stands in for the isolated check: a version with a
// CHECKFAIL file is refused with the Reason the file holds (load_error:
// its engine crashed there; warmup_error: it hung in its warm-up).
type fakeChecker struct {
	mu    sync.Mutex
	calls map[string]int // by "model/version"
}

func (c *fakeChecker) Check(ctx context.Context, pkg *modelrepo.Package) error {
	c.mu.Lock()
	if c.calls == nil {
		c.calls = map[string]int{}
	}
	c.calls[pkg.Name+"/"+filepath.Base(pkg.Dir)]++
	c.mu.Unlock()
	if b, err := os.ReadFile(filepath.Join(pkg.Dir, "CHECKFAIL")); err == nil {
		return modelrepo.NewError(modelrepo.Reason(strings.TrimSpace(string(b))), "", "isolated check: the check process was killed by signal SIGABRT")
	}
	return nil
}

func (c *fakeChecker) count(v string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls["ocr-eng/"+v]
}

// runtimeLoader is the fake loader with a runtime check: a version with a
// BADRUNTIME file has options it refuses.
type runtimeLoader struct{ *fakeLoader }

func (l runtimeLoader) CheckRuntime(pkg *modelrepo.Package) error {
	if _, err := os.Stat(filepath.Join(pkg.Dir, "BADRUNTIME")); err == nil {
		return modelrepo.NewError(modelrepo.ReasonManifestInvalid, "manifest.json", `tesseract variable "interactive_display_mode" is not allowed`)
	}
	return nil
}

// A version the isolated check refuses is never loaded here; the previous
// version keeps serving; the failure names the phase the check was in.
func TestCheckerRefusalIsNeverLoaded(t *testing.T) {
	c := &fakeChecker{}
	e := newEnv(t, func(o *modelrepo.Options) { o.Checker = c })
	e.publish("ocr-eng", 1, nil)
	e.start()
	e.publish("ocr-eng", 2, map[string]string{"CHECKFAIL": "warmup_error"})
	e.sync()
	if v := e.mustServe("ocr-eng", 0); v != 1 {
		t.Fatalf("served %d, want 1", v)
	}
	st := e.state("ocr-eng", 2)
	if st.State != modelrepo.StateFailed || st.Reason != modelrepo.ReasonWarmupError || st.Phase != modelrepo.PhaseWarmup || !strings.Contains(st.Detail, "SIGABRT") {
		t.Fatalf("version 2: %+v", st)
	}
	if _, ok := st.LoadMS[modelrepo.PhaseCheck]; !ok {
		t.Errorf("the check's duration is missing: %v", st.LoadMS)
	}
	for _, inst := range e.loader.all() {
		if inst.version == 2 {
			t.Fatal("a version the check refused was loaded in the serving process")
		}
	}
	if c.count("1") != 1 || c.count("2") != 1 {
		t.Errorf("checks: %v", c.calls)
	}
}

// A failed version is remembered across restarts, keyed by its files: the
// restarted repository serves the previous version without checking the
// bad one again, reports it failed with its reason, and tries it again
// only when its files change or an operator loads it.
func TestFailureRememberedAcrossRestarts(t *testing.T) {
	state := t.TempDir()
	c := &fakeChecker{}
	e := newEnv(t, func(o *modelrepo.Options) { o.Checker, o.StateDir = c, state })
	e.publish("ocr-eng", 1, nil)
	e.start()
	e.publish("ocr-eng", 2, map[string]string{"CHECKFAIL": "load_error"})
	e.sync()
	if st := e.state("ocr-eng", 2); st.Reason != modelrepo.ReasonLoadError {
		t.Fatalf("version 2: %+v", st)
	}
	if _, err := os.Stat(filepath.Join(state, modelrepo.FailuresFile)); err != nil {
		t.Fatalf("failure not saved: %v", err)
	}
	if err := e.repo.Close(context.Background()); err != nil {
		t.Fatal(err)
	}

	// The restart: same directory, same state, a new process.
	c2 := &fakeChecker{}
	e2 := newEnvAt(t, e.dir, func(o *modelrepo.Options) { o.Checker, o.StateDir = c2, state })
	e2.start()
	if v := e2.mustServe("ocr-eng", 0); v != 1 {
		t.Fatalf("after the restart: serving %d, want 1", v)
	}
	st := e2.state("ocr-eng", 2)
	if st.State != modelrepo.StateFailed || st.Reason != modelrepo.ReasonLoadError || st.Phase != modelrepo.PhaseLoad ||
		!strings.Contains(st.Detail, "remembered") || !strings.Contains(st.Detail, "SIGABRT") {
		t.Fatalf("after the restart, version 2: %+v", st)
	}
	if c2.count("2") != 0 {
		t.Fatal("the remembered version was checked again")
	}

	// Same files republished: still remembered.
	touch := filepath.Join(e.dir, "ocr-eng", "2", "weights.bin")
	b, _ := os.ReadFile(touch)
	if err := os.WriteFile(touch, b, 0o644); err != nil {
		t.Fatal(err)
	}
	e2.sync()
	if c2.count("2") != 0 {
		t.Error("a version whose files did not change was checked again")
	}
	// An operator asks for it: checked again (and refused again).
	if _, err := e2.repo.Load(context.Background(), "ocr-eng", 2); !errors.Is(err, modelrepo.ReasonLoadError) || c2.count("2") != 1 {
		t.Errorf("admin load: %v, %d checks", err, c2.count("2"))
	}
	// Fixed files: checked, loaded, and forgotten.
	if err := os.Remove(filepath.Join(e.dir, "ocr-eng", "2", "CHECKFAIL")); err != nil {
		t.Fatal(err)
	}
	e2.sync()
	if v := e2.mustServe("ocr-eng", 0); v != 2 || c2.count("2") != 2 {
		t.Fatalf("the fixed version: serving %d after %d checks", v, c2.count("2"))
	}
	data, _ := os.ReadFile(filepath.Join(state, modelrepo.FailuresFile))
	if strings.Contains(string(data), `"version": 2`) {
		t.Errorf("the loaded version is still remembered as failed:\n%s", data)
	}
}

// Options a loader refuses fail verification: no check, no load.
func TestRuntimeCheckedAtVerification(t *testing.T) {
	c := &fakeChecker{}
	e := newEnv(t, func(o *modelrepo.Options) {
		o.Checker = c
		o.Loaders = map[string]modelrepo.Loader{fakeKind: runtimeLoader{o.Loaders[fakeKind].(*fakeLoader)}}
	})
	e.publish("ocr-eng", 1, nil)
	e.start()
	e.publish("ocr-eng", 2, map[string]string{"BADRUNTIME": ""})
	e.sync()
	st := e.state("ocr-eng", 2)
	if st.Reason != modelrepo.ReasonManifestInvalid || st.Phase != modelrepo.PhaseVerify || !strings.Contains(st.Detail, "interactive_display_mode") {
		t.Fatalf("version 2: %+v", st)
	}
	if c.count("2") != 0 {
		t.Error("a version with refused options was checked")
	}
	if v := e.mustServe("ocr-eng", 0); v != 1 {
		t.Fatalf("serving %d", v)
	}
}

// An unreadable memory file is ignored: every version is checked again.
func TestCorruptMemoryIsIgnored(t *testing.T) {
	state := t.TempDir()
	if err := os.WriteFile(filepath.Join(state, modelrepo.FailuresFile), []byte("{not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	c := &fakeChecker{}
	e := newEnv(t, func(o *modelrepo.Options) { o.Checker, o.StateDir = c, state })
	e.publish("ocr-eng", 1, nil)
	e.start()
	if v := e.mustServe("ocr-eng", 0); v != 1 || c.count("1") != 1 {
		t.Fatalf("serving %d after %d checks", v, c.count("1"))
	}
}
