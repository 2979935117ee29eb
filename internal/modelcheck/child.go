package modelcheck

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"syscall"

	"github.com/visionserve/visionserve/internal/modelrepo"
)

// Request is what the parent sends the child on its stdin.
type Request struct {
	// Package is the verified package to load. The child reads its files
	// through Package.ReadFile, which checks every digest again.
	Package modelrepo.Package `json:"package"`
	// MemoryLimit is the child's RLIMIT_DATA in bytes; 0 means none.
	MemoryLimit int64 `json:"memory_limit,omitempty"`
	// ONNXLibrary is the server's ONNX Runtime library ("" = its default).
	ONNXLibrary string `json:"onnx_library,omitempty"`
}

// maxRequest bounds the request the child reads.
const maxRequest = 64 << 20

// report is one line the child writes on file descriptor 3: the phase it
// enters, then its outcome.
type report struct {
	Phase  string           `json:"phase,omitempty"`
	OK     bool             `json:"ok,omitempty"`
	Reason modelrepo.Reason `json:"reason,omitempty"`
	Path   string           `json:"path,omitempty"`
	Detail string           `json:"detail,omitempty"`
}

// Loaders builds the loaders the child loads with, by package kind, for
// one request (its ONNX Runtime library; one engine per version).
type Loaders func(req Request) map[string]modelrepo.Loader

// Exit codes of the child.
const (
	exitOK      = 0
	exitRefused = 1 // the version failed; the report says why
	exitBroken  = 3 // the request could not be read or the report written
)

// niceness is the child's scheduling priority: a check yields the CPU to
// the requests the server is answering.
const niceness = 10

// Serve is the child: it reads a Request from in, limits the process's
// memory and priority, loads and warms up the package with the loader of
// its kind and reports each phase and the outcome on out, one JSON object
// per line. It returns the process's exit code. A crash or a hang never
// reaches the report: the parent sees the process die or time out, in
// the last phase reported.
func Serve(ctx context.Context, loaders Loaders, in io.Reader, out io.Writer) int {
	enc := json.NewEncoder(out)
	send := func(r report) bool { return enc.Encode(r) == nil }
	var req Request
	if err := json.NewDecoder(io.LimitReader(in, maxRequest)).Decode(&req); err != nil {
		send(report{Reason: modelrepo.ReasonUnknown, Detail: "reading the check request: " + err.Error()})
		return exitBroken
	}
	if err := limit(req.MemoryLimit); err != nil {
		send(report{Reason: modelrepo.ReasonUnknown, Detail: "limiting the check process: " + err.Error()})
		return exitBroken
	}
	pkg := &req.Package
	if string(bytes.TrimSpace(pkg.Runtime)) == "null" {
		pkg.Runtime = nil // encoded from a nil RawMessage
	}
	loader := loaders(req)[pkg.Kind]
	if loader == nil {
		send(report{Reason: modelrepo.ReasonLoadError, Detail: fmt.Sprintf("no loader for kind %q", pkg.Kind)})
		return exitRefused
	}
	fail := func(err error, reason modelrepo.Reason) int {
		r := report{Reason: modelrepo.ReasonOf(err), Detail: err.Error()}
		if r.Reason == modelrepo.ReasonUnknown {
			r.Reason = reason
		}
		var e *modelrepo.Error
		if errors.As(err, &e) {
			r.Path = e.Path
		}
		if !send(r) {
			return exitBroken
		}
		return exitRefused
	}
	if !send(report{Phase: modelrepo.PhaseLoad}) {
		return exitBroken
	}
	inst, err := loader.Load(ctx, pkg)
	if err != nil {
		return fail(err, modelrepo.ReasonLoadError)
	}
	if inst == nil {
		return fail(errors.New("the loader returned no instance"), modelrepo.ReasonLoadError)
	}
	defer inst.Close()
	if !send(report{Phase: modelrepo.PhaseWarmup}) {
		return exitBroken
	}
	if err := inst.Warmup(ctx); err != nil {
		return fail(err, modelrepo.ReasonWarmupError)
	}
	if !send(report{OK: true}) {
		return exitBroken
	}
	return exitOK
}

// limit applies the check's limits to this process: its data segment
// (RLIMIT_DATA: heap, anonymous mappings, thread stacks; unlike RLIMIT_AS
// it does not count the large virtual areas that the Go runtime and ONNX
// Runtime reserve without using), no core dumps (an aborting model must
// not leave gigabytes on disk), and a lower CPU priority.
func limit(memory int64) error {
	if memory > 0 {
		if err := syscall.Setrlimit(syscall.RLIMIT_DATA, &syscall.Rlimit{Cur: uint64(memory), Max: uint64(memory)}); err != nil {
			return fmt.Errorf("RLIMIT_DATA: %w", err)
		}
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_CORE, &syscall.Rlimit{}); err != nil {
		return fmt.Errorf("RLIMIT_CORE: %w", err)
	}
	if err := syscall.Setpriority(syscall.PRIO_PROCESS, 0, niceness); err != nil {
		return fmt.Errorf("priority: %w", err)
	}
	return nil
}
