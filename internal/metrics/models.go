package metrics

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/visionserve/visionserve/internal/modelrepo"
)

// PhaseTotal is the phase label of a whole load's duration.
const PhaseTotal = "total"

// ModelMetrics are the model repository's collectors. They are fed from
// its lifecycle events (Observe), so every number has an event behind it.
//
// Label values stay bounded: model names come from the repository's
// directories (operator-controlled, validated names), reasons from
// modelrepo.Reasons, phases and states from fixed sets, and series that
// carry a version exist only while that version is loaded.
type ModelMetrics struct {
	LoadDuration      *prometheus.HistogramVec
	LoadFailures      *prometheus.CounterVec
	LastLoadSuccess   *prometheus.GaugeVec
	LastLoadTimestamp *prometheus.GaugeVec
	VersionInfo       *prometheus.GaugeVec
	TrafficShare      *prometheus.GaugeVec
	CertNotAfter      *prometheus.GaugeVec

	mu        sync.Mutex
	known     map[string]bool     // models whose failure counters exist
	shares    map[string][]string // versions with a share series, by model
	versioned []VersionedSeries
}

// VersionedSeries is a collector with model and version labels (the
// pipelines' per-version histograms and counters); ModelMetrics deletes a
// version's series when the version is unloaded, so that label values
// stay bounded by what is loaded however many versions come and go.
type VersionedSeries interface {
	DeletePartialMatch(labels prometheus.Labels) int
}

// NewModelMetrics creates the collectors and registers them with reg.
// versioned are other collectors labelled by model and version whose series
// end with the version.
func NewModelMetrics(reg prometheus.Registerer, versioned ...VersionedSeries) *ModelMetrics {
	m := &ModelMetrics{
		LoadDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "visionserve_model_load_duration_seconds",
			Help:    "Duration of each phase of successful model version loads (verify, check, load, warmup, total).",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 16),
		}, []string{"model", "phase"}),
		LoadFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "visionserve_model_load_failures_total",
			Help: "Model versions refused or failed, by reason; the previous version kept serving.",
		}, []string{"model", "reason"}),
		LastLoadSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "visionserve_model_last_load_success",
			Help: "1 if the model's last load attempt succeeded, 0 if it failed.",
		}, []string{"model"}),
		LastLoadTimestamp: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "visionserve_model_last_load_timestamp_seconds",
			Help: "Unix time of the model's last load attempt that finished.",
		}, []string{"model"}),
		VersionInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "visionserve_model_version_info",
			Help: "1 for each loaded model version, with its kind and state (ready or draining).",
		}, []string{"model", "version", "kind", "state"}),
		TrafficShare: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "visionserve_model_traffic_weight",
			Help: "Share in [0,1] of a model's unpinned requests that each ready version receives.",
		}, []string{"model", "version"}),
		CertNotAfter: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "visionserve_model_signature_not_after_timestamp_seconds",
			Help: "Expiry (Unix time) of the certificate chain that signed each loaded version; alert before it passes.",
		}, []string{"model", "version"}),
		known:     map[string]bool{},
		shares:    map[string][]string{},
		versioned: versioned,
	}
	reg.MustRegister(m.LoadDuration, m.LoadFailures, m.LastLoadSuccess, m.LastLoadTimestamp,
		m.VersionInfo, m.TrafficShare, m.CertNotAfter)
	return m
}

// Observe updates the collectors from one repository event; it is the
// repository's Observer.
func (m *ModelMetrics) Observe(e modelrepo.Event) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.known[e.Model] {
		m.known[e.Model] = true
		for _, r := range modelrepo.Reasons() {
			m.LoadFailures.WithLabelValues(e.Model, string(r))
		}
	}
	ts := float64(e.Time.UnixNano()) / 1e9
	switch e.Type {
	case modelrepo.EventType(modelrepo.StateReady):
		total := 0.0
		for phase, ms := range e.PhasesMS {
			m.LoadDuration.WithLabelValues(e.Model, phase).Observe(ms / 1000)
			total += ms
		}
		m.LoadDuration.WithLabelValues(e.Model, PhaseTotal).Observe(total / 1000)
		m.LastLoadSuccess.WithLabelValues(e.Model).Set(1)
		m.LastLoadTimestamp.WithLabelValues(e.Model).Set(ts)
		m.VersionInfo.WithLabelValues(e.Model, e.Version, e.Kind, string(modelrepo.StateReady)).Set(1)
		if e.Signer != nil && !e.Signer.NotAfter.IsZero() {
			m.CertNotAfter.WithLabelValues(e.Model, e.Version).Set(float64(e.Signer.NotAfter.Unix()))
		}
	case modelrepo.EventType(modelrepo.StateFailed):
		m.LoadFailures.WithLabelValues(e.Model, string(e.Reason)).Inc()
		m.LastLoadSuccess.WithLabelValues(e.Model).Set(0)
		m.LastLoadTimestamp.WithLabelValues(e.Model).Set(ts)
	case modelrepo.EventType(modelrepo.StateDraining):
		m.VersionInfo.DeleteLabelValues(e.Model, e.Version, e.Kind, string(modelrepo.StateReady))
		m.VersionInfo.WithLabelValues(e.Model, e.Version, e.Kind, string(modelrepo.StateDraining)).Set(1)
	case modelrepo.EventType(modelrepo.StateUnloaded), modelrepo.EventType(modelrepo.StateRemoved):
		m.VersionInfo.DeletePartialMatch(prometheus.Labels{"model": e.Model, "version": e.Version})
		m.CertNotAfter.DeleteLabelValues(e.Model, e.Version)
		for _, v := range m.versioned {
			v.DeletePartialMatch(prometheus.Labels{"model": e.Model, "version": e.Version})
		}
	case modelrepo.EventTraffic:
		for _, v := range m.shares[e.Model] {
			m.TrafficShare.DeleteLabelValues(e.Model, v)
		}
		m.shares[e.Model] = m.shares[e.Model][:0]
		for v, share := range e.Traffic {
			m.TrafficShare.WithLabelValues(e.Model, v).Set(share)
			m.shares[e.Model] = append(m.shares[e.Model], v)
		}
	}
}
