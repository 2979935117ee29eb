package controller

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	v1alpha1 "github.com/visionserve/visionserve/api/v1alpha1"
	"github.com/visionserve/visionserve/internal/controller/autoscale"
	"github.com/visionserve/visionserve/internal/controller/canary"
)

// Event reasons of the canary.
const (
	ReasonCanaryStarted      = "CanaryStarted"
	ReasonCanaryPromoted     = "CanaryPromoted"
	ReasonCanaryRolledBack   = "CanaryRolledBack"
	ReasonCanaryRemoved      = "CanaryRemoved"
	ReasonTrafficNotApplied  = "TrafficNotApplied"
	reasonCanaryStartedState = "Started"
)

// canary advances the canary by one decision: start a canary the spec
// names, withdraw one the spec no longer names, judge one under test on
// the window. It decides status only: route then holds every ready pod,
// and every pod that starts later, to the traffic status.canary implies.
func (r *Reconciler) canary(ctx context.Context, vs *v1alpha1.VisionService, f *fleet, obs autoscale.Observation, now time.Time) {
	spec, st := vs.Spec.Canary, vs.Status.Canary
	if spec == nil {
		if st != nil && st.Phase == v1alpha1.CanaryProgressing {
			// Withdrawn under test: everything back to the stable version.
			st.Phase, st.Reason = v1alpha1.CanaryRolledBack, ReasonCanaryRemoved
			st.Message = fmt.Sprintf("spec.canary was removed while version %d was under test; all %s traffic returned to version %d", st.Version, st.Model, st.StableVersion)
			r.Recorder.Event(vs, corev1.EventTypeNormal, ReasonCanaryRemoved, st.Message)
		}
		return // the verdict stays in status.canary, and its traffic on the pods
	}
	if !sameCanary(spec, st) {
		// A new canary. The window so far is from before it: its 5xx
		// ratio is the baseline.
		base := round(obs.ErrorRatio, 4)
		st = &v1alpha1.CanaryStatus{
			Model: spec.Model, StableVersion: spec.StableVersion, Version: spec.Version,
			Phase: v1alpha1.CanaryProgressing, Reason: reasonCanaryStartedState, BaselineErrorRatio: &base,
			Message: fmt.Sprintf("sending %d%% of %s traffic to version %d, the rest to %d", canaryWeight(spec), spec.Model, spec.Version, spec.StableVersion),
		}
		vs.Status.Canary = st
		r.Recorder.Event(vs, corev1.EventTypeNormal, ReasonCanaryStarted, st.Message)
	}
	// Judged only on a window in which every ready pod had the weights.
	if st.Phase == v1alpha1.CanaryProgressing && st.StartTime != nil && f.lastTraffic == "" {
		r.judge(ctx, vs, st, obs, now)
	}
	canaryCondition(vs)
}

// sameCanary reports whether status describes the canary spec names.
func sameCanary(spec *v1alpha1.CanarySpec, st *v1alpha1.CanaryStatus) bool {
	return spec != nil && st != nil && st.Model == spec.Model && st.Version == spec.Version && st.StableVersion == spec.StableVersion
}

// canaryCondition sets CanaryHealthy from the phase of the canary spec
// names; a canary whose weights some pod refused stays Unknown
// (routeCanary).
func canaryCondition(vs *v1alpha1.VisionService) {
	st := vs.Status.Canary
	if vs.Spec.Canary == nil || st == nil {
		return
	}
	switch st.Phase {
	case v1alpha1.CanaryRolledBack:
		setCondition(vs, v1alpha1.ConditionCanaryHealthy, metav1.ConditionFalse, st.Reason, st.Message)
	default:
		setCondition(vs, v1alpha1.ConditionCanaryHealthy, metav1.ConditionTrue, st.Reason, st.Message)
	}
}

func (r *Reconciler) judge(ctx context.Context, vs *v1alpha1.VisionService, st *v1alpha1.CanaryStatus, obs autoscale.Observation, now time.Time) {
	stable := obs.PerVersion[autoscale.Version{Model: st.Model, Version: strconv.Itoa(int(st.StableVersion))}]
	cand := obs.PerVersion[autoscale.Version{Model: st.Model, Version: strconv.Itoa(int(st.Version))}]
	base := 0.0
	if st.BaselineErrorRatio != nil {
		base = *st.BaselineErrorRatio
	}
	v := canary.Judge(canaryParams(vs.Spec.Canary), canary.Observation{
		Elapsed:   now.Sub(st.StartTime.Time),
		StableSum: stable.Sum, StableCount: stable.Count,
		CanarySum: cand.Sum, CanaryCount: cand.Count,
		ErrorRatio: obs.ErrorRatio, Requests: obs.Requests, BaselineErrorRatio: base,
	})
	logf.FromContext(ctx).V(1).Info("canary decision", "action", string(v.Action), "reason", v.Reason, "inputs", v.Message)
	if v.Judged {
		c, s := round(v.CanaryMean, 4), round(v.StableMean, 4)
		st.CanaryConfidence, st.StableConfidence = &c, &s
	}
	st.Reason, st.Message = v.Reason, v.Message
	switch v.Action {
	case canary.Rollback:
		st.Phase = v1alpha1.CanaryRolledBack
		st.Message = fmt.Sprintf("version %d rolled back, all traffic to %d: %s", st.Version, st.StableVersion, v.Message)
		r.Recorder.Event(vs, corev1.EventTypeWarning, ReasonCanaryRolledBack, st.Message)
	case canary.Promote:
		st.Phase = v1alpha1.CanaryPromoted
		st.Message = fmt.Sprintf("version %d promoted, all traffic to it: %s", st.Version, v.Message)
		r.Recorder.Event(vs, corev1.EventTypeNormal, ReasonCanaryPromoted, st.Message)
	}
	// The new weights go to the pods in this reconcile (route).
}

// weightsFor are the traffic weights of a canary's phase.
func weightsFor(st *v1alpha1.CanaryStatus, weight int32) map[int32]int32 {
	switch st.Phase {
	case v1alpha1.CanaryPromoted:
		return map[int32]int32{st.Version: 100}
	case v1alpha1.CanaryRolledBack:
		return map[int32]int32{st.StableVersion: 100}
	}
	return map[int32]int32{st.StableVersion: 100 - weight, st.Version: weight}
}

// adminKey reads the models:admin API key the pods' admin API wants.
func (r *Reconciler) adminKey(ctx context.Context, vs *v1alpha1.VisionService) (string, error) {
	ref := vs.Spec.Server.AdminKeySecret
	if ref == nil {
		return "", errors.New("spec.server.adminKeySecret is not set")
	}
	var sec corev1.Secret
	if err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: vs.Namespace, Name: ref.Name}, &sec); err != nil {
		return "", fmt.Errorf("reading the admin key: %w", err)
	}
	key := strings.TrimSpace(string(sec.Data[ref.Key]))
	if key == "" {
		return "", fmt.Errorf("secret %s has no key %q", ref.Name, ref.Key)
	}
	return key, nil
}
