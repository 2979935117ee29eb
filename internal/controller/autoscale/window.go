package autoscale

import (
	"slices"
	"time"
)

// SumCount is a (sum, count) pair of a histogram: its ratio is a mean.
type SumCount struct{ Sum, Count float64 }

// Mean is Sum/Count, and false when there is no count.
func (s SumCount) Mean() (float64, bool) {
	if s.Count <= 0 {
		return 0, false
	}
	return s.Sum / s.Count, true
}

// Version identifies a model version, the labels of the confidence series.
type Version struct{ Model, Version string }

// Sample is one scrape of one pod: the cumulative counters the server
// exports and its gauges at that moment.
type Sample struct {
	Pod  string
	Time time.Time
	// Requests is visionserve_http_requests_total summed over the inference
	// routes and every status (a 429 is demand too); Errors the 5xx part.
	Requests, Errors float64
	// Confidence is visionserve_prediction_confidence_{sum,count} by version.
	Confidence map[Version]SumCount
	// Busy, Workers and Queue are visionserve_workers_busy, _workers and
	// _queue_length; Workers 0 means the gauges were absent.
	Busy, Workers, Queue float64
}

// Observation is what the fleet did over one window: the input of a decision.
type Observation struct {
	Time time.Time
	// ReadyPods should be reporting; ReportingPods did (two samples in the
	// window at least). A new or restarted pod reports from its second scrape.
	ReadyPods, ReportingPods int
	// QPS is the total request rate of the reporting pods; ErrorRatio the
	// share of it answered with 5xx (0 without requests).
	QPS, ErrorRatio float64
	// Requests is the number of requests counted in the window.
	Requests float64
	// Confidence sums every version's predictions in the window; PerVersion
	// splits it (the canary compares versions).
	Confidence SumCount
	PerVersion map[Version]SumCount
	// Utilization is busy/workers over the reporting pods' last samples,
	// and HasUtilization false when the gauges were absent. Queue is the
	// total queue length.
	Utilization    float64
	HasUtilization bool
	Queue          float64
}

// Window keeps each pod's recent samples and turns them into Observations
// over a sliding window, the way PromQL's increase() does (without
// extrapolation). It is not safe for concurrent use.
type Window struct {
	Length  time.Duration
	samples map[string][]Sample
	// retired are pods that stopped serving (not ready, terminating)
	// but whose samples are still in the window.
	retired map[string]bool
}

// NewWindow returns an empty window of the given length.
func NewWindow(length time.Duration) *Window {
	return &Window{Length: length, samples: map[string][]Sample{}, retired: map[string]bool{}}
}

// Add records a sample. A pod that reports serves again (see Retire).
func (w *Window) Add(s Sample) {
	w.samples[s.Pod] = append(w.samples[s.Pod], s)
	delete(w.retired, s.Pod)
}

// Retire marks the pods not in serving (no longer ready: terminating after
// a scale-down, or failing readiness) as out of service until their next
// sample. A retired pod's requests count up to its last sample, but its
// rate is not carried on to the end of the window as a ready pod's missed
// scrape is: its traffic has moved to the pods still serving, which count
// it themselves. Carrying it on counted it twice just after a scale-down,
// enough to scale back up. A retired pod does not report.
func (w *Window) Retire(serving func(pod string) bool) {
	for pod := range w.samples {
		if !serving(pod) {
			w.retired[pod] = true
		}
	}
}

// Forget drops the samples of pods not in keep (deleted pods).
func (w *Window) Forget(keep func(pod string) bool) {
	for pod := range w.samples {
		if !keep(pod) {
			delete(w.samples, pod)
			delete(w.retired, pod)
		}
	}
}

// Observe summarises the window ending at now. readyPods is how many pods
// should have reported.
func (w *Window) Observe(now time.Time, readyPods int) Observation {
	o := Observation{Time: now, ReadyPods: readyPods, PerVersion: map[Version]SumCount{}}
	start := now.Add(-w.Length)
	var busy, workers float64
	var errs, load float64 // load: request-seconds, see below
	var from time.Time
	for pod, ss := range w.samples {
		// Keep one sample at or before the window start: it is the base
		// the first increase inside the window is measured from.
		i := 0
		for i+1 < len(ss) && !ss[i+1].Time.After(start) {
			i++
		}
		ss = ss[i:]
		w.samples[pod] = ss
		if len(ss) < 2 || ss[len(ss)-1].Time.Before(start) {
			continue // new (one sample), or stale: stopped answering
		}
		first, last := ss[0], ss[len(ss)-1]
		if !last.Time.After(first.Time) {
			continue
		}
		var req float64
		for j := 1; j < len(ss); j++ {
			a, b := ss[j-1], ss[j]
			req += increase(a.Requests, b.Requests)
			errs += increase(a.Errors, b.Errors)
			for v, bc := range b.Confidence {
				ac := a.Confidence[v]
				if bc.Count < ac.Count || bc.Sum < ac.Sum { // reset
					ac = SumCount{}
				}
				c := o.PerVersion[v]
				c.Sum += bc.Sum - ac.Sum
				c.Count += bc.Count - ac.Count
				o.PerVersion[v] = c
				o.Confidence.Sum += bc.Sum - ac.Sum
				o.Confidence.Count += bc.Count - ac.Count
			}
		}
		o.Requests += req
		// The pod's rate over its own samples, counted for the part of the
		// window it was there: all of it for a pod older than the window
		// (a missed last scrape is extrapolated, as PromQL does), from its
		// first sample for a new one, up to its last sample for a retired
		// one. Summing rates over unequal spans instead would count traffic
		// a new pod took over from the others, or the others took over
		// from a retired one, twice.
		covered, end := first.Time, now
		if covered.Before(start) {
			covered = start
		}
		if w.retired[pod] {
			end = last.Time
		}
		load += req / last.Time.Sub(first.Time).Seconds() * max(end.Sub(covered).Seconds(), 0)
		if from.IsZero() || covered.Before(from) {
			from = covered
		}
		if w.retired[pod] {
			continue // served in the window, but no longer: no gauges, not reporting
		}
		o.ReportingPods++
		if last.Workers > 0 {
			busy += last.Busy
			workers += last.Workers
		}
		o.Queue += last.Queue
	}
	if o.ReportingPods > 0 && now.After(from) {
		o.QPS = load / now.Sub(from).Seconds()
	}
	if o.Requests > 0 {
		o.ErrorRatio = errs / o.Requests
	}
	if workers > 0 {
		o.Utilization, o.HasUtilization = busy/workers, true
	}
	return o
}

// Pods lists the pods the window holds samples of, sorted.
func (w *Window) Pods() []string {
	var out []string
	for p := range w.samples {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

// increase is how much a counter grew from a to b; a drop is a reset (the
// pod restarted), after which the counter counted b from zero.
func increase(a, b float64) float64 {
	if b < a {
		return b
	}
	return b - a
}
