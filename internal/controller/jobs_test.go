package controller

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/utils/ptr"

	v1alpha1 "github.com/visionserve/visionserve/api/v1alpha1"
)

// TestEmbeddedJobsNeedOneReplica (issue 13): embedded jobs with several
// replicas, or with autoscaling, are refused with a reason instead of
// running pods that each see different jobs; with one replica they get a
// claim of their own, mounted where --jobs-dir points, and pods are
// replaced stop-first.
func TestEmbeddedJobsNeedOneReplica(t *testing.T) {
	ctx := env(t)
	ns := namespace(t, ctx)
	vs := newVS(ns, "ocr", func(vs *v1alpha1.VisionService) {
		vs.Spec.Replicas = ptr.To[int32](3)
		vs.Spec.Jobs = &v1alpha1.JobsSpec{Store: v1alpha1.JobsEmbedded, Embedded: &v1alpha1.EmbeddedJobs{Size: ptr.To(resource.MustParse("1Gi"))}}
	})
	if err := k8s.Create(ctx, vs); err != nil {
		t.Fatal(err)
	}
	refused := func(what string) {
		t.Helper()
		eventually(t, timeout, what, func() error {
			got, err := get(ctx, ns, "ocr", &v1alpha1.VisionService{})
			if err != nil {
				return err
			}
			ready := meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionReady)
			jobs := meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionJobsConfigured)
			if got.Status.Phase != v1alpha1.PhaseFailed || ready == nil || ready.Reason != ReasonEmbeddedJobsNeedOneReplica ||
				jobs == nil || jobs.Status != "False" || jobs.Reason != ReasonEmbeddedJobsNeedOneReplica || !strings.Contains(jobs.Message, "Postgres") {
				return fmt.Errorf("status %+v", got.Status)
			}
			return nil
		})
	}
	refused("refused with three replicas")
	if _, err := get(ctx, ns, "ocr", &appsv1.Deployment{}); !apierrors.IsNotFound(err) {
		t.Fatalf("a Deployment was created for embedded jobs on three replicas (err %v)", err)
	}
	warned(t, ctx, ns, "ocr", ReasonEmbeddedJobsNeedOneReplica)

	// One replica: served, on a claim of its own.
	update(t, ctx, ns, "ocr", func(vs *v1alpha1.VisionService) { vs.Spec.Replicas = ptr.To[int32](1) })
	var dep *appsv1.Deployment
	eventually(t, timeout, "the Deployment with one replica", func() (err error) {
		dep, err = get(ctx, ns, "ocr", &appsv1.Deployment{})
		return err
	})
	c := dep.Spec.Template.Spec.Containers[0]
	if !slices.Contains(c.Args, "--jobs-dir") || !slices.Contains(c.Args, "embedded") || dep.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
		t.Fatalf("args %v strategy %v", c.Args, dep.Spec.Strategy.Type)
	}
	if !slices.ContainsFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool { return m.Name == "jobs" && m.MountPath == JobsPath }) ||
		!slices.ContainsFunc(dep.Spec.Template.Spec.Volumes, func(v corev1.Volume) bool {
			return v.Name == "jobs" && v.PersistentVolumeClaim != nil && v.PersistentVolumeClaim.ClaimName == "ocr-jobs"
		}) {
		t.Fatalf("the jobs volume: %+v %+v", c.VolumeMounts, dep.Spec.Template.Spec.Volumes)
	}
	got, _ := get(ctx, ns, "ocr", &v1alpha1.VisionService{})
	pvc, err := get(ctx, ns, "ocr-jobs", &corev1.PersistentVolumeClaim{})
	if err != nil || controlledBy(pvc, got) != nil || pvc.Spec.AccessModes[0] != corev1.ReadWriteOnce {
		t.Fatalf("the jobs claim: %v %+v", err, pvc)
	}
	eventually(t, timeout, "JobsConfigured", func() error {
		got, err := get(ctx, ns, "ocr", &v1alpha1.VisionService{})
		if err != nil {
			return err
		}
		if c := meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionJobsConfigured); c == nil || c.Status != "True" {
			return fmt.Errorf("JobsConfigured %+v", c)
		}
		return nil
	})

	// Autoscaling is refused too, and the running Deployment is left as
	// it is.
	update(t, ctx, ns, "ocr", func(vs *v1alpha1.VisionService) {
		vs.Spec.MaxReplicas = ptr.To[int32](4)
		vs.Spec.Autoscaling = &v1alpha1.AutoscalingSpec{QPSPerReplica: 10}
	})
	refused("refused with autoscaling")
	if dep, _ := get(ctx, ns, "ocr", &appsv1.Deployment{}); *dep.Spec.Replicas != 1 {
		t.Fatalf("the Deployment was changed to %d replicas", *dep.Spec.Replicas)
	}
}

// TestPostgresJobs: the shared store's DSN reaches the pods as a file
// from its Secret, never in the configuration; any number of replicas.
func TestPostgresJobs(t *testing.T) {
	ctx := env(t)
	ns := namespace(t, ctx)
	vs := newVS(ns, "ocr", func(vs *v1alpha1.VisionService) {
		vs.Spec.Replicas = ptr.To[int32](3)
		vs.Spec.Jobs = &v1alpha1.JobsSpec{Store: v1alpha1.JobsPostgres, Postgres: &v1alpha1.PostgresJobs{
			DSNSecret: corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "jobs-db"}, Key: "dsn"}}}
	})
	if err := k8s.Create(ctx, vs); err != nil {
		t.Fatal(err)
	}
	var dep *appsv1.Deployment
	eventually(t, timeout, "the Deployment", func() (err error) {
		dep, err = get(ctx, ns, "ocr", &appsv1.Deployment{})
		return err
	})
	c := dep.Spec.Template.Spec.Containers[0]
	i := slices.Index(c.Args, "--jobs-postgres-file")
	if i < 0 || c.Args[i+1] != JobsDSNFile || !slices.Contains(c.Args, "postgres") || *dep.Spec.Replicas != 3 ||
		dep.Spec.Strategy.Type != appsv1.RollingUpdateDeploymentStrategyType {
		t.Fatalf("args %v replicas %d strategy %v", c.Args, *dep.Spec.Replicas, dep.Spec.Strategy.Type)
	}
	if !slices.ContainsFunc(dep.Spec.Template.Spec.Volumes, func(v corev1.Volume) bool {
		return v.Secret != nil && v.Secret.SecretName == "jobs-db" && len(v.Secret.Items) == 1 && v.Secret.Items[0].Key == "dsn" && v.Secret.Items[0].Path == "dsn"
	}) {
		t.Fatalf("no volume from the Secret: %+v", dep.Spec.Template.Spec.Volumes)
	}
	if _, err := get(ctx, ns, "ocr-jobs", &corev1.PersistentVolumeClaim{}); !apierrors.IsNotFound(err) {
		t.Fatalf("a jobs claim for the shared store (err %v)", err)
	}
	// The schema wants the Secret.
	bad := newVS(ns, "bad", func(vs *v1alpha1.VisionService) { vs.Spec.Jobs = &v1alpha1.JobsSpec{Store: v1alpha1.JobsPostgres} })
	if err := k8s.Create(ctx, bad); err == nil || !strings.Contains(err.Error(), "postgres.dsnSecret") {
		t.Fatalf("store Postgres without a Secret: %v", err)
	}
}
