package metrics_test

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/visionserve/visionserve/internal/metrics"
	"github.com/visionserve/visionserve/internal/sched"
)

// visionserve_rejected_requests_total has a zero series for every reason
// from the start: the documented query (refused / requests) answers 0 on
// a server that has refused nothing, not an empty result.
func TestRejectionsStartAtZero(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := metrics.New(reg)
	if n := testutil.CollectAndCount(m.Rejections); n != len(sched.RejectReasons) {
		t.Fatalf("%d rejection series at start, want one per reason (%v)", n, sched.RejectReasons)
	}
	for _, reason := range sched.RejectReasons {
		if v := testutil.ToFloat64(m.Rejections.WithLabelValues(reason)); v != 0 {
			t.Errorf("reason %s starts at %v", reason, v)
		}
	}
}
