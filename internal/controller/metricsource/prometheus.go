package metricsource

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/visionserve/visionserve/internal/controller/autoscale"
)

// Prometheus asks a Prometheus server for a fleet's signals instead of
// scraping the pods: for clusters where the operator may not reach pod IPs,
// or where Prometheus already scrapes them (the ServiceMonitor). Series are
// selected by the namespace and service labels the Prometheus Operator adds.
type Prometheus struct {
	URL    string
	Client *http.Client
}

// Observe queries the window ending now. readyPods is how many pods should
// report; the number that did is the count of visionserve_workers series.
func (p *Prometheus) Observe(ctx context.Context, namespace, service string, window time.Duration, now time.Time, readyPods int) (autoscale.Observation, error) {
	sel := fmt.Sprintf(`namespace=%q,service=%q`, namespace, service)
	w := fmt.Sprintf("%ds", int(window.Seconds()))
	routes := `route=~"POST .*",route!~"POST /(v1/models|debug)/.*|POST .*/cancel"`
	methods := `method!~"/grpc[.](health|reflection)[.].*|.*/(ServerLive|ServerReady|ModelReady|ServerMetadata|ModelMetadata)"`
	o := autoscale.Observation{Time: now, ReadyPods: readyPods, PerVersion: map[autoscale.Version]autoscale.SumCount{}}

	scalar := func(q string) (float64, bool, error) {
		res, err := p.query(ctx, q, now)
		if err != nil || len(res) == 0 {
			return 0, false, err
		}
		return res[0].value, true, nil
	}
	reporting, ok, err := scalar(fmt.Sprintf(`count(%s{%s})`, MetricWorkers, sel))
	if err != nil {
		return o, err
	}
	if !ok || reporting == 0 {
		return o, nil // nothing reports: the autoscaler holds
	}
	o.ReportingPods = int(reporting)
	// HTTP and gRPC apart: a sum over an absent series would be empty.
	var errs float64
	queries := []struct {
		q   string
		dst *float64
	}{
		{fmt.Sprintf(`sum(rate(%s{%s,%s}[%s]))`, MetricRequests, sel, routes, w), &o.QPS},
		{fmt.Sprintf(`sum(rate(%s{%s,%s}[%s]))`, MetricGRPCRequests, sel, methods, w), &o.QPS},
		{fmt.Sprintf(`sum(increase(%s{%s,%s}[%s]))`, MetricRequests, sel, routes, w), &o.Requests},
		{fmt.Sprintf(`sum(increase(%s{%s,%s}[%s]))`, MetricGRPCRequests, sel, methods, w), &o.Requests},
		{fmt.Sprintf(`sum(increase(%s{%s,%s,code=~"5.."}[%s]))`, MetricRequests, sel, routes, w), &errs},
		{fmt.Sprintf(`sum(increase(%s{%s,%s,code=~"Unknown|Internal|Unavailable|DataLoss|DeadlineExceeded"}[%s]))`, MetricGRPCRequests, sel, methods, w), &errs},
		{fmt.Sprintf(`sum(%s{%s})`, MetricQueue, sel), &o.Queue},
	}
	for _, q := range queries {
		v, _, err := scalar(q.q)
		if err != nil {
			return o, err
		}
		*q.dst += v
	}
	if o.Requests > 0 {
		o.ErrorRatio = errs / o.Requests
	}
	busy, okB, err := scalar(fmt.Sprintf(`sum(%s{%s})`, MetricBusy, sel))
	if err != nil {
		return o, err
	}
	workers, okW, err := scalar(fmt.Sprintf(`sum(%s{%s})`, MetricWorkers, sel))
	if err != nil {
		return o, err
	}
	if okB && okW && workers > 0 {
		o.Utilization, o.HasUtilization = busy/workers, true
	}
	for _, part := range []string{"sum", "count"} {
		res, err := p.query(ctx, fmt.Sprintf(`sum by (model, version) (increase(%s_%s{%s}[%s]))`, MetricConfidence, part, sel, w), now)
		if err != nil {
			return o, err
		}
		for _, r := range res {
			k := autoscale.Version{Model: r.metric["model"], Version: r.metric["version"]}
			c := o.PerVersion[k]
			if part == "sum" {
				c.Sum = r.value
				o.Confidence.Sum += r.value
			} else {
				c.Count = r.value
				o.Confidence.Count += r.value
			}
			o.PerVersion[k] = c
		}
	}
	return o, nil
}

type promSample struct {
	metric map[string]string
	value  float64
}

func (p *Prometheus) query(ctx context.Context, q string, at time.Time) ([]promSample, error) {
	client := p.Client
	if client == nil {
		client = defaultClient
	}
	u := strings.TrimSuffix(p.URL, "/") + "/api/v1/query?" + url.Values{
		"query": {q}, "time": {strconv.FormatFloat(float64(at.UnixMilli())/1000, 'f', 3, 64)},
	}.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("querying prometheus: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return nil, fmt.Errorf("querying prometheus: %w", err)
	}
	var r struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string `json:"resultType"`
			Result     []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("querying prometheus: HTTP %d: %w", resp.StatusCode, err)
	}
	if r.Status != "success" {
		return nil, fmt.Errorf("querying prometheus: %s: %s", q, r.Error)
	}
	if r.Data.ResultType != "vector" {
		return nil, fmt.Errorf("querying prometheus: %s: result type %q, want vector", q, r.Data.ResultType)
	}
	var out []promSample
	for _, s := range r.Data.Result {
		str, _ := s.Value[1].(string)
		v, err := strconv.ParseFloat(str, 64)
		if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
			continue
		}
		out = append(out, promSample{metric: s.Metric, value: v})
	}
	return out, nil
}
