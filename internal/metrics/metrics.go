// Package metrics constructs the server's Prometheus collectors. Nothing is
// registered globally: New takes a Registerer, so tests use a fresh
// registry and an embedding program chooses its own.
//
// Label values are bounded by construction: routes are the server's own
// patterns, stages and rejection reasons are fixed enums, and model names
// and versions come from the configured models, never from a request.
//
// The autoscaler reads two series from every pod:
//
//	visionserve_http_requests_total                 QPS (rate over a window)
//	visionserve_prediction_confidence_{sum,count}   mean confidence per model
package metrics

import (
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/visionserve/visionserve/internal/sched"
)

// Stage names, the values of the "stage" label.
const (
	StageDecode     = "decode"
	StagePreprocess = "preprocess"
	StageRecognize  = "recognize"
	StageTotal      = "total"
)

// Metrics holds every collector the server updates.
type Metrics struct {
	Requests        *prometheus.CounterVec
	RequestDuration *prometheus.HistogramVec
	InFlight        prometheus.Gauge
	Stage           *prometheus.HistogramVec
	QueueWaitTime   prometheus.Histogram
	QueueLength     prometheus.Gauge
	WorkersBusy     prometheus.Gauge
	Workers         prometheus.Gauge
	QueueCapacity   prometheus.Gauge
	Rejections      *prometheus.CounterVec
	// BodyMemory is the bytes of request bodies held now, of
	// BodyMemoryCapacity (server.body_memory).
	BodyMemory         prometheus.Gauge
	BodyMemoryCapacity prometheus.Gauge
	Confidence         *prometheus.HistogramVec
	Pages              *prometheus.CounterVec
	Info               *prometheus.GaugeVec
	// Tiers counts OCR requests by the quality tier that read them.
	Tiers *prometheus.CounterVec
	// EngineCallsStuck counts OCR engine calls still running long after
	// their request's deadline (the request answered at the deadline): each
	// one's engine was quarantined and replaced.
	EngineCallsStuck prometheus.Counter
}

// latencyBuckets span 1 ms to about 65 s: OCR of a line is tens of ms, a
// large multi-page TIFF tens of seconds.
var latencyBuckets = prometheus.ExponentialBuckets(0.001, 2, 17)

// New creates the collectors and registers them with reg.
func New(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "visionserve_http_requests_total",
			Help: "HTTP requests completed, by route pattern, method and status code.",
		}, []string{"route", "method", "code"}),
		RequestDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "visionserve_http_request_duration_seconds",
			Help:    "Time from request start to the last byte written, by route pattern.",
			Buckets: latencyBuckets,
		}, []string{"route"}),
		InFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "visionserve_http_requests_in_flight",
			Help: "HTTP requests being served now.",
		}),
		Stage: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "visionserve_stage_duration_seconds",
			Help:    "Time spent per pipeline stage per request (decode, preprocess, recognize, total).",
			Buckets: latencyBuckets,
		}, []string{"model", "version", "stage"}),
		QueueWaitTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "visionserve_queue_wait_seconds",
			Help:    "Time an admitted request waited for a worker.",
			Buckets: latencyBuckets,
		}),
		QueueLength: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "visionserve_queue_length",
			Help: "Admitted requests waiting for a worker.",
		}),
		WorkersBusy: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "visionserve_workers_busy",
			Help: "Workers running a request now.",
		}),
		Workers: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "visionserve_workers",
			Help: "Size of the worker pool (requests that run at once).",
		}),
		QueueCapacity: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "visionserve_queue_capacity",
			Help: "Requests that may wait for a worker before new ones are refused.",
		}),
		Rejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "visionserve_rejected_requests_total",
			Help: "Requests refused before running, by reason (" + strings.Join(sched.RejectReasons, ", ") + ").",
		}, []string{"reason"}),
		BodyMemory: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "visionserve_body_memory_bytes",
			Help: "Bytes of request bodies held now: being read, waiting for a worker or running.",
		}),
		BodyMemoryCapacity: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "visionserve_body_memory_capacity_bytes",
			Help: "Bytes of request bodies the server holds at most (server.body_memory).",
		}),
		Confidence: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "visionserve_prediction_confidence",
			Help:    "Confidence of each prediction (an OCR page with text), in [0,1]; sum/count is the mean the autoscaler reads.",
			Buckets: []float64{0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.98, 1},
		}, []string{"model", "version"}),
		Pages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "visionserve_ocr_pages_total",
			Help: "Pages recognised, by model, version and chosen segmentation mode.",
		}, []string{"model", "version", "mode"}),
		Tiers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "visionserve_ocr_tier_requests_total",
			Help: "OCR requests by model and the quality tier that read them (full, or cheap under sustained queueing).",
		}, []string{"model", "tier"}),
		EngineCallsStuck: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "visionserve_engine_calls_stuck_total",
			Help: "OCR engine calls still running long after their request's deadline (which answered in time); each engine was quarantined and replaced.",
		}),
		Info: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "visionserve_build_info",
			Help: "Always 1; labels say which visionserve and engine versions run.",
		}, []string{"version", "goversion", "tesseract"}),
	}
	reg.MustRegister(m.Requests, m.RequestDuration, m.InFlight, m.Stage, m.QueueWaitTime,
		m.QueueLength, m.WorkersBusy, m.Workers, m.QueueCapacity, m.Rejections, m.BodyMemory, m.BodyMemoryCapacity, m.Confidence, m.Pages, m.Info, m.Tiers,
		m.EngineCallsStuck)
	// Every reason from the start, so that a query over the counter
	// answers 0 before the first refusal, not "no data".
	for _, reason := range sched.RejectReasons {
		m.Rejections.WithLabelValues(reason)
	}
	return m
}

// QueueWait implements sched.Observer.
func (m *Metrics) QueueWait(d time.Duration) { m.QueueWaitTime.Observe(d.Seconds()) }

// Queued implements sched.Observer.
func (m *Metrics) Queued(n int) { m.QueueLength.Set(float64(n)) }

// Running implements sched.Observer.
func (m *Metrics) Running(n int) { m.WorkersBusy.Set(float64(n)) }

// Rejected implements sched.Observer.
func (m *Metrics) Rejected(reason string) { m.Rejections.WithLabelValues(reason).Inc() }

// BodyBytes implements sched.Observer.
func (m *Metrics) BodyBytes(n int64) { m.BodyMemory.Set(float64(n)) }
