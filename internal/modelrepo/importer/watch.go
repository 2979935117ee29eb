package importer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/visionserve/visionserve/internal/atomicfile"
)

// Subdirectories of a drop folder where processed zips go.
const (
	ImportedDir = "imported"
	RejectedDir = "rejected"
)

// Metrics count the drop folder's imports by result: "imported" or the
// refusal's reason (a bounded set: Reasons and modelrepo.Reasons).
type Metrics struct {
	Imports *prometheus.CounterVec
}

// NewMetrics registers the import metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{Imports: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "visionserve_model_imports_total",
		Help: "Zips taken from the import drop folder, by result: imported, or the reason they were rejected.",
	}, []string{"result"})}
	reg.MustRegister(m.Imports)
	return m
}

// Watcher imports every zip that appears in a drop folder, with the same
// Importer as `visionserve model import`. A zip is taken once its size and
// modification time have not changed for one settle period (so a copy in
// progress is not read; renaming a finished file in is better still), then
// moved to imported/ or to rejected/ with a NAME.reason file holding the
// one-line refusal. Names starting with "." are ignored.
type Watcher struct {
	Importer *Importer
	// Dir is the drop folder.
	Dir string
	// Interval is how often the folder is listed besides the filesystem
	// watch; it is also the settle period.
	Interval time.Duration
	Log      *slog.Logger
	Metrics  *Metrics // optional
}

// Run watches until ctx ends. It fails only when the drop folder cannot
// be created or listed at start.
func (w *Watcher) Run(ctx context.Context) error {
	log := w.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "import")
	for _, d := range []string{w.Dir, filepath.Join(w.Dir, ImportedDir), filepath.Join(w.Dir, RejectedDir)} {
		if err := os.MkdirAll(d, 0o750); err != nil {
			return fmt.Errorf("import drop folder: %w", err)
		}
	}
	if _, err := os.ReadDir(w.Dir); err != nil {
		return fmt.Errorf("import drop folder: %w", err)
	}
	interval := w.Interval
	if interval <= 0 {
		interval = 5 * time.Second
	}
	wake := make(chan struct{}, 1)
	if fw, err := fsnotify.NewWatcher(); err == nil {
		defer fw.Close()
		if err := fw.Add(w.Dir); err == nil {
			go func() {
				for {
					select {
					case _, ok := <-fw.Events:
						if !ok {
							return
						}
						select {
						case wake <- struct{}{}:
						default:
						}
					case _, ok := <-fw.Errors:
						if !ok {
							return
						}
					}
				}
			}()
		}
	}
	log.Info("watching the import drop folder", "dir", w.Dir, "interval", interval)
	seen := map[string]stamp{}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		w.scan(ctx, log, seen, interval)
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		case <-wake:
		}
	}
}

// stamp is what a zip looked like when last listed, and since when.
type stamp struct {
	size  int64
	mtime time.Time
	since time.Time
}

// scan imports the zips that have settled.
func (w *Watcher) scan(ctx context.Context, log *slog.Logger, seen map[string]stamp, settle time.Duration) {
	entries, err := os.ReadDir(w.Dir)
	if err != nil {
		log.Warn("cannot list the import drop folder", "dir", w.Dir, "err", err)
		return
	}
	now := time.Now()
	present := map[string]bool{}
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") || !strings.EqualFold(filepath.Ext(name), ".zip") || !e.Type().IsRegular() {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue
		}
		present[name] = true
		cur := stamp{size: info.Size(), mtime: info.ModTime(), since: now}
		prev, ok := seen[name]
		if !ok || prev.size != cur.size || !prev.mtime.Equal(cur.mtime) {
			seen[name] = cur
			continue
		}
		if now.Sub(prev.since) < settle {
			continue
		}
		delete(seen, name)
		if ctx.Err() != nil {
			return
		}
		w.importOne(ctx, log, name)
	}
	for name := range seen {
		if !present[name] {
			delete(seen, name)
		}
	}
}

// importOne imports one zip and files it away with its result.
func (w *Watcher) importOne(ctx context.Context, log *slog.Logger, name string) {
	src := filepath.Join(w.Dir, name)
	res, err := w.Importer.Import(ctx, Source{Path: src})
	if errors.Is(err, context.Canceled) && ctx.Err() != nil {
		return // shutting down: the zip stays for the next start
	}
	result := "imported"
	dest := filepath.Join(w.Dir, ImportedDir, name)
	if err != nil {
		result = ReasonOf(err)
		dest = filepath.Join(w.Dir, RejectedDir, name)
		log.Warn("import refused", "zip", name, "reason", result, "err", err)
	} else {
		log.Info("imported", "zip", name, "model", res.Manifest.Name, "version", res.Manifest.Version, "kind", res.Manifest.Kind, "dir", res.Dir)
	}
	if w.Metrics != nil {
		w.Metrics.Imports.WithLabelValues(result).Inc()
	}
	dest = unusedName(dest)
	if rerr := os.Rename(src, dest); rerr != nil {
		log.Error("cannot move a processed zip out of the drop folder; it will be imported again", "zip", name, "err", rerr)
		return
	}
	if err != nil {
		// The error is one line already; the file says why for whoever
		// looks in rejected/, and appears whole (renamed into place), so
		// whoever sees it never reads it empty.
		_ = atomicfile.Write(dest+".reason", []byte(err.Error()+"\n"), 0o640)
	}
}

// unusedName returns p, or p with a numeric suffix when p exists.
func unusedName(p string) string {
	if _, err := os.Lstat(p); err != nil {
		return p
	}
	ext := filepath.Ext(p)
	for i := 2; ; i++ {
		q := fmt.Sprintf("%s.%d%s", strings.TrimSuffix(p, ext), i, ext)
		if _, err := os.Lstat(q); err != nil {
			return q
		}
	}
}
