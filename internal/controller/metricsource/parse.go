package metricsource

import (
	"fmt"
	"io"
	"strings"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/visionserve/visionserve/internal/controller/autoscale"
)

// Metric names read from each pod.
const (
	MetricRequests     = "visionserve_http_requests_total"
	MetricGRPCRequests = "visionserve_grpc_requests_total"
	MetricConfidence   = "visionserve_prediction_confidence"
	MetricWorkers      = "visionserve_workers"
	MetricBusy         = "visionserve_workers_busy"
	MetricQueue        = "visionserve_queue_length"
)

// IsInferenceRoute says whether an HTTP route label counts as load: every
// POST route except the admin listener's (the model API, which is the
// operator's own traffic, and pprof) and job cancellation.
func IsInferenceRoute(route string) bool {
	return strings.HasPrefix(route, "POST ") &&
		!strings.HasPrefix(route, "POST /v1/models/") && !strings.HasPrefix(route, "POST /debug/") &&
		!strings.HasSuffix(route, "/cancel")
}

// IsInferenceMethod says whether a gRPC method label counts as load: every
// method but health, reflection and the inference protocol's metadata and
// readiness calls.
func IsInferenceMethod(method string) bool {
	if strings.HasPrefix(method, "/grpc.health.") || strings.HasPrefix(method, "/grpc.reflection.") {
		return false
	}
	_, name, _ := strings.Cut(strings.TrimPrefix(method, "/"), "/")
	switch name {
	case "ServerLive", "ServerReady", "ModelReady", "ServerMetadata", "ModelMetadata":
		return false
	}
	return true
}

// grpcServerErrors are the gRPC codes that count like a 5xx.
var grpcServerErrors = map[string]bool{"Unknown": true, "Internal": true, "Unavailable": true, "DataLoss": true, "DeadlineExceeded": true}

// Parse reads one scrape in the Prometheus text format into a Sample (Pod
// and Time are left to the caller). Absent series count as zero; a body
// that is not the text format is an error.
func Parse(r io.Reader) (autoscale.Sample, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(r)
	if err != nil {
		return autoscale.Sample{}, fmt.Errorf("parsing metrics: %w", err)
	}
	s := autoscale.Sample{Confidence: map[autoscale.Version]autoscale.SumCount{}}
	if f := fams[MetricRequests]; f != nil {
		for _, m := range f.GetMetric() {
			if !IsInferenceRoute(label(m, "route")) {
				continue
			}
			v := m.GetCounter().GetValue()
			s.Requests += v
			if strings.HasPrefix(label(m, "code"), "5") {
				s.Errors += v
			}
		}
	}
	if f := fams[MetricGRPCRequests]; f != nil {
		for _, m := range f.GetMetric() {
			if !IsInferenceMethod(label(m, "method")) {
				continue
			}
			v := m.GetCounter().GetValue()
			s.Requests += v
			if grpcServerErrors[label(m, "code")] {
				s.Errors += v
			}
		}
	}
	if f := fams[MetricConfidence]; f != nil {
		for _, m := range f.GetMetric() {
			h := m.GetHistogram()
			k := autoscale.Version{Model: label(m, "model"), Version: label(m, "version")}
			c := s.Confidence[k]
			c.Sum += h.GetSampleSum()
			c.Count += float64(h.GetSampleCount())
			s.Confidence[k] = c
		}
	}
	s.Workers = gauge(fams[MetricWorkers])
	s.Busy = gauge(fams[MetricBusy])
	s.Queue = gauge(fams[MetricQueue])
	return s, nil
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

func gauge(f *dto.MetricFamily) float64 {
	var v float64
	if f == nil {
		return 0
	}
	for _, m := range f.GetMetric() {
		v += m.GetGauge().GetValue()
	}
	return v
}
