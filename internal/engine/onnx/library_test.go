package onnx

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func TestLibraryPath(t *testing.T) {
	cache := t.TempDir()
	dir := t.TempDir()
	lib := filepath.Join(dir, "libonnxruntime.so.1")
	if err := os.WriteFile(lib, []byte("not really a library"), 0o644); err != nil {
		t.Fatal(err)
	}
	cached := filepath.Join(cache, "visionserve", "onnxruntime", RuntimeVersion, "libonnxruntime.so.1")
	missing := filepath.Join(dir, "absent.so")

	for _, tc := range []struct {
		name        string
		explicit    string
		env         string
		cacheExists bool
		want        string // "" means an ErrRuntimeNotFound error
		wantInErr   string
	}{
		{name: "explicit wins over env and cache", explicit: lib, env: missing, cacheExists: true, want: lib},
		{name: "env when no explicit path", env: lib, cacheExists: true, want: lib},
		{name: "cache when nothing configured", cacheExists: true, want: cached},
		{name: "nothing anywhere", wantInErr: "hack/setup-onnxruntime.sh"},
		{name: "explicit missing does not fall back", explicit: missing, cacheExists: true, wantInErr: "configured path"},
		{name: "env missing does not fall back", env: missing, cacheExists: true, wantInErr: LibraryEnv},
		{name: "directory is not a library", explicit: dir, wantInErr: "not a regular file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("XDG_CACHE_HOME", cache)
			t.Setenv(LibraryEnv, tc.env)
			os.RemoveAll(filepath.Join(cache, "visionserve"))
			if tc.cacheExists {
				if err := os.MkdirAll(filepath.Dir(cached), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(cached, []byte("x"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got, err := LibraryPath(tc.explicit)
			if tc.want != "" {
				if err != nil || got != tc.want {
					t.Fatalf("LibraryPath(%q) = %q, %v; want %q", tc.explicit, got, err, tc.want)
				}
				return
			}
			if !errors.Is(err, ErrRuntimeNotFound) {
				t.Fatalf("LibraryPath(%q) = %q, %v; want ErrRuntimeNotFound", tc.explicit, got, err)
			}
			if !strings.Contains(err.Error(), tc.wantInErr) {
				t.Errorf("error %q does not mention %q", err, tc.wantInErr)
			}
		})
	}
}

// The Go side and the setup script must agree on the version, or LibraryPath
// looks in a cache directory the script never fills.
func TestSetupScriptInstallsRuntimeVersion(t *testing.T) {
	script, err := os.ReadFile(filepath.Join("..", "..", "..", "hack", "setup-onnxruntime.sh"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^ORT_VERSION=(\S+)$`).FindSubmatch(script)
	if m == nil {
		t.Fatal("no ORT_VERSION= line in hack/setup-onnxruntime.sh")
	}
	if got := string(m[1]); got != RuntimeVersion {
		t.Errorf("setup script installs %s, RuntimeVersion is %s", got, RuntimeVersion)
	}
}

func TestOptionsValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts Options
		ok   bool
	}{
		{"defaults", DefaultOptions(), true},
		{"more threads", Options{IntraOpThreads: 4, InterOpThreads: 2, Sessions: 1}, true},
		{"zero intra means all cores in ORT", Options{IntraOpThreads: 0, InterOpThreads: 1, Sessions: 1}, false},
		{"zero inter", Options{IntraOpThreads: 1, InterOpThreads: 0, Sessions: 1}, false},
		{"no sessions", Options{IntraOpThreads: 1, InterOpThreads: 1, Sessions: 0}, false},
		{"zero value", Options{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.opts.Validate(); (err == nil) != tc.ok {
				t.Errorf("Validate(%+v) = %v, want ok=%v", tc.opts, err, tc.ok)
			}
		})
	}
	if d := DefaultOptions(); d.IntraOpThreads != 1 || d.InterOpThreads != 1 || d.Sessions < 1 {
		t.Errorf("DefaultOptions() = %+v, want 1 intra-op and 1 inter-op thread and at least one session", d)
	}
}

// Close must cope with a session whose construction stopped part way,
// which is what newSession's cleanup and engine.NewPool's rely on.
func TestSessionCloseAfterPartialConstruction(t *testing.T) {
	s := &Session{}
	if err := s.Close(); err != nil {
		t.Fatalf("Close of an empty session: %v", err)
	}
	if !s.closed || s.busy.Load() {
		t.Errorf("after Close: closed=%v busy=%v", s.closed, s.busy.Load())
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close = %v, want nil (idempotent)", err)
	}
	if _, err := s.Run(context.Background(), nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Run after Close = %v, want ErrClosed", err)
	}
	var nilPool *Pool
	if err := nilPool.Close(context.Background()); err != nil {
		t.Errorf("nil Pool Close = %v", err)
	}
}
