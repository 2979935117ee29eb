package e2e

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/visionserve/visionserve/internal/testenv"
)

// TestE2ECheapTierUnderQueueing: with one worker and a burst of page
// requests, requests start while others queue, so the server reads them in
// the model's cheaper tier and says so in the response and the metrics;
// once the queue is empty, the next request is read at full quality again.
func TestE2ECheapTierUnderQueueing(t *testing.T) {
	page := filepath.Join(testenv.Shared(t, "data/ocr/pages"), "phototest.tif")
	cfgFile := filepath.Join(t.TempDir(), "visionserve.yaml")
	if err := os.WriteFile(cfgFile, []byte(`
ocr:
  tier: {enter_queue: 2, exit_queue: 0, sustain: 0s}
models:
  - {name: ocr-eng, version: "1", engine: tesseract, languages: eng, cheap_tier: {max_side: 400, skip_orientation: true}}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	s := startServer(t, "--config", cfgFile, "--workers", "1", "--queue", "32")
	type answer struct {
		Tier       string  `json:"tier"`
		Confidence float64 `json:"confidence"`
	}
	post := func() answer {
		code, body, err := postFile(http.DefaultClient, s.url+"/v1/ocr", page)
		if err != nil || code != http.StatusOK {
			t.Errorf("status %d, %v: %s", code, err, body)
			return answer{}
		}
		var a answer
		if err := json.Unmarshal(body, &a); err != nil {
			t.Error(err)
		}
		return a
	}
	if a := post(); a.Tier != "full" {
		t.Fatalf("an idle server answered in tier %q", a.Tier)
	}
	// A burst in two waves: the second starts while the first queues.
	var mu sync.Mutex
	tiers := map[string]int{}
	var wg sync.WaitGroup
	for wave := range 2 {
		for range 5 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				a := post()
				mu.Lock()
				tiers[a.Tier]++
				mu.Unlock()
			}()
		}
		if wave == 0 {
			time.Sleep(300 * time.Millisecond) // lets the first wave queue; nothing is timed
		}
	}
	wg.Wait()
	if tiers["cheap"] == 0 {
		t.Fatalf("no request of the burst was read in the cheap tier: %v", tiers)
	}
	if got := s.metric(t, `visionserve_ocr_tier_requests_total{model="ocr-eng",tier="cheap"}`); got != float64(tiers["cheap"]) {
		t.Errorf("metric counts %v cheap requests, responses said %d", got, tiers["cheap"])
	}
	if a := post(); a.Tier != "full" {
		t.Errorf("after the burst the server still answered in tier %q", a.Tier)
	}
}
