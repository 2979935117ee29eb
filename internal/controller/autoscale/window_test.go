package autoscale

import (
	"math"
	"testing"
	"time"
)

var v1 = Version{Model: "ocr-eng", Version: "1"}

func sample(pod string, at time.Duration, requests, errs, confSum, confCount float64) Sample {
	return Sample{Pod: pod, Time: t0.Add(at), Requests: requests, Errors: errs,
		Confidence: map[Version]SumCount{v1: {Sum: confSum, Count: confCount}}, Busy: 1, Workers: 2}
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-6 }

func TestWindowObserve(t *testing.T) {
	const s = time.Second
	cases := []struct {
		name          string
		samples       []Sample
		now           time.Duration
		ready         int
		qps, errRatio float64
		reporting     int
		conf          float64 // mean, 0: none
	}{
		{
			name:    "one pod, steady 10 QPS",
			samples: []Sample{sample("a", 0, 100, 0, 0, 0), sample("a", 30*s, 400, 0, 0, 0), sample("a", 60*s, 700, 0, 0, 0)},
			now:     60 * s, ready: 1, qps: 10, reporting: 1,
		},
		{
			name: "older samples fall out of the window",
			samples: []Sample{sample("a", 0, 0, 0, 0, 0), sample("a", 60*s, 6000, 0, 0, 0), // 100 QPS long ago
				sample("a", 90*s, 6300, 0, 0, 0), sample("a", 120*s, 6600, 0, 0, 0)},
			now: 120 * s, ready: 1, qps: 10, reporting: 1,
		},
		{
			name:    "a counter reset is a restart, not negative traffic",
			samples: []Sample{sample("a", 0, 1000, 0, 0, 0), sample("a", 30*s, 1300, 0, 0, 0), sample("a", 60*s, 250, 0, 0, 0)},
			now:     60 * s, ready: 1, qps: 550.0 / 60, reporting: 1,
		},
		{
			name:    "a pod with one sample does not report yet",
			samples: []Sample{sample("a", 0, 0, 0, 0, 0), sample("a", 60*s, 600, 0, 0, 0), sample("b", 60*s, 0, 0, 0, 0)},
			now:     60 * s, ready: 2, qps: 10, reporting: 1,
		},
		{
			name: "a new pod adds its own part, not a rate over its short span",
			// a served 20 QPS for 45 s then 10 QPS once b joined; b 10 QPS for 15 s.
			samples: []Sample{sample("a", 0, 0, 0, 0, 0), sample("a", 45*s, 900, 0, 0, 0), sample("a", 60*s, 1050, 0, 0, 0),
				sample("b", 45*s, 0, 0, 0, 0), sample("b", 60*s, 150, 0, 0, 0)},
			// a: 1050/60 = 17.5 over the whole window; b: 10 QPS for 15 of its 60 s.
			now: 60 * s, ready: 2, qps: 20, reporting: 2,
		},
		{
			name:    "a missed last scrape is extrapolated",
			samples: []Sample{sample("a", 0, 0, 0, 0, 0), sample("a", 30*s, 300, 0, 0, 0), sample("b", 0, 0, 0, 0, 0), sample("b", 60*s, 600, 0, 0, 0)},
			now:     60 * s, ready: 2, qps: 20, reporting: 2,
		},
		{
			name:    "a pod silent for a whole window is stale",
			samples: []Sample{sample("a", 0, 0, 0, 0, 0), sample("a", 10*s, 100, 0, 0, 0), sample("b", 60*s, 0, 0, 0, 0), sample("b", 120*s, 600, 0, 0, 0)},
			now:     120 * s, ready: 2, qps: 10, reporting: 1,
		},
		{
			name:    "errors and confidence",
			samples: []Sample{sample("a", 0, 0, 0, 0, 0), sample("a", 60*s, 600, 60, 450, 500)},
			now:     60 * s, ready: 1, qps: 10, errRatio: 0.1, reporting: 1, conf: 0.9,
		},
		{
			name:    "nothing at all",
			samples: nil, now: 60 * s, ready: 3, reporting: 0,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := NewWindow(time.Minute)
			for _, s := range tc.samples {
				w.Add(s)
			}
			o := w.Observe(t0.Add(tc.now), tc.ready)
			if o.ReportingPods != tc.reporting || !near(o.QPS, tc.qps) || !near(o.ErrorRatio, tc.errRatio) {
				t.Fatalf("got reporting %d qps %.4f errors %.4f, want %d %.4f %.4f", o.ReportingPods, o.QPS, o.ErrorRatio, tc.reporting, tc.qps, tc.errRatio)
			}
			mean, ok := o.Confidence.Mean()
			if ok != (tc.conf > 0) || !near(mean, tc.conf) {
				t.Fatalf("confidence %v (%v), want %v", mean, ok, tc.conf)
			}
			if tc.conf > 0 {
				if m, _ := o.PerVersion[v1].Mean(); !near(m, tc.conf) {
					t.Fatalf("per-version confidence %v, want %v", m, tc.conf)
				}
			}
		})
	}
}

// TestWindowRetiredPod: after a scale-down the terminating pod is no longer
// ready, so no longer scraped, but its samples stay in the window. Its
// traffic moves to the pod that stays; carrying its old rate on to the end
// of the window counted that traffic twice (25 QPS where the fleet served
// 20), which scaled the fleet straight back up.
func TestWindowRetiredPod(t *testing.T) {
	const s = time.Second
	w := NewWindow(time.Minute)
	var ra, rb float64
	for at := 0 * s; at <= 120*s; at += 15 * s { // a and b at 10 QPS each
		w.Add(sample("a", at, ra, 0, 0, 0))
		w.Add(sample("b", at, rb, 0, 0, 0))
		ra, rb = ra+150, rb+150
	}
	ra -= 150
	for at := 135 * s; at <= 150*s; at += 15 * s { // b is gone: a serves 20 QPS
		ra += 300
		w.Add(sample("a", at, ra, 0, 0, 0))
	}
	w.Retire(func(pod string) bool { return pod == "a" })
	o := w.Observe(t0.Add(150*s), 1)
	// In 90..150 s: a 10 x 30 + 20 x 30, b 10 x 30: 1200 requests in 60 s.
	if !near(o.QPS, 20) || o.ReportingPods != 1 || !near(o.Requests, 1200) {
		t.Fatalf("qps %.2f from %d reporting pods (%.0f requests), want 20 from 1 (1200)", o.QPS, o.ReportingPods, o.Requests)
	}
	// Ready again (its next sample): b's rate carries on like any pod's.
	w.Add(sample("b", 165*s, rb, 0, 0, 0))
	ra += 300
	w.Add(sample("a", 165*s, ra, 0, 0, 0))
	if o := w.Observe(t0.Add(165*s), 2); o.ReportingPods != 2 {
		t.Fatalf("b reports again: %d reporting pods, want 2", o.ReportingPods)
	}
}

func TestWindowForget(t *testing.T) {
	w := NewWindow(time.Minute)
	w.Add(sample("a", 0, 0, 0, 0, 0))
	w.Add(sample("b", 0, 0, 0, 0, 0))
	w.Forget(func(p string) bool { return p == "b" })
	if got := w.Pods(); len(got) != 1 || got[0] != "b" {
		t.Fatalf("pods after Forget: %v", got)
	}
}
