package modelrepo

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/visionserve/visionserve/internal/atomicfile"
)

// FailuresFile is the name of the failure memory in Options.StateDir.
const FailuresFile = "failed-versions.json"

// maxRemembered bounds the failure memory; the oldest entries go first.
const maxRemembered = 1000

// Remembered is a version that failed to load or warm up, as the failure
// memory keeps it: the version, the digest of the files that failed
// (Package.Digest) and why.
type Remembered struct {
	Model   string    `json:"model"`
	Version int       `json:"version"`
	Digest  string    `json:"digest"`
	Reason  Reason    `json:"reason"`
	Phase   string    `json:"phase"`
	Detail  string    `json:"detail"`
	Time    time.Time `json:"time"`
}

// memory remembers the versions whose load or warm-up failed, keyed by
// model, version and the digest of their files, in a JSON file that
// survives restarts. A remembered version is not loaded (nor checked)
// again until its files change or an operator asks for it (Load): a model
// that crashes or hangs its engine would otherwise cost a check timeout at
// every start. Failures that depend on anything but the files (signature,
// trust, an I/O error) are not remembered.
//
// The file is only a cache: unreadable, it is ignored (every version is
// checked once more); unwritable, failures are remembered for the
// process's life.
type memory struct {
	path string // "" keeps it in the process only
	log  *slog.Logger

	mu      sync.Mutex
	entries []Remembered
	warned  bool
}

type memoryFile struct {
	Failures []Remembered `json:"failures"`
}

func newMemory(dir string, log *slog.Logger) *memory {
	m := &memory{log: log}
	if dir == "" {
		return m
	}
	m.path = filepath.Join(dir, FailuresFile)
	data, err := os.ReadFile(m.path)
	if errors.Is(err, fs.ErrNotExist) {
		return m
	}
	var f memoryFile
	if err == nil {
		err = json.Unmarshal(data, &f)
	}
	if err != nil {
		log.Warn("cannot read the remembered failed versions; each version is checked again", "path", m.path, "err", err)
		return m
	}
	for _, e := range f.Failures {
		if e.Reason.Valid() && ValidName(e.Model) && e.Version > 0 {
			e.Detail = oneLine(e.Detail, 3*maxDetail)
			m.entries = append(m.entries, e)
		}
	}
	if len(m.entries) > maxRemembered {
		m.entries = m.entries[len(m.entries)-maxRemembered:]
	}
	return m
}

// lookup returns the failure remembered for these very files, if any.
func (m *memory) lookup(model string, version int, digest string) (Remembered, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, e := range m.entries {
		if e.Model == model && e.Version == version && e.Digest == digest {
			return e, true
		}
	}
	return Remembered{}, false
}

// remember records a failure, replacing any earlier one of the version.
func (m *memory) remember(e Remembered) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.dropLocked(e.Model, e.Version)
	m.entries = append(m.entries, e)
	if len(m.entries) > maxRemembered {
		m.entries = slices.Delete(m.entries, 0, len(m.entries)-maxRemembered)
	}
	m.saveLocked()
}

// forget drops what is remembered of a version (it loaded, or an operator
// asked to try it again).
func (m *memory) forget(model string, version int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.dropLocked(model, version) {
		m.saveLocked()
	}
}

func (m *memory) dropLocked(model string, version int) bool {
	n := len(m.entries)
	m.entries = slices.DeleteFunc(m.entries, func(e Remembered) bool { return e.Model == model && e.Version == version })
	return len(m.entries) != n
}

// saveLocked writes the file atomically, so that a crash while writing
// never leaves half a file.
func (m *memory) saveLocked() {
	if m.path == "" {
		return
	}
	data, err := json.MarshalIndent(memoryFile{Failures: m.entries}, "", "  ")
	if err == nil {
		err = os.MkdirAll(filepath.Dir(m.path), 0o755)
	}
	if err == nil {
		err = atomicfile.Write(m.path, data, 0o644)
	}
	if err != nil && !m.warned {
		m.warned = true
		m.log.Warn("cannot save the remembered failed versions; they are remembered until the process ends (set repository.state_dir to a writable directory)",
			"path", m.path, "err", err)
	}
}

// error is the failure a remembered version fails with.
func (e Remembered) error() error {
	return NewError(e.Reason, "", fmt.Sprintf("remembered from %s with the same files (load it through the admin API, or publish changed files, to try again): %s",
		e.Time.UTC().Format(time.RFC3339), e.Detail))
}

// remembers reports whether a failure of this reason in this phase is the
// files' doing, and so worth remembering.
func remembers(phase string, reason Reason) bool {
	return phase != PhaseVerify && (reason == ReasonLoadError || reason == ReasonWarmupError)
}
