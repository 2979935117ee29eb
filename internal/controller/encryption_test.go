package controller

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "github.com/visionserve/visionserve/api/v1alpha1"
	"github.com/visionserve/visionserve/internal/keys"
)

// newKEK makes a key-encryption key as `visionserve keys new` prints it,
// and its fingerprint.
func newKEK(t *testing.T, alg keys.Algorithm) (text, id string) {
	t.Helper()
	text, err := keys.NewKEK(alg)
	if err != nil {
		t.Fatal(err)
	}
	kek, err := keys.ParseKEK(text, "test")
	if err != nil {
		t.Fatal(err)
	}
	return text + "\n", kek.ID()
}

// waitEncryption waits for phase and an EncryptionConfigured condition
// with status and reason, and returns the VisionService.
func waitEncryption(t *testing.T, ctx context.Context, ns, name string, phase v1alpha1.Phase, status metav1.ConditionStatus, reason string) *v1alpha1.VisionService {
	t.Helper()
	var got *v1alpha1.VisionService
	eventually(t, timeout, fmt.Sprintf("EncryptionConfigured %s %s", status, reason), func() (err error) {
		if got, err = get(ctx, ns, name, &v1alpha1.VisionService{}); err != nil {
			return err
		}
		c := meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionEncryptionConfigured)
		if c == nil || c.Status != status || c.Reason != reason || got.Status.Phase != phase {
			return fmt.Errorf("phase %s, conditions %+v", got.Status.Phase, got.Status.Conditions)
		}
		if status == metav1.ConditionFalse {
			if ready := meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionReady); ready == nil || ready.Reason != reason {
				return fmt.Errorf("Ready %+v", ready)
			}
		}
		return nil
	})
	return got
}

// TestEncryption (issue 16): spec.encryption mounts the key-encryption
// key's Secret read-only where --kek-file points, and nothing of the key
// but its fingerprint leaves the Secret. A Secret that is missing, lacks
// the key, or holds no KEK is refused with a reason (and the operator
// looks again, so creating it heals the VisionService); a new key, in a
// new Secret or in place, changes the pod template, which rolls the pods.
func TestEncryption(t *testing.T) {
	ctx := env(t)
	ns := namespace(t, ctx)
	vs := newVS(ns, "sealed", func(vs *v1alpha1.VisionService) {
		vs.Spec.Encryption = &v1alpha1.EncryptionSpec{Algorithm: v1alpha1.EncryptionSM4GCM,
			KEKSecret: corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "kek-1"}, Key: "kek"}}
	})
	if err := k8s.Create(ctx, vs); err != nil {
		t.Fatal(err)
	}

	// No Secret: refused, nothing created, a warning.
	got := waitEncryption(t, ctx, ns, "sealed", v1alpha1.PhaseFailed, metav1.ConditionFalse, ReasonKEKSecretNotFound)
	if c := meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionEncryptionConfigured); !strings.Contains(c.Message, "kek-1") {
		t.Errorf("message %q does not name the Secret", c.Message)
	}
	if _, err := get(ctx, ns, "sealed", &appsv1.Deployment{}); !apierrors.IsNotFound(err) {
		t.Fatalf("a Deployment without its KEK's Secret (err %v)", err)
	}
	warned(t, ctx, ns, "sealed", ReasonKEKSecretNotFound)

	// The Secret without the key, then with a value that is no KEK.
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "kek-1"}, Data: map[string][]byte{"other": []byte("x")}}
	if err := k8s.Create(ctx, secret); err != nil {
		t.Fatal(err)
	}
	waitEncryption(t, ctx, ns, "sealed", v1alpha1.PhaseFailed, metav1.ConditionFalse, ReasonKEKKeyNotFound)
	notAKey := "c2hvcnQ=" // base64 of 5 bytes
	secret.Data = map[string][]byte{"kek": []byte(notAKey)}
	if err := k8s.Update(ctx, secret); err != nil {
		t.Fatal(err)
	}
	got = waitEncryption(t, ctx, ns, "sealed", v1alpha1.PhaseFailed, metav1.ConditionFalse, ReasonKEKInvalid)
	if c := meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionEncryptionConfigured); strings.Contains(c.Message, notAKey) {
		t.Errorf("the condition shows the Secret's value: %q", c.Message)
	}

	// A KEK: the pods get it mounted, its fingerprint and the flags.
	kek1, id1 := newKEK(t, keys.AES256GCM)
	secret.Data = map[string][]byte{"kek": []byte(kek1)}
	if err := k8s.Update(ctx, secret); err != nil {
		t.Fatal(err)
	}
	got = waitEncryption(t, ctx, ns, "sealed", v1alpha1.PhaseProvisioning, metav1.ConditionTrue, "KEKFound")
	if c := meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionEncryptionConfigured); !strings.Contains(c.Message, id1) || !strings.Contains(c.Message, "sm4-gcm") {
		t.Errorf("message %q: want the fingerprint and the algorithm", c.Message)
	}
	dep := waitKEK(t, ctx, ns, "sealed", "kek-1", id1)
	pod := dep.Spec.Template.Spec
	c := pod.Containers[0]
	if i := slices.Index(c.Args, "--kek-file"); i < 0 || c.Args[i+1] != KEKPath || !slices.Contains(c.Args, "sm4-gcm") {
		t.Errorf("args %q", c.Args)
	}
	if !slices.ContainsFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool {
		return m.Name == "kek" && m.ReadOnly && m.MountPath+"/kek" == KEKPath
	}) {
		t.Errorf("mounts %+v", c.VolumeMounts)
	}
	for _, e := range c.Env {
		if e.Value == kek1 || e.Value == strings.TrimSpace(kek1) {
			t.Errorf("the KEK is in the environment: %s", e.Name)
		}
	}
	var cms corev1.ConfigMapList
	if err := k8s.List(ctx, &cms, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	for _, cm := range cms.Items {
		for k, v := range cm.Data {
			if strings.Contains(v, strings.TrimSpace(kek1)) {
				t.Errorf("ConfigMap %s holds the KEK in %s", cm.Name, k)
			}
		}
	}

	// Rotation, the documented way: a new Secret, and the spec names it.
	kek2, id2 := newKEK(t, keys.AES256GCM)
	if err := k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "kek-2"}, Data: map[string][]byte{"kek": []byte(kek2)}}); err != nil {
		t.Fatal(err)
	}
	update(t, ctx, ns, "sealed", func(vs *v1alpha1.VisionService) { vs.Spec.Encryption.KEKSecret.Name = "kek-2" })
	waitKEK(t, ctx, ns, "sealed", "kek-2", id2)

	// A new value in the same Secret: the operator does not watch Secrets,
	// and finds it when it looks again.
	kek3, id3 := newKEK(t, keys.SM4GCM)
	eventually(t, timeout, "replacing the KEK in place", func() error {
		s, err := get(ctx, ns, "kek-2", &corev1.Secret{})
		if err != nil {
			return err
		}
		s.Data["kek"] = []byte(kek3)
		return k8s.Update(ctx, s)
	})
	waitKEK(t, ctx, ns, "sealed", "kek-2", id3)

	// Encryption in both places is refused, for good: only a new spec fixes it.
	update(t, ctx, ns, "sealed", func(vs *v1alpha1.VisionService) {
		vs.Spec.Server.Config = "encryption: {kek_env: VISIONSERVE_KEK}\n"
	})
	waitEncryption(t, ctx, ns, "sealed", v1alpha1.PhaseFailed, metav1.ConditionFalse, ReasonEncryptionConfiguredTwice)
}

// waitKEK waits for the Deployment's pod template to mount secret and
// carry fingerprint id, and returns it.
func waitKEK(t *testing.T, ctx context.Context, ns, name, secret, id string) *appsv1.Deployment {
	t.Helper()
	var dep *appsv1.Deployment
	eventually(t, timeout, "the pod template with KEK "+id+" from "+secret, func() (err error) {
		if dep, err = get(ctx, ns, name, &appsv1.Deployment{}); err != nil {
			return err
		}
		tpl := dep.Spec.Template
		if got := tpl.Annotations[AnnotationKEK]; got != id {
			return fmt.Errorf("annotation %q", got)
		}
		if !slices.ContainsFunc(tpl.Spec.Volumes, func(v corev1.Volume) bool {
			return v.Name == "kek" && v.Secret != nil && v.Secret.SecretName == secret && len(v.Secret.Items) == 1 && v.Secret.Items[0].Path == "kek"
		}) {
			return fmt.Errorf("volumes %+v", tpl.Spec.Volumes)
		}
		return nil
	})
	return dep
}

// The schema refuses a spec.encryption without a Secret to take the key
// from, or with an optional one.
func TestEncryptionSchema(t *testing.T) {
	ctx := env(t)
	ns := namespace(t, ctx)
	for _, tc := range []struct {
		name string
		spec *v1alpha1.EncryptionSpec
		want string
	}{
		{"no name", &v1alpha1.EncryptionSpec{KEKSecret: corev1.SecretKeySelector{Key: "kek"}}, "kekSecret.name and kekSecret.key are required"},
		{"no key", &v1alpha1.EncryptionSpec{KEKSecret: corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "k"}}}, "kekSecret.name and kekSecret.key are required"},
		{"optional", &v1alpha1.EncryptionSpec{KEKSecret: corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "k"}, Key: "kek", Optional: ptr.To(true)}}, "cannot be optional"},
		{"unknown algorithm", &v1alpha1.EncryptionSpec{Algorithm: "des", KEKSecret: corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "k"}, Key: "kek"}}, "Unsupported value"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vs := newVS(ns, "bad", func(vs *v1alpha1.VisionService) { vs.Spec.Encryption = tc.spec })
			if err := k8s.Create(ctx, vs); !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("create: %v, want Invalid with %q", err, tc.want)
			}
		})
	}
}

// Without a CRD that checks it (an older one), a spec.encryption without
// a Secret's name or key is refused by the operator, for good.
func TestEncryptionWithoutReference(t *testing.T) {
	for _, ref := range []corev1.SecretKeySelector{{Key: "kek"}, {LocalObjectReference: corev1.LocalObjectReference{Name: "k"}}} {
		vs := newVS("ns", "x", func(vs *v1alpha1.VisionService) { vs.Spec.Encryption = &v1alpha1.EncryptionSpec{KEKSecret: ref} })
		_, err := (&Reconciler{}).checkEncryption(context.Background(), vs)
		var refusal *encryptionRefusal
		if !errors.As(err, &refusal) || refusal.reason != ReasonNoKEKReference || refusal.wait {
			t.Errorf("%+v: %v", ref, err)
		}
		if c := meta.FindStatusCondition(vs.Status.Conditions, v1alpha1.ConditionEncryptionConfigured); c == nil || c.Reason != ReasonNoKEKReference {
			t.Errorf("%+v: condition %+v", ref, c)
		}
	}
}
