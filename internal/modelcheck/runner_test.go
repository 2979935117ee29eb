package modelcheck_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/visionserve/visionserve/internal/modelcheck"
	"github.com/visionserve/visionserve/internal/modelrepo"
)

// childEnv makes this test binary a check child with fakeLoaders.
const childEnv = "VISIONSERVE_MODELCHECK_TEST_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		os.Exit(modelcheck.Serve(context.Background(), fakeLoaders, os.Stdin, os.NewFile(3, "report")))
	}
	os.Exit(m.Run())
}

// fakeLoaders misbehave by kind, as corrupt models make real engines do.
func fakeLoaders(modelcheck.Request) map[string]modelrepo.Loader {
	load := func(f func() error, warm func() error) modelrepo.Loader {
		return modelrepo.LoaderFunc(func(ctx context.Context, pkg *modelrepo.Package) (modelrepo.Instance, error) {
			if err := f(); err != nil {
				return nil, err
			}
			return instance{warm}, nil
		})
	}
	ok := func() error { return nil }
	var sink [][]byte
	return map[string]modelrepo.Loader{
		"ok":     load(ok, ok),
		"refuse": load(func() error { return errors.New("cannot initialise \"eng\" from its model data") }, ok),
		"abort":  load(func() error { return syscall.Kill(os.Getpid(), syscall.SIGABRT) }, ok),
		"fpe":    load(ok, func() error { return syscall.Kill(os.Getpid(), syscall.SIGFPE) }),
		"hang":   load(ok, func() error { select {} }),
		"grow": load(func() error {
			for { // allocate and touch until the memory limit stops it
				b := make([]byte, 64<<20)
				for i := range b {
					b[i] = 1
				}
				sink = append(sink, b)
			}
		}, ok),
		"exit": load(func() error { os.Exit(7); return nil }, ok),
	}
}

type instance struct{ warm func() error }

func (i instance) Warmup(context.Context) error { return i.warm() }
func (i instance) Close() error                 { return nil }

func runner(t *testing.T) (*modelcheck.Runner, *modelcheck.Metrics) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	m := modelcheck.NewMetrics(prometheus.NewRegistry())
	return &modelcheck.Runner{
		Command:     modelcheck.Command{Path: exe, Args: []string{"-test.run=^$"}, Env: []string{childEnv + "=1"}},
		Timeout:     20 * time.Second,
		MemoryLimit: 512 << 20,
		Metrics:     m,
	}, m
}

// Each way a model can misbehave in its engine becomes a refusal with a
// reason, the phase and a detail that says what happened; the test
// process (the server) is untouched.
func TestOutcomes(t *testing.T) {
	r, m := runner(t)
	for _, tc := range []struct {
		kind    string
		outcome modelcheck.Outcome
		reason  modelrepo.Reason
		phase   string
		detail  string
	}{
		{"ok", modelcheck.Passed, "", modelrepo.PhaseWarmup, ""},
		{"refuse", modelcheck.Refused, modelrepo.ReasonLoadError, modelrepo.PhaseLoad, `isolated check: cannot initialise "eng"`},
		{"abort", modelcheck.Crashed, modelrepo.ReasonLoadError, modelrepo.PhaseLoad, "died of SIGABRT (the engine aborted) during the load"},
		{"fpe", modelcheck.Crashed, modelrepo.ReasonWarmupError, modelrepo.PhaseWarmup, "died of SIGFPE (arithmetic error) during the warmup"},
		{"grow", modelcheck.OutOfMemory, modelrepo.ReasonLoadError, modelrepo.PhaseLoad, "out of memory: the check's limit is 512 MiB"},
		{"exit", modelcheck.Crashed, modelrepo.ReasonLoadError, modelrepo.PhaseLoad, "exited with status 7 during the load"},
		{"nope", modelcheck.Refused, modelrepo.ReasonLoadError, "", `no loader for kind "nope"`},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			res, err := r.Run(context.Background(), &modelrepo.Package{Name: "m", Version: 1, Kind: tc.kind})
			if res.Outcome != tc.outcome || res.Phase != tc.phase || modelrepo.ReasonOf(err) != tc.reason {
				t.Fatalf("Run = %+v, %v; want %s in phase %q with reason %q", res, err, tc.outcome, tc.phase, tc.reason)
			}
			if tc.detail != "" && !strings.Contains(err.Error(), tc.detail) {
				t.Errorf("error %q lacks %q", err, tc.detail)
			}
		})
	}
	if n := testutil.ToFloat64(m.Checks.WithLabelValues(string(modelcheck.Crashed))); n != 3 {
		t.Errorf("crashed checks = %v, want 3", n)
	}
}

// A check that does not finish is killed at its timeout; one whose caller
// goes away (the version was removed, the server stops) is killed too and
// returns the caller's error, which is not the version's fault.
func TestTimeoutAndCancel(t *testing.T) {
	r, _ := runner(t)
	r.Timeout = 2 * time.Second
	res, err := r.Run(context.Background(), &modelrepo.Package{Name: "m", Version: 1, Kind: "hang"})
	if res.Outcome != modelcheck.TimedOut || !errors.Is(err, modelrepo.ReasonWarmupError) || !strings.Contains(err.Error(), "did not finish the warmup within 2s") {
		t.Fatalf("Run = %+v, %v", res, err)
	}
	r.Timeout = time.Hour
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := r.Run(ctx, &modelrepo.Package{Name: "m", Version: 1, Kind: "hang"}); !errors.Is(err, context.DeadlineExceeded) || modelrepo.ReasonOf(err) != modelrepo.ReasonUnknown {
		t.Fatalf("cancelled: %v", err)
	}
}

// A check that cannot start is check_error: the version is not the cause.
func TestCheckThatCannotRun(t *testing.T) {
	r, _ := runner(t)
	r.Command.Path = "/nonexistent/visionserve"
	res, err := r.Run(context.Background(), &modelrepo.Package{Name: "m", Version: 1, Kind: "ok"})
	if res.Outcome != modelcheck.Broken || !errors.Is(err, modelrepo.ReasonCheckError) {
		t.Fatalf("Run = %+v, %v", res, err)
	}
}

// Inside a test binary, the production command would run the tests.
func TestExecutableRefusesATestBinary(t *testing.T) {
	if _, err := modelcheck.Executable(); err == nil || !strings.Contains(err.Error(), "test binary") {
		t.Fatalf("Executable() in a test binary: %v", err)
	}
}
