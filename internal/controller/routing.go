package controller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	v1alpha1 "github.com/visionserve/visionserve/api/v1alpha1"
	"github.com/visionserve/visionserve/internal/controller/metricsource"
)

// The traffic of a model is the operator's once it has run a canary of it:
// status.canary holds the canary's phase (under test, promoted, rolled
// back), and its weights are the model's routing on every pod, with or
// without spec.canary, until another canary starts or status.canary is
// cleared. Two paths carry them to the pods, because a pod keeps its
// weights in memory only:
//
//   - the traffic ConfigMap (<name>-traffic), mounted in every pod and read
//     by the server at start (--traffic-file): a pod that starts later (a
//     restart, a scale-up, a rollout, the replacement of a killed pod)
//     serves by the verdict from its first request;
//   - the admin API (PUT /v1/models/{model}/traffic) of each ready pod,
//     for the pods that run when the weights change, and again for any
//     pod that restarted or was not reached (route).
//
// A model whose canary status was cleared stays in the ConfigMap with no
// weights, so that every pod returns to (and starts on) its newest version.

// Traffic file of the pods: the ConfigMap's key and where it is mounted.
const (
	TrafficPath = "/var/run/visionserve/traffic"
	TrafficFile = "traffic.json"
)

// routes are the traffic weights the operator holds pods to, by model.
// Empty weights return a model to its newest version.
type routes map[string]map[int32]int32

func trafficConfigMapName(vs *v1alpha1.VisionService) string { return vs.Name + "-traffic" }

// String is a stable text of the routes: what a routed pod was given.
func (rt routes) String() string {
	var b strings.Builder
	for _, m := range slices.Sorted(maps.Keys(rt)) {
		fmt.Fprintf(&b, "%s:", m)
		for _, v := range slices.Sorted(maps.Keys(rt[m])) {
			fmt.Fprintf(&b, "%d=%d,", v, rt[m][v])
		}
		b.WriteString(";")
	}
	return b.String()
}

// trafficEntry is one model's entry of the traffic file: the body of PUT
// /v1/models/{model}/traffic (the server reads the file with the same
// shape, internal/app).
type trafficEntry struct {
	Weights map[string]int32 `json:"weights"`
}

// file is the routes as the server's --traffic-file reads them.
func (rt routes) file() string {
	out := make(map[string]trafficEntry, len(rt))
	for m, ws := range rt {
		e := trafficEntry{Weights: map[string]int32{}}
		for v, w := range ws {
			e.Weights[strconv.Itoa(int(v))] = w
		}
		out[m] = e
	}
	b, _ := json.Marshal(out) // maps of strings and numbers: cannot fail
	return string(b)
}

// parseRoutes reads a traffic file the operator wrote.
func parseRoutes(data string) (routes, error) {
	var in map[string]trafficEntry
	if err := json.Unmarshal([]byte(data), &in); err != nil {
		return nil, err
	}
	rt := routes{}
	for m, e := range in {
		rt[m] = map[int32]int32{}
		for k, w := range e.Weights {
			v, err := strconv.ParseInt(k, 10, 32)
			if err != nil {
				return nil, fmt.Errorf("model %s: version %q: %w", m, k, err)
			}
			rt[m][int32(v)] = w
		}
	}
	return rt, nil
}

// previousRoutes are the routes of the traffic ConfigMap as last applied:
// the models whose traffic the operator holds.
func (r *Reconciler) previousRoutes(ctx context.Context, vs *v1alpha1.VisionService) routes {
	var cm corev1.ConfigMap
	err := r.Get(ctx, types.NamespacedName{Namespace: vs.Namespace, Name: trafficConfigMapName(vs)}, &cm)
	if err != nil {
		if !apierrors.IsNotFound(err) {
			logf.FromContext(ctx).V(1).Info("reading the traffic ConfigMap", "error", err.Error())
		}
		return routes{}
	}
	rt, err := parseRoutes(cm.Data[TrafficFile])
	if err != nil {
		logf.FromContext(ctx).Info("the traffic ConfigMap does not hold routes; it is rewritten from status.canary", "error", err.Error())
		return routes{}
	}
	return rt
}

// desiredRoutes are the routes status.canary implies: its weights for its
// model, and the newest version for each model routed before.
func desiredRoutes(vs *v1alpha1.VisionService, previous routes) routes {
	out := routes{}
	for m := range previous {
		out[m] = map[int32]int32{}
	}
	st := vs.Status.Canary
	switch {
	case st == nil:
	case st.Phase != v1alpha1.CanaryProgressing:
		out[st.Model] = weightsFor(st, 0)
	case sameCanary(vs.Spec.Canary, st):
		out[st.Model] = weightsFor(st, canaryWeight(vs.Spec.Canary))
	case previous[st.Model] != nil:
		// Under test, but the spec names another canary or none: the
		// next decision settles it; until then nothing changes.
		out[st.Model] = previous[st.Model]
	}
	return out
}

// trafficConfigMap holds the routes for the pods' --traffic-file; nil
// without a model repository (the server has no versions to split).
func trafficConfigMap(vs *v1alpha1.VisionService, rt routes) *corev1ac.ConfigMapApplyConfiguration {
	if vs.Spec.Models == nil {
		return nil
	}
	return corev1ac.ConfigMap(trafficConfigMapName(vs), vs.Namespace).
		WithLabels(objectLabels(vs)).
		WithOwnerReferences(ownerRef(vs)).
		WithData(map[string]string{TrafficFile: rt.file()})
}

// routed is what a pod was last given: the routes, for the container
// restarts it had then (a restarted server starts from the file again, and
// is given the routes once more).
type routed struct {
	restarts int32
	routes   string
}

func restarts(p *corev1.Pod) int32 {
	var n int32
	for _, cs := range p.Status.ContainerStatuses {
		n += cs.RestartCount
	}
	return n
}

// route gives the routes to each ready pod that does not have them yet
// (every ready pod when all is set: each decision interval, so that a
// weight changed by hand does not stay). It returns how many pods took
// them; an error names the pods that refused, and is reported once as an
// event. Nothing is read or sent when there are no routes.
func (r *Reconciler) route(ctx context.Context, vs *v1alpha1.VisionService, f *fleet, rt routes, pods []corev1.Pod, all bool) (int, error) {
	want := rt.String()
	var todo []*corev1.Pod
	seen := map[types.UID]bool{}
	for i := range pods {
		p := &pods[i]
		seen[p.UID] = true
		if !podReady(p) || len(rt) == 0 {
			continue
		}
		if got, ok := f.routed[p.UID]; all || !ok || got.routes != want || got.restarts != restarts(p) {
			todo = append(todo, p)
		}
	}
	for uid := range f.routed {
		if !seen[uid] {
			delete(f.routed, uid)
		}
	}
	if len(todo) == 0 {
		return 0, nil
	}
	var errs []error
	applied := 0
	key, err := r.adminKey(ctx, vs)
	if err != nil {
		errs = append(errs, err)
		todo = nil
	}
	for _, p := range todo {
		if err := r.routePod(ctx, vs, p, key, rt); err != nil {
			errs = append(errs, fmt.Errorf("pod %s: %w", p.Name, err))
			continue
		}
		f.routed[p.UID] = routed{restarts: restarts(p), routes: want}
		applied++
	}
	err = errors.Join(errs...)
	if err != nil && err.Error() != f.lastTraffic {
		r.Recorder.Event(vs, corev1.EventTypeWarning, ReasonTrafficNotApplied, err.Error())
	}
	if err != nil {
		f.lastTraffic = err.Error()
	} else {
		f.lastTraffic = ""
	}
	return applied, err
}

// routePod sets every model's weights on one pod.
func (r *Reconciler) routePod(ctx context.Context, vs *v1alpha1.VisionService, p *corev1.Pod, key string, rt routes) error {
	for _, m := range slices.Sorted(maps.Keys(rt)) {
		if err := metricsource.SetTraffic(ctx, r.httpClient(), r.podURL(p, adminPort(vs)), m, key, rt[m]); err != nil {
			return err
		}
	}
	return nil
}

// retryRouting is how soon pods that refused their routes are tried again
// when no decision interval brings the next attempt.
const retryRouting = 10 * time.Second

// routeCanary records in status what routing means for the canary spec
// names: it started when its weights first reached a pod, and is Unknown
// while some pod refuses them.
func routeCanary(vs *v1alpha1.VisionService, applied int, err error, now time.Time) {
	st := vs.Status.Canary
	if vs.Spec.Canary == nil {
		// The verdict stays in status.canary, and its traffic on the pods.
		meta.RemoveStatusCondition(&vs.Status.Conditions, v1alpha1.ConditionCanaryHealthy)
		return
	}
	if !sameCanary(vs.Spec.Canary, st) {
		return
	}
	if st.Phase == v1alpha1.CanaryProgressing && err != nil {
		setCondition(vs, v1alpha1.ConditionCanaryHealthy, metav1.ConditionUnknown, ReasonTrafficNotApplied, err.Error())
		return
	}
	if st.Phase == v1alpha1.CanaryProgressing && st.StartTime == nil && applied > 0 {
		t := metav1.NewTime(now)
		st.StartTime = &t
	}
	canaryCondition(vs)
}
