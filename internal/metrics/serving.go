package metrics

import (
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
)

// Serving holds the collectors of the gRPC transport and of dynamic
// batching. Label values are bounded: gRPC methods are the server's own,
// codes are gRPC's fixed set, models come from the configuration.
type Serving struct {
	GRPCRequests *prometheus.CounterVec
	GRPCDuration *prometheus.HistogramVec
	// GRPCRefused counts calls refused when their headers arrived, before
	// their message was read (GRPCRequests never sees them).
	GRPCRefused *prometheus.CounterVec
	BatchRows   *prometheus.HistogramVec
	BatchSize   *prometheus.HistogramVec
}

// NewServing creates the collectors and registers them with reg.
func NewServing(reg prometheus.Registerer) *Serving {
	s := &Serving{
		GRPCRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "visionserve_grpc_requests_total",
			Help: "gRPC calls completed, by full method and status code.",
		}, []string{"method", "code"}),
		GRPCDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "visionserve_grpc_request_duration_seconds",
			Help:    "Time from a gRPC call's start to its status, by full method.",
			Buckets: latencyBuckets,
		}, []string{"method"}),
		GRPCRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "visionserve_grpc_refused_calls_total",
			Help: "gRPC calls refused before their message was read, by reason (" + strings.Join(GRPCRefusedReasons, ", ") + ").",
		}, []string{"reason"}),
		BatchRows: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "visionserve_batch_rows",
			Help:    "Rows (first-dimension entries) per batched model run, by model.",
			Buckets: []float64{1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64},
		}, []string{"model", "version"}),
		BatchSize: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "visionserve_batch_requests",
			Help:    "Requests joined in one batched model run, by model.",
			Buckets: []float64{1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64},
		}, []string{"model", "version"}),
	}
	reg.MustRegister(s.GRPCRequests, s.GRPCDuration, s.GRPCRefused, s.BatchRows, s.BatchSize)
	for _, reason := range GRPCRefusedReasons {
		s.GRPCRefused.WithLabelValues(reason)
	}
	return s
}

// GRPCRefusedReasons are the values of the reason label of
// visionserve_grpc_refused_calls_total.
var GRPCRefusedReasons = []string{"unauthenticated", "permission_denied", "rate_limited", "other"}

// RefusedGRPC counts a call refused before its message was read, by its
// status code: no or a bad credential, a credential without the method's
// scope, a principal over its rate limit, anything else.
func (s *Serving) RefusedGRPC(code codes.Code) {
	reason := "other"
	switch code {
	case codes.Unauthenticated:
		reason = "unauthenticated"
	case codes.PermissionDenied:
		reason = "permission_denied"
	case codes.ResourceExhausted:
		reason = "rate_limited"
	}
	s.GRPCRefused.WithLabelValues(reason).Inc()
}

// ObserveGRPC counts one finished gRPC call.
func (s *Serving) ObserveGRPC(method, code string, d time.Duration) {
	s.GRPCRequests.WithLabelValues(method, code).Inc()
	s.GRPCDuration.WithLabelValues(method).Observe(d.Seconds())
}

// BatchObserver returns the observer of one model's batches
// (batch.Observer).
func (s *Serving) BatchObserver(model, version string) *BatchObserver {
	return &BatchObserver{rows: s.BatchRows.WithLabelValues(model, version), reqs: s.BatchSize.WithLabelValues(model, version)}
}

// BatchObserver records one model's batch runs.
type BatchObserver struct{ rows, reqs prometheus.Observer }

// Batch implements batch.Observer.
func (o *BatchObserver) Batch(rows, requests int) {
	o.rows.Observe(float64(rows))
	o.reqs.Observe(float64(requests))
}
