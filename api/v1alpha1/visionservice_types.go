package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// VisionService runs a fleet of visionserve servers: a Deployment, a Service,
// a PodDisruptionBudget and, when the Prometheus Operator's CRD exists, a
// ServiceMonitor. The operator scales it on QPS and mean prediction
// confidence (spec.autoscaling) and rolls new model versions out as
// confidence-guarded canaries (spec.canary).
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:subresource:scale:specpath=.spec.replicas,statuspath=.status.replicas,selectorpath=.status.selector
// +kubebuilder:resource:shortName=vsvc,categories=visionserve
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Desired",type=integer,JSONPath=`.status.desiredReplicas`
// +kubebuilder:printcolumn:name="Ready",type=integer,JSONPath=`.status.readyReplicas`
// +kubebuilder:printcolumn:name="QPS",type=number,JSONPath=`.status.observedQPS`
// +kubebuilder:printcolumn:name="Confidence",type=number,JSONPath=`.status.observedConfidence`
// +kubebuilder:printcolumn:name="Canary",type=string,JSONPath=`.status.canary.phase`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type VisionService struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   VisionServiceSpec   `json:"spec"`
	Status VisionServiceStatus `json:"status,omitempty"`
}

// VisionServiceList is a list of VisionServices.
//
// +kubebuilder:object:root=true
type VisionServiceList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []VisionService `json:"items"`
}

func init() {
	SchemeBuilder.Register(&VisionService{}, &VisionServiceList{})
}

// VisionServiceSpec is what the user asks for.
//
// +kubebuilder:validation:XValidation:rule="!has(self.maxReplicas) || self.minReplicas <= self.maxReplicas",message="minReplicas must not be greater than maxReplicas"
// +kubebuilder:validation:XValidation:rule="!has(self.autoscaling) || has(self.maxReplicas)",message="maxReplicas is required when autoscaling is set"
// +kubebuilder:validation:XValidation:rule="!has(self.canary) || (has(self.server) && has(self.server.adminKeySecret))",message="a canary needs server.adminKeySecret: a models:admin API key for the pods' admin API"
type VisionServiceSpec struct {
	// Image is the visionserve server image, e.g. ghcr.io/visionserve/visionserve:v0.3.0.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=512
	Image string `json:"image"`

	// ImagePullPolicy of the server container.
	// +optional
	// +kubebuilder:validation:Enum=Always;IfNotPresent;Never
	ImagePullPolicy corev1.PullPolicy `json:"imagePullPolicy,omitempty"`

	// Models says where the pods find the model repository, which is mounted
	// read-only at /models. Without it the pods serve the models built into
	// the image (Tesseract's English model).
	// +optional
	Models *ModelSource `json:"models,omitempty"`

	// Replicas is the number of pods while spec.autoscaling is not set
	// (ignored while it is). The scale subresource reads and writes this
	// field, so an HPA or KEDA can drive a VisionService instead of the
	// built-in autoscaler (leave spec.autoscaling unset then). It is not
	// clamped to minReplicas..maxReplicas, so scaling to zero works.
	// +optional
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=0
	Replicas *int32 `json:"replicas,omitempty"`

	// MinReplicas is the fewest pods the built-in autoscaler keeps.
	// +optional
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=1
	MinReplicas int32 `json:"minReplicas,omitempty"`

	// MaxReplicas is the most pods the built-in autoscaler asks for.
	// Required when autoscaling is set.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000
	MaxReplicas *int32 `json:"maxReplicas,omitempty"`

	// Resources of the server container. Requests and limits of CPU decide
	// how many workers a pod runs (the server sizes its pool to the CPUs it
	// may use), so set them.
	// +optional
	Resources corev1.ResourceRequirements `json:"resources,omitempty"`

	// Server configures the visionserve process in each pod.
	// +optional
	Server ServerSpec `json:"server,omitempty"`

	// Autoscaling turns the built-in autoscaler on.
	// +optional
	Autoscaling *AutoscalingSpec `json:"autoscaling,omitempty"`

	// Canary rolls a new model version out to a share of the traffic, and
	// promotes it or rolls it back on its confidence and error rate.
	// +optional
	Canary *CanarySpec `json:"canary,omitempty"`

	// Jobs turns asynchronous jobs (/v1/jobs) on and says where they are
	// kept. Without it the job routes answer 501.
	// +optional
	Jobs *JobsSpec `json:"jobs,omitempty"`

	// Encryption seals what the pods keep at rest (face galleries, jobs,
	// reviews) under a key-encryption key from a Secret
	// (docs/regulated.md). Without it they are kept in clear, unless
	// spec.server.config has an encryption section of its own.
	// +optional
	Encryption *EncryptionSpec `json:"encryption,omitempty"`

	// NodeSelector of the pods.
	// +optional
	NodeSelector map[string]string `json:"nodeSelector,omitempty"`

	// Tolerations of the pods.
	// +optional
	Tolerations []corev1.Toleration `json:"tolerations,omitempty"`

	// ImagePullSecrets for the server image.
	// +optional
	ImagePullSecrets []corev1.LocalObjectReference `json:"imagePullSecrets,omitempty"`
}

// ModelSource is where model packages come from: an existing claim, or a
// claim the operator creates and owns. Set exactly one.
//
// +kubebuilder:validation:XValidation:rule="(has(self.persistentVolumeClaim) ? 1 : 0) + (has(self.volumeClaimTemplate) ? 1 : 0) == 1",message="set exactly one of persistentVolumeClaim or volumeClaimTemplate"
type ModelSource struct {
	// PersistentVolumeClaim names an existing claim in the same namespace
	// that holds the model repository (ReadOnlyMany, e.g. NFS or a CSI
	// driver). The operator never writes to it.
	// +optional
	PersistentVolumeClaim *ModelClaim `json:"persistentVolumeClaim,omitempty"`

	// VolumeClaimTemplate makes the operator create and own a claim named
	// <name>-models; fill it with signed packages (docs/operator.md). It is
	// deleted with the VisionService.
	// +optional
	VolumeClaimTemplate *ModelVolume `json:"volumeClaimTemplate,omitempty"`
}

// ModelClaim refers to an existing PersistentVolumeClaim.
type ModelClaim struct {
	// ClaimName is the claim's name.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	ClaimName string `json:"claimName"`
}

// ModelVolume describes the claim the operator creates for the models.
type ModelVolume struct {
	// Size of the volume.
	Size resource.Quantity `json:"size"`

	// StorageClassName of the claim; the cluster default when unset.
	// +optional
	StorageClassName *string `json:"storageClassName,omitempty"`

	// AccessModes of the claim. Pods on several nodes need ReadOnlyMany or
	// ReadWriteMany.
	// +optional
	// +kubebuilder:default={"ReadOnlyMany"}
	// +kubebuilder:validation:MinItems=1
	AccessModes []corev1.PersistentVolumeAccessMode `json:"accessModes,omitempty"`
}

// JobsStore is where the pods keep asynchronous jobs.
//
// +kubebuilder:validation:Enum=Off;Embedded;Postgres
type JobsStore string

// Job stores.
const (
	// JobsOff: no jobs.
	JobsOff JobsStore = "Off"
	// JobsEmbedded: an embedded database on a volume of the pod. A job is
	// visible only on the pod that took it, so the operator refuses it
	// with more than one replica or with autoscaling.
	JobsEmbedded JobsStore = "Embedded"
	// JobsPostgres: PostgreSQL, shared by every replica: any pod answers
	// for any job and runs its pages, and a pod that goes away leaves its
	// work to the others.
	JobsPostgres JobsStore = "Postgres"
)

// JobsSpec configures asynchronous jobs.
//
// +kubebuilder:validation:XValidation:rule="self.store != 'Postgres' || has(self.postgres)",message="store Postgres needs postgres.dsnSecret"
type JobsSpec struct {
	// Store is Off, Embedded (one replica only) or Postgres.
	// +optional
	// +kubebuilder:default=Off
	Store JobsStore `json:"store,omitempty"`

	// Embedded configures the embedded store's volume.
	// +optional
	Embedded *EmbeddedJobs `json:"embedded,omitempty"`

	// Postgres names the shared store's database.
	// +optional
	Postgres *PostgresJobs `json:"postgres,omitempty"`
}

// EmbeddedJobs is the volume of the embedded job database.
type EmbeddedJobs struct {
	// Size of a claim the operator creates and owns (<name>-jobs,
	// ReadWriteOnce), so jobs survive the pod's replacement; the pod is
	// then replaced by stopping the old one first (the database takes one
	// process at a time). Without it the database is on an emptyDir and
	// its jobs go with the pod.
	// +optional
	Size *resource.Quantity `json:"size,omitempty"`

	// StorageClassName of the claim; the cluster default when unset.
	// +optional
	StorageClassName *string `json:"storageClassName,omitempty"`
}

// PostgresJobs names the database of the shared job store.
type PostgresJobs struct {
	// DSNSecret names the key of a Secret holding the PostgreSQL
	// connection string (postgres://user:password@host:5432/db). It is
	// mounted into the pods as a file (--jobs-postgres-file), never
	// written into the configuration.
	DSNSecret corev1.SecretKeySelector `json:"dsnSecret"`
}

// EncryptionAlgorithm is the algorithm of new data keys.
//
// +kubebuilder:validation:Enum=aes-256-gcm;sm4-gcm
type EncryptionAlgorithm string

// Encryption algorithms.
const (
	EncryptionAES256GCM EncryptionAlgorithm = "aes-256-gcm"
	EncryptionSM4GCM    EncryptionAlgorithm = "sm4-gcm"
)

// EncryptionSpec turns encryption at rest on. The key-encryption key is
// only ever referred to: it stays in its Secret, which is mounted
// read-only into the pods (at /var/run/visionserve/kek/kek, passed as
// --kek-file). The pod template carries the key's fingerprint, so a new
// key (a new Secret, or a new value in the same one) rolls the pods.
//
// +kubebuilder:validation:XValidation:rule="has(self.kekSecret.name) && size(self.kekSecret.name) > 0 && size(self.kekSecret.key) > 0",message="kekSecret.name and kekSecret.key are required: the Secret and key holding the key-encryption key (visionserve keys new)"
// +kubebuilder:validation:XValidation:rule="!has(self.kekSecret.optional) || !self.kekSecret.optional",message="kekSecret cannot be optional: the pods cannot open sealed stores without it"
type EncryptionSpec struct {
	// Algorithm of new data keys, which seal the records: aes-256-gcm or
	// sm4-gcm. The KEK's own length decides how it wraps them (32 bytes:
	// AES-256-GCM, 16: SM4-GCM).
	// +optional
	// +kubebuilder:default=aes-256-gcm
	Algorithm EncryptionAlgorithm `json:"algorithm,omitempty"`

	// KEKSecret names the key of a Secret in the same namespace holding
	// the key-encryption key, as `visionserve keys new` prints it
	// (kubectl create secret generic NAME --from-file=kek=FILE). The
	// operator reads it to check it and to fingerprint it, never copies
	// it.
	KEKSecret corev1.SecretKeySelector `json:"kekSecret"`
}

// ServerSpec configures the visionserve process.
type ServerSpec struct {
	// Port the server listens on in the pod (HTTP API and /metrics).
	// +optional
	// +kubebuilder:default=8080
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	Port int32 `json:"port,omitempty"`

	// GRPCPort is the gRPC listener (Open Inference Protocol), exposed by
	// the Service next to the HTTP port.
	// +optional
	// +kubebuilder:default=9090
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	GRPCPort int32 `json:"grpcPort,omitempty"`

	// AdminPort is the admin listener (the model API the canary uses), on
	// the pod network only: the Service does not expose it.
	// +optional
	// +kubebuilder:default=9091
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	AdminPort int32 `json:"adminPort,omitempty"`

	// AdminKeySecret names the key of a Secret in the same namespace holding
	// an API key with the models:admin scope (visionserve auth hash-key;
	// its hash goes in the server's auth.api_keys). The operator sends it to
	// the pods' admin API to set canary traffic weights. Required with a
	// canary.
	// +optional
	AdminKeySecret *corev1.SecretKeySelector `json:"adminKeySecret,omitempty"`

	// Workers is the number of requests each pod recognises at once; 0 or
	// unset: one per CPU the pod may use.
	// +optional
	// +kubebuilder:validation:Minimum=0
	Workers *int32 `json:"workers,omitempty"`

	// Queue is the number of admitted requests that may wait for a worker
	// before new ones get 429.
	// +optional
	// +kubebuilder:validation:Minimum=0
	Queue *int32 `json:"queue,omitempty"`

	// Config is the server's configuration file (YAML, see
	// docs/configuration.md), mounted at /etc/visionserve/config.yaml. The
	// listen addresses (and --models /models with spec.models) are set by
	// the operator; credentials (auth) must be configured here, or
	// --no-auth given in args: the server refuses to start without either.
	// A change rolls the pods.
	// +optional
	// +kubebuilder:validation:MaxLength=262144
	Config string `json:"config,omitempty"`

	// Files are more files for /etc/visionserve/ next to config.yaml, by
	// name: public trust keys and CA certificates of the model repository
	// (repository.trust.keys: [/etc/visionserve/signer.pem]), a JWKS. Not
	// for secrets: they end up in a ConfigMap. A change rolls the pods.
	// +optional
	// +kubebuilder:validation:MaxProperties=32
	// +kubebuilder:validation:XValidation:rule="self.all(k, k.matches('^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$') && k != 'config.yaml')",message="file names are letters, digits, '.', '_' and '-', and not config.yaml"
	Files map[string]string `json:"files,omitempty"`

	// Args are extra command-line arguments for `visionserve serve`.
	// +optional
	Args []string `json:"args,omitempty"`

	// Env are extra environment variables of the server container.
	// +optional
	Env []corev1.EnvVar `json:"env,omitempty"`
}

// AutoscalingSpec configures the built-in autoscaler. Each interval it reads
// every ready pod's /metrics, smooths QPS and mean confidence with an EWMA,
// and asks for max(replicas for the QPS target, more replicas while the
// confidence is under its floor), within a tolerance, stabilization windows
// and a step limit. docs/autoscaling.md explains each knob and shows a
// simulation of the defaults.
//
// +kubebuilder:validation:XValidation:rule="!has(self.window) || !has(self.interval) || duration(self.window) >= duration(self.interval)",message="window must be at least as long as interval"
type AutoscalingSpec struct {
	// QPSPerReplica is the request rate one pod should serve. The QPS part of
	// the decision is ceil(smoothed QPS / qpsPerReplica).
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:ExclusiveMinimum=true
	QPSPerReplica float64 `json:"qpsPerReplica"`

	// ConfidenceFloor in [0,1]: while the smoothed mean prediction confidence
	// is below it and the pods are busy, the autoscaler adds replicas (a
	// server under sustained queueing may switch to a cheaper model tier,
	// which lowers confidence). Unset or 0: confidence is not a scaling signal.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1
	ConfidenceFloor *float64 `json:"confidenceFloor,omitempty"`

	// Interval between two decisions. Default 15s.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1s')",message="interval must be at least 1s"
	Interval *metav1.Duration `json:"interval,omitempty"`

	// Window over which QPS and mean confidence are measured (like the range
	// of a PromQL rate()). Default 1m.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1s')",message="window must be at least 1s"
	Window *metav1.Duration `json:"window,omitempty"`

	// EWMAAlpha in (0,1] is the weight of the newest measurement in the
	// smoothed one; 1 turns smoothing off. Default 0.5.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:ExclusiveMinimum=true
	// +kubebuilder:validation:Maximum=1
	EWMAAlpha *float64 `json:"ewmaAlpha,omitempty"`

	// Tolerance in [0,1): no QPS-driven change while smoothed QPS is within
	// this fraction of current replicas x qpsPerReplica (as the HPA). Default 0.1.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=0.99
	Tolerance *float64 `json:"tolerance,omitempty"`

	// ScaleUpStabilization: scale up only to the lowest recommendation made
	// within this window. Default 0s (react at once; the EWMA already
	// smooths spikes).
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('0s')",message="scaleUpStabilization must not be negative"
	ScaleUpStabilization *metav1.Duration `json:"scaleUpStabilization,omitempty"`

	// ScaleDownStabilization: scale down only to the highest recommendation
	// made within this window. Default 5m.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('0s')",message="scaleDownStabilization must not be negative"
	ScaleDownStabilization *metav1.Duration `json:"scaleDownStabilization,omitempty"`

	// MaxStep is the most replicas one decision adds or removes. Default 4.
	// +optional
	// +kubebuilder:validation:Minimum=1
	MaxStep *int32 `json:"maxStep,omitempty"`

	// Prometheus, when set, is queried for QPS and confidence instead of
	// scraping each pod.
	// +optional
	Prometheus *PrometheusSource `json:"prometheus,omitempty"`
}

// PrometheusSource is a Prometheus HTTP API the autoscaler queries.
type PrometheusSource struct {
	// URL of the Prometheus server, e.g. http://prometheus.monitoring:9090.
	// +kubebuilder:validation:Pattern=`^https?://`
	// +kubebuilder:validation:MaxLength=1024
	URL string `json:"url"`
}

// CanarySpec rolls a model version out to a share of the traffic. Each pod's
// traffic weights are set through its admin API (PUT
// /v1/models/{model}/traffic). When the canary's mean confidence over the
// window falls below the stable version's by more than confidenceMargin, or
// the error ratio rises by more than maxErrorRatioIncrease, all traffic
// returns to the stable version and status.canary says why; after the
// analysis period without either, the canary gets all the traffic. The
// verdict outlives spec.canary: see status.canary.
//
// +kubebuilder:validation:XValidation:rule="self.version != self.stableVersion",message="version must differ from stableVersion"
type CanarySpec struct {
	// Model is the model whose versions are split, e.g. ocr-eng.
	// +kubebuilder:validation:Pattern=`^[a-z0-9][a-z0-9._-]{0,63}$`
	Model string `json:"model"`

	// StableVersion is the version serving now.
	// +kubebuilder:validation:Minimum=1
	StableVersion int32 `json:"stableVersion"`

	// Version is the new version under test.
	// +kubebuilder:validation:Minimum=1
	Version int32 `json:"version"`

	// Weight is the percentage of requests the canary gets while under test.
	// +optional
	// +kubebuilder:default=10
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=99
	Weight int32 `json:"weight,omitempty"`

	// ConfidenceMargin in [0,1]: the canary is rolled back when its mean
	// confidence is lower than the stable version's by more than this.
	// Default 0.02.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1
	ConfidenceMargin *float64 `json:"confidenceMargin,omitempty"`

	// MaxErrorRatioIncrease in [0,1]: the canary is rolled back when the
	// share of 5xx answers rises by more than this over the ratio measured
	// when it started. Default 0.02.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1
	MaxErrorRatioIncrease *float64 `json:"maxErrorRatioIncrease,omitempty"`

	// Analysis is how long the canary must stay healthy, with enough
	// samples, before it is promoted. Default 10m.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('0s')",message="analysis must not be negative"
	Analysis *metav1.Duration `json:"analysis,omitempty"`

	// MinSamples is the number of predictions each version needs in the
	// window before their confidences are compared. Default 50.
	// +optional
	// +kubebuilder:validation:Minimum=1
	MinSamples *int32 `json:"minSamples,omitempty"`
}

// Phase summarises a VisionService's state.
//
// +kubebuilder:validation:Enum=Pending;Provisioning;Running;Degraded;Failed
type Phase string

// Phases.
const (
	// PhasePending: nothing is running yet, or something it needs (the
	// model claim) is missing.
	PhasePending Phase = "Pending"
	// PhaseProvisioning: the Deployment is rolling out or scaling.
	PhaseProvisioning Phase = "Provisioning"
	// PhaseRunning: every desired replica is up to date and ready.
	PhaseRunning Phase = "Running"
	// PhaseDegraded: some replicas serve, but the rollout is stuck or pods fail.
	PhaseDegraded Phase = "Degraded"
	// PhaseFailed: the spec cannot be served as written, or no replica became ready.
	PhaseFailed Phase = "Failed"
)

// CanaryPhase is where a canary stands.
//
// +kubebuilder:validation:Enum=Progressing;Promoted;RolledBack
type CanaryPhase string

// Canary phases.
const (
	CanaryProgressing CanaryPhase = "Progressing"
	CanaryPromoted    CanaryPhase = "Promoted"
	CanaryRolledBack  CanaryPhase = "RolledBack"
)

// Condition types.
const (
	// ConditionReady is True when the service serves with every desired replica.
	ConditionReady = "Ready"
	// ConditionModelsAvailable is False when the model claim is missing.
	ConditionModelsAvailable = "ModelsAvailable"
	// ConditionScalingActive is False when the autoscaler cannot read metrics
	// and holds the replica count.
	ConditionScalingActive = "ScalingActive"
	// ConditionCanaryHealthy is False once a canary was rolled back.
	ConditionCanaryHealthy = "CanaryHealthy"
	// ConditionJobsConfigured is False when spec.jobs cannot be served
	// as asked (embedded jobs with several replicas or autoscaling); the
	// operator then changes nothing until the spec is fixed.
	ConditionJobsConfigured = "JobsConfigured"
	// ConditionEncryptionConfigured is False when spec.encryption cannot
	// be served (its Secret or key is missing, or does not hold a KEK);
	// the operator then changes nothing until it can.
	ConditionEncryptionConfigured = "EncryptionConfigured"
)

// VisionServiceStatus is what the operator observed.
type VisionServiceStatus struct {
	// ObservedGeneration is the spec generation this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Phase summarises the state; the conditions explain it.
	// +optional
	Phase Phase `json:"phase,omitempty"`

	// Conditions: Ready, ModelsAvailable, ScalingActive, CanaryHealthy.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// Replicas is the number of pods the Deployment has (the scale
	// subresource's status replicas).
	// +optional
	Replicas int32 `json:"replicas,omitempty"`

	// ReadyReplicas is the number of ready pods.
	// +optional
	ReadyReplicas int32 `json:"readyReplicas,omitempty"`

	// DesiredReplicas is what the operator asks of the Deployment: the
	// autoscaler's decision, or spec.replicas.
	// +optional
	DesiredReplicas int32 `json:"desiredReplicas,omitempty"`

	// Selector of the pods, for the scale subresource (HPA, KEDA).
	// +optional
	Selector string `json:"selector,omitempty"`

	// ObservedQPS is the smoothed request rate over all ready pods.
	// +optional
	ObservedQPS *float64 `json:"observedQPS,omitempty"`

	// ObservedConfidence is the smoothed mean prediction confidence.
	// +optional
	ObservedConfidence *float64 `json:"observedConfidence,omitempty"`

	// LastScaleTime is when the autoscaler last changed the replica count.
	// +optional
	LastScaleTime *metav1.Time `json:"lastScaleTime,omitempty"`

	// LastScaleReason says why, with the inputs of that decision.
	// +optional
	LastScaleReason string `json:"lastScaleReason,omitempty"`

	// Canary is the state of the current or last canary. Its traffic (the
	// split while Progressing, all to version once Promoted, all to
	// stableVersion once RolledBack) is the model's routing on every pod,
	// pods that start later included, with or without spec.canary, until
	// spec.canary names another canary. Removing status.canary (kubectl
	// patch --subresource=status) returns the model to its newest version.
	// +optional
	Canary *CanaryStatus `json:"canary,omitempty"`
}

// CanaryStatus is the outcome so far of a canary.
type CanaryStatus struct {
	// Model, StableVersion and Version identify the canary.
	Model         string `json:"model"`
	StableVersion int32  `json:"stableVersion"`
	Version       int32  `json:"version"`

	// Phase: Progressing, Promoted or RolledBack.
	Phase CanaryPhase `json:"phase"`

	// Reason is a CamelCase word for the last transition, e.g.
	// ConfidenceBelowStable, ErrorRatioIncreased, Promoted, WaitingForSamples.
	// +optional
	Reason string `json:"reason,omitempty"`

	// Message explains the reason with the numbers it was based on.
	// +optional
	Message string `json:"message,omitempty"`

	// StartTime is when the canary first got traffic.
	// +optional
	StartTime *metav1.Time `json:"startTime,omitempty"`

	// CanaryConfidence and StableConfidence are the last window's mean
	// confidence of each version.
	// +optional
	CanaryConfidence *float64 `json:"canaryConfidence,omitempty"`
	// +optional
	StableConfidence *float64 `json:"stableConfidence,omitempty"`

	// BaselineErrorRatio is the share of 5xx answers when the canary started.
	// +optional
	BaselineErrorRatio *float64 `json:"baselineErrorRatio,omitempty"`
}
