package app_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/visionserve/visionserve/internal/config"
	"github.com/visionserve/visionserve/internal/modelrepo"
	"github.com/visionserve/visionserve/internal/modelrepo/manifest"
	"github.com/visionserve/visionserve/internal/modelrepo/repotest"
)

// A server started with a traffic file serves by its weights from the
// first request: version 1 answers although version 2, the newest, is
// ready too (what a pod started after a canary's rollback must do). A
// model the repository lacks is skipped.
func TestIntegrationTrafficFileAtStart(t *testing.T) {
	traffic := filepath.Join(t.TempDir(), "traffic.json")
	if err := os.WriteFile(traffic, []byte(`{"ocr-eng": {"weights": {"1": 100}}, "ocr-deu": {"weights": {"3": 100}}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, func(c *config.Config) {
		c.Repository.Policy = modelrepo.Policy{Latest: 2}
		c.Repository.TrafficFile = traffic
		// version 2 is on disk before the start, as on a pod's model volume
		key := repotest.NewKey(t)
		c.Repository.Trust.Keys = append(c.Repository.Trust.Keys, key.PublicPath)
		repotest.Publish(t, c.Repository.Dir, repotest.Spec{Name: "ocr-eng", Version: 2, Kind: manifest.KindOCRTesseract,
			Runtime: map[string]any{"lang": "eng"}, Files: repotest.Tessdata(t), Signer: key.Signer})
	})
	var st modelrepo.ModelStatus
	f.getJSON("/v1/models/ocr-eng", &st)
	ready := 0
	for _, v := range st.Versions {
		if v.State == modelrepo.StateReady {
			ready++
		}
	}
	if ready != 2 {
		t.Fatalf("want versions 1 and 2 ready, got %+v", st.Versions)
	}
	for range 5 {
		if status, v, err := f.ocr("", ""); err != nil || v != "1" {
			t.Fatalf("answered by version %q (status %d, %v), want 1: the traffic file's weights", v, status, err)
		}
	}
}
