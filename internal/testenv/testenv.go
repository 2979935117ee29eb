// Package testenv finds the shared models and data that tests need and
// decides what a test does when they are missing: skip with a clear message
// on a developer machine, fail when CI=true (a CI run that silently skipped
// its real-data tests would prove nothing).
package testenv

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// SharedEnv names the environment variable that points at the shared
// directory holding models/ and data/.
const SharedEnv = "VISIONSERVE_SHARED"

// SharedDir returns the shared directory: $VISIONSERVE_SHARED, or ../shared
// beside the repository root when that exists. It returns "" if neither does.
func SharedDir() string {
	if d := os.Getenv(SharedEnv); d != "" {
		if abs, err := filepath.Abs(d); err == nil {
			return abs
		}
		return d
	}
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return ""
	}
	// file is <repo>/internal/testenv/testenv.go.
	d := filepath.Join(filepath.Dir(file), "..", "..", "..", "shared")
	if st, err := os.Stat(d); err == nil && st.IsDir() {
		return filepath.Clean(d)
	}
	return ""
}

// InCI reports whether the tests run in CI, where missing inputs are failures.
func InCI() bool { return os.Getenv("CI") == "true" }

// Shared returns the absolute path of rel inside the shared directory. When
// it is absent the test is skipped, or failed under CI=true.
func Shared(t testing.TB, rel string) string {
	t.Helper()
	dir := SharedDir()
	if dir == "" {
		Missing(t, "shared directory not found: set "+SharedEnv+" to the directory holding models/ and data/")
	}
	p := filepath.Join(dir, rel)
	if _, err := os.Stat(p); err != nil {
		Missing(t, "shared input "+rel+" not found under "+dir+": "+err.Error())
	}
	return p
}

// Missing skips the test with reason, or fails it when running in CI.
func Missing(t testing.TB, reason string) {
	t.Helper()
	if InCI() {
		t.Fatalf("CI=true and a required input is missing: %s", reason)
	}
	t.Skip(reason)
}
