package controller

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1alpha1 "github.com/visionserve/visionserve/api/v1alpha1"
	"github.com/visionserve/visionserve/internal/controller/autoscale"
	"github.com/visionserve/visionserve/internal/controller/canary"
)

func durationOr(d *metav1.Duration, def time.Duration) time.Duration {
	if d == nil {
		return def
	}
	return d.Duration
}

func floatOr(f *float64, def float64) float64 {
	if f == nil {
		return def
	}
	return *f
}

func int32Or(i *int32, def int32) int32 {
	if i == nil {
		return def
	}
	return *i
}

// timing is how often a VisionService is measured and over what window.
func timing(vs *v1alpha1.VisionService) (interval, window time.Duration) {
	interval, window = autoscale.DefaultInterval, autoscale.DefaultWindow
	if a := vs.Spec.Autoscaling; a != nil {
		interval = durationOr(a.Interval, interval)
		window = durationOr(a.Window, window)
	}
	return interval, max(window, interval)
}

// autoscaleParams are the spec's autoscaling settings with defaults.
func autoscaleParams(vs *v1alpha1.VisionService) autoscale.Params {
	a := vs.Spec.Autoscaling
	minR := max(vs.Spec.MinReplicas, 1)
	p := autoscale.DefaultParams(minR, max(int32Or(vs.Spec.MaxReplicas, minR), minR), a.QPSPerReplica)
	_, window := timing(vs)
	p.ConfidenceFloor = floatOr(a.ConfidenceFloor, 0)
	p.EWMAAlpha = floatOr(a.EWMAAlpha, p.EWMAAlpha)
	p.Tolerance = floatOr(a.Tolerance, p.Tolerance)
	p.ScaleUpStabilization = durationOr(a.ScaleUpStabilization, p.ScaleUpStabilization)
	p.ScaleDownStabilization = durationOr(a.ScaleDownStabilization, p.ScaleDownStabilization)
	p.MaxStep = int32Or(a.MaxStep, p.MaxStep)
	p.ConfidenceCooldown = window
	return p
}

// canaryParams are the spec's canary settings with defaults.
func canaryParams(c *v1alpha1.CanarySpec) canary.Params {
	return canary.Params{
		Margin:                floatOr(c.ConfidenceMargin, canary.DefaultMargin),
		MaxErrorRatioIncrease: floatOr(c.MaxErrorRatioIncrease, canary.DefaultMaxErrorRatioIncrease),
		MinSamples:            float64(int32Or(c.MinSamples, canary.DefaultMinSamples)),
		Analysis:              durationOr(c.Analysis, canary.DefaultAnalysis),
	}
}

func canaryWeight(c *v1alpha1.CanarySpec) int32 {
	if c.Weight > 0 {
		return c.Weight
	}
	return canary.DefaultWeight
}
