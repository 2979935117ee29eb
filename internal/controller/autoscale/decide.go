package autoscale

import (
	"fmt"
	"math"
	"strings"
	"time"
)

// Params are a VisionService's autoscaling settings, defaults applied.
type Params struct {
	MinReplicas, MaxReplicas int32
	// QPSPerReplica is the request rate one replica should serve.
	QPSPerReplica float64
	// ConfidenceFloor: under it (smoothed), busy pods get help. 0: off.
	ConfidenceFloor float64
	// EWMAAlpha is the weight of the newest window in the smoothed values.
	EWMAAlpha float64
	// Tolerance: no QPS-driven change while QPS/(current x target) is
	// within 1 +- Tolerance.
	Tolerance float64
	// ScaleUpStabilization and ScaleDownStabilization are the windows of
	// past recommendations a scale-up takes the minimum of and a scale-down
	// the maximum of.
	ScaleUpStabilization, ScaleDownStabilization time.Duration
	// MaxStep is the most replicas one decision adds or removes.
	MaxStep int32
	// MinConfidenceSamples is how many predictions a window needs before
	// its mean confidence counts.
	MinConfidenceSamples float64
	// BusyUtilization: low confidence is blamed on load (and answered with
	// replicas) only while workers are at least this busy or requests
	// queue. Below it the inputs are just hard and replicas would not help.
	BusyUtilization float64
	// ConfidenceCooldown is how long the ready replica count must have been
	// unchanged before low confidence adds replicas: the window length, so
	// that confidence is judged on a window measured entirely with the
	// replicas there are (and a scale-up is judged by its effect).
	ConfidenceCooldown time.Duration
}

// Defaults of the optional VisionService fields; the CRD documents the same.
const (
	DefaultInterval               = 15 * time.Second
	DefaultWindow                 = time.Minute
	DefaultEWMAAlpha              = 0.5
	DefaultTolerance              = 0.1
	DefaultScaleUpStabilization   = 0 * time.Second
	DefaultScaleDownStabilization = 5 * time.Minute
	DefaultMaxStep                = 4
	DefaultMinConfidenceSamples   = 20
	DefaultBusyUtilization        = 0.5
)

// DefaultParams returns the defaults for a QPS target and replica bounds.
func DefaultParams(minReplicas, maxReplicas int32, qpsPerReplica float64) Params {
	return Params{
		MinReplicas:            minReplicas,
		MaxReplicas:            maxReplicas,
		QPSPerReplica:          qpsPerReplica,
		EWMAAlpha:              DefaultEWMAAlpha,
		Tolerance:              DefaultTolerance,
		ScaleUpStabilization:   DefaultScaleUpStabilization,
		ScaleDownStabilization: DefaultScaleDownStabilization,
		MaxStep:                DefaultMaxStep,
		MinConfidenceSamples:   DefaultMinConfidenceSamples,
		BusyUtilization:        DefaultBusyUtilization,
		ConfidenceCooldown:     DefaultWindow,
	}
}

// Reason says why a decision came out as it did. The values are bounded:
// they become event reasons and log attributes.
type Reason string

// Reasons.
const (
	ScaleUpQPS         Reason = "ScaleUpQPS"        // more QPS than the replicas' target
	ScaleUpConfidence  Reason = "ScaleUpConfidence" // confidence under the floor while busy
	ScaleDownQPS       Reason = "ScaleDownQPS"      // less QPS than the replicas' target
	ScaleToBounds      Reason = "ScaleToBounds"     // current count outside min..max
	HoldSteady         Reason = "Steady"            // recommendation equals current
	HoldTolerance      Reason = "WithinTolerance"   // QPS within the tolerance band
	HoldStabilizing    Reason = "Stabilizing"       // a window of past recommendations holds it
	HoldNoMetrics      Reason = "NoMetrics"         // no pod reported: never guess
	HoldConfidenceIdle Reason = "LowConfidenceIdle" // confidence low but pods idle: inputs are hard, not load
	HoldAtMax          Reason = "AtMaxReplicas"     // more needed than maxReplicas
)

// Decision is one autoscaling decision with every input it was based on.
type Decision struct {
	Time time.Time
	// Current is the replica count before, Desired after.
	Current, Desired int32
	// Recommendation is the count before stabilization and step limits;
	// QPSReplicas and ConfidenceReplicas are its two parts (0: no opinion).
	Recommendation, QPSReplicas, ConfidenceReplicas int32
	Reason                                          Reason
	StepLimited                                     bool

	// Inputs.
	ReadyPods, ReportingPods int
	RawQPS, EstimatedQPS     float64 // measured; with missing pods accounted for
	SmoothedQPS              float64
	HasConfidence            bool // a mean confidence exists (enough samples, now or before)
	RawConfidence            float64
	SmoothedConfidence       float64
	ConfidenceSamples        float64
	Utilization              float64
	HasUtilization           bool
	Queue                    float64
	QPSPerReplica, Floor     float64
	MinReplicas, MaxReplicas int32
	// TargetQPSPerReplica is the target used: QPSPerReplica, or lower when
	// learned from low confidence.
	TargetQPSPerReplica float64
}

// Changed reports whether the decision changes the replica count.
func (d Decision) Changed() bool { return d.Desired != d.Current }

// Message is the decision in one line with its inputs, for events, logs and
// status.lastScaleReason.
func (d Decision) Message() string {
	var b strings.Builder
	if d.Changed() {
		fmt.Fprintf(&b, "%s: %d -> %d replicas", d.Reason, d.Current, d.Desired)
	} else {
		fmt.Fprintf(&b, "%s: %d replicas", d.Reason, d.Current)
	}
	if d.Reason == HoldNoMetrics {
		fmt.Fprintf(&b, "; 0 of %d ready pods reported metrics", d.ReadyPods)
		return b.String()
	}
	fmt.Fprintf(&b, "; qps %.2f (estimated %.2f, smoothed %.2f, target %.4g/replica", d.RawQPS, d.EstimatedQPS, d.SmoothedQPS, d.TargetQPSPerReplica)
	if d.TargetQPSPerReplica < d.QPSPerReplica {
		fmt.Fprintf(&b, " learned from low confidence, configured %.4g", d.QPSPerReplica)
	}
	fmt.Fprintf(&b, " -> %d)", d.QPSReplicas)
	if d.HasConfidence {
		fmt.Fprintf(&b, "; confidence %.3f (smoothed %.3f over %.0f predictions, floor %.3g", d.RawConfidence, d.SmoothedConfidence, d.ConfidenceSamples, d.Floor)
		if d.ConfidenceReplicas > 0 {
			fmt.Fprintf(&b, " -> %d", d.ConfidenceReplicas)
		}
		b.WriteString(")")
	}
	if d.HasUtilization {
		fmt.Fprintf(&b, "; utilization %.2f, queue %.0f", d.Utilization, d.Queue)
	}
	fmt.Fprintf(&b, "; pods %d/%d reporting; recommendation %d", d.ReportingPods, d.ReadyPods, d.Recommendation)
	if d.StepLimited {
		b.WriteString(" (step limited)")
	}
	fmt.Fprintf(&b, "; bounds %d..%d", d.MinReplicas, d.MaxReplicas)
	return b.String()
}

type recommendation struct {
	at       time.Time
	replicas int32
	seed     bool // the count found at start: holds scale-downs only
}

// Autoscaler holds one VisionService's smoothed signals and recent
// recommendations between decisions. It is deterministic: the same
// observations give the same decisions. Not safe for concurrent use.
type Autoscaler struct {
	Params Params

	hasQPS, hasConf bool
	qps, conf       float64
	recs            []recommendation
	lastConfUp      time.Time // last confidence-driven scale-up
	readyPods       int       // ready pods at the last decision
	readySince      time.Time // since when there are that many

	// learned is a per-replica QPS at which quality fell under the floor
	// (less a tolerance), learned at a confidence-driven scale-up and kept
	// for LearnedTargetTTL. While known, the QPS part uses it when it is
	// lower than the configured target, so replicas added for quality are not
	// taken away again by the QPS rule a stabilization window later.
	learned float64
}

// LearnedTargetTTL is how long a QPS target learned from low confidence
// stays in force after the last confidence-driven scale-up. Then the
// configured target applies again (and is re-learned if still too high).
const LearnedTargetTTL = 30 * time.Minute

// New returns an Autoscaler. A fresh Autoscaler (an operator restart)
// treats the current replica count as a recommendation made now, so it does
// not scale down before a full down-stabilization window has passed.
func New(p Params) *Autoscaler { return &Autoscaler{Params: p} }

// Decide makes one decision from an observation and the current replica
// count, and remembers what it needs for the next.
func (a *Autoscaler) Decide(o Observation, current int32) Decision {
	p := a.Params
	now := o.Time
	if a.recs == nil {
		a.recs = []recommendation{{at: now, replicas: current, seed: true}}
	}
	if a.readySince.IsZero() || o.ReadyPods != a.readyPods {
		a.readyPods, a.readySince = o.ReadyPods, now
	}
	d := Decision{
		Time: now, Current: current, ReadyPods: o.ReadyPods, ReportingPods: o.ReportingPods,
		QPSPerReplica: p.QPSPerReplica, Floor: p.ConfidenceFloor,
		MinReplicas: p.MinReplicas, MaxReplicas: p.MaxReplicas,
		Utilization: o.Utilization, HasUtilization: o.HasUtilization, Queue: o.Queue,
	}
	bounded := clamp(current, p.MinReplicas, p.MaxReplicas)

	if o.ReportingPods == 0 {
		d.Recommendation, d.Desired, d.Reason = bounded, bounded, HoldNoMetrics
		if bounded != current {
			d.Reason = ScaleToBounds
		}
		return d
	}

	// The per-replica target: the configured one, or the one learned from
	// low confidence while it is lower and in force.
	if a.learned > 0 && now.Sub(a.lastConfUp) > LearnedTargetTTL {
		a.learned = 0
	}
	target := p.QPSPerReplica
	if a.learned > 0 && a.learned < target {
		target = a.learned
	}
	d.TargetQPSPerReplica = target

	// 1. Measure, accounting for pods that did not report (a new pod does
	// not before its second scrape).
	d.RawQPS = o.QPS
	d.EstimatedQPS = o.QPS
	if missing := o.ReadyPods - o.ReportingPods; missing > 0 && target > 0 {
		perPod := o.QPS / float64(o.ReportingPods)
		if perPod < target {
			// Underloaded: a missing pod might be busy; assume it is at
			// target so it cannot push a scale-down. The target is the one
			// the recommendation divides by: at a higher one (the configured
			// target while a learned one applies) the missing pod would push
			// a scale-up instead.
			d.EstimatedQPS = o.QPS + float64(missing)*target
		} // Overloaded: a missing pod counts as idle, so it cannot push a scale-up.
	}

	// 2. Smooth.
	a.qps = a.ewma(a.hasQPS, a.qps, d.EstimatedQPS)
	a.hasQPS = true
	d.SmoothedQPS = a.qps
	if mean, ok := o.Confidence.Mean(); ok && o.Confidence.Count >= p.MinConfidenceSamples {
		a.conf = a.ewma(a.hasConf, a.conf, mean)
		a.hasConf = true
		d.RawConfidence = mean
	} else if a.hasConf {
		d.RawConfidence = a.conf // too few predictions: keep the last smoothed value
	}
	d.HasConfidence = a.hasConf
	d.SmoothedConfidence = a.conf
	d.ConfidenceSamples = o.Confidence.Count

	// 3. Recommend.
	// Up fast, down slow: a rise counts at once (the rate window already
	// averages it), a fall only as fast as the EWMA lets it.
	qps := max(a.qps, d.EstimatedQPS)
	d.QPSReplicas = int32(math.Ceil(qps/target - 1e-9))
	withinTolerance := current > 0 && math.Abs(qps/(float64(current)*target)-1) <= p.Tolerance
	if withinTolerance {
		d.QPSReplicas = current
	}
	lowConfidence := p.ConfidenceFloor > 0 && a.hasConf && a.conf < p.ConfidenceFloor
	busy := !o.HasUtilization || o.Utilization >= p.BusyUtilization || o.Queue > 0
	if lowConfidence && busy {
		// Never scale down while quality suffers from load. Add replicas on
		// top of those that are ready (not merely asked for), and only once
		// per cooldown, so one shortfall is not answered several times while
		// new pods start and the window fills with their effect.
		d.ConfidenceReplicas = current
		if int32(o.ReadyPods) == current && now.Sub(a.readySince) >= p.ConfidenceCooldown {
			d.ConfidenceReplicas = current + max(1, int32(math.Ceil(0.1*float64(current))))
		}
	}
	rec := clamp(max(d.QPSReplicas, d.ConfidenceReplicas), p.MinReplicas, p.MaxReplicas)
	d.Recommendation = rec

	// 4. Stabilize (the HPA's rule), then limit the step.
	a.recs = append(a.recs, recommendation{at: now, replicas: rec})
	horizon := max(p.ScaleUpStabilization, p.ScaleDownStabilization)
	keep := a.recs[:0]
	up, down := rec, rec
	for _, r := range a.recs {
		age := now.Sub(r.at)
		if age > horizon {
			continue
		}
		keep = append(keep, r)
		if p.ScaleUpStabilization > 0 && age <= p.ScaleUpStabilization && !r.seed {
			up = min(up, r.replicas)
		}
		if p.ScaleDownStabilization > 0 && age <= p.ScaleDownStabilization {
			down = max(down, r.replicas)
		}
	}
	a.recs = keep
	desired := current
	if desired < up {
		desired = up
	}
	if desired > down {
		desired = down
	}
	if p.MaxStep > 0 {
		limited := clamp(desired, current-p.MaxStep, current+p.MaxStep)
		d.StepLimited = limited != desired
		desired = limited
	}
	desired = clamp(desired, p.MinReplicas, p.MaxReplicas)
	d.Desired = desired

	switch {
	case current < p.MinReplicas || current > p.MaxReplicas:
		d.Reason = ScaleToBounds
	case desired > current && d.ConfidenceReplicas > d.QPSReplicas:
		d.Reason = ScaleUpConfidence
		a.lastConfUp = now
		if current > 0 {
			// Quality fell at this load per replica: aim below it.
			q := a.qps / float64(current) * (1 - p.Tolerance)
			q = max(q, 0.25*p.QPSPerReplica) // never learn a collapse
			if a.learned == 0 || q < a.learned {
				a.learned = q
			}
		}
	case desired > current:
		d.Reason = ScaleUpQPS
	case desired < current:
		d.Reason = ScaleDownQPS
	case rec != current:
		d.Reason = HoldStabilizing
		if rec > current && current == p.MaxReplicas {
			d.Reason = HoldAtMax
		}
	case max(d.QPSReplicas, d.ConfidenceReplicas) > p.MaxReplicas:
		d.Reason = HoldAtMax
	case lowConfidence && !busy:
		d.Reason = HoldConfidenceIdle
	case withinTolerance && int32(math.Ceil(qps/target-1e-9)) != current:
		d.Reason = HoldTolerance
	default:
		d.Reason = HoldSteady
	}
	return d
}

func (a *Autoscaler) ewma(has bool, prev, x float64) float64 {
	if !has {
		return x
	}
	return a.Params.EWMAAlpha*x + (1-a.Params.EWMAAlpha)*prev
}

func clamp(v, lo, hi int32) int32 {
	if hi < lo {
		hi = lo
	}
	return min(max(v, lo), hi)
}
