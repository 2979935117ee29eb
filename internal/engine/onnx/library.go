package onnx

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// RuntimeVersion is the ONNX Runtime release that hack/setup-onnxruntime.sh
// installs and LibraryPath looks for in the cache. The binding
// (onnxruntime_go v1.27) asks the library for an older C API version, which
// newer libraries keep serving, so a newer library works with it.
const RuntimeVersion = "1.30.0"

// LibraryEnv names the environment variable that points at the ONNX Runtime
// shared library when no path is configured.
const LibraryEnv = "VISIONSERVE_ONNXRUNTIME_LIB"

// SetupScript is the repository script that installs the library.
const SetupScript = "hack/setup-onnxruntime.sh"

// ErrRuntimeNotFound means no usable ONNX Runtime library was found.
var ErrRuntimeNotFound = errors.New("ONNX Runtime library not found")

// LibraryPath resolves the ONNX Runtime shared library: the explicit path
// (from config) if set, else $VISIONSERVE_ONNXRUNTIME_LIB if set, else the
// cache location where the setup script puts it (CachedLibraryPath). A path
// that was asked for explicitly but is missing is an error; it never falls
// back to the next source, so a typo in config cannot load a different
// library. Every failure wraps ErrRuntimeNotFound and names the setup script.
func LibraryPath(explicit string) (string, error) {
	if explicit != "" {
		return checkLibrary(explicit, "configured path")
	}
	if env := os.Getenv(LibraryEnv); env != "" {
		return checkLibrary(env, "$"+LibraryEnv)
	}
	cached, err := CachedLibraryPath()
	if err != nil {
		return "", fmt.Errorf("%w: no path configured, $%s unset, and no cache directory (%v); run %s",
			ErrRuntimeNotFound, LibraryEnv, err, SetupScript)
	}
	if _, err := os.Stat(cached); err != nil {
		return "", fmt.Errorf("%w: no path configured, $%s unset, and %s is absent; run %s",
			ErrRuntimeNotFound, LibraryEnv, cached, SetupScript)
	}
	return cached, nil
}

// CachedLibraryPath is where hack/setup-onnxruntime.sh installs the library:
// <user cache dir>/visionserve/onnxruntime/<RuntimeVersion>/libonnxruntime.so.1.
func CachedLibraryPath() (string, error) {
	dir, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "visionserve", "onnxruntime", RuntimeVersion, "libonnxruntime.so.1"), nil
}

func checkLibrary(path, source string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", fmt.Errorf("%w: %s %q: %v", ErrRuntimeNotFound, source, path, err)
	}
	st, err := os.Stat(abs)
	if err != nil {
		return "", fmt.Errorf("%w: %s %q: %v; run %s or fix the path", ErrRuntimeNotFound, source, path, err, SetupScript)
	}
	if !st.Mode().IsRegular() {
		return "", fmt.Errorf("%w: %s %q is not a regular file", ErrRuntimeNotFound, source, path)
	}
	return abs, nil
}
