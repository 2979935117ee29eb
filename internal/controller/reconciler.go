package controller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"gopkg.in/yaml.v3"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	v1alpha1 "github.com/visionserve/visionserve/api/v1alpha1"
	"github.com/visionserve/visionserve/internal/controller/autoscale"
	"github.com/visionserve/visionserve/internal/controller/metricsource"
)

// Options configure the reconciler. The zero value works in a cluster.
type Options struct {
	// Clock stamps decisions; tests may inject one.
	Clock clock.PassiveClock
	// HTTPClient scrapes pods, queries Prometheus and sets traffic weights
	// (a 5 s timeout when nil).
	HTTPClient *http.Client
	// PodURL is the base URL of a pod's HTTP port; tests point it at local
	// servers. Default http://<pod IP>:<port>.
	PodURL func(pod *corev1.Pod, port int32) string
	// ServiceMonitors makes the reconciler own a ServiceMonitor per
	// VisionService; set it when the monitoring.coreos.com CRD exists.
	ServiceMonitors bool
	// Recheck is how soon a VisionService waiting for something the
	// operator does not watch (an existing model claim, the Secret of its
	// key-encryption key) is looked at again. Default 30s.
	Recheck time.Duration
}

// Reconciler reconciles VisionServices.
type Reconciler struct {
	client.Client
	// APIReader reads objects the cache does not hold (claims the operator
	// does not own).
	APIReader client.Reader
	Scheme    *runtime.Scheme
	Recorder  record.EventRecorder
	Opts      Options

	mu     sync.Mutex
	fleets map[types.NamespacedName]*fleet
}

// fleet is what the reconciler remembers about one VisionService between
// reconciles: the rate window, the autoscaler's state and when the next
// decision is due.
type fleet struct {
	uid         types.UID
	params      autoscale.Params
	scaler      *autoscale.Autoscaler
	window      *autoscale.Window
	next        time.Time
	lastReason  autoscale.Reason
	lastTraffic string // last traffic error reported as an event
	// routed is what each pod (by UID) was given by route.
	routed map[types.UID]routed
}

// RBAC of the operator (deploy/operator/rbac/role.yaml is generated from these).
//
// +kubebuilder:rbac:groups=visionserve.io,resources=visionservices,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=visionserve.io,resources=visionservices/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=visionserve.io,resources=visionservices/finalizers,verbs=update
// +kubebuilder:rbac:groups=apps,resources=deployments,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=core,resources=services;configmaps;persistentvolumeclaims,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=core,resources=pods,verbs=get;list;watch
// +kubebuilder:rbac:groups=core,resources=secrets,verbs=get
// +kubebuilder:rbac:groups=core,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=policy,resources=poddisruptionbudgets,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=monitoring.coreos.com,resources=servicemonitors,verbs=get;list;watch;create;update;patch;delete

// Setup registers the reconciler with a manager.
func Setup(mgr ctrl.Manager, opts Options) error {
	r := &Reconciler{
		Client:    mgr.GetClient(),
		APIReader: mgr.GetAPIReader(),
		Scheme:    mgr.GetScheme(),
		Recorder:  mgr.GetEventRecorderFor(ManagedBy),
		Opts:      opts,
	}
	b := ctrl.NewControllerManagedBy(mgr).
		For(&v1alpha1.VisionService{}).
		Owns(&appsv1.Deployment{}).
		Owns(&corev1.Service{}).
		Owns(&policyv1.PodDisruptionBudget{}).
		Owns(&corev1.ConfigMap{}).
		Owns(&corev1.PersistentVolumeClaim{}).
		// Pods: readiness and failures show in status at once.
		Watches(&corev1.Pod{}, handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
			name := o.GetLabels()[LabelInstance]
			if name == "" || o.GetLabels()[LabelManagedBy] != ManagedBy {
				return nil
			}
			return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: o.GetNamespace(), Name: name}}}
		}))
	if opts.ServiceMonitors {
		sm := &unstructured.Unstructured{}
		sm.SetGroupVersionKind(ServiceMonitorGVK)
		b = b.Owns(sm)
	}
	return b.Complete(r)
}

// CacheOptions limit the manager's cache to what the operator manages:
// without them it would hold every pod and config map of the cluster.
func CacheOptions() cache.Options {
	managed := labels.SelectorFromSet(labels.Set{LabelManagedBy: ManagedBy})
	return cache.Options{ByObject: map[client.Object]cache.ByObject{
		&corev1.Pod{}:                   {Label: managed},
		&corev1.ConfigMap{}:             {Label: managed},
		&corev1.Service{}:               {Label: managed},
		&corev1.PersistentVolumeClaim{}: {Label: managed},
		&appsv1.Deployment{}:            {Label: managed},
		&policyv1.PodDisruptionBudget{}: {Label: managed},
	}}
}

func (r *Reconciler) clock() clock.PassiveClock {
	if r.Opts.Clock != nil {
		return r.Opts.Clock
	}
	return clock.RealClock{}
}

func (r *Reconciler) httpClient() *http.Client {
	if r.Opts.HTTPClient != nil {
		return r.Opts.HTTPClient
	}
	return &http.Client{Timeout: 5 * time.Second}
}

func (r *Reconciler) podURL(p *corev1.Pod, port int32) string {
	if r.Opts.PodURL != nil {
		return r.Opts.PodURL(p, port)
	}
	return podURL(p, port)
}

// fleetFor returns the memory of a VisionService, new for a new object.
func (r *Reconciler) fleetFor(vs *v1alpha1.VisionService) *fleet {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fleets == nil {
		r.fleets = map[types.NamespacedName]*fleet{}
	}
	key := types.NamespacedName{Namespace: vs.Namespace, Name: vs.Name}
	f := r.fleets[key]
	_, window := timing(vs)
	if f == nil || f.uid != vs.UID {
		f = &fleet{uid: vs.UID, window: autoscale.NewWindow(window), routed: map[types.UID]routed{}}
		r.fleets[key] = f
	}
	f.window.Length = window
	return f
}

func (r *Reconciler) forget(key types.NamespacedName) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.fleets, key)
}

// Reconcile brings one VisionService's objects and status to its spec.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	log := logf.FromContext(ctx)
	var vs v1alpha1.VisionService
	if err := r.Get(ctx, req.NamespacedName, &vs); err != nil {
		if apierrors.IsNotFound(err) {
			r.forget(req.NamespacedName) // owner references delete the rest
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, err
	}
	if !vs.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil
	}
	orig := vs.DeepCopy()
	now := r.clock().Now()
	vs.Status.ObservedGeneration = vs.Generation

	if err := validate(&vs); err != nil {
		// The schema cannot check this; retrying will not fix it, a new
		// spec will.
		return r.refuse(ctx, orig, &vs, "InvalidSpec", err)
	}
	if err := checkJobs(&vs); err != nil {
		setCondition(&vs, v1alpha1.ConditionJobsConfigured, metav1.ConditionFalse, ReasonEmbeddedJobsNeedOneReplica, err.Error())
		return r.refuse(ctx, orig, &vs, ReasonEmbeddedJobsNeedOneReplica, err)
	}
	if store := jobsStore(&vs); store == v1alpha1.JobsOff {
		meta.RemoveStatusCondition(&vs.Status.Conditions, v1alpha1.ConditionJobsConfigured)
	} else {
		setCondition(&vs, v1alpha1.ConditionJobsConfigured, metav1.ConditionTrue, string(store), "jobs are kept in the "+strings.ToLower(string(store))+" store")
	}
	kek, err := r.checkEncryption(ctx, &vs)
	var refusal *encryptionRefusal
	switch {
	case errors.As(err, &refusal) && !refusal.wait:
		return r.refuse(ctx, orig, &vs, refusal.reason, err)
	case errors.As(err, &refusal):
		// The Secret may be created or fixed later, and the operator
		// does not watch Secrets: look again.
		if err := r.recordRefusal(ctx, orig, &vs, refusal.reason, err); err != nil {
			return ctrl.Result{}, err
		}
		return ctrl.Result{RequeueAfter: r.recheck()}, nil
	case err != nil:
		return ctrl.Result{}, err
	}

	var pods corev1.PodList
	if err := r.List(ctx, &pods, client.InNamespace(vs.Namespace), client.MatchingLabels(selectorLabels(&vs))); err != nil {
		return ctrl.Result{}, fmt.Errorf("listing pods: %w", err)
	}
	slices.SortFunc(pods.Items, func(a, b corev1.Pod) int { return strings.Compare(a.Name, b.Name) })

	modelsReady, err := r.checkModels(ctx, &vs)
	if err != nil {
		return ctrl.Result{}, err
	}

	// Decide, when a decision is due.
	f := r.fleetFor(&vs)
	desired := initialReplicas(&vs)
	var requeue time.Duration
	decided := false
	if measuring(&vs) {
		if !now.Before(f.next) {
			interval, _ := timing(&vs)
			f.next = now.Add(interval)
			obs, err := r.observe(ctx, &vs, f, pods.Items, now)
			if err != nil {
				log.V(1).Info("measuring the fleet", "error", err.Error())
			}
			if vs.Spec.Autoscaling != nil {
				desired = r.autoscale(ctx, &vs, f, obs, desired)
			}
			r.canary(ctx, &vs, f, obs, now)
			decided = true
		}
		requeue = f.next.Sub(now)
	}
	// Hold the pods to the traffic status.canary implies: those that do
	// not have it yet, and all of them when a decision was made.
	routes := desiredRoutes(&vs, r.previousRoutes(ctx, &vs))
	applied, err := r.route(ctx, &vs, f, routes, pods.Items, decided)
	routeCanary(&vs, applied, err, now)
	if err != nil && (requeue == 0 || retryRouting < requeue) {
		requeue = retryRouting
	}
	if vs.Spec.Autoscaling == nil {
		meta.RemoveStatusCondition(&vs.Status.Conditions, v1alpha1.ConditionScalingActive)
		vs.Status.ObservedQPS, vs.Status.ObservedConfidence = nil, nil
	}
	vs.Status.DesiredReplicas = desired

	dep, err := r.apply(ctx, &vs, desired, routes, kek)
	if err != nil {
		vs.Status.Phase = v1alpha1.PhaseFailed
		reason := "ApplyFailed"
		if apierrors.IsInvalid(err) || apierrors.IsBadRequest(err) {
			reason = "Invalid"
		}
		setCondition(&vs, v1alpha1.ConditionReady, metav1.ConditionFalse, reason, err.Error())
		r.Recorder.Event(&vs, corev1.EventTypeWarning, reason, err.Error())
		if perr := r.patchStatus(ctx, orig, &vs); perr != nil {
			log.Error(perr, "writing status")
		}
		if reason == "Invalid" {
			// The API server refused what the spec asks for (e.g. a change
			// to an immutable field of the model claim): not retryable.
			return ctrl.Result{}, reconcile.TerminalError(err)
		}
		return ctrl.Result{}, err
	}
	setPhase(&vs, dep, pods.Items, modelsReady)
	if err := r.patchStatus(ctx, orig, &vs); err != nil {
		return ctrl.Result{}, err
	}
	// Waiting for the model claim; or sealing with a KEK whose Secret
	// may get a new value (not watched): look again.
	if !modelsReady || kek != "" {
		if recheck := r.recheck(); requeue == 0 || recheck < requeue {
			requeue = recheck
		}
	}
	return ctrl.Result{RequeueAfter: requeue}, nil
}

// recheck is how soon something the operator does not watch is looked at again.
func (r *Reconciler) recheck() time.Duration {
	if r.Opts.Recheck > 0 {
		return r.Opts.Recheck
	}
	return 30 * time.Second
}

// refuse records a spec that cannot be served as written: phase Failed,
// Ready false with reason, an event when that is news. Nothing is
// applied (what runs keeps running) and the error is terminal: a new
// spec, not a retry, fixes it.
func (r *Reconciler) refuse(ctx context.Context, orig, vs *v1alpha1.VisionService, reason string, err error) (ctrl.Result, error) {
	if perr := r.recordRefusal(ctx, orig, vs, reason, err); perr != nil {
		return ctrl.Result{}, perr
	}
	return ctrl.Result{}, reconcile.TerminalError(err)
}

// recordRefusal writes a refusal into status: phase Failed, Ready false
// with reason, an event when that is news.
func (r *Reconciler) recordRefusal(ctx context.Context, orig, vs *v1alpha1.VisionService, reason string, err error) error {
	vs.Status.Phase = v1alpha1.PhaseFailed
	setCondition(vs, v1alpha1.ConditionReady, metav1.ConditionFalse, reason, err.Error())
	if c := meta.FindStatusCondition(orig.Status.Conditions, v1alpha1.ConditionReady); c == nil || c.Status != metav1.ConditionFalse ||
		c.Reason != reason || orig.Status.Phase != v1alpha1.PhaseFailed {
		r.Recorder.Event(vs, corev1.EventTypeWarning, reason, err.Error())
	}
	return r.patchStatus(ctx, orig, vs)
}

// ReasonEmbeddedJobsNeedOneReplica is the reason a VisionService with
// embedded jobs and several replicas (or autoscaling) is refused.
const ReasonEmbeddedJobsNeedOneReplica = "EmbeddedJobsNeedOneReplica"

// checkJobs refuses embedded jobs where several pods would each keep a
// database of their own: a job submitted through one pod would be 404 on
// the next, and a pod removed by a scale-down would strand its jobs.
func checkJobs(vs *v1alpha1.VisionService) error {
	if jobsStore(vs) != v1alpha1.JobsEmbedded {
		return nil
	}
	switch {
	case vs.Spec.Autoscaling != nil:
		return errors.New("spec.jobs.store Embedded keeps jobs in one pod's database, and spec.autoscaling may run several pods: use store Postgres, or remove autoscaling")
	case int32Or(vs.Spec.Replicas, 1) > 1:
		return fmt.Errorf("spec.jobs.store Embedded keeps jobs in one pod's database, and spec.replicas is %d: use store Postgres, or one replica", *vs.Spec.Replicas)
	}
	return nil
}

// validate refuses what the schema cannot express. The server's own
// validation of its configuration stays the server's: only what would
// certainly keep every pod from starting is checked here.
func validate(vs *v1alpha1.VisionService) error {
	var m map[string]any
	if c := vs.Spec.Server.Config; c != "" {
		if err := yaml.Unmarshal([]byte(c), &m); err != nil {
			return fmt.Errorf("spec.server.config is not a YAML mapping: %w", err)
		}
	}
	noAuth := slices.ContainsFunc(vs.Spec.Server.Args, func(a string) bool {
		return a == "--no-auth" || a == "-no-auth" || a == "--no-auth=true" || a == "-no-auth=true"
	})
	if _, ok := m["auth"]; !ok && !noAuth {
		return errors.New("the server refuses to start without credentials: configure auth (api_keys or jwt) in spec.server.config, or add --no-auth to spec.server.args (docs/security.md)")
	}
	return nil
}

// measuring reports whether the fleet's metrics are needed.
func measuring(vs *v1alpha1.VisionService) bool {
	return vs.Spec.Autoscaling != nil || vs.Spec.Canary != nil ||
		(vs.Status.Canary != nil && vs.Status.Canary.Phase == v1alpha1.CanaryProgressing)
}

// initialReplicas is the replica count before this reconcile's decision:
// the last decision while autoscaling, else spec.replicas.
func initialReplicas(vs *v1alpha1.VisionService) int32 {
	minR := max(vs.Spec.MinReplicas, 1)
	spec := int32Or(vs.Spec.Replicas, minR)
	if vs.Spec.Autoscaling == nil {
		return spec
	}
	cur := vs.Status.DesiredReplicas
	if cur == 0 {
		cur = spec
	}
	return min(max(cur, minR), max(int32Or(vs.Spec.MaxReplicas, minR), minR))
}

// checkModels reports whether the model claim exists; a missing existing
// claim is a condition, not an error (it may be created later).
func (r *Reconciler) checkModels(ctx context.Context, vs *v1alpha1.VisionService) (bool, error) {
	if vs.Spec.Models == nil || vs.Spec.Models.PersistentVolumeClaim == nil {
		meta.RemoveStatusCondition(&vs.Status.Conditions, v1alpha1.ConditionModelsAvailable)
		if vs.Spec.Models != nil {
			setCondition(vs, v1alpha1.ConditionModelsAvailable, metav1.ConditionTrue, "ClaimOwned",
				fmt.Sprintf("the operator owns the model claim %s", modelClaimName(vs)))
		}
		return true, nil
	}
	name := vs.Spec.Models.PersistentVolumeClaim.ClaimName
	var pvc corev1.PersistentVolumeClaim
	err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: vs.Namespace, Name: name}, &pvc)
	switch {
	case apierrors.IsNotFound(err):
		setCondition(vs, v1alpha1.ConditionModelsAvailable, metav1.ConditionFalse, "ClaimNotFound",
			fmt.Sprintf("PersistentVolumeClaim %s/%s does not exist; the pods cannot start until it does", vs.Namespace, name))
		return false, nil
	case err != nil:
		return false, fmt.Errorf("reading the model claim: %w", err)
	}
	setCondition(vs, v1alpha1.ConditionModelsAvailable, metav1.ConditionTrue, "ClaimFound",
		fmt.Sprintf("PersistentVolumeClaim %s (%s) is mounted read-only at %s", name, pvc.Status.Phase, ModelsPath))
	return true, nil
}

// observe measures the fleet over the window ending now.
func (r *Reconciler) observe(ctx context.Context, vs *v1alpha1.VisionService, f *fleet, pods []corev1.Pod, now time.Time) (autoscale.Observation, error) {
	var ready []*corev1.Pod
	all, serving := map[string]bool{}, map[string]bool{}
	for i := range pods {
		all[pods[i].Name] = true
		if podReady(&pods[i]) {
			ready = append(ready, &pods[i])
			serving[pods[i].Name] = true
		}
	}
	if a := vs.Spec.Autoscaling; a != nil && a.Prometheus != nil {
		p := &metricsource.Prometheus{URL: a.Prometheus.URL, Client: r.httpClient()}
		return p.Observe(ctx, vs.Namespace, vs.Name, f.window.Length, now, len(ready))
	}
	targets := make([]metricsource.Target, 0, len(ready))
	for _, p := range ready {
		targets = append(targets, metricsource.Target{Pod: p.Name, BaseURL: r.podURL(p, port(vs))})
	}
	s := &metricsource.Scraper{Client: r.httpClient(), Now: func() time.Time { return now }}
	samples, err := s.ScrapeAll(ctx, targets)
	for _, sm := range samples {
		f.window.Add(sm)
	}
	f.window.Forget(func(pod string) bool { return all[pod] })
	f.window.Retire(func(pod string) bool { return serving[pod] })
	return f.window.Observe(now, len(ready)), err
}

// autoscale makes one decision and records it.
func (r *Reconciler) autoscale(ctx context.Context, vs *v1alpha1.VisionService, f *fleet, obs autoscale.Observation, current int32) int32 {
	p := autoscaleParams(vs)
	if f.scaler == nil || f.params != p {
		f.scaler, f.params = autoscale.New(p), p
	}
	d := f.scaler.Decide(obs, current)
	log := logf.FromContext(ctx)
	log.V(1).Info("autoscaling decision", "reason", string(d.Reason), "current", d.Current, "desired", d.Desired, "inputs", d.Message())

	if d.ReportingPods > 0 {
		qps := round(d.SmoothedQPS, 3)
		vs.Status.ObservedQPS = &qps
	}
	if d.HasConfidence {
		c := round(d.SmoothedConfidence, 4)
		vs.Status.ObservedConfidence = &c
	}
	if d.Changed() {
		t := metav1.NewTime(d.Time)
		vs.Status.LastScaleTime = &t
		vs.Status.LastScaleReason = d.Message()
	}
	// Every decision that changes the count, or holds it for a new reason
	// worth knowing, is an event carrying its inputs. Routine holds
	// (Steady, WithinTolerance) repeat every interval: they go to the log,
	// or they would trip the event spam filter and hide the scaling events.
	routine := d.Reason == autoscale.HoldSteady || d.Reason == autoscale.HoldTolerance
	if d.Changed() || (d.Reason != f.lastReason && !routine) {
		typ := corev1.EventTypeNormal
		if d.Reason == autoscale.HoldNoMetrics || d.Reason == autoscale.HoldAtMax {
			typ = corev1.EventTypeWarning
		}
		r.Recorder.Event(vs, typ, string(d.Reason), d.Message())
	}
	f.lastReason = d.Reason

	if d.Reason == autoscale.HoldNoMetrics {
		setCondition(vs, v1alpha1.ConditionScalingActive, metav1.ConditionFalse, "NoMetrics",
			fmt.Sprintf("none of the %d ready pods reported metrics in the last %s; holding %d replicas", d.ReadyPods, f.window.Length, d.Desired))
	} else {
		setCondition(vs, v1alpha1.ConditionScalingActive, metav1.ConditionTrue, string(d.Reason), d.Message())
	}
	return d.Desired
}

func round(v float64, digits int) float64 {
	p := 1.0
	for range digits {
		p *= 10
	}
	return float64(int64(v*p+0.5)) / p
}

// apply creates or updates every owned object with server-side apply and
// deletes the optional ones the spec no longer asks for. rt are the routes
// the traffic ConfigMap holds; kek the fingerprint of spec.encryption's KEK.
func (r *Reconciler) apply(ctx context.Context, vs *v1alpha1.VisionService, replicas int32, rt routes, kek string) (*appsv1.Deployment, error) {
	for _, c := range []struct {
		name string
		cm   *corev1ac.ConfigMapApplyConfiguration
	}{{configMapName(vs), configMap(vs)}, {trafficConfigMapName(vs), trafficConfigMap(vs, rt)}} {
		if c.cm != nil {
			if err := r.applyObject(ctx, &corev1.ConfigMap{}, vs.Namespace, c.name, c.cm); err != nil {
				return nil, err
			}
		} else if err := r.deleteOwned(ctx, vs, &corev1.ConfigMap{}, c.name); err != nil {
			return nil, err
		}
	}
	for _, c := range []struct {
		name string
		pvc  *corev1ac.PersistentVolumeClaimApplyConfiguration
	}{{vs.Name + "-models", modelClaim(vs)}, {vs.Name + "-jobs", jobsClaim(vs)}} {
		name, pvc := c.name, c.pvc
		if pvc != nil {
			if err := r.applyObject(ctx, &corev1.PersistentVolumeClaim{}, vs.Namespace, name, pvc); err != nil {
				return nil, err
			}
		} else if err := r.deleteOwned(ctx, vs, &corev1.PersistentVolumeClaim{}, name); err != nil {
			return nil, err
		}
	}
	dep := &appsv1.Deployment{}
	if err := r.applyObject(ctx, dep, vs.Namespace, vs.Name, deployment(vs, replicas, kek)); err != nil {
		return nil, err
	}
	if err := r.applyObject(ctx, &corev1.Service{}, vs.Namespace, vs.Name, service(vs)); err != nil {
		return nil, err
	}
	if err := r.applyObject(ctx, &policyv1.PodDisruptionBudget{}, vs.Namespace, vs.Name, pdb(vs)); err != nil {
		return nil, err
	}
	if r.Opts.ServiceMonitors {
		sm := serviceMonitor(vs)
		if err := r.applyObject(ctx, sm.DeepCopy(), vs.Namespace, vs.Name, sm.Object); err != nil {
			return nil, err
		}
	}
	return dep, nil
}

// applyObject server-side applies cfg (an apply configuration or an
// unstructured object) as the operator's field manager and decodes the
// result into obj.
func (r *Reconciler) applyObject(ctx context.Context, obj client.Object, namespace, name string, cfg any) error {
	data, err := json.Marshal(cfg)
	if err != nil {
		return err
	}
	obj.SetNamespace(namespace)
	obj.SetName(name)
	if err := r.Patch(ctx, obj, client.RawPatch(types.ApplyPatchType, data), client.FieldOwner(ManagedBy), client.ForceOwnership); err != nil {
		return fmt.Errorf("applying %T %s: %w", obj, name, err)
	}
	return nil
}

// deleteOwned deletes an object if this VisionService controls it.
func (r *Reconciler) deleteOwned(ctx context.Context, vs *v1alpha1.VisionService, obj client.Object, name string) error {
	err := r.Get(ctx, types.NamespacedName{Namespace: vs.Namespace, Name: name}, obj)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if !metav1.IsControlledBy(obj, vs) {
		return nil
	}
	if err := r.Delete(ctx, obj); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("deleting %T %s: %w", obj, name, err)
	}
	return nil
}

// patchStatus writes status when it changed.
func (r *Reconciler) patchStatus(ctx context.Context, orig, vs *v1alpha1.VisionService) error {
	if equality.Semantic.DeepEqual(orig.Status, vs.Status) {
		return nil
	}
	if err := r.Status().Patch(ctx, vs, client.MergeFrom(orig)); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("writing status: %w", err)
	}
	return nil
}

func setCondition(vs *v1alpha1.VisionService, typ string, status metav1.ConditionStatus, reason, msg string) {
	meta.SetStatusCondition(&vs.Status.Conditions, metav1.Condition{
		Type: typ, Status: status, Reason: reason, Message: msg, ObservedGeneration: vs.Generation,
	})
}

// failingReasons are container states that do not heal by waiting.
var failingReasons = []string{"CrashLoopBackOff", "ImagePullBackOff", "ErrImagePull", "InvalidImageName", "CreateContainerConfigError", "CreateContainerError"}

// podFailure describes the first pod that is failing, or "".
func podFailure(pods []corev1.Pod) string {
	for _, p := range pods {
		for _, cs := range p.Status.ContainerStatuses {
			if w := cs.State.Waiting; w != nil && slices.Contains(failingReasons, w.Reason) {
				msg := fmt.Sprintf("pod %s: %s", p.Name, w.Reason)
				if w.Message != "" {
					msg += ": " + w.Message
				}
				return msg
			}
		}
		if p.Status.Phase == corev1.PodPending {
			for _, c := range p.Status.Conditions {
				if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable {
					return fmt.Sprintf("pod %s: Unschedulable: %s", p.Name, c.Message)
				}
			}
		}
	}
	return ""
}

// setPhase derives phase, replica counts and the Ready condition from the
// Deployment and pods.
func setPhase(vs *v1alpha1.VisionService, dep *appsv1.Deployment, pods []corev1.Pod, modelsReady bool) {
	desired := vs.Status.DesiredReplicas
	vs.Status.Selector = labels.SelectorFromSet(selectorLabels(vs)).String()
	vs.Status.Replicas = dep.Status.Replicas
	vs.Status.ReadyReplicas = dep.Status.ReadyReplicas
	ready := dep.Status.ReadyReplicas
	progress := fmt.Sprintf("%d of %d replicas ready, %d up to date", ready, desired, dep.Status.UpdatedReplicas)

	var stuck, replicaFailure string
	for _, c := range dep.Status.Conditions {
		switch {
		case c.Type == appsv1.DeploymentProgressing && c.Status == corev1.ConditionFalse:
			stuck = c.Reason + ": " + c.Message
		case c.Type == appsv1.DeploymentReplicaFailure && c.Status == corev1.ConditionTrue:
			replicaFailure = c.Reason + ": " + c.Message
		}
	}
	failing := podFailure(pods)
	problem := strings.Join(nonEmpty(replicaFailure, failing, stuck), "; ")

	phase, reason, msg := v1alpha1.PhaseProvisioning, "Provisioning", progress
	switch {
	case !modelsReady:
		phase, reason = v1alpha1.PhasePending, "ModelsUnavailable"
		msg = meta.FindStatusCondition(vs.Status.Conditions, v1alpha1.ConditionModelsAvailable).Message
	case dep.Status.ObservedGeneration < dep.Generation:
		reason, msg = "RolloutPending", "the Deployment controller has not seen the latest spec yet"
	case problem != "" && ready == 0 && desired > 0:
		phase, reason, msg = v1alpha1.PhaseFailed, "NoReplicaReady", problem
	case problem != "" && ready < desired:
		phase, reason, msg = v1alpha1.PhaseDegraded, "ReplicasFailing", progress+"; "+problem
	case ready >= desired && dep.Status.UpdatedReplicas >= desired && dep.Status.Replicas == desired:
		phase, reason = v1alpha1.PhaseRunning, "Running"
	case dep.Status.Replicas == 0 && desired > 0:
		phase, reason = v1alpha1.PhasePending, "Pending"
	}
	vs.Status.Phase = phase
	status := metav1.ConditionFalse
	if phase == v1alpha1.PhaseRunning {
		status = metav1.ConditionTrue
	}
	setCondition(vs, v1alpha1.ConditionReady, status, reason, msg)
}

func nonEmpty(s ...string) []string {
	return slices.DeleteFunc(s, func(x string) bool { return x == "" })
}
