package jobs

import "github.com/prometheus/client_golang/prometheus"

// Metrics of the job system; every label is a fixed enum.
type Metrics struct {
	Submitted    prometheus.Counter
	Finished     *prometheus.CounterVec // state
	Active       prometheus.Gauge
	PendingBytes prometheus.Gauge
	KeptBytes    prometheus.Gauge
	Evictions    prometheus.Counter
	Uploads      prometheus.Gauge
	Pages        *prometheus.CounterVec // result: ok, failed
	Webhooks     *prometheus.CounterVec // outcome: delivered, retry, gave_up
}

// NewMetrics creates and registers the collectors.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Submitted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "visionserve_jobs_submitted_total", Help: "Jobs accepted.",
		}),
		Finished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "visionserve_jobs_finished_total", Help: "Jobs finished, by final state (succeeded, failed, canceled).",
		}, []string{"state"}),
		Active: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "visionserve_jobs_unfinished", Help: "Jobs queued or running.",
		}),
		PendingBytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "visionserve_jobs_pending_bytes", Help: "Input bytes stored for unfinished jobs.",
		}),
		KeptBytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "visionserve_jobs_kept_input_bytes", Help: "Input bytes kept for finished jobs (jobs.keep_inputs), bounded by jobs.max_kept_bytes.",
		}),
		Evictions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "visionserve_jobs_kept_input_evictions_total", Help: "Finished jobs whose kept inputs this process deleted to stay within jobs.max_kept_bytes.",
		}),
		Uploads: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "visionserve_job_uploads_in_progress", Help: "Job submissions being read by this process.",
		}),
		Pages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "visionserve_job_pages_total", Help: "Job pages processed, by result (ok, failed).",
		}, []string{"result"}),
		Webhooks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "visionserve_webhook_attempts_total", Help: "Webhook delivery attempts, by outcome (delivered, retry, gave_up).",
		}, []string{"outcome"}),
	}
	reg.MustRegister(m.Submitted, m.Finished, m.Active, m.PendingBytes, m.KeptBytes, m.Evictions, m.Uploads, m.Pages, m.Webhooks)
	return m
}

// webhooks is the webhook outcome counter; nil without metrics.
func (m *Metrics) webhooks() *prometheus.CounterVec {
	if m == nil {
		return nil
	}
	return m.Webhooks
}

// uploads is the gauge of uploads being read; nil without metrics.
func (m *Metrics) uploads() prometheus.Gauge {
	if m == nil {
		return nil
	}
	return m.Uploads
}
