package metrics_test

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/visionserve/visionserve/internal/metrics"
	"github.com/visionserve/visionserve/internal/modelrepo"
)

func TestModelMetricsFollowEvents(t *testing.T) {
	reg := prometheus.NewRegistry()
	pages := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pages_total", Help: "pages"}, []string{"model", "version", "mode"})
	reg.MustRegister(pages)
	pages.WithLabelValues("ocr-eng", "1", "line").Inc()
	pages.WithLabelValues("ocr-eng", "3", "line").Inc()
	m := metrics.NewModelMetrics(reg, pages)
	at := time.Unix(1_800_000_000, 0)
	expiry := time.Unix(1_900_000_000, 0)
	ev := func(typ modelrepo.EventType, version string, mod func(*modelrepo.Event)) {
		e := modelrepo.Event{Type: typ, Model: "ocr-eng", Version: version, Kind: "ocr-tesseract", Time: at}
		if mod != nil {
			mod(&e)
		}
		m.Observe(e)
	}
	state := func(s modelrepo.State) modelrepo.EventType { return modelrepo.EventType(s) }

	ev(state(modelrepo.StateDiscovered), "1", nil)
	// Every reason exists from the start, at zero, so rate() works.
	if n := testutil.CollectAndCount(m.LoadFailures); n != len(modelrepo.Reasons()) {
		t.Errorf("%d failure series, want %d", n, len(modelrepo.Reasons()))
	}
	ev(state(modelrepo.StateReady), "1", func(e *modelrepo.Event) {
		e.PhasesMS = map[string]float64{"verify": 20, "load": 300, "warmup": 80}
		e.Signer = &modelrepo.Signer{Method: "certificate", NotAfter: expiry}
	})
	ev(modelrepo.EventTraffic, "", func(e *modelrepo.Event) { e.Traffic = map[string]float64{"1": 1} })
	ev(state(modelrepo.StateFailed), "2", func(e *modelrepo.Event) { e.Reason = modelrepo.ReasonUntrustedKey })

	want := `
# HELP visionserve_model_load_failures_total Model versions refused or failed, by reason; the previous version kept serving.
# TYPE visionserve_model_load_failures_total counter
visionserve_model_load_failures_total{model="ocr-eng",reason="untrusted_key"} 1
# HELP visionserve_model_signature_not_after_timestamp_seconds Expiry (Unix time) of the certificate chain that signed each loaded version; alert before it passes.
# TYPE visionserve_model_signature_not_after_timestamp_seconds gauge
visionserve_model_signature_not_after_timestamp_seconds{model="ocr-eng",version="1"} 1.9e+09
# HELP visionserve_model_traffic_weight Share in [0,1] of a model's unpinned requests that each ready version receives.
# TYPE visionserve_model_traffic_weight gauge
visionserve_model_traffic_weight{model="ocr-eng",version="1"} 1
# HELP visionserve_model_version_info 1 for each loaded model version, with its kind and state (ready or draining).
# TYPE visionserve_model_version_info gauge
visionserve_model_version_info{kind="ocr-tesseract",model="ocr-eng",state="ready",version="1"} 1
`
	got := filterNonZero(t, reg)
	for _, line := range strings.Split(strings.TrimSpace(want), "\n") {
		if !strings.HasPrefix(line, "#") && !strings.Contains(got, line) {
			t.Errorf("missing %q in\n%s", line, got)
		}
	}
	if v := testutil.ToFloat64(m.LastLoadSuccess.WithLabelValues("ocr-eng")); v != 0 {
		t.Errorf("last load success %v after a failure", v)
	}
	if n := testutil.CollectAndCount(m.LoadDuration); n != 4 {
		t.Errorf("%d load duration series, want verify, load, warmup, total", n)
	}

	// Swap: 2 ready, 1 drains then unloads; version-labelled series of 1 go.
	ev(state(modelrepo.StateReady), "3", func(e *modelrepo.Event) { e.PhasesMS = map[string]float64{"verify": 1} })
	ev(modelrepo.EventTraffic, "", func(e *modelrepo.Event) { e.Traffic = map[string]float64{"3": 1} })
	ev(state(modelrepo.StateDraining), "1", nil)
	if !strings.Contains(filterNonZero(t, reg), `visionserve_model_version_info{kind="ocr-tesseract",model="ocr-eng",state="draining",version="1"} 1`) {
		t.Error("draining state not shown")
	}
	ev(state(modelrepo.StateUnloaded), "1", nil)
	got = filterNonZero(t, reg)
	for _, gone := range []string{`version="1"`} {
		if strings.Contains(got, gone) {
			t.Errorf("series with %s remain after unload:\n%s", gone, got)
		}
	}
	if n := testutil.CollectAndCount(pages); n != 1 {
		t.Errorf("%d page series after version 1 was unloaded, want version 3's only", n)
	}
	if !strings.Contains(got, `visionserve_model_traffic_weight{model="ocr-eng",version="3"} 1`) {
		t.Errorf("traffic of version 3 missing:\n%s", got)
	}
}

// filterNonZero gathers the registry as text, without zero-valued samples
// and histogram internals.
func filterNonZero(t *testing.T, reg *prometheus.Registry) string {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, mf := range mfs {
		for _, mt := range mf.Metric {
			var v float64
			switch {
			case mt.Gauge != nil:
				v = mt.Gauge.GetValue()
			case mt.Counter != nil:
				v = mt.Counter.GetValue()
			default:
				continue
			}
			if v == 0 {
				continue
			}
			var labels []string
			for _, l := range mt.Label {
				labels = append(labels, l.GetName()+`="`+l.GetValue()+`"`)
			}
			b.WriteString(mf.GetName() + "{" + strings.Join(labels, ",") + "} " + formatFloat(v) + "\n")
		}
	}
	return b.String()
}

func formatFloat(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
