package onnx

import (
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"

	ort "github.com/yalue/onnxruntime_go"
)

// Runtime describes the ONNX Runtime library loaded into this process.
type Runtime struct {
	Path    string // absolute path of the shared library
	Version string // the library's own version string, e.g. "1.30.0"
}

// ErrNotInitialized is returned by constructors called before Init.
var ErrNotInitialized = errors.New("onnx: runtime not initialised (call onnx.Init first)")

// process is the one piece of global state in the package: ONNX Runtime has
// a single environment per process (onnxruntime_go keeps it in a global), so
// loading it is guarded here once for every caller.
var process struct {
	once  sync.Once
	ready atomic.Bool
	rt    Runtime
	err   error
}

// Init loads the ONNX Runtime shared library (resolved with LibraryPath, so
// libPath may be "") and creates the process-wide environment. It is safe to
// call from several places and goroutines: the first call that resolves a
// library does the work and every later call returns its outcome. Naming a
// different library after that is an error, since a process can hold only
// one. A failure to resolve the path does not use up the once, so a caller
// can run the setup script and try again; a failure to load the library does.
func Init(libPath string) (Runtime, error) {
	path, err := LibraryPath(libPath)
	if err != nil {
		return Runtime{}, err
	}
	if real, err := filepath.EvalSymlinks(path); err == nil {
		path = real
	}
	process.once.Do(func() {
		ort.SetSharedLibraryPath(path)
		if err := ort.InitializeEnvironment(); err != nil {
			process.err = fmt.Errorf("onnx: load %s: %w", path, err)
			return
		}
		process.rt = Runtime{Path: path, Version: ort.GetVersion()}
		process.ready.Store(true)
	})
	if process.err != nil {
		return Runtime{}, process.err
	}
	if process.rt.Path != path {
		return process.rt, fmt.Errorf("onnx: runtime already loaded from %s, cannot also load %s", process.rt.Path, path)
	}
	return process.rt, nil
}

func initialized() bool { return process.ready.Load() }
