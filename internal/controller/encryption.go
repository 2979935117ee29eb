package controller

import (
	"context"
	"fmt"
	"path/filepath"

	"gopkg.in/yaml.v3"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"

	v1alpha1 "github.com/visionserve/visionserve/api/v1alpha1"
	"github.com/visionserve/visionserve/internal/keys"
)

const (
	// KEKPath is where the pods find the key-encryption key of
	// spec.encryption (--kek-file), mounted read-only from its Secret.
	KEKPath = "/var/run/visionserve/kek/kek"
	// AnnotationKEK rolls the pods when the key-encryption key changes:
	// the fingerprint of the key in the Secret (what the server logs at
	// start, 64 bits of a hash), never the key.
	AnnotationKEK = "visionserve.io/kek-fingerprint"
)

// Reasons of a False EncryptionConfigured condition.
const (
	// ReasonNoKEKReference: spec.encryption names no Secret (the schema
	// refuses it too; an older CRD may not).
	ReasonNoKEKReference = "NoKEKReference"
	// ReasonEncryptionConfiguredTwice: spec.encryption and an encryption
	// section in spec.server.config.
	ReasonEncryptionConfiguredTwice = "EncryptionConfiguredTwice"
	// ReasonKEKSecretNotFound: the Secret does not exist (yet).
	ReasonKEKSecretNotFound = "KEKSecretNotFound"
	// ReasonKEKKeyNotFound: the Secret has no such key.
	ReasonKEKKeyNotFound = "KEKKeyNotFound"
	// ReasonKEKInvalid: the key's value is not a KEK (base64 of 16 or 32
	// bytes, as visionserve keys new prints it).
	ReasonKEKInvalid = "KEKInvalid"
)

// encryptionRefusal is a spec.encryption the pods cannot be given: the
// reason of the condition, and whether waiting may fix it (a Secret
// created or changed later) or only a new spec will.
type encryptionRefusal struct {
	reason string
	wait   bool
	err    error
}

func (e *encryptionRefusal) Error() string { return e.err.Error() }
func (e *encryptionRefusal) Unwrap() error { return e.err }

// checkEncryption reads the Secret spec.encryption names and returns its
// KEK's fingerprint ("" without spec.encryption), setting the
// EncryptionConfigured condition. A spec it cannot serve is an
// *encryptionRefusal; other errors are the API's, to retry.
func (r *Reconciler) checkEncryption(ctx context.Context, vs *v1alpha1.VisionService) (string, error) {
	e := vs.Spec.Encryption
	if e == nil {
		meta.RemoveStatusCondition(&vs.Status.Conditions, v1alpha1.ConditionEncryptionConfigured)
		return "", nil
	}
	refuse := func(reason string, wait bool, format string, args ...any) (string, error) {
		err := fmt.Errorf(format, args...)
		setCondition(vs, v1alpha1.ConditionEncryptionConfigured, metav1.ConditionFalse, reason, err.Error())
		return "", &encryptionRefusal{reason: reason, wait: wait, err: err}
	}
	ref := e.KEKSecret
	if ref.Name == "" || ref.Key == "" {
		return refuse(ReasonNoKEKReference, false, "spec.encryption.kekSecret must name a Secret and its key holding the key-encryption key (visionserve keys new); it is never given inline")
	}
	if configHasEncryption(vs.Spec.Server.Config) {
		return refuse(ReasonEncryptionConfiguredTwice, false, "spec.server.config has an encryption section and spec.encryption is set: keep one (spec.encryption mounts the key from its Secret)")
	}
	var s corev1.Secret
	err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: vs.Namespace, Name: ref.Name}, &s)
	switch {
	case apierrors.IsNotFound(err):
		return refuse(ReasonKEKSecretNotFound, true, "Secret %s/%s (spec.encryption.kekSecret) does not exist; the pods cannot open sealed stores without it", vs.Namespace, ref.Name)
	case err != nil:
		return "", fmt.Errorf("reading the key-encryption key's Secret: %w", err)
	}
	data, ok := s.Data[ref.Key]
	if !ok {
		return refuse(ReasonKEKKeyNotFound, true, "Secret %s/%s has no key %q (spec.encryption.kekSecret.key)", vs.Namespace, ref.Name, ref.Key)
	}
	source := fmt.Sprintf("Secret %s/%s key %s", vs.Namespace, ref.Name, ref.Key)
	kek, err := keys.ParseKEK(string(data), source)
	if err != nil {
		// ParseKEK's message names the source and a length, never a byte of the key.
		return refuse(ReasonKEKInvalid, true, "%v", err)
	}
	alg := e.Algorithm
	if alg == "" {
		alg = v1alpha1.EncryptionAES256GCM
	}
	setCondition(vs, v1alpha1.ConditionEncryptionConfigured, metav1.ConditionTrue, "KEKFound",
		fmt.Sprintf("records are sealed under %s data keys, wrapped by key-encryption key %s (%s) from %s, mounted read-only at %s", alg, kek.ID(), kek.Algorithm(), source, KEKPath))
	return kek.ID(), nil
}

// configHasEncryption reports whether the server's configuration has an
// encryption section (validate refuses a config that is not YAML).
func configHasEncryption(config string) bool {
	var m map[string]any
	if yaml.Unmarshal([]byte(config), &m) != nil {
		return false
	}
	_, ok := m["encryption"]
	return ok
}

// encryptionArgs are serve's flags for spec.encryption.
func encryptionArgs(vs *v1alpha1.VisionService) []string {
	e := vs.Spec.Encryption
	if e == nil {
		return nil
	}
	args := []string{"--kek-file", KEKPath}
	if e.Algorithm != "" {
		args = append(args, "--encryption-algorithm", string(e.Algorithm))
	}
	return args
}

// kekVolume mounts the key-encryption key's Secret, only its key, read-only.
func kekVolume(vs *v1alpha1.VisionService, pod *corev1ac.PodSpecApplyConfiguration, c *corev1ac.ContainerApplyConfiguration) {
	e := vs.Spec.Encryption
	if e == nil {
		return
	}
	pod.WithVolumes(corev1ac.Volume().WithName("kek").WithSecret(corev1ac.SecretVolumeSource().
		WithSecretName(e.KEKSecret.Name).
		WithItems(corev1ac.KeyToPath().WithKey(e.KEKSecret.Key).WithPath(filepath.Base(KEKPath))).
		WithDefaultMode(0o440)))
	c.WithVolumeMounts(corev1ac.VolumeMount().WithName("kek").WithMountPath(filepath.Dir(KEKPath)).WithReadOnly(true))
}
