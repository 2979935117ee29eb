package controller

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"
	policyv1ac "k8s.io/client-go/applyconfigurations/policy/v1"

	v1alpha1 "github.com/visionserve/visionserve/api/v1alpha1"
)

// Labels and paths shared by the objects the operator builds.
const (
	LabelName      = "app.kubernetes.io/name"
	LabelInstance  = "app.kubernetes.io/instance"
	LabelManagedBy = "app.kubernetes.io/managed-by"
	LabelComponent = "app.kubernetes.io/component"
	ManagedBy      = "visionserve-operator"

	// AnnotationConfigHash rolls the pods when the server config changes.
	AnnotationConfigHash = "visionserve.io/config-hash"

	ModelsPath = "/models"
	// StatePath is where a server remembers the model versions that
	// failed its isolated check (repository.state_dir): the models
	// volume is read-only, and an emptyDir outlives a container that
	// crashed and restarted, which is when the memory matters.
	StatePath  = "/var/lib/visionserve/state"
	ConfigDir  = "/etc/visionserve"
	ConfigFile = "config.yaml"
	// JobsPath holds the embedded job database; JobsDSNFile the shared
	// store's connection string, from its Secret.
	JobsPath    = "/var/lib/visionserve/jobs"
	JobsDSNFile = "/var/run/visionserve/jobs/dsn"

	containerName = "visionserve"
	portName      = "http"
	grpcPortName  = "grpc"
	adminPortName = "admin"
	// uid of the image's non-root user (deploy/Dockerfile).
	runAsUser = 65532
	// terminationGrace: preStopSleep, the server's shutdown_timeout (30 s)
	// and a margin (docs/operations.md).
	terminationGrace = 40
	// preStopSleep: a terminating pod keeps serving this long before it gets
	// SIGTERM, while its endpoint leaves the Service: a request routed to it
	// in that moment is answered, not refused with a draining 503.
	preStopSleep = 5
)

// ServiceMonitorGVK is the Prometheus Operator's ServiceMonitor.
var ServiceMonitorGVK = schema.GroupVersionKind{Group: "monitoring.coreos.com", Version: "v1", Kind: "ServiceMonitor"}

// selectorLabels select a VisionService's pods.
func selectorLabels(vs *v1alpha1.VisionService) map[string]string {
	return map[string]string{LabelName: "visionserve", LabelInstance: vs.Name}
}

// objectLabels are on everything the operator creates.
func objectLabels(vs *v1alpha1.VisionService) map[string]string {
	l := selectorLabels(vs)
	l[LabelManagedBy] = ManagedBy
	l[LabelComponent] = "server"
	return l
}

func ownerRef(vs *v1alpha1.VisionService) *metav1ac.OwnerReferenceApplyConfiguration {
	return metav1ac.OwnerReference().
		WithAPIVersion(v1alpha1.GroupVersion.String()).
		WithKind("VisionService").
		WithName(vs.Name).
		WithUID(vs.UID).
		WithController(true).
		WithBlockOwnerDeletion(true)
}

func port(vs *v1alpha1.VisionService) int32 {
	if vs.Spec.Server.Port > 0 {
		return vs.Spec.Server.Port
	}
	return 8080
}

func grpcPort(vs *v1alpha1.VisionService) int32 {
	if vs.Spec.Server.GRPCPort > 0 {
		return vs.Spec.Server.GRPCPort
	}
	return 9090
}

func adminPort(vs *v1alpha1.VisionService) int32 {
	if vs.Spec.Server.AdminPort > 0 {
		return vs.Spec.Server.AdminPort
	}
	return 9091
}

func configMapName(vs *v1alpha1.VisionService) string { return vs.Name + "-config" }

// modelClaimName is the claim the pods mount, or "" without models.
func modelClaimName(vs *v1alpha1.VisionService) string {
	switch m := vs.Spec.Models; {
	case m == nil:
		return ""
	case m.PersistentVolumeClaim != nil:
		return m.PersistentVolumeClaim.ClaimName
	case m.VolumeClaimTemplate != nil:
		return vs.Name + "-models"
	}
	return ""
}

// serverArgs are the arguments of `visionserve serve`.
func serverArgs(vs *v1alpha1.VisionService) []string {
	args := []string{"serve",
		"--addr", ":" + strconv.Itoa(int(port(vs))),
		"--grpc-addr", ":" + strconv.Itoa(int(grpcPort(vs))),
		// On the pod network, for the operator; the Service does not expose it.
		"--admin-addr", ":" + strconv.Itoa(int(adminPort(vs))),
	}
	if vs.Spec.Models != nil {
		// the traffic ConfigMap: weights of canaries and their verdicts
		// from the first request (routing.go)
		args = append(args, "--models", ModelsPath, "--traffic-file", TrafficPath+"/"+TrafficFile, "--state-dir", StatePath)
	}
	if vs.Spec.Server.Config != "" {
		args = append(args, "--config", ConfigDir+"/"+ConfigFile)
	}
	if w := vs.Spec.Server.Workers; w != nil {
		args = append(args, "--workers", strconv.Itoa(int(*w)))
	}
	if q := vs.Spec.Server.Queue; q != nil {
		args = append(args, "--queue", strconv.Itoa(int(*q)))
	}
	switch jobsStore(vs) {
	case v1alpha1.JobsEmbedded:
		args = append(args, "--jobs-store", "embedded", "--jobs-dir", JobsPath)
	case v1alpha1.JobsPostgres:
		args = append(args, "--jobs-store", "postgres", "--jobs-postgres-file", JobsDSNFile)
	}
	args = append(args, encryptionArgs(vs)...)
	return append(args, vs.Spec.Server.Args...)
}

// jobsStore is the job store the pods use (Off without spec.jobs).
func jobsStore(vs *v1alpha1.VisionService) v1alpha1.JobsStore {
	if vs.Spec.Jobs == nil || vs.Spec.Jobs.Store == "" {
		return v1alpha1.JobsOff
	}
	return vs.Spec.Jobs.Store
}

// jobsClaimName is the claim of the embedded job database, or "" when
// there is none (no embedded jobs, or an emptyDir).
func jobsClaimName(vs *v1alpha1.VisionService) string {
	if jobsStore(vs) != v1alpha1.JobsEmbedded || vs.Spec.Jobs.Embedded == nil || vs.Spec.Jobs.Embedded.Size == nil {
		return ""
	}
	return vs.Name + "-jobs"
}

// jobsVolume adds the jobs volume to the pod and mounts it: the embedded
// database's directory, or the Secret with the shared store's DSN.
func jobsVolume(vs *v1alpha1.VisionService, pod *corev1ac.PodSpecApplyConfiguration, c *corev1ac.ContainerApplyConfiguration) {
	switch jobsStore(vs) {
	case v1alpha1.JobsEmbedded:
		v := corev1ac.Volume().WithName("jobs")
		if claim := jobsClaimName(vs); claim != "" {
			v.WithPersistentVolumeClaim(corev1ac.PersistentVolumeClaimVolumeSource().WithClaimName(claim))
		} else {
			v.WithEmptyDir(corev1ac.EmptyDirVolumeSource())
		}
		pod.WithVolumes(v)
		c.WithVolumeMounts(corev1ac.VolumeMount().WithName("jobs").WithMountPath(JobsPath))
	case v1alpha1.JobsPostgres:
		ref := vs.Spec.Jobs.Postgres.DSNSecret
		pod.WithVolumes(corev1ac.Volume().WithName("jobs-dsn").WithSecret(corev1ac.SecretVolumeSource().
			WithSecretName(ref.Name).
			WithItems(corev1ac.KeyToPath().WithKey(ref.Key).WithPath(filepath.Base(JobsDSNFile))).
			WithDefaultMode(0o440)))
		c.WithVolumeMounts(corev1ac.VolumeMount().WithName("jobs-dsn").WithMountPath(filepath.Dir(JobsDSNFile)).WithReadOnly(true))
	}
}

func configHash(vs *v1alpha1.VisionService) string {
	h := sha256.New()
	h.Write([]byte(vs.Spec.Server.Config))
	names := make([]string, 0, len(vs.Spec.Server.Files))
	for n := range vs.Spec.Server.Files {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		fmt.Fprintf(h, "\x00%s\x00%s", n, vs.Spec.Server.Files[n])
	}
	return hex.EncodeToString(h.Sum(nil)[:8])
}

// hasConfigMap reports whether the pods get /etc/visionserve from a ConfigMap.
func hasConfigMap(vs *v1alpha1.VisionService) bool {
	return vs.Spec.Server.Config != "" || len(vs.Spec.Server.Files) > 0
}

func httpGet(path string) *corev1ac.ProbeApplyConfiguration {
	return corev1ac.Probe().WithHTTPGet(corev1ac.HTTPGetAction().WithPath(path).WithPort(intstr.FromString(portName)))
}

// deployment is the server Deployment with the given replica count; kek
// is the fingerprint of spec.encryption's key-encryption key.
func deployment(vs *v1alpha1.VisionService, replicas int32, kek string) *appsv1ac.DeploymentApplyConfiguration {
	c := corev1ac.Container().
		WithName(containerName).
		WithImage(vs.Spec.Image).
		WithArgs(serverArgs(vs)...).
		WithPorts(
			corev1ac.ContainerPort().WithName(portName).WithContainerPort(port(vs)).WithProtocol(corev1.ProtocolTCP),
			corev1ac.ContainerPort().WithName(grpcPortName).WithContainerPort(grpcPort(vs)).WithProtocol(corev1.ProtocolTCP),
			corev1ac.ContainerPort().WithName(adminPortName).WithContainerPort(adminPort(vs)).WithProtocol(corev1.ProtocolTCP)).
		// Readiness is "the default models are loaded" and turns false the
		// moment shutdown begins; liveness only "the process serves HTTP".
		WithReadinessProbe(httpGet("/readyz").WithPeriodSeconds(5).WithFailureThreshold(2)).
		WithLivenessProbe(httpGet("/healthz").WithPeriodSeconds(10).WithFailureThreshold(3)).
		// Loading and verifying models may take minutes.
		WithStartupProbe(httpGet("/healthz").WithPeriodSeconds(5).WithFailureThreshold(60)).
		WithLifecycle(corev1ac.Lifecycle().WithPreStop(corev1ac.LifecycleHandler().
			WithSleep(corev1ac.SleepAction().WithSeconds(preStopSleep)))).
		WithSecurityContext(corev1ac.SecurityContext().
			WithRunAsNonRoot(true).
			WithRunAsUser(runAsUser).
			WithRunAsGroup(runAsUser).
			WithReadOnlyRootFilesystem(true).
			WithAllowPrivilegeEscalation(false).
			WithCapabilities(corev1ac.Capabilities().WithDrop("ALL"))).
		WithVolumeMounts(corev1ac.VolumeMount().WithName("tmp").WithMountPath("/tmp"))
	if vs.Spec.ImagePullPolicy != "" {
		c.WithImagePullPolicy(vs.Spec.ImagePullPolicy)
	}
	if r := resourcesApply(vs.Spec.Resources); r != nil {
		c.WithResources(r)
	}
	for i := range vs.Spec.Server.Env {
		c.WithEnv(envApply(vs.Spec.Server.Env[i]))
	}

	pod := corev1ac.PodSpec().
		WithAutomountServiceAccountToken(false). // the server never talks to the API
		WithTerminationGracePeriodSeconds(terminationGrace).
		WithSecurityContext(corev1ac.PodSecurityContext().
			WithRunAsNonRoot(true).
			WithFSGroup(runAsUser).
			WithSeccompProfile(corev1ac.SeccompProfile().WithType(corev1.SeccompProfileTypeRuntimeDefault))).
		WithTopologySpreadConstraints(corev1ac.TopologySpreadConstraint().
			WithMaxSkew(1).
			WithTopologyKey(corev1.LabelHostname).
			WithWhenUnsatisfiable(corev1.ScheduleAnyway).
			WithLabelSelector(metav1ac.LabelSelector().WithMatchLabels(selectorLabels(vs)))).
		WithVolumes(corev1ac.Volume().WithName("tmp").WithEmptyDir(corev1ac.EmptyDirVolumeSource().WithSizeLimit(resource.MustParse("1Gi"))))
	if claim := modelClaimName(vs); claim != "" {
		pod.WithVolumes(corev1ac.Volume().WithName("models").
			WithPersistentVolumeClaim(corev1ac.PersistentVolumeClaimVolumeSource().WithClaimName(claim).WithReadOnly(true)))
		c.WithVolumeMounts(corev1ac.VolumeMount().WithName("models").WithMountPath(ModelsPath).WithReadOnly(true))
		// Optional: a pod created before the operator wrote it starts on
		// the newest versions, and is routed once ready.
		pod.WithVolumes(corev1ac.Volume().WithName("traffic").
			WithConfigMap(corev1ac.ConfigMapVolumeSource().WithName(trafficConfigMapName(vs)).WithOptional(true)))
		c.WithVolumeMounts(corev1ac.VolumeMount().WithName("traffic").WithMountPath(TrafficPath).WithReadOnly(true))
		pod.WithVolumes(corev1ac.Volume().WithName("state").WithEmptyDir(corev1ac.EmptyDirVolumeSource().WithSizeLimit(resource.MustParse("16Mi"))))
		c.WithVolumeMounts(corev1ac.VolumeMount().WithName("state").WithMountPath(StatePath))
	}
	jobsVolume(vs, pod, c)
	kekVolume(vs, pod, c)
	if hasConfigMap(vs) {
		pod.WithVolumes(corev1ac.Volume().WithName("config").
			WithConfigMap(corev1ac.ConfigMapVolumeSource().WithName(configMapName(vs))))
		c.WithVolumeMounts(corev1ac.VolumeMount().WithName("config").WithMountPath(ConfigDir).WithReadOnly(true))
	}
	if len(vs.Spec.NodeSelector) > 0 {
		pod.WithNodeSelector(vs.Spec.NodeSelector)
	}
	for _, t := range vs.Spec.Tolerations {
		tol := corev1ac.Toleration().WithKey(t.Key).WithOperator(t.Operator).WithValue(t.Value).WithEffect(t.Effect)
		if t.TolerationSeconds != nil {
			tol.WithTolerationSeconds(*t.TolerationSeconds)
		}
		pod.WithTolerations(tol)
	}
	for _, s := range vs.Spec.ImagePullSecrets {
		pod.WithImagePullSecrets(corev1ac.LocalObjectReference().WithName(s.Name))
	}
	pod.WithContainers(c)

	annotations := map[string]string{
		AnnotationConfigHash: configHash(vs),
		// For Prometheus set-ups without the ServiceMonitor CRD.
		"prometheus.io/scrape": "true",
		"prometheus.io/port":   strconv.Itoa(int(port(vs))),
		"prometheus.io/path":   "/metrics",
	}
	if kek != "" {
		// A new key, in a new Secret or the same one, rolls the pods: the
		// server reads its KEK once, at start.
		annotations[AnnotationKEK] = kek
	}
	// Keep serving capacity during a rollout: surge, never go below. An
	// embedded job database on a claim takes one process at a time: the
	// old pod stops before the new one starts.
	strategy := appsv1ac.DeploymentStrategy().
		WithType(appsv1.RollingUpdateDeploymentStrategyType).
		WithRollingUpdate(appsv1ac.RollingUpdateDeployment().
			WithMaxUnavailable(intstr.FromInt32(0)).
			WithMaxSurge(intstr.FromString("25%")))
	if jobsClaimName(vs) != "" {
		strategy = appsv1ac.DeploymentStrategy().WithType(appsv1.RecreateDeploymentStrategyType)
	}
	return appsv1ac.Deployment(vs.Name, vs.Namespace).
		WithLabels(objectLabels(vs)).
		WithOwnerReferences(ownerRef(vs)).
		WithSpec(appsv1ac.DeploymentSpec().
			WithReplicas(replicas).
			WithSelector(metav1ac.LabelSelector().WithMatchLabels(selectorLabels(vs))).
			WithStrategy(strategy).
			WithTemplate(corev1ac.PodTemplateSpec().
				WithLabels(objectLabels(vs)).
				WithAnnotations(annotations).
				WithSpec(pod)))
}

func resourcesApply(r corev1.ResourceRequirements) *corev1ac.ResourceRequirementsApplyConfiguration {
	if len(r.Limits) == 0 && len(r.Requests) == 0 {
		return nil
	}
	out := corev1ac.ResourceRequirements()
	if len(r.Limits) > 0 {
		out.WithLimits(r.Limits)
	}
	if len(r.Requests) > 0 {
		out.WithRequests(r.Requests)
	}
	return out
}

func envApply(e corev1.EnvVar) *corev1ac.EnvVarApplyConfiguration {
	out := corev1ac.EnvVar().WithName(e.Name)
	if e.ValueFrom == nil {
		return out.WithValue(e.Value)
	}
	src := corev1ac.EnvVarSource()
	switch f := e.ValueFrom; {
	case f.SecretKeyRef != nil:
		ref := corev1ac.SecretKeySelector().WithName(f.SecretKeyRef.Name).WithKey(f.SecretKeyRef.Key)
		if f.SecretKeyRef.Optional != nil {
			ref.WithOptional(*f.SecretKeyRef.Optional)
		}
		src.WithSecretKeyRef(ref)
	case f.ConfigMapKeyRef != nil:
		ref := corev1ac.ConfigMapKeySelector().WithName(f.ConfigMapKeyRef.Name).WithKey(f.ConfigMapKeyRef.Key)
		if f.ConfigMapKeyRef.Optional != nil {
			ref.WithOptional(*f.ConfigMapKeyRef.Optional)
		}
		src.WithConfigMapKeyRef(ref)
	case f.FieldRef != nil:
		src.WithFieldRef(corev1ac.ObjectFieldSelector().WithFieldPath(f.FieldRef.FieldPath))
	case f.ResourceFieldRef != nil:
		ref := corev1ac.ResourceFieldSelector().WithResource(f.ResourceFieldRef.Resource)
		if f.ResourceFieldRef.ContainerName != "" {
			ref.WithContainerName(f.ResourceFieldRef.ContainerName)
		}
		src.WithResourceFieldRef(ref)
	}
	return out.WithValueFrom(src)
}

// service exposes the pods' HTTP port.
func service(vs *v1alpha1.VisionService) *corev1ac.ServiceApplyConfiguration {
	return corev1ac.Service(vs.Name, vs.Namespace).
		WithLabels(objectLabels(vs)).
		WithOwnerReferences(ownerRef(vs)).
		WithSpec(corev1ac.ServiceSpec().
			WithType(corev1.ServiceTypeClusterIP).
			WithSelector(selectorLabels(vs)).
			WithPorts(
				corev1ac.ServicePort().WithName(portName).WithPort(port(vs)).
					WithTargetPort(intstr.FromString(portName)).WithProtocol(corev1.ProtocolTCP),
				corev1ac.ServicePort().WithName(grpcPortName).WithPort(grpcPort(vs)).
					WithTargetPort(intstr.FromString(grpcPortName)).WithProtocol(corev1.ProtocolTCP)))
}

// pdb lets voluntary disruptions (node drains) take one pod at a time.
func pdb(vs *v1alpha1.VisionService) *policyv1ac.PodDisruptionBudgetApplyConfiguration {
	return policyv1ac.PodDisruptionBudget(vs.Name, vs.Namespace).
		WithLabels(objectLabels(vs)).
		WithOwnerReferences(ownerRef(vs)).
		WithSpec(policyv1ac.PodDisruptionBudgetSpec().
			WithMaxUnavailable(intstr.FromInt32(1)).
			WithSelector(metav1ac.LabelSelector().WithMatchLabels(selectorLabels(vs))))
}

// configMap holds spec.server.config and files; nil when there are none.
func configMap(vs *v1alpha1.VisionService) *corev1ac.ConfigMapApplyConfiguration {
	if !hasConfigMap(vs) {
		return nil
	}
	data := map[string]string{}
	for n, v := range vs.Spec.Server.Files {
		data[n] = v
	}
	if vs.Spec.Server.Config != "" {
		data[ConfigFile] = vs.Spec.Server.Config
	}
	return corev1ac.ConfigMap(configMapName(vs), vs.Namespace).
		WithLabels(objectLabels(vs)).
		WithOwnerReferences(ownerRef(vs)).
		WithData(data)
}

// modelClaim is the claim the operator owns; nil unless volumeClaimTemplate.
func modelClaim(vs *v1alpha1.VisionService) *corev1ac.PersistentVolumeClaimApplyConfiguration {
	if vs.Spec.Models == nil || vs.Spec.Models.VolumeClaimTemplate == nil {
		return nil
	}
	t := vs.Spec.Models.VolumeClaimTemplate
	modes := t.AccessModes
	if len(modes) == 0 {
		modes = []corev1.PersistentVolumeAccessMode{corev1.ReadOnlyMany}
	}
	spec := corev1ac.PersistentVolumeClaimSpec().
		WithAccessModes(modes...).
		WithResources(corev1ac.VolumeResourceRequirements().WithRequests(corev1.ResourceList{corev1.ResourceStorage: t.Size}))
	if t.StorageClassName != nil {
		spec.WithStorageClassName(*t.StorageClassName)
	}
	return corev1ac.PersistentVolumeClaim(modelClaimName(vs), vs.Namespace).
		WithLabels(objectLabels(vs)).
		WithOwnerReferences(ownerRef(vs)).
		WithSpec(spec)
}

// jobsClaim is the embedded job database's claim, which the operator
// owns; nil unless spec.jobs.embedded.size.
func jobsClaim(vs *v1alpha1.VisionService) *corev1ac.PersistentVolumeClaimApplyConfiguration {
	name := jobsClaimName(vs)
	if name == "" {
		return nil
	}
	e := vs.Spec.Jobs.Embedded
	spec := corev1ac.PersistentVolumeClaimSpec().
		WithAccessModes(corev1.ReadWriteOnce).
		WithResources(corev1ac.VolumeResourceRequirements().WithRequests(corev1.ResourceList{corev1.ResourceStorage: *e.Size}))
	if e.StorageClassName != nil {
		spec.WithStorageClassName(*e.StorageClassName)
	}
	return corev1ac.PersistentVolumeClaim(name, vs.Namespace).
		WithLabels(objectLabels(vs)).
		WithOwnerReferences(ownerRef(vs)).
		WithSpec(spec)
}

// serviceMonitor has Prometheus scrape every pod's /metrics.
func serviceMonitor(vs *v1alpha1.VisionService) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{
		"metadata": map[string]any{
			"name":      vs.Name,
			"namespace": vs.Namespace,
			"labels":    toAny(objectLabels(vs)),
			"ownerReferences": []any{map[string]any{
				"apiVersion": v1alpha1.GroupVersion.String(), "kind": "VisionService", "name": vs.Name,
				"uid": string(vs.UID), "controller": true, "blockOwnerDeletion": true,
			}},
		},
		"spec": map[string]any{
			"selector":  map[string]any{"matchLabels": toAny(selectorLabels(vs))},
			"endpoints": []any{map[string]any{"port": portName, "path": "/metrics", "interval": "15s"}},
		},
	}}
	u.SetGroupVersionKind(ServiceMonitorGVK)
	return u
}

func toAny(m map[string]string) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// podReady reports whether a pod is ready to serve and scrape.
func podReady(p *corev1.Pod) bool {
	if p.DeletionTimestamp != nil || p.Status.PodIP == "" {
		return false
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// podURL is the base URL of a pod's HTTP port.
func podURL(p *corev1.Pod, port int32) string {
	return "http://" + net.JoinHostPort(p.Status.PodIP, strconv.Itoa(int(port)))
}
