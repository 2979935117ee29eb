package modelcheck

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the isolated checks' collectors.
type Metrics struct {
	Checks   *prometheus.CounterVec
	Duration prometheus.Histogram
	PeakRSS  prometheus.Gauge
}

// NewMetrics creates the collectors and registers them with reg; every
// result label value exists from the start, at 0.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Checks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "visionserve_model_checks_total",
			Help: "Isolated checks of model versions (a child process loads and warms up each new version first), by result: passed, refused, crashed, out_of_memory, timeout, error.",
		}, []string{"result"}),
		Duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "visionserve_model_check_duration_seconds",
			Help:    "Duration of isolated model checks, from the child's start to its end.",
			Buckets: prometheus.ExponentialBuckets(0.05, 2, 13),
		}),
		PeakRSS: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "visionserve_model_check_peak_rss_bytes",
			Help: "Peak resident size of the last isolated check's process: what one engine of the version needed.",
		}),
	}
	for _, o := range Outcomes() {
		m.Checks.WithLabelValues(string(o))
	}
	reg.MustRegister(m.Checks, m.Duration, m.PeakRSS)
	return m
}

func (m *Metrics) observe(res Result) {
	m.Checks.WithLabelValues(string(res.Outcome)).Inc()
	m.Duration.Observe(res.Duration.Seconds())
	if res.PeakRSS > 0 {
		m.PeakRSS.Set(float64(res.PeakRSS))
	}
}
