package importer

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestWatcher drops a good and a tampered zip into the folder a server
// watches: the first is published (the same import as the CLI's), the
// second lands in rejected/ with its reason, and both leave the folder.
func TestWatcher(t *testing.T) {
	v := newVendor(t)
	im, repoVerifier, repo := repoImporter(t, Limits{}, v.pub())
	drop := filepath.Join(t.TempDir(), "incoming")
	model := randomBytes(t, 32<<10)
	good := v.layout("model.onnx", model, []byte(detectorConfig), true)
	bad := v.layout("model.onnx", model, []byte(detectorConfig), true)
	bad["signature.sig"] = good["signature.sig"][:10]

	reg := prometheus.NewRegistry()
	w := &Watcher{Importer: im, Dir: drop, Interval: 20 * time.Millisecond, Metrics: NewMetrics(reg)}
	defer start(t, w)()
	// Written elsewhere and renamed in, as the docs say.
	for name, entries := range map[string]map[string][]byte{"detector.zip": good, "broken.zip": bad} {
		tmp := filepath.Join(t.TempDir(), name)
		writeZip(t, tmp, entries, nil)
		waitFor(t, func() bool { _, err := os.Stat(drop); return err == nil })
		must(t, os.Rename(tmp, filepath.Join(drop, name)))
	}
	waitFor(t, func() bool {
		_, e1 := os.Stat(filepath.Join(drop, ImportedDir, "detector.zip"))
		_, e2 := os.Stat(filepath.Join(drop, RejectedDir, "broken.zip.reason"))
		return e1 == nil && e2 == nil
	})
	if _, err := repoVerifier.VerifyPackage(context.Background(), filepath.Join(repo, "detector", "1")); err != nil {
		t.Errorf("the dropped zip was not published as a signed package: %v", err)
	}
	reason, err := os.ReadFile(filepath.Join(drop, RejectedDir, "broken.zip.reason"))
	must(t, err)
	if !strings.HasPrefix(string(reason), "signature_invalid: signature.sig") {
		t.Errorf("reason file %q", reason)
	}
	for _, name := range []string{"detector.zip", "broken.zip"} {
		if _, err := os.Stat(filepath.Join(drop, name)); !os.IsNotExist(err) {
			t.Errorf("%s is still in the drop folder", name)
		}
	}
	if got := testutil.ToFloat64(w.Metrics.Imports.WithLabelValues("imported")); got != 1 {
		t.Errorf("imported = %v", got)
	}
	if got := testutil.ToFloat64(w.Metrics.Imports.WithLabelValues("signature_invalid")); got != 1 {
		t.Errorf("signature_invalid = %v", got)
	}
}

// A rejected zip's reason file appears whole (written beside it and
// renamed into place): whoever sees it, an operator's script or the test
// above, never reads it empty or half written.
func TestWatcherReasonFileAppearsWhole(t *testing.T) {
	v := newVendor(t)
	im, _, _ := repoImporter(t, Limits{}, v.pub())
	drop := filepath.Join(t.TempDir(), "incoming")
	rejected := filepath.Join(drop, RejectedDir)
	must(t, os.MkdirAll(rejected, 0o750))
	fw, err := fsnotify.NewWatcher()
	must(t, err)
	defer fw.Close()
	must(t, fw.Add(rejected))
	bad := v.layout("model.onnx", randomBytes(t, 32<<10), []byte(detectorConfig), true)
	bad["signature.sig"] = bad["signature.sig"][:10]

	w := &Watcher{Importer: im, Dir: drop, Interval: 20 * time.Millisecond}
	defer start(t, w)()
	tmp := filepath.Join(t.TempDir(), "broken.zip")
	writeZip(t, tmp, bad, nil)
	must(t, os.Rename(tmp, filepath.Join(drop, "broken.zip")))
	reason := filepath.Join(rejected, "broken.zip.reason")
	waitFor(t, func() bool { b, err := os.ReadFile(reason); return err == nil && strings.HasSuffix(string(b), "\n") })

	// Every event on rejected/ up to a marker made after the reason was
	// read whole: none may write the reason file where it stands.
	marker := filepath.Join(rejected, "marker")
	must(t, os.WriteFile(marker, nil, 0o600))
	for deadline := time.After(30 * time.Second); ; {
		select {
		case ev := <-fw.Events:
			if ev.Name == reason && ev.Has(fsnotify.Write) {
				t.Errorf("the reason file was written in place (%v): a reader could see it empty", ev)
			}
			if ev.Name == marker {
				return
			}
		case err := <-fw.Errors:
			t.Fatal(err)
		case <-deadline:
			t.Fatal("no event for the marker file")
		}
	}
}

// start runs w until the returned stop is called, which reports Run's error.
func start(t *testing.T, w *Watcher) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	return func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}

// waitFor polls cond until it holds; the bound only stops a broken test.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatal("condition not reached")
}
