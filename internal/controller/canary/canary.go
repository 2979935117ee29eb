// Package canary judges a model version under test against the stable one.
// It is pure: the controller measures (per-version confidence over the
// autoscaler's window, the fleet's 5xx ratio), Judge decides, and the
// controller sets traffic weights and status.
//
// The rules, in order: a verdict needs evidence, so nothing is judged until
// both versions have MinSamples predictions in the window; a canary whose
// mean confidence is below the stable version's by more than Margin, or
// under which the 5xx ratio rose by more than MaxErrorRatioIncrease, is
// rolled back at once; one that stayed healthy for Analysis is promoted.
// A rollback or a promotion is final for that version: the controller does
// not judge it again.
package canary

import (
	"fmt"
	"time"
)

// Params are a canary's thresholds, defaults applied.
type Params struct {
	Margin                float64
	MaxErrorRatioIncrease float64
	MinSamples            float64
	Analysis              time.Duration
}

// Defaults of the optional CanarySpec fields.
const (
	DefaultWeight                = 10
	DefaultMargin                = 0.02
	DefaultMaxErrorRatioIncrease = 0.02
	DefaultMinSamples            = 50
	DefaultAnalysis              = 10 * time.Minute
)

// Observation is one window's evidence.
type Observation struct {
	// Elapsed is the time since the canary got traffic.
	Elapsed time.Duration
	// StableConfidence and CanaryConfidence: sum and count of prediction
	// confidences of each version in the window.
	StableSum, StableCount float64
	CanarySum, CanaryCount float64
	// ErrorRatio is the fleet's share of 5xx answers in the window, over
	// Requests requests; BaselineErrorRatio the share before the canary
	// started. The server does not label errors by version yet, so the
	// fleet's ratio stands in for the canary's: at a small weight a rise is
	// diluted, which makes this check conservative, never trigger-happy.
	ErrorRatio, Requests, BaselineErrorRatio float64
}

// Action is what to do with the canary.
type Action string

// Actions.
const (
	Continue Action = "Continue"
	Rollback Action = "Rollback"
	Promote  Action = "Promote"
)

// Reasons, CamelCase for conditions and events.
const (
	ReasonWaitingForSamples     = "WaitingForSamples"
	ReasonHealthy               = "Healthy"
	ReasonConfidenceBelowStable = "ConfidenceBelowStable"
	ReasonErrorRatioIncreased   = "ErrorRatioIncreased"
	ReasonPromoted              = "Promoted"
)

// Verdict is Judge's answer.
type Verdict struct {
	Action  Action
	Reason  string
	Message string
	// StableMean and CanaryMean are the window's means (valid when the
	// counts are at least MinSamples).
	StableMean, CanaryMean float64
	Judged                 bool // both means had enough samples
}

// Judge decides from one window.
func Judge(p Params, o Observation) Verdict {
	v := Verdict{Action: Continue}
	enough := o.StableCount >= p.MinSamples && o.CanaryCount >= p.MinSamples
	if o.StableCount > 0 {
		v.StableMean = o.StableSum / o.StableCount
	}
	if o.CanaryCount > 0 {
		v.CanaryMean = o.CanarySum / o.CanaryCount
	}
	if o.Requests >= p.MinSamples && o.ErrorRatio-o.BaselineErrorRatio > p.MaxErrorRatioIncrease {
		v.Action, v.Reason = Rollback, ReasonErrorRatioIncreased
		v.Message = fmt.Sprintf("5xx ratio %.4f over %.0f requests, %.4f before the canary: rose by more than %.4f",
			o.ErrorRatio, o.Requests, o.BaselineErrorRatio, p.MaxErrorRatioIncrease)
		return v
	}
	if !enough {
		v.Reason = ReasonWaitingForSamples
		v.Message = fmt.Sprintf("%.0f canary and %.0f stable predictions in the window; %.0f of each needed",
			o.CanaryCount, o.StableCount, p.MinSamples)
		return v
	}
	v.Judged = true
	if v.CanaryMean < v.StableMean-p.Margin {
		v.Action, v.Reason = Rollback, ReasonConfidenceBelowStable
		v.Message = fmt.Sprintf("canary mean confidence %.4f (%.0f predictions) is below stable %.4f (%.0f) by more than %.4f",
			v.CanaryMean, o.CanaryCount, v.StableMean, o.StableCount, p.Margin)
		return v
	}
	if o.Elapsed >= p.Analysis {
		v.Action, v.Reason = Promote, ReasonPromoted
		v.Message = fmt.Sprintf("healthy for %s: canary mean confidence %.4f, stable %.4f (margin %.4f); 5xx ratio %.4f (baseline %.4f)",
			p.Analysis, v.CanaryMean, v.StableMean, p.Margin, o.ErrorRatio, o.BaselineErrorRatio)
		return v
	}
	v.Reason = ReasonHealthy
	v.Message = fmt.Sprintf("canary mean confidence %.4f, stable %.4f (margin %.4f); %s of %s analysis done",
		v.CanaryMean, v.StableMean, p.Margin, o.Elapsed.Round(time.Second), p.Analysis)
	return v
}
