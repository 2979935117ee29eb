package controller

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "github.com/visionserve/visionserve/api/v1alpha1"
)

const timeout = 60 * time.Second

func newVS(ns, name string, mutate func(*v1alpha1.VisionService)) *v1alpha1.VisionService {
	vs := &v1alpha1.VisionService{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: v1alpha1.VisionServiceSpec{Image: "ghcr.io/visionserve/visionserve:test",
			Server: v1alpha1.ServerSpec{Args: []string{"--no-auth"}}},
	}
	if mutate != nil {
		mutate(vs)
	}
	return vs
}

func get[T client.Object](ctx context.Context, ns, name string, obj T) (T, error) {
	err := k8s.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, obj)
	return obj, err
}

func controlledBy(obj client.Object, vs *v1alpha1.VisionService) error {
	ref := metav1.GetControllerOf(obj)
	if ref == nil || ref.UID != vs.UID || ref.Kind != "VisionService" || ref.BlockOwnerDeletion == nil || !*ref.BlockOwnerDeletion {
		return fmt.Errorf("%s %s is not controlled by VisionService %s: %v", obj.GetObjectKind().GroupVersionKind().Kind, obj.GetName(), vs.Name, obj.GetOwnerReferences())
	}
	return nil
}

// TestCreateConverges: a VisionService gets its Deployment, Service,
// PodDisruptionBudget, ConfigMap and ServiceMonitor, all owned by it, and a
// status that follows the Deployment.
func TestCreateConverges(t *testing.T) {
	ctx := env(t)
	ns := namespace(t, ctx)
	claim := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "models"},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadOnlyMany},
			Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
		},
	}
	if err := k8s.Create(ctx, claim); err != nil {
		t.Fatal(err)
	}
	vs := newVS(ns, "ocr", func(vs *v1alpha1.VisionService) {
		vs.Spec.Replicas = ptr.To[int32](2)
		vs.Spec.Models = &v1alpha1.ModelSource{PersistentVolumeClaim: &v1alpha1.ModelClaim{ClaimName: "models"}}
		vs.Spec.Server.Config = "server:\n  queue: 16\n"
		vs.Spec.Server.Files = map[string]string{"signer.pem": "-----BEGIN PUBLIC KEY-----\n...\n"}
		vs.Spec.Server.Workers = ptr.To[int32](2)
		vs.Spec.Resources = corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2")}}
	})
	if err := k8s.Create(ctx, vs); err != nil {
		t.Fatal(err)
	}

	var dep *appsv1.Deployment
	eventually(t, timeout, "the Deployment", func() (err error) {
		dep, err = get(ctx, ns, "ocr", &appsv1.Deployment{})
		return err
	})
	if err := controlledBy(dep, vs); err != nil {
		t.Error(err)
	}
	if got := ptr.Deref(dep.Spec.Replicas, 0); got != 2 {
		t.Errorf("replicas %d, want 2", got)
	}
	pod := dep.Spec.Template.Spec
	c := pod.Containers[0]
	wantArgs := []string{"serve", "--addr", ":8080", "--grpc-addr", ":9090", "--admin-addr", ":9091", "--models", "/models",
		"--traffic-file", "/var/run/visionserve/traffic/traffic.json", "--state-dir", "/var/lib/visionserve/state", "--config", "/etc/visionserve/config.yaml", "--workers", "2", "--no-auth"}
	if !slices.Equal(c.Args, wantArgs) {
		t.Errorf("args %q, want %q", c.Args, wantArgs)
	}
	sc := c.SecurityContext
	if sc == nil || !ptr.Deref(sc.ReadOnlyRootFilesystem, false) || !ptr.Deref(sc.RunAsNonRoot, false) || ptr.Deref(sc.AllowPrivilegeEscalation, true) {
		t.Errorf("container security context %+v: want a read-only root, non-root, no privilege escalation", sc)
	}
	var modelsRO, trafficRO bool
	for _, m := range c.VolumeMounts {
		if m.MountPath == ModelsPath && m.ReadOnly {
			modelsRO = true
		}
		trafficRO = trafficRO || (m.Name == "traffic" && m.MountPath == TrafficPath && m.ReadOnly)
	}
	if !modelsRO {
		t.Errorf("models not mounted read-only at %s: %+v", ModelsPath, c.VolumeMounts)
	}
	// The traffic ConfigMap may not exist yet when a pod is created.
	for _, v := range pod.Volumes {
		if v.Name == "traffic" && (v.ConfigMap == nil || v.ConfigMap.Name != "ocr-traffic" || !ptr.Deref(v.ConfigMap.Optional, false)) {
			t.Errorf("traffic volume %+v: want the optional ConfigMap ocr-traffic", v)
		}
	}
	if !trafficRO {
		t.Errorf("traffic not mounted read-only at %s: %+v", TrafficPath, c.VolumeMounts)
	}
	// The failure memory of the isolated model check must be writable
	// and outlive a container restart: an emptyDir, not the read-only
	// models volume.
	stateRW := false
	for _, m := range c.VolumeMounts {
		stateRW = stateRW || (m.Name == "state" && m.MountPath == StatePath && !m.ReadOnly)
	}
	stateEmptyDir := false
	for _, v := range pod.Volumes {
		stateEmptyDir = stateEmptyDir || (v.Name == "state" && v.EmptyDir != nil)
	}
	if !stateRW || !stateEmptyDir {
		t.Errorf("state dir: mounted writable %v, an emptyDir %v: want %s (--state-dir) on a writable emptyDir", stateRW, stateEmptyDir, StatePath)
	}
	if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet.Path != "/readyz" || c.LivenessProbe.HTTPGet.Path != "/healthz" {
		t.Errorf("probes: readiness %+v liveness %+v", c.ReadinessProbe, c.LivenessProbe)
	}
	if c.Lifecycle == nil || c.Lifecycle.PreStop == nil || c.Lifecycle.PreStop.Sleep == nil || c.Lifecycle.PreStop.Sleep.Seconds < 1 {
		t.Errorf("no preStop sleep (a terminating pod must keep serving while it leaves the Service's endpoints): %+v", c.Lifecycle)
	}
	if c.Resources.Requests.Cpu().String() != "2" {
		t.Errorf("resources %+v", c.Resources)
	}

	for _, o := range []client.Object{&corev1.Service{}, &policyv1.PodDisruptionBudget{}} {
		eventually(t, timeout, fmt.Sprintf("%T", o), func() error {
			if _, err := get(ctx, ns, "ocr", o); err != nil {
				return err
			}
			return controlledBy(o, vs)
		})
	}
	eventually(t, timeout, "the ConfigMap", func() error {
		cm, err := get(ctx, ns, "ocr-config", &corev1.ConfigMap{})
		if err != nil {
			return err
		}
		if cm.Data[ConfigFile] != vs.Spec.Server.Config || cm.Data["signer.pem"] == "" {
			return fmt.Errorf("config map data %q", cm.Data)
		}
		return controlledBy(cm, vs)
	})
	eventually(t, timeout, "the traffic ConfigMap, without routes", func() error {
		cm, err := get(ctx, ns, "ocr-traffic", &corev1.ConfigMap{})
		if err != nil {
			return err
		}
		if cm.Data[TrafficFile] != "{}" {
			return fmt.Errorf("traffic config map data %q", cm.Data)
		}
		return controlledBy(cm, vs)
	})
	eventually(t, timeout, "the ServiceMonitor", func() error {
		sm := &unstructured.Unstructured{}
		sm.SetGroupVersionKind(ServiceMonitorGVK)
		if _, err := get(ctx, ns, "ocr", sm); err != nil {
			return err
		}
		return controlledBy(sm, vs)
	})

	// No Deployment controller runs here: the status says the rollout is
	// pending until the test plays its part.
	eventually(t, timeout, "status while rolling out", func() error {
		got, err := get(ctx, ns, "ocr", &v1alpha1.VisionService{})
		if err != nil {
			return err
		}
		if got.Status.Phase != v1alpha1.PhaseProvisioning || got.Status.DesiredReplicas != 2 || got.Status.Selector == "" || got.Status.ObservedGeneration != got.Generation {
			return fmt.Errorf("status %+v", got.Status)
		}
		if !meta.IsStatusConditionTrue(got.Status.Conditions, v1alpha1.ConditionModelsAvailable) {
			return fmt.Errorf("ModelsAvailable not true: %+v", got.Status.Conditions)
		}
		return nil
	})
	setDeploymentStatus(t, ctx, ns, "ocr", 2, 2)
	eventually(t, timeout, "Running once the Deployment is ready", func() error {
		got, err := get(ctx, ns, "ocr", &v1alpha1.VisionService{})
		if err != nil {
			return err
		}
		if got.Status.Phase != v1alpha1.PhaseRunning || got.Status.ReadyReplicas != 2 || !meta.IsStatusConditionTrue(got.Status.Conditions, v1alpha1.ConditionReady) {
			return fmt.Errorf("status %+v", got.Status)
		}
		return nil
	})
}

// setDeploymentStatus plays the Deployment controller.
func setDeploymentStatus(t *testing.T, ctx context.Context, ns, name string, replicas, ready int32) {
	t.Helper()
	eventually(t, timeout, "writing the Deployment status", func() error {
		dep, err := get(ctx, ns, name, &appsv1.Deployment{})
		if err != nil {
			return err
		}
		dep.Status = appsv1.DeploymentStatus{
			ObservedGeneration: dep.Generation, Replicas: replicas, UpdatedReplicas: replicas,
			ReadyReplicas: ready, AvailableReplicas: ready,
		}
		return k8s.Status().Update(ctx, dep)
	})
}

// TestUpdateConverges: spec changes reach the owned objects; an object the
// spec no longer asks for is deleted.
func TestUpdateConverges(t *testing.T) {
	ctx := env(t)
	ns := namespace(t, ctx)
	vs := newVS(ns, "ocr", func(vs *v1alpha1.VisionService) { vs.Spec.Server.Config = "log:\n  level: info\n" })
	if err := k8s.Create(ctx, vs); err != nil {
		t.Fatal(err)
	}
	var hash string
	eventually(t, timeout, "the Deployment", func() error {
		dep, err := get(ctx, ns, "ocr", &appsv1.Deployment{})
		hash = dep.Spec.Template.Annotations[AnnotationConfigHash]
		return err
	})

	update(t, ctx, ns, "ocr", func(vs *v1alpha1.VisionService) {
		vs.Spec.Image = "ghcr.io/visionserve/visionserve:v2"
		vs.Spec.Replicas = ptr.To[int32](3)
		vs.Spec.Server.Config = "log:\n  level: debug\n"
		vs.Spec.Server.Port = 9000
	})
	eventually(t, timeout, "the updated Deployment", func() error {
		dep, err := get(ctx, ns, "ocr", &appsv1.Deployment{})
		if err != nil {
			return err
		}
		c := dep.Spec.Template.Spec.Containers[0]
		switch {
		case c.Image != "ghcr.io/visionserve/visionserve:v2":
			return fmt.Errorf("image %s", c.Image)
		case ptr.Deref(dep.Spec.Replicas, 0) != 3:
			return fmt.Errorf("replicas %d", ptr.Deref(dep.Spec.Replicas, 0))
		case dep.Spec.Template.Annotations[AnnotationConfigHash] == hash:
			return fmt.Errorf("the config hash did not change: the pods would not roll")
		case c.Ports[0].ContainerPort != 9000 || c.Args[2] != ":9000":
			return fmt.Errorf("port %d, args %q", c.Ports[0].ContainerPort, c.Args)
		}
		return nil
	})
	eventually(t, timeout, "the updated Service", func() error {
		svc, err := get(ctx, ns, "ocr", &corev1.Service{})
		if err != nil {
			return err
		}
		if svc.Spec.Ports[0].Port != 9000 {
			return fmt.Errorf("service port %d", svc.Spec.Ports[0].Port)
		}
		return nil
	})

	update(t, ctx, ns, "ocr", func(vs *v1alpha1.VisionService) { vs.Spec.Server.Config = "" })
	eventually(t, timeout, "the ConfigMap deleted", func() error {
		_, err := get(ctx, ns, "ocr-config", &corev1.ConfigMap{})
		if !apierrors.IsNotFound(err) {
			return fmt.Errorf("still there (err %v)", err)
		}
		dep, err := get(ctx, ns, "ocr", &appsv1.Deployment{})
		if err != nil {
			return err
		}
		if slices.Contains(dep.Spec.Template.Spec.Containers[0].Args, "--config") {
			return fmt.Errorf("args still name the config: %q", dep.Spec.Template.Spec.Containers[0].Args)
		}
		return nil
	})
}

func update(t *testing.T, ctx context.Context, ns, name string, mutate func(*v1alpha1.VisionService)) {
	t.Helper()
	eventually(t, timeout, "updating the VisionService", func() error {
		vs, err := get(ctx, ns, name, &v1alpha1.VisionService{})
		if err != nil {
			return err
		}
		mutate(vs)
		return k8s.Update(ctx, vs)
	})
}

// TestDeletedDeploymentIsRecreated: the operator owns the Deployment and
// puts it back.
func TestDeletedDeploymentIsRecreated(t *testing.T) {
	ctx := env(t)
	ns := namespace(t, ctx)
	if err := k8s.Create(ctx, newVS(ns, "ocr", nil)); err != nil {
		t.Fatal(err)
	}
	var first *appsv1.Deployment
	eventually(t, timeout, "the Deployment", func() (err error) {
		first, err = get(ctx, ns, "ocr", &appsv1.Deployment{})
		return err
	})
	if err := k8s.Delete(ctx, first); err != nil {
		t.Fatal(err)
	}
	eventually(t, timeout, "a new Deployment", func() error {
		dep, err := get(ctx, ns, "ocr", &appsv1.Deployment{})
		if err != nil {
			return err
		}
		if dep.UID == first.UID {
			return fmt.Errorf("still the old one")
		}
		return nil
	})
	// A Deployment edited by hand is put back too.
	eventually(t, timeout, "editing the Deployment", func() error {
		dep, err := get(ctx, ns, "ocr", &appsv1.Deployment{})
		if err != nil {
			return err
		}
		dep.Spec.Template.Spec.Containers[0].Image = "evil:latest"
		return k8s.Update(ctx, dep)
	})
	eventually(t, timeout, "the image restored", func() error {
		dep, err := get(ctx, ns, "ocr", &appsv1.Deployment{})
		if err != nil {
			return err
		}
		if img := dep.Spec.Template.Spec.Containers[0].Image; img != "ghcr.io/visionserve/visionserve:test" {
			return fmt.Errorf("image %s", img)
		}
		return nil
	})
}

// TestDelete: deleting a VisionService leaves nothing the garbage collector
// could not find. Envtest runs no garbage collector, so the test checks
// what it relies on: every owned object carries a controller reference
// with blockOwnerDeletion to the deleted VisionService, and the operator
// does not put anything back.
func TestDelete(t *testing.T) {
	ctx := env(t)
	ns := namespace(t, ctx)
	vs := newVS(ns, "ocr", func(vs *v1alpha1.VisionService) {
		vs.Spec.Models = &v1alpha1.ModelSource{VolumeClaimTemplate: &v1alpha1.ModelVolume{Size: resource.MustParse("2Gi")}}
		vs.Spec.Server.Config = "{}"
	})
	if err := k8s.Create(ctx, vs); err != nil {
		t.Fatal(err)
	}
	owned := []struct {
		name string
		obj  client.Object
	}{
		{"ocr", &appsv1.Deployment{}}, {"ocr", &corev1.Service{}}, {"ocr", &policyv1.PodDisruptionBudget{}},
		{"ocr-config", &corev1.ConfigMap{}}, {"ocr-models", &corev1.PersistentVolumeClaim{}}, {"ocr-traffic", &corev1.ConfigMap{}},
	}
	for _, o := range owned {
		eventually(t, timeout, o.name, func() error {
			if _, err := get(ctx, ns, o.name, o.obj); err != nil {
				return err
			}
			return controlledBy(o.obj, vs)
		})
	}
	pvc, _ := get(ctx, ns, "ocr-models", &corev1.PersistentVolumeClaim{})
	if got := pvc.Spec.Resources.Requests.Storage().String(); got != "2Gi" || pvc.Spec.AccessModes[0] != corev1.ReadOnlyMany {
		t.Errorf("model claim %s %v", got, pvc.Spec.AccessModes)
	}
	if err := k8s.Delete(ctx, vs); err != nil {
		t.Fatal(err)
	}
	eventually(t, timeout, "the VisionService gone", func() error {
		_, err := get(ctx, ns, "ocr", &v1alpha1.VisionService{})
		if !apierrors.IsNotFound(err) {
			return fmt.Errorf("still there (err %v)", err)
		}
		return nil
	})
	// Once the operator has seen the deletion, do what the garbage
	// collector would. A reconcile already under way when the deletion
	// arrived may still apply the Deployment once (the collector would
	// delete that one too: its owner is gone); after that the operator must
	// leave it deleted.
	eventually(t, timeout, "the operator seeing the deletion", func() error {
		err := cached.Get(ctx, types.NamespacedName{Namespace: ns, Name: "ocr"}, &v1alpha1.VisionService{})
		if !apierrors.IsNotFound(err) {
			return fmt.Errorf("still in the cache (err %v)", err)
		}
		return nil
	})
	recreated := 0
	for quiet := 0; quiet < 20; quiet++ {
		dep, err := get(ctx, ns, "ocr", &appsv1.Deployment{})
		if apierrors.IsNotFound(err) {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if ref := metav1.GetControllerOf(dep); ref == nil || ref.UID != vs.UID {
			t.Fatalf("a Deployment not owned by the deleted VisionService: %v", dep.OwnerReferences)
		}
		if recreated++; recreated > 2 { // the original, then at most one in-flight apply
			t.Fatalf("the Deployment of a deleted VisionService keeps coming back")
		}
		if err := k8s.Delete(ctx, dep); err != nil && !apierrors.IsNotFound(err) {
			t.Fatal(err)
		}
		quiet = 0
	}
}

// TestSchemaRefusesInvalidSpecs: the API server refuses, with a message
// naming the field, what the CRD schema forbids.
func TestSchemaRefusesInvalidSpecs(t *testing.T) {
	ctx := env(t)
	ns := namespace(t, ctx)
	autoscaling := func(vs *v1alpha1.VisionService) {
		vs.Spec.MaxReplicas = ptr.To[int32](5)
		vs.Spec.Autoscaling = &v1alpha1.AutoscalingSpec{QPSPerReplica: 10}
	}
	canarySpec := func(vs *v1alpha1.VisionService) {
		vs.Spec.Canary = &v1alpha1.CanarySpec{Model: "ocr-eng", StableVersion: 3, Version: 4}
		vs.Spec.Server.AdminKeySecret = &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "admin"}, Key: "key"}
	}
	dur := func(s string) *metav1.Duration { d, _ := time.ParseDuration(s); return &metav1.Duration{Duration: d} }
	cases := []struct {
		name   string
		mutate func(*v1alpha1.VisionService)
		want   []string // all must appear in the error
	}{
		{"empty image", func(vs *v1alpha1.VisionService) { vs.Spec.Image = "" }, []string{"spec.image", "at least 1 chars long"}},
		{"min above max", func(vs *v1alpha1.VisionService) { vs.Spec.MinReplicas = 4; vs.Spec.MaxReplicas = ptr.To[int32](2) },
			[]string{"minReplicas must not be greater than maxReplicas"}},
		{"autoscaling without max", func(vs *v1alpha1.VisionService) { vs.Spec.Autoscaling = &v1alpha1.AutoscalingSpec{QPSPerReplica: 10} },
			[]string{"maxReplicas is required when autoscaling is set"}},
		{"zero QPS target", func(vs *v1alpha1.VisionService) { autoscaling(vs); vs.Spec.Autoscaling.QPSPerReplica = 0 },
			[]string{"spec.autoscaling.qpsPerReplica", "should be greater than 0"}},
		{"confidence floor above 1", func(vs *v1alpha1.VisionService) { autoscaling(vs); vs.Spec.Autoscaling.ConfidenceFloor = ptr.To(1.5) },
			[]string{"spec.autoscaling.confidenceFloor", "less than or equal to 1"}},
		{"ewma alpha 0", func(vs *v1alpha1.VisionService) { autoscaling(vs); vs.Spec.Autoscaling.EWMAAlpha = ptr.To(0.0) },
			[]string{"spec.autoscaling.ewmaAlpha", "should be greater than 0"}},
		{"interval under a second", func(vs *v1alpha1.VisionService) { autoscaling(vs); vs.Spec.Autoscaling.Interval = dur("500ms") },
			[]string{"spec.autoscaling.interval", "interval must be at least 1s"}},
		{"window shorter than interval", func(vs *v1alpha1.VisionService) {
			autoscaling(vs)
			vs.Spec.Autoscaling.Interval, vs.Spec.Autoscaling.Window = dur("30s"), dur("10s")
		}, []string{"window must be at least as long as interval"}},
		{"max step 0", func(vs *v1alpha1.VisionService) { autoscaling(vs); vs.Spec.Autoscaling.MaxStep = ptr.To[int32](0) },
			[]string{"spec.autoscaling.maxStep", "greater than or equal to 1"}},
		{"prometheus URL", func(vs *v1alpha1.VisionService) {
			autoscaling(vs)
			vs.Spec.Autoscaling.Prometheus = &v1alpha1.PrometheusSource{URL: "prometheus:9090"}
		}, []string{"spec.autoscaling.prometheus.url"}},
		{"two model sources", func(vs *v1alpha1.VisionService) {
			vs.Spec.Models = &v1alpha1.ModelSource{PersistentVolumeClaim: &v1alpha1.ModelClaim{ClaimName: "m"},
				VolumeClaimTemplate: &v1alpha1.ModelVolume{Size: resource.MustParse("1Gi")}}
		}, []string{"set exactly one of persistentVolumeClaim or volumeClaimTemplate"}},
		{"no model source", func(vs *v1alpha1.VisionService) { vs.Spec.Models = &v1alpha1.ModelSource{} },
			[]string{"set exactly one of persistentVolumeClaim or volumeClaimTemplate"}},
		{"canary without an admin key", func(vs *v1alpha1.VisionService) { canarySpec(vs); vs.Spec.Server.AdminKeySecret = nil },
			[]string{"a canary needs server.adminKeySecret"}},
		{"canary on its own version", func(vs *v1alpha1.VisionService) { canarySpec(vs); vs.Spec.Canary.Version = 3 },
			[]string{"version must differ from stableVersion"}},
		{"canary weight 100", func(vs *v1alpha1.VisionService) { canarySpec(vs); vs.Spec.Canary.Weight = 100 },
			[]string{"spec.canary.weight", "less than or equal to 99"}},
		{"canary model name", func(vs *v1alpha1.VisionService) { canarySpec(vs); vs.Spec.Canary.Model = "OCR English" },
			[]string{"spec.canary.model"}},
		{"port", func(vs *v1alpha1.VisionService) { vs.Spec.Server.Port = 70000 }, []string{"spec.server.port", "less than or equal to 65535"}},
		{"pull policy", func(vs *v1alpha1.VisionService) { vs.Spec.ImagePullPolicy = "Sometimes" }, []string{"spec.imagePullPolicy", "Unsupported value"}},
		{"file name", func(vs *v1alpha1.VisionService) { vs.Spec.Server.Files = map[string]string{"../etc/passwd": "x"} },
			[]string{"spec.server.files", "file names are letters, digits"}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := k8s.Create(ctx, newVS(ns, fmt.Sprintf("bad-%d", i), tc.mutate))
			if !apierrors.IsInvalid(err) {
				t.Fatalf("want Invalid, got %v", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
	// And a full valid spec is accepted, with the defaults filled in.
	vs := newVS(ns, "good", func(vs *v1alpha1.VisionService) {
		autoscaling(vs)
		canarySpec(vs)
		vs.Spec.Autoscaling.ConfidenceFloor = ptr.To(0.8)
		vs.Spec.Autoscaling.Interval, vs.Spec.Autoscaling.Window = dur("15s"), dur("1m")
	})
	if err := k8s.Create(ctx, vs); err != nil {
		t.Fatalf("a valid spec was refused: %v", err)
	}
	if vs.Spec.MinReplicas != 1 || vs.Spec.Canary.Weight != 10 || vs.Spec.Server.Port != 8080 {
		t.Errorf("defaults not applied: min %d weight %d port %d", vs.Spec.MinReplicas, vs.Spec.Canary.Weight, vs.Spec.Server.Port)
	}
}

// TestInvalidConfigIsTerminal: what the schema cannot check is refused by
// the operator once, with a condition and an event, and nothing is created.
func TestInvalidConfigIsTerminal(t *testing.T) {
	ctx := env(t)
	ns := namespace(t, ctx)
	vs := newVS(ns, "ocr", func(vs *v1alpha1.VisionService) { vs.Spec.Server.Config = "server: [unclosed" })
	if err := k8s.Create(ctx, vs); err != nil {
		t.Fatal(err)
	}
	eventually(t, timeout, "Failed with InvalidSpec", func() error {
		got, err := get(ctx, ns, "ocr", &v1alpha1.VisionService{})
		if err != nil {
			return err
		}
		c := meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionReady)
		if got.Status.Phase != v1alpha1.PhaseFailed || c == nil || c.Reason != "InvalidSpec" || !strings.Contains(c.Message, "spec.server.config is not a YAML mapping") {
			return fmt.Errorf("status %+v", got.Status)
		}
		return nil
	})
	warned(t, ctx, ns, "ocr", "InvalidSpec")
	if _, err := get(ctx, ns, "ocr", &appsv1.Deployment{}); !apierrors.IsNotFound(err) {
		t.Fatalf("a Deployment was created for an invalid spec (err %v)", err)
	}
	// Fixing the spec recovers.
	update(t, ctx, ns, "ocr", func(vs *v1alpha1.VisionService) { vs.Spec.Server.Config = "server: {queue: 8}" })
	eventually(t, timeout, "the Deployment after the fix", func() error {
		_, err := get(ctx, ns, "ocr", &appsv1.Deployment{})
		return err
	})
}

// TestNoCredentialsIsTerminal: a server without credentials would refuse
// to start in every pod; the operator says so instead of crash-looping them.
func TestNoCredentialsIsTerminal(t *testing.T) {
	ctx := env(t)
	ns := namespace(t, ctx)
	vs := newVS(ns, "ocr", func(vs *v1alpha1.VisionService) {
		vs.Spec.Server.Args = nil
		vs.Spec.Server.Config = "server: {queue: 8}"
	})
	if err := k8s.Create(ctx, vs); err != nil {
		t.Fatal(err)
	}
	eventually(t, timeout, "Failed with InvalidSpec", func() error {
		got, err := get(ctx, ns, "ocr", &v1alpha1.VisionService{})
		if err != nil {
			return err
		}
		c := meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionReady)
		if got.Status.Phase != v1alpha1.PhaseFailed || c == nil || !strings.Contains(c.Message, "refuses to start without credentials") {
			return fmt.Errorf("status %+v", got.Status)
		}
		return nil
	})
	update(t, ctx, ns, "ocr", func(vs *v1alpha1.VisionService) {
		vs.Spec.Server.Config = "server: {queue: 8}\nauth:\n  api_keys: [{name: c, hash: 'sha256:00', scopes: [infer]}]\n"
	})
	eventually(t, timeout, "the Deployment once auth is configured", func() error {
		_, err := get(ctx, ns, "ocr", &appsv1.Deployment{})
		return err
	})
}

// TestMissingClaim: a missing model claim is explained, then resolved.
func TestMissingClaim(t *testing.T) {
	ctx := env(t)
	ns := namespace(t, ctx)
	vs := newVS(ns, "ocr", func(vs *v1alpha1.VisionService) {
		vs.Spec.Models = &v1alpha1.ModelSource{PersistentVolumeClaim: &v1alpha1.ModelClaim{ClaimName: "later"}}
	})
	if err := k8s.Create(ctx, vs); err != nil {
		t.Fatal(err)
	}
	eventually(t, timeout, "Pending with ClaimNotFound", func() error {
		got, err := get(ctx, ns, "ocr", &v1alpha1.VisionService{})
		if err != nil {
			return err
		}
		c := meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionModelsAvailable)
		if got.Status.Phase != v1alpha1.PhasePending || c == nil || c.Reason != "ClaimNotFound" || !strings.Contains(c.Message, "later") {
			return fmt.Errorf("status %+v", got.Status)
		}
		return nil
	})
	if err := k8s.Create(ctx, &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "later"},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadOnlyMany},
			Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
		},
	}); err != nil {
		t.Fatal(err)
	}
	eventually(t, timeout, "ModelsAvailable once the claim exists", func() error {
		got, err := get(ctx, ns, "ocr", &v1alpha1.VisionService{})
		if err != nil {
			return err
		}
		if !meta.IsStatusConditionTrue(got.Status.Conditions, v1alpha1.ConditionModelsAvailable) || got.Status.Phase == v1alpha1.PhasePending {
			return fmt.Errorf("status %+v", got.Status)
		}
		return nil
	})
}

// TestPodFailureIsExplained: a pod that cannot pull its image makes the
// service Failed with the pod's reason in the Ready condition.
func TestPodFailureIsExplained(t *testing.T) {
	ctx := env(t)
	ns := namespace(t, ctx)
	if err := k8s.Create(ctx, newVS(ns, "ocr", func(vs *v1alpha1.VisionService) { vs.Spec.Replicas = ptr.To[int32](1) })); err != nil {
		t.Fatal(err)
	}
	eventually(t, timeout, "the Deployment", func() error { _, err := get(ctx, ns, "ocr", &appsv1.Deployment{}); return err })
	setDeploymentStatus(t, ctx, ns, "ocr", 1, 0)
	p := fakeK8sPod(t, ctx, ns, "ocr-abc", false)
	p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: containerName, State: corev1.ContainerState{
		Waiting: &corev1.ContainerStateWaiting{Reason: "ImagePullBackOff", Message: "Back-off pulling image"},
	}}}
	if err := k8s.Status().Update(ctx, p); err != nil {
		t.Fatal(err)
	}
	eventually(t, timeout, "Failed with the pod's reason", func() error {
		got, err := get(ctx, ns, "ocr", &v1alpha1.VisionService{})
		if err != nil {
			return err
		}
		c := meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionReady)
		if got.Status.Phase != v1alpha1.PhaseFailed || c == nil || !strings.Contains(c.Message, "pod ocr-abc: ImagePullBackOff: Back-off pulling image") {
			return fmt.Errorf("status %+v", got.Status)
		}
		return nil
	})
}

// fakeK8sPod creates a pod as the ReplicaSet controller would, and marks it
// ready on 127.0.0.1 when ready is set.
func fakeK8sPod(t *testing.T, ctx context.Context, ns, name string, ready bool) *corev1.Pod {
	t.Helper()
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{
			LabelName: "visionserve", LabelInstance: "ocr", LabelManagedBy: ManagedBy,
		}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: containerName, Image: "ghcr.io/visionserve/visionserve:test"}}},
	}
	if err := k8s.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	p.Status.Phase = corev1.PodPending
	if ready {
		p.Status.Phase = corev1.PodRunning
		p.Status.PodIP = "127.0.0.1"
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
	}
	if err := k8s.Status().Update(ctx, p); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestScaleSubresource: with the built-in autoscaler off, an HPA or KEDA
// drives the replica count through the scale subresource.
func TestScaleSubresource(t *testing.T) {
	ctx := env(t)
	ns := namespace(t, ctx)
	vs := newVS(ns, "ocr", nil)
	if err := k8s.Create(ctx, vs); err != nil {
		t.Fatal(err)
	}
	eventually(t, timeout, "the selector in status", func() error {
		got, err := get(ctx, ns, "ocr", &v1alpha1.VisionService{})
		if err != nil {
			return err
		}
		if got.Status.Selector == "" {
			return fmt.Errorf("no selector yet")
		}
		return nil
	})
	scale := &autoscalingv1.Scale{}
	if err := k8s.SubResource("scale").Get(ctx, vs, scale); err != nil {
		t.Fatal(err)
	}
	if scale.Status.Selector != "app.kubernetes.io/instance=ocr,app.kubernetes.io/name=visionserve" {
		t.Errorf("scale selector %q", scale.Status.Selector)
	}
	scale.Spec.Replicas = 4
	if err := k8s.SubResource("scale").Update(ctx, vs, client.WithSubResourceBody(scale)); err != nil {
		t.Fatal(err)
	}
	eventually(t, timeout, "the Deployment at 4 replicas", func() error {
		dep, err := get(ctx, ns, "ocr", &appsv1.Deployment{})
		if err != nil {
			return err
		}
		if r := ptr.Deref(dep.Spec.Replicas, 0); r != 4 {
			return fmt.Errorf("replicas %d", r)
		}
		return nil
	})
}

// TestAutoscalerScalesTheDeployment: the reconciler scrapes the ready pods
// (local servers standing in for visionserve), scales the Deployment up and
// back down, records each change as an event with its inputs, and reports
// QPS and confidence in status.
func TestAutoscalerScalesTheDeployment(t *testing.T) {
	ctx := env(t)
	ns := namespace(t, ctx)
	var pods []*fakePod
	for i := range 2 {
		name := fmt.Sprintf("ocr-%d", i)
		pods = append(pods, newFakePod(t, ns, name, map[string]float64{"1": 0.9}))
		fakeK8sPod(t, ctx, ns, name, true)
	}
	setLoad := func(total float64) {
		for _, p := range pods {
			p.setQPS(total / float64(len(pods)))
		}
	}
	setLoad(10)
	vs := newVS(ns, "ocr", func(vs *v1alpha1.VisionService) {
		vs.Spec.MinReplicas = 1
		vs.Spec.MaxReplicas = ptr.To[int32](6)
		vs.Spec.Autoscaling = &v1alpha1.AutoscalingSpec{
			QPSPerReplica: 10, ConfidenceFloor: ptr.To(0.5),
			Interval: &metav1.Duration{Duration: time.Second}, Window: &metav1.Duration{Duration: 3 * time.Second},
			ScaleDownStabilization: &metav1.Duration{Duration: 3 * time.Second},
		}
	})
	if err := k8s.Create(ctx, vs); err != nil {
		t.Fatal(err)
	}
	replicas := func(want int32) func() error {
		return func() error {
			dep, err := get(ctx, ns, "ocr", &appsv1.Deployment{})
			if err != nil {
				return err
			}
			if r := ptr.Deref(dep.Spec.Replicas, 0); r != want {
				return fmt.Errorf("replicas %d, want %d", r, want)
			}
			return nil
		}
	}
	eventually(t, timeout, "a decision on metrics at 10 QPS", func() error {
		got, err := get(ctx, ns, "ocr", &v1alpha1.VisionService{})
		if err != nil {
			return err
		}
		if got.Status.ObservedQPS == nil || !meta.IsStatusConditionTrue(got.Status.Conditions, v1alpha1.ConditionScalingActive) {
			return fmt.Errorf("no decision on metrics yet: %+v", got.Status)
		}
		return replicas(1)()
	})
	setLoad(45)
	eventually(t, timeout, "5 replicas at 45 QPS", replicas(5))
	eventually(t, timeout, "the decision in status", func() error {
		got, err := get(ctx, ns, "ocr", &v1alpha1.VisionService{})
		if err != nil {
			return err
		}
		s := got.Status
		switch {
		case s.DesiredReplicas != 5:
			return fmt.Errorf("desired %d", s.DesiredReplicas)
		case s.ObservedQPS == nil || *s.ObservedQPS < 30 || s.ObservedConfidence == nil || *s.ObservedConfidence != 0.9:
			return fmt.Errorf("observed QPS %v confidence %v", s.ObservedQPS, s.ObservedConfidence)
		case s.LastScaleTime == nil || !strings.Contains(s.LastScaleReason, "ScaleUpQPS"):
			return fmt.Errorf("last scale %v %q", s.LastScaleTime, s.LastScaleReason)
		case !meta.IsStatusConditionTrue(s.Conditions, v1alpha1.ConditionScalingActive):
			return fmt.Errorf("ScalingActive not true: %+v", s.Conditions)
		}
		return nil
	})
	setLoad(0)
	eventually(t, timeout, "back to 1 replica without load", replicas(1))

	// Each change is an event, in order, with its inputs.
	eventually(t, timeout, "the scaling events", func() error {
		var seq []string
		for _, e := range events(t, ctx, ns, "ocr") {
			if e.Reason == "ScaleUpQPS" || e.Reason == "ScaleDownQPS" {
				if !strings.Contains(e.Message, "qps ") || !strings.Contains(e.Message, "/2 reporting") || !strings.Contains(e.Message, "target 10/replica") {
					return fmt.Errorf("event without its inputs: %q", e.Message)
				}
				seq = append(seq, e.Reason)
			}
		}
		if len(seq) == 0 || seq[0] != "ScaleUpQPS" || seq[len(seq)-1] != "ScaleDownQPS" {
			return fmt.Errorf("scaling events %v", seq)
		}
		return nil
	})

	// No pod reports: the count holds and the condition says why.
	for _, p := range pods {
		p.srv.Close()
	}
	eventually(t, timeout, "ScalingActive false without metrics", func() error {
		got, err := get(ctx, ns, "ocr", &v1alpha1.VisionService{})
		if err != nil {
			return err
		}
		c := meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionScalingActive)
		if c == nil || c.Status != metav1.ConditionFalse || c.Reason != "NoMetrics" {
			return fmt.Errorf("condition %+v", c)
		}
		return replicas(1)()
	})
}

// TestCanary: a canary whose confidence falls short is rolled back (traffic
// all to the stable version, status and event say why); one that keeps up
// is promoted after its analysis period.
func TestCanary(t *testing.T) {
	for _, tc := range []struct {
		name        string
		canaryConf  float64
		phase       v1alpha1.CanaryPhase
		reason      string
		event       string
		wantWeights map[string]int
	}{
		{"rolled back", 0.70, v1alpha1.CanaryRolledBack, "ConfidenceBelowStable", ReasonCanaryRolledBack, map[string]int{"3": 100}},
		{"promoted", 0.91, v1alpha1.CanaryPromoted, "Promoted", ReasonCanaryPromoted, map[string]int{"4": 100}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := env(t)
			ns := namespace(t, ctx)
			if err := k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "admin"},
				StringData: map[string]string{"key": adminKey}}); err != nil {
				t.Fatal(err)
			}
			fp := newFakePod(t, ns, "ocr-0", map[string]float64{"3": 0.9, "4": tc.canaryConf})
			fp.setQPS(200)
			fakeK8sPod(t, ctx, ns, "ocr-0", true)
			vs := newVS(ns, "ocr", func(vs *v1alpha1.VisionService) {
				vs.Spec.MaxReplicas = ptr.To[int32](1)
				vs.Spec.Autoscaling = &v1alpha1.AutoscalingSpec{QPSPerReplica: 1000,
					Interval: &metav1.Duration{Duration: time.Second}, Window: &metav1.Duration{Duration: 2 * time.Second}}
				vs.Spec.Server.AdminKeySecret = &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "admin"}, Key: "key"}
				vs.Spec.Canary = &v1alpha1.CanarySpec{Model: "ocr-eng", StableVersion: 3, Version: 4, Weight: 20,
					Analysis: &metav1.Duration{Duration: 3 * time.Second}, MinSamples: ptr.To[int32](20)}
			})
			if err := k8s.Create(ctx, vs); err != nil {
				t.Fatal(err)
			}
			eventually(t, timeout, "the canary weights on the pod", func() error {
				if w, _ := fp.lastWeights(); w["3"] != 80 || w["4"] != 20 {
					return fmt.Errorf("weights %v", w)
				}
				return nil
			})
			eventually(t, timeout, "the verdict", func() error {
				got, err := get(ctx, ns, "ocr", &v1alpha1.VisionService{})
				if err != nil {
					return err
				}
				st := got.Status.Canary
				if st == nil || st.Phase != tc.phase || st.Reason != tc.reason || st.CanaryConfidence == nil || st.StableConfidence == nil {
					return fmt.Errorf("canary status %+v", st)
				}
				c := meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionCanaryHealthy)
				if c == nil || (c.Status == metav1.ConditionFalse) != (tc.phase == v1alpha1.CanaryRolledBack) {
					return fmt.Errorf("condition %+v", c)
				}
				return nil
			})
			if w, _ := fp.lastWeights(); fmt.Sprint(w) != fmt.Sprint(tc.wantWeights) {
				t.Errorf("weights after the verdict %v, want %v", w, tc.wantWeights)
			}
			eventually(t, timeout, "the verdict event", func() error {
				for _, e := range events(t, ctx, ns, "ocr") {
					if e.Reason == tc.event && strings.Contains(e.Message, "confidence") {
						return nil
					}
				}
				return fmt.Errorf("no %s event", tc.event)
			})
			// The verdict is final: later windows do not reopen it.
			_, puts := fp.lastWeights()
			eventually(t, timeout, "weights re-applied later", func() error {
				if _, n := fp.lastWeights(); n < puts+2 {
					return fmt.Errorf("%d puts", n)
				}
				return nil
			})
			got, _ := get(ctx, ns, "ocr", &v1alpha1.VisionService{})
			if got.Status.Canary.Phase != tc.phase {
				t.Errorf("phase changed to %s", got.Status.Canary.Phase)
			}
			if w, _ := fp.lastWeights(); fmt.Sprint(w) != fmt.Sprint(tc.wantWeights) {
				t.Errorf("weights %v, want %v", w, tc.wantWeights)
			}
		})
	}
}

// TestCanaryVerdictOutlivesTheSpec: a rolled-back version stays out of
// traffic once spec.canary is removed (and nothing is measured any more):
// in the traffic ConfigMap the pods read at start, on a pod that becomes
// ready later, and on a pod whose server restarted. Clearing
// status.canary returns every pod to the newest version.
func TestCanaryVerdictOutlivesTheSpec(t *testing.T) {
	ctx := env(t)
	ns := namespace(t, ctx)
	if err := k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "admin"},
		StringData: map[string]string{"key": adminKey}}); err != nil {
		t.Fatal(err)
	}
	conf := map[string]float64{"3": 0.9, "4": 0.7}
	first := newFakePod(t, ns, "ocr-0", conf)
	first.setQPS(200)
	fakeK8sPod(t, ctx, ns, "ocr-0", true)
	vs := newVS(ns, "ocr", func(vs *v1alpha1.VisionService) {
		vs.Spec.Models = &v1alpha1.ModelSource{VolumeClaimTemplate: &v1alpha1.ModelVolume{Size: resource.MustParse("1Gi")}}
		vs.Spec.MaxReplicas = ptr.To[int32](2)
		vs.Spec.Autoscaling = &v1alpha1.AutoscalingSpec{QPSPerReplica: 1000,
			Interval: &metav1.Duration{Duration: time.Second}, Window: &metav1.Duration{Duration: 2 * time.Second}}
		vs.Spec.Server.AdminKeySecret = &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "admin"}, Key: "key"}
		vs.Spec.Canary = &v1alpha1.CanarySpec{Model: "ocr-eng", StableVersion: 3, Version: 4, Weight: 20, MinSamples: ptr.To[int32](20)}
	})
	if err := k8s.Create(ctx, vs); err != nil {
		t.Fatal(err)
	}
	trafficFile := func(want string) func() error {
		return func() error {
			cm, err := get(ctx, ns, "ocr-traffic", &corev1.ConfigMap{})
			if err != nil {
				return err
			}
			if got := cm.Data[TrafficFile]; got != want {
				return fmt.Errorf("traffic file %s, want %s", got, want)
			}
			return nil
		}
	}
	eventually(t, timeout, "the canary's weights in the traffic file", trafficFile(`{"ocr-eng":{"weights":{"3":80,"4":20}}}`))
	eventually(t, timeout, "the rollback", func() error {
		got, err := get(ctx, ns, "ocr", &v1alpha1.VisionService{})
		if err != nil {
			return err
		}
		if st := got.Status.Canary; st == nil || st.Phase != v1alpha1.CanaryRolledBack {
			return fmt.Errorf("canary status %+v", st)
		}
		return nil
	})

	// The canary leaves the spec, and the autoscaler with it: no decision
	// is made any more.
	update(t, ctx, ns, "ocr", func(vs *v1alpha1.VisionService) {
		vs.Spec.Canary, vs.Spec.Autoscaling, vs.Spec.Replicas = nil, nil, ptr.To[int32](2)
	})
	eventually(t, timeout, "the spec change seen", func() error {
		got, err := get(ctx, ns, "ocr", &v1alpha1.VisionService{})
		if err != nil {
			return err
		}
		if got.Status.ObservedGeneration != got.Generation || meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionCanaryHealthy) != nil {
			return fmt.Errorf("generation %d observed %d, conditions %+v", got.Generation, got.Status.ObservedGeneration, got.Status.Conditions)
		}
		return nil
	})
	if err := trafficFile(`{"ocr-eng":{"weights":{"3":100}}}`)(); err != nil {
		t.Errorf("without spec.canary: %v", err)
	}
	weights := func(fp *fakePod, want string) func() error {
		return func() error {
			if w, n := fp.lastWeights(); n == 0 || fmt.Sprint(w) != want {
				return fmt.Errorf("weights %v after %d PUTs, want %s", w, n, want)
			}
			return nil
		}
	}
	// A pod that starts now (the replacement of a killed one) is routed
	// by the verdict as soon as it is ready.
	second := newFakePod(t, ns, "ocr-1", conf)
	fakeK8sPod(t, ctx, ns, "ocr-1", true)
	eventually(t, timeout, "the verdict on the new pod", weights(second, "map[3:100]"))
	got, err := get(ctx, ns, "ocr", &v1alpha1.VisionService{})
	if err != nil {
		t.Fatal(err)
	}
	if st := got.Status.Canary; st == nil || st.Phase != v1alpha1.CanaryRolledBack || st.Version != 4 {
		t.Errorf("status.canary %+v: want the rollback of 4 kept", st)
	}

	// A server that restarted (its container did) is routed again.
	_, puts := first.lastWeights()
	eventually(t, timeout, "a container restart", func() error {
		p, err := get(ctx, ns, "ocr-0", &corev1.Pod{})
		if err != nil {
			return err
		}
		p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: containerName, Ready: true, RestartCount: 1}}
		return k8s.Status().Update(ctx, p)
	})
	eventually(t, timeout, "the verdict on the restarted server", func() error {
		if _, n := first.lastWeights(); n <= puts {
			return fmt.Errorf("%d puts, no new one", n)
		}
		return weights(first, "map[3:100]")()
	})

	// Clearing the verdict returns both pods, and the pods to come, to the
	// newest version.
	eventually(t, timeout, "clearing status.canary", func() error {
		got, err := get(ctx, ns, "ocr", &v1alpha1.VisionService{})
		if err != nil {
			return err
		}
		got.Status.Canary = nil
		return k8s.Status().Update(ctx, got)
	})
	eventually(t, timeout, "no weights in the traffic file", trafficFile(`{"ocr-eng":{"weights":{}}}`))
	for _, fp := range []*fakePod{first, second} {
		eventually(t, timeout, "the newest version on each pod", weights(fp, "map[]"))
	}
}
