package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/visionserve/visionserve/internal/bench"
	"github.com/visionserve/visionserve/internal/controller/autoscale"
	"github.com/visionserve/visionserve/internal/controller/metricsource"
	"github.com/visionserve/visionserve/internal/testenv"
)

// TestE2EAutoscalerFollowsALoadStep: the autoscaler's metric source is
// three real visionserve processes on 127.0.0.1, loaded by real
// `visionserve bench` processes. The operator's own scraper and decision
// function (the code the reconciler runs, minus Kubernetes) must follow a
// load step up and back down without flapping: the recommended replica
// count rises to what the offered load needs, holds, and returns to the
// minimum, changing direction once.
//
// Only the sequence of recommendations is asserted. Ticks are paced by the
// wall clock (rates need real time) but no duration is checked.
func TestE2EAutoscalerFollowsALoadStep(t *testing.T) {
	if testing.Short() {
		t.Skip("about a minute of load; skipped with -short")
	}
	data := filepath.Join(testenv.Shared(t, "data/ocr/lines"), "book/0005")
	const (
		servers     = 3
		ratePerPod  = 3.0 // req/s each bench process offers its server
		qpsPerPod   = 2.0 // the autoscaler's target
		loadSeconds = 20
	)
	var pods []*server
	for range servers {
		pods = append(pods, startServer(t, "--workers", "1", "--queue", "32"))
	}
	targets := make([]metricsource.Target, len(pods))
	for i, s := range pods {
		targets[i] = metricsource.Target{Pod: fmt.Sprintf("pod-%d", i), BaseURL: s.url}
	}

	p := autoscale.DefaultParams(1, 6, qpsPerPod)
	p.ConfidenceFloor = 0.3 // read confidence from the real servers; the lines are well above it
	p.ScaleDownStabilization = 5 * time.Second
	p.ConfidenceCooldown = 4 * time.Second
	scaler := autoscale.New(p)
	window := autoscale.NewWindow(4 * time.Second)
	scraper := &metricsource.Scraper{}
	current := int32(1)

	type tick struct {
		phase string
		d     autoscale.Decision
	}
	var ticks []tick
	step := func(phase string) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		samples, err := scraper.ScrapeAll(ctx, targets)
		if err != nil {
			t.Logf("scrape: %v", err)
		}
		for _, s := range samples {
			window.Add(s)
		}
		d := scaler.Decide(window.Observe(time.Now(), servers), current)
		current = d.Desired
		ticks = append(ticks, tick{phase, d})
		t.Logf("%-5s %s", phase, d.Message())
	}

	// Idle: nothing but the minimum.
	for range 6 {
		step("idle")
		time.Sleep(time.Second)
	}

	// The step up: one open-loop bench per server.
	type result struct {
		rep bench.Report
		err error
	}
	results := make(chan result, servers)
	for _, s := range pods {
		go func() {
			cmd := exec.Command(binary, "bench", "--url", s.url+"/v1/ocr", "--data", data,
				"--rate", fmt.Sprint(ratePerPod), "--duration", fmt.Sprintf("%ds", loadSeconds), "--concurrency", "16", "--json", "--quiet")
			var out, errOut bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &errOut
			err := cmd.Run()
			var r result
			if err != nil {
				r.err = fmt.Errorf("bench: %v: %s", err, errOut.String())
			} else {
				r.err = json.Unmarshal(out.Bytes(), &r.rep)
			}
			results <- r
		}()
	}
	var reports []bench.Report
	for len(reports) < servers {
		step("load")
		select {
		case r := <-results:
			if r.err != nil {
				t.Fatal(r.err)
			}
			reports = append(reports, r.rep)
		case <-time.After(time.Second):
		}
	}
	offered := 0.0
	for _, r := range reports {
		offered += float64(r.Requests) / r.Duration
		if r.Status["200"] < r.Requests*9/10 {
			t.Errorf("the servers failed under the load: %+v", r.Status)
		}
	}

	// The step down: back to the minimum, then a few quiet ticks more.
	for i, atMin := 0, 0; atMin < 3; i++ {
		if i > 40 {
			t.Fatalf("the recommendation did not come back to the minimum after the load stopped")
		}
		step("quiet")
		if current == p.MinReplicas {
			atMin++
		}
		time.Sleep(time.Second)
	}

	// The sequence.
	var seq []int32
	var peak int32
	var sawConfidence bool
	for _, tk := range ticks {
		seq = append(seq, tk.d.Desired)
		peak = max(peak, tk.d.Desired)
		if tk.phase == "idle" && tk.d.Desired != p.MinReplicas {
			t.Errorf("idle: recommended %d (%s)", tk.d.Desired, tk.d.Message())
		}
		if tk.phase == "load" && tk.d.HasConfidence {
			sawConfidence = true
			if tk.d.SmoothedConfidence < p.ConfidenceFloor || tk.d.SmoothedConfidence > 1 {
				t.Errorf("confidence read from the servers: %.3f", tk.d.SmoothedConfidence)
			}
		}
	}
	t.Logf("offered %.1f req/s; recommendations %v", offered, seq)
	if !sawConfidence {
		t.Error("no decision during the load saw a mean confidence: the confidence series were not read")
	}
	want := int32(math.Ceil(offered/qpsPerPod - 1e-9))
	if peak < want-1 || peak > min(want+1, p.MaxReplicas) {
		t.Errorf("peak recommendation %d; the offered %.1f req/s at %.0f per replica needs %d", peak, offered, qpsPerPod, want)
	}
	if peak <= p.MinReplicas {
		t.Fatal("the recommendation never rose")
	}
	// No flapping: the count only rises, then only falls.
	changes := 0
	dir := 0
	for i := 1; i < len(seq); i++ {
		d := int(seq[i]) - int(seq[i-1])
		if d == 0 {
			continue
		}
		s := 1
		if d < 0 {
			s = -1
		}
		if dir != 0 && s != dir {
			changes++
		}
		dir = s
	}
	if changes != 1 {
		t.Errorf("the recommendation changed direction %d times (want once, up then down): %v", changes, seq)
	}
	if !strings.Contains(ticks[len(ticks)-1].d.Message(), "pods 3/3 reporting") {
		t.Errorf("not every server reported at the end: %s", ticks[len(ticks)-1].d.Message())
	}
}
