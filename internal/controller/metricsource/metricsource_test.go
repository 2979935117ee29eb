package metricsource

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/visionserve/visionserve/internal/controller/autoscale"
	"github.com/visionserve/visionserve/internal/metrics"
)

// serverMetrics is a /metrics handler over the server's own collectors
// (internal/metrics), so a renamed series fails this test rather than the
// autoscaler in production.
func serverMetrics(t *testing.T) (*metrics.Metrics, *prometheus.Registry, http.Handler) {
	t.Helper()
	reg := prometheus.NewRegistry()
	m := metrics.New(reg)
	return m, reg, promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
}

func TestParseServerMetrics(t *testing.T) {
	m, reg, h := serverMetrics(t)
	m.Requests.WithLabelValues("POST /v1/ocr", "POST", "200").Add(90)
	m.Requests.WithLabelValues("POST /v1/ocr", "POST", "429").Add(6)
	m.Requests.WithLabelValues("POST /v1/ocr", "POST", "503").Add(4)
	m.Requests.WithLabelValues("GET /metrics", "GET", "200").Add(1000)                // not load
	m.Requests.WithLabelValues("PUT /v1/models/{model}/traffic", "PUT", "200").Add(7) // the operator's own calls
	m.Requests.WithLabelValues("POST /v1/models/{model}/versions/{version}/load", "POST", "200").Add(3)
	m.Requests.WithLabelValues("POST /v2/models/{model}/infer", "POST", "200").Add(10)
	m.Requests.WithLabelValues("POST /v1/jobs/{id}/cancel", "POST", "200").Add(2)
	serving := metrics.NewServing(reg)
	serving.GRPCRequests.WithLabelValues("/inference.GRPCInferenceService/ModelInfer", "OK").Add(20)
	serving.GRPCRequests.WithLabelValues("/inference.GRPCInferenceService/ModelInfer", "Internal").Add(1)
	serving.GRPCRequests.WithLabelValues("/inference.GRPCInferenceService/ModelInfer", "InvalidArgument").Add(2)
	serving.GRPCRequests.WithLabelValues("/inference.GRPCInferenceService/ServerReady", "OK").Add(500)
	serving.GRPCRequests.WithLabelValues("/grpc.health.v1.Health/Check", "OK").Add(500)
	for range 10 {
		m.Confidence.WithLabelValues("ocr-eng", "3").Observe(0.9)
	}
	m.Confidence.WithLabelValues("ocr-eng", "4").Observe(0.5)
	m.Workers.Set(4)
	m.WorkersBusy.Set(3)
	m.QueueLength.Set(2)

	srv := httptest.NewServer(h)
	defer srv.Close()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := &Scraper{Now: func() time.Time { return now }}
	got, err := s.Scrape(context.Background(), Target{Pod: "p", BaseURL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	// HTTP: 90 + 6 + 4 on /v1/ocr and 10 on /v2; gRPC: 23 ModelInfer. Errors: a 503 and an Internal.
	if got.Pod != "p" || !got.Time.Equal(now) || got.Requests != 133 || got.Errors != 5 || got.Workers != 4 || got.Busy != 3 || got.Queue != 2 {
		t.Fatalf("sample %+v", got)
	}
	v3 := got.Confidence[autoscale.Version{Model: "ocr-eng", Version: "3"}]
	v4 := got.Confidence[autoscale.Version{Model: "ocr-eng", Version: "4"}]
	if v3.Count != 10 || v3.Sum < 8.99 || v3.Sum > 9.01 || v4.Count != 1 {
		t.Fatalf("confidence %+v", got.Confidence)
	}
}

func TestParseErrors(t *testing.T) {
	if _, err := Parse(strings.NewReader("this is { not metrics")); err == nil {
		t.Fatal("garbage parsed")
	}
	s, err := Parse(strings.NewReader(""))
	if err != nil || s.Requests != 0 || s.Workers != 0 {
		t.Fatalf("an empty scrape: %+v %v", s, err)
	}
}

func TestScrapeAllPartial(t *testing.T) {
	_, _, h := serverMetrics(t)
	ok := httptest.NewServer(h)
	defer ok.Close()
	broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "nope", http.StatusServiceUnavailable)
	}))
	defer broken.Close()
	samples, err := (&Scraper{}).ScrapeAll(context.Background(), []Target{
		{Pod: "a", BaseURL: ok.URL}, {Pod: "b", BaseURL: broken.URL}, {Pod: "c", BaseURL: "http://127.0.0.1:1"},
	})
	if len(samples) != 1 || samples[0].Pod != "a" {
		t.Fatalf("samples %+v", samples)
	}
	if err == nil || !strings.Contains(err.Error(), "scraping b: 503") || !strings.Contains(err.Error(), "scraping c:") {
		t.Fatalf("error %v", err)
	}
}

func TestSetTraffic(t *testing.T) {
	var got map[string]map[string]int
	var path, auth string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		path = r.Method + " " + r.URL.Path
		auth = r.Header.Get("Authorization")
		if err := json.NewDecoder(r.Body).Decode(&got); err != nil {
			t.Error(err)
		}
		if got["weights"]["9"] == 1 {
			w.WriteHeader(http.StatusConflict)
			io.WriteString(w, `{"title":"version 9 is not loaded"}`)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	if err := SetTraffic(context.Background(), nil, srv.URL, "ocr-eng", "vsk_admin", map[int32]int32{3: 90, 4: 10}); err != nil {
		t.Fatal(err)
	}
	if path != "PUT /v1/models/ocr-eng/traffic" || got["weights"]["3"] != 90 || got["weights"]["4"] != 10 || auth != "Bearer vsk_admin" {
		t.Fatalf("%s %v %q", path, got, auth)
	}
	err := SetTraffic(context.Background(), nil, srv.URL, "ocr-eng", "vsk_admin", map[int32]int32{9: 1})
	var te *TrafficError
	if !errors.As(err, &te) || te.Status != http.StatusConflict || !strings.Contains(te.Detail, "not loaded") {
		t.Fatalf("error %v", err)
	}
}

// TestPrometheus answers the queries the Prometheus source makes from a
// table, and checks the observation it builds.
func TestPrometheus(t *testing.T) {
	const (
		sel     = `namespace="ns",service="ocr"`
		routes  = `route=~"POST .*",route!~"POST /(v1/models|debug)/.*|POST .*/cancel"`
		methods = `method!~"/grpc[.](health|reflection)[.].*|.*/(ServerLive|ServerReady|ModelReady|ServerMetadata|ModelMetadata)"`
	)
	one := func(v string) string { return `[{"metric":{},"value":[0,"` + v + `"]}]` }
	answers := map[string]string{
		`count(visionserve_workers{` + sel + `})`:                                                                                                         one("3"),
		`sum(rate(visionserve_http_requests_total{` + sel + `,` + routes + `}[60s]))`:                                                                     one("12.5"),
		`sum(rate(visionserve_grpc_requests_total{` + sel + `,` + methods + `}[60s]))`:                                                                    `[]`, // no gRPC traffic: absent, not an error
		`sum(increase(visionserve_http_requests_total{` + sel + `,` + routes + `}[60s]))`:                                                                 one("700"),
		`sum(increase(visionserve_grpc_requests_total{` + sel + `,` + methods + `}[60s]))`:                                                                one("50"),
		`sum(increase(visionserve_http_requests_total{` + sel + `,` + routes + `,code=~"5.."}[60s]))`:                                                     one("10"),
		`sum(increase(visionserve_grpc_requests_total{` + sel + `,` + methods + `,code=~"Unknown|Internal|Unavailable|DataLoss|DeadlineExceeded"}[60s]))`: one("5"),
		`sum(visionserve_queue_length{` + sel + `})`:                                                                                                      one("4"),
		`sum(visionserve_workers_busy{` + sel + `})`:                                                                                                      one("6"),
		`sum(visionserve_workers{` + sel + `})`:                                                                                                           one("12"),
		`sum by (model, version) (increase(visionserve_prediction_confidence_sum{` + sel + `}[60s]))`:                                                     `[{"metric":{"model":"ocr-eng","version":"3"},"value":[0,"450"]},{"metric":{"model":"ocr-eng","version":"4"},"value":[0,"40"]}]`,
		`sum by (model, version) (increase(visionserve_prediction_confidence_count{` + sel + `}[60s]))`:                                                   `[{"metric":{"model":"ocr-eng","version":"3"},"value":[0,"500"]},{"metric":{"model":"ocr-eng","version":"4"},"value":[0,"50"]}]`,
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query().Get("query")
		a, ok := answers[q]
		if !ok {
			t.Errorf("unexpected query %s", q)
			a = "[]"
		}
		fmt.Fprintf(w, `{"status":"success","data":{"resultType":"vector","result":%s}}`, a)
	}))
	defer srv.Close()
	p := &Prometheus{URL: srv.URL}
	o, err := p.Observe(context.Background(), "ns", "ocr", time.Minute, time.Unix(1e9, 0), 3)
	if err != nil {
		t.Fatal(err)
	}
	if o.ReadyPods != 3 || o.ReportingPods != 3 || o.QPS != 12.5 || o.Requests != 750 || o.ErrorRatio != 0.02 ||
		o.Queue != 4 || !o.HasUtilization || o.Utilization != 0.5 {
		t.Fatalf("observation %+v", o)
	}
	if m, _ := o.Confidence.Mean(); m < 0.8908 || m > 0.891 {
		t.Fatalf("confidence %+v", o.Confidence)
	}
	if c := o.PerVersion[autoscale.Version{Model: "ocr-eng", Version: "4"}]; c.Sum != 40 || c.Count != 50 {
		t.Fatalf("per version %+v", o.PerVersion)
	}

	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, `{"status":"error","errorType":"bad_data","error":"parse error"}`)
	}))
	defer bad.Close()
	if _, err := (&Prometheus{URL: bad.URL}).Observe(context.Background(), "ns", "ocr", time.Minute, time.Now(), 1); err == nil || !strings.Contains(err.Error(), "parse error") {
		t.Fatalf("error %v", err)
	}
}
