package modelcheck

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/visionserve/visionserve/internal/modelrepo"
)

// Defaults of a Runner.
const (
	// DefaultTimeout bounds a whole check: start, load and warm-up of one
	// engine. Tesseract and the shared ONNX models take a second or two.
	DefaultTimeout = 2 * time.Minute
	// DefaultMemoryLimit is the check process's data limit: a model that
	// needs more than this for one engine is refused (raise it in the
	// configuration for big ONNX models).
	DefaultMemoryLimit = 4 << 30
)

// ChildArgs are the arguments that make the visionserve binary a check
// child ("visionserve model check --child").
var ChildArgs = []string{"model", "check", "--child"}

// Command says how to start a check child: the visionserve binary with
// ChildArgs in production; a test binary that re-executes itself (its
// TestMain calls the child's entry point when Env says so) in tests.
type Command struct {
	Path string
	Args []string
	// Env is added to the server's environment.
	Env []string
}

// Executable is the Command of the running visionserve binary. Inside a
// Go test binary it is an error: ChildArgs would make that binary run its
// tests (tests start children with their own Command, see apptest.Main).
func Executable() (Command, error) {
	exe, err := os.Executable()
	if err != nil {
		return Command{}, fmt.Errorf("model check: cannot find the visionserve binary: %w", err)
	}
	if strings.HasSuffix(exe, ".test") {
		return Command{}, fmt.Errorf("model check: %s is a test binary, not visionserve; tests give the check their own command", filepath.Base(exe))
	}
	return Command{Path: exe, Args: ChildArgs}, nil
}

// Runner checks versions in child processes; it is the repository's
// modelrepo.Checker.
type Runner struct {
	Command Command
	// Timeout bounds each check (0: DefaultTimeout).
	Timeout time.Duration
	// MemoryLimit is each check's RLIMIT_DATA in bytes (0:
	// DefaultMemoryLimit; negative: none).
	MemoryLimit int64
	// ONNXLibrary is passed to the child.
	ONNXLibrary string
	// Metrics may be nil.
	Metrics *Metrics
	Log     *slog.Logger
}

var _ modelrepo.Checker = (*Runner)(nil)

// Outcome is how a check ended, the values of the metrics' result label.
type Outcome string

// The outcomes.
const (
	// Passed: the version loaded and warmed up.
	Passed Outcome = "passed"
	// Refused: the loader or the warm-up returned an error.
	Refused Outcome = "refused"
	// Crashed: the process died (a signal, an exit without a report).
	Crashed Outcome = "crashed"
	// OutOfMemory: it died, or failed, at the memory limit.
	OutOfMemory Outcome = "out_of_memory"
	// TimedOut: it did not finish within the timeout and was killed.
	TimedOut Outcome = "timeout"
	// Broken: the check itself could not run (no binary, no pipe); the
	// version is not the cause and is not remembered as failed.
	Broken Outcome = "error"
)

// Outcomes returns every Outcome, for metrics.
func Outcomes() []Outcome { return []Outcome{Passed, Refused, Crashed, OutOfMemory, TimedOut, Broken} }

// Result describes a finished check.
type Result struct {
	Outcome Outcome
	// Phase is the last phase the child reported (load, warmup), "" if
	// it reported none.
	Phase    string
	Duration time.Duration
	// PeakRSS is the child's peak resident size in bytes.
	PeakRSS int64
}

// Check implements modelrepo.Checker.
func (r *Runner) Check(ctx context.Context, pkg *modelrepo.Package) error {
	res, err := r.Run(ctx, pkg)
	if errors.Is(err, context.Canceled) && ctx.Err() != nil {
		return err
	}
	log := r.log().With("model", pkg.Name, "version", pkg.Version, "kind", pkg.Kind, "outcome", res.Outcome,
		"duration", res.Duration.Round(time.Millisecond), "peak_rss_mib", res.PeakRSS>>20)
	if err != nil {
		log.Warn("isolated model check refused the version", "phase", res.Phase, "err", err)
	} else {
		log.Info("isolated model check passed")
	}
	return err
}

// Run checks pkg in a child process and says how it went. The error is
// nil when the version passed, else a *modelrepo.Error (or ctx's error
// when ctx ended first).
func (r *Runner) Run(ctx context.Context, pkg *modelrepo.Package) (Result, error) {
	start := time.Now()
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	memory := r.MemoryLimit
	if memory == 0 {
		memory = DefaultMemoryLimit
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c := &child{req: Request{Package: *pkg, MemoryLimit: max(memory, 0), ONNXLibrary: r.ONNXLibrary}}
	res, err := c.run(cctx, r.Command)
	res.Duration = time.Since(start)
	switch {
	case err != nil && ctx.Err() != nil:
		err = ctx.Err() // the server's doing (shutdown, version gone), not the version's
	case err != nil && errors.Is(cctx.Err(), context.DeadlineExceeded) && res.Outcome != Broken:
		res.Outcome = TimedOut
		err = c.refusal(fmt.Sprintf("the check did not finish the %s within %v; its process was killed", phaseName(res.Phase), timeout))
	case err != nil:
		err = &modelrepo.Error{Reason: modelrepo.ReasonCheckError, Err: err}
	default:
		err = c.verdict(&res, memory)
	}
	if r.Metrics != nil && ctx.Err() == nil {
		r.Metrics.observe(res)
	}
	return res, err
}

func (r *Runner) log() *slog.Logger {
	if r.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return r.Log.With("component", "modelcheck")
}

// child is one check process.
type child struct {
	req     Request
	phase   string
	final   *report
	output  tail
	status  *os.ProcessState
	started bool
}

// run starts the child, sends the request, reads its reports until it
// exits or ctx ends (it is then killed), and returns the last phase it
// reported. The error is about running the check, not the version.
func (c *child) run(ctx context.Context, cmd Command) (Result, error) {
	res := Result{Outcome: Broken}
	reqData, err := json.Marshal(c.req)
	if err != nil {
		return res, err
	}
	rd, wr, err := os.Pipe()
	if err != nil {
		return res, fmt.Errorf("model check: %w", err)
	}
	defer rd.Close()
	ec := exec.Command(cmd.Path, cmd.Args...)
	ec.Env = append(os.Environ(), cmd.Env...)
	ec.Stdin = bytes.NewReader(reqData)
	ec.Stdout, ec.Stderr = &c.output, &c.output
	ec.ExtraFiles = []*os.File{wr} // fd 3: the reports
	// Its own process group, so that whatever it starts dies with it, and
	// killed if the server dies first.
	ec.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	ec.WaitDelay = 5 * time.Second
	if err := ec.Start(); err != nil {
		wr.Close()
		return res, fmt.Errorf("model check: cannot start %s: %w", cmd.Path, err)
	}
	c.started = true
	wr.Close() // the child holds the write end now
	pgid := ec.Process.Pid
	killGroup := func() { _ = syscall.Kill(-pgid, syscall.SIGKILL) }
	defer killGroup() // helpers the model made the engine start (a shell, a viewer) go too
	stop := context.AfterFunc(ctx, killGroup)
	defer stop()

	reports := make(chan struct{})
	go func() {
		defer close(reports)
		c.read(rd)
	}()
	err = ec.Wait()
	<-reports
	c.status = ec.ProcessState
	res.Phase = c.phase
	if ps := ec.ProcessState; ps != nil {
		if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
			res.PeakRSS = ru.Maxrss << 10
		}
	}
	if ctx.Err() != nil {
		res.Outcome = TimedOut
		return res, ctx.Err()
	}
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		return res, fmt.Errorf("model check: %w", err)
	}
	res.Outcome = ""
	return res, nil
}

// maxReport bounds one report line.
const maxReport = 64 << 10

// read takes the child's reports: phases as they start, then its outcome.
func (c *child) read(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxReport)
	for sc.Scan() {
		var rep report
		if json.Unmarshal(sc.Bytes(), &rep) != nil {
			continue
		}
		switch {
		case rep.Phase != "":
			if rep.Phase == modelrepo.PhaseLoad || rep.Phase == modelrepo.PhaseWarmup {
				c.phase = rep.Phase
			}
		default:
			c.final = &rep
		}
	}
	_, _ = io.Copy(io.Discard, r)
}

// verdict turns a child that exited into the check's outcome and error.
func (c *child) verdict(res *Result, memory int64) error {
	ws, _ := c.status.Sys().(syscall.WaitStatus)
	oom := c.output.outOfMemory()
	switch {
	case c.final != nil && c.final.OK && ws.ExitStatus() == exitOK:
		res.Outcome = Passed
		return nil
	case c.final != nil && !c.final.OK && ws.ExitStatus() == exitRefused:
		res.Outcome = Refused
		if oom {
			res.Outcome = OutOfMemory
		}
		if c.final.Reason == modelrepo.ReasonWarmupError {
			res.Phase = modelrepo.PhaseWarmup
		}
		reason := c.final.Reason
		if !reason.Valid() || reason == modelrepo.ReasonUnknown {
			reason = modelrepo.ReasonLoadError
		}
		detail := strings.TrimPrefix(c.final.Detail, string(c.final.Reason)+": ")
		return &modelrepo.Error{Reason: reason, Path: c.final.Path, Detail: "isolated check: " + detail + memoryNote(oom, memory)}
	case c.final != nil && ws.ExitStatus() == exitBroken:
		res.Outcome = Broken
		return modelrepo.NewError(modelrepo.ReasonCheckError, "", "isolated check could not run: "+c.final.Detail)
	}
	res.Outcome = Crashed
	if oom {
		res.Outcome = OutOfMemory
	}
	how := fmt.Sprintf("exited with status %d", ws.ExitStatus())
	switch sig := c.output.signal(); {
	case ws.Signaled():
		how = "was killed by signal " + describe(ws.Signal().String(), unix(ws.Signal()))
	case sig != "":
		// The Go runtime catches the signal a C library raises (abort(),
		// a division by zero), prints it and exits with status 2.
		how = "died of " + describe(sig, sig)
	}
	return c.refusal(fmt.Sprintf("the check process %s during the %s%s%s", how, phaseName(res.Phase), memoryNote(oom, memory), c.output.last()))
}

// refusal is the error of a version that crashed or hung its check: a
// load_error, or a warmup_error when it got that far.
func (c *child) refusal(detail string) error {
	reason := modelrepo.ReasonLoadError
	if c.phase == modelrepo.PhaseWarmup {
		reason = modelrepo.ReasonWarmupError
	}
	return modelrepo.NewError(reason, "", "isolated check: "+detail)
}

func phaseName(p string) string {
	if p == "" {
		return "start"
	}
	return p
}

func memoryNote(oom bool, limit int64) string {
	if !oom {
		return ""
	}
	if limit <= 0 {
		return " (out of memory)"
	}
	return fmt.Sprintf(" (out of memory: the check's limit is %d MiB)", limit>>20)
}

// unix returns a signal's name as the Go runtime prints it (SIGABRT).
func unix(s syscall.Signal) string {
	for name, sig := range map[string]syscall.Signal{"SIGABRT": syscall.SIGABRT, "SIGSEGV": syscall.SIGSEGV, "SIGFPE": syscall.SIGFPE,
		"SIGKILL": syscall.SIGKILL, "SIGBUS": syscall.SIGBUS, "SIGILL": syscall.SIGILL, "SIGTERM": syscall.SIGTERM} {
		if s == sig {
			return name
		}
	}
	return ""
}

// describe names a signal and, for the usual crashes, what it means.
func describe(fallback, name string) string {
	switch name {
	case "SIGABRT":
		return "SIGABRT (the engine aborted)"
	case "SIGSEGV":
		return "SIGSEGV (invalid memory access)"
	case "SIGFPE":
		return "SIGFPE (arithmetic error)"
	case "":
		return fallback
	}
	return name
}

// Output kept for the error: the head holds the Go runtime's crash
// report ("SIGABRT: abort", "fatal error: runtime: out of memory"), the
// tail the last thing the engine printed.
const (
	headSize = 4 << 10
	tailSize = 4 << 10
)

// tail keeps the first headSize and the last tailSize bytes written to it.
type tail struct {
	mu   sync.Mutex
	head []byte
	buf  []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := len(p)
	if room := headSize - len(t.head); room > 0 {
		k := min(room, len(p))
		t.head = append(t.head, p[:k]...)
		p = p[k:]
	}
	t.buf = append(t.buf, p...)
	if len(t.buf) > tailSize {
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-tailSize:]...)
	}
	return n, nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.head) + string(t.buf)
}

// crashSignal finds the signal in the Go runtime's crash report.
var crashSignal = regexp.MustCompile(`(?m)(?:^|\[signal )(SIG[A-Z0-9]+)[: ]`)

// signal returns the name of the signal the output reports a crash on.
func (t *tail) signal() string {
	if m := crashSignal.FindStringSubmatch(t.String()); m != nil {
		return m[1]
	}
	return ""
}

// outOfMemory reports whether the output says an allocation failed: C++'s
// std::bad_alloc, the Go runtime's fatal error, ONNX Runtime's and the race
// detector's messages, ENOMEM.
func (t *tail) outOfMemory() bool {
	s := strings.ToLower(t.String())
	for _, m := range []string{"std::bad_alloc", "out of memory", "cannot allocate memory", "failed to allocate"} {
		if strings.Contains(s, m) {
			return true
		}
	}
	return false
}

// crashReport is where the Go runtime's crash report starts.
var crashReport = regexp.MustCompile(`(?m)^(?:SIG[A-Z0-9]+: |fatal error: )`)

// last returns the last line the child wrote before any crash report of
// the Go runtime (the engine's own message: a failed assertion,
// std::bad_alloc), or the report's first line, as context for a crash.
func (t *tail) last() string {
	s := t.String()
	report := ""
	if loc := crashReport.FindStringIndex(s); loc != nil {
		report, _, _ = strings.Cut(s[loc[0]:], "\n")
		s = s[:loc[0]]
	}
	lines := strings.Split(strings.TrimSpace(s), "\n")
	line := strings.TrimSpace(lines[len(lines)-1])
	if line == "" {
		line = strings.TrimSpace(report)
	}
	if line == "" {
		return ""
	}
	if len(line) > 200 {
		line = line[:200] + "..."
	}
	return "; it last wrote: " + line
}
