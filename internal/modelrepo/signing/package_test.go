package signing

import (
	"context"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emmansun/gmsm/sm2"

	"github.com/visionserve/visionserve/internal/modelrepo"
	"github.com/visionserve/visionserve/internal/modelrepo/manifest"
)

func TestKeyRoundTrip(t *testing.T) {
	ctx := context.Background()
	keyDir := t.TempDir()
	privPath, pubPath, err := GenerateKey(keyDir, ECDSAP256SHA256)
	must(t, err)
	if !strings.Contains(filepath.Base(privPath), "private") || !strings.Contains(filepath.Base(pubPath), "public") {
		t.Errorf("key file names %s, %s", privPath, pubPath)
	}
	if st, err := os.Stat(privPath); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("private key mode = %v (%v), want 0600", st.Mode().Perm(), err)
	}
	if _, _, err := GenerateKey(keyDir, ECDSAP256SHA256); err == nil {
		t.Error("GenerateKey overwrote an existing key")
	}

	dir := newPackage(t, packageFiles)
	s, err := LoadSigner(privPath, "", "")
	must(t, err)
	if _, err := s.SignPackage(ctx, dir); err != nil {
		t.Fatalf("SignPackage: %v", err)
	}
	pub, err := LoadPublicKey(pubPath)
	must(t, err)
	v := mustVerifier(t, Trust{Keys: []*ecdsa.PublicKey{pub}})
	got, err := v.VerifyPackage(ctx, dir)
	if err != nil {
		t.Fatalf("VerifyPackage: %v", err)
	}
	if got.Manifest.Name != "face-embed" || got.Manifest.Version != 7 {
		t.Errorf("manifest %+v", got.Manifest)
	}
	if got.Signature.Method != MethodKey || got.Signature.KeyID != s.KeyID() || !got.Signature.NotAfter().IsZero() {
		t.Errorf("result %+v", got.Signature)
	}
	names := slices.Sorted(func(yield func(string) bool) {
		for n := range got.Signature.Digests {
			if !yield(n) {
				return
			}
		}
	})
	want := []string{"empty.bin", "labels/names.txt", "manifest.json", "mobilefacenet.onnx"}
	if !slices.Equal(names, want) {
		t.Errorf("signed files %v, want %v (manifest.json in, model.sig out)", names, want)
	}
}

// TestBundleFormat pins the bundle's shape for every algorithm; SM2
// differs only in the statement's hash (SM3, with an "sm3" root) and in
// the signature algorithm.
func TestBundleFormat(t *testing.T) {
	for _, alg := range testAlgs {
		t.Run(string(alg), func(t *testing.T) { testBundleFormat(t, alg) })
	}
}

func testBundleFormat(t *testing.T, alg Algorithm) {
	ctx := context.Background()
	dir := newPackage(t, packageFiles)
	key := newKeyOf(t, alg)
	s := mustSigner(t, key)
	_, err := s.SignPackage(ctx, dir)
	must(t, err)
	data, err := os.ReadFile(filepath.Join(dir, manifest.SignatureFileName))
	must(t, err)

	// The shape OMS verifiers (model_signing) expect, field by field.
	var b struct {
		MediaType            string `json:"mediaType"`
		VerificationMaterial struct {
			PublicKey struct {
				Hint string `json:"hint"`
			} `json:"publicKey"`
		} `json:"verificationMaterial"`
		DsseEnvelope struct {
			Payload     string `json:"payload"`
			PayloadType string `json:"payloadType"`
			Signatures  []struct {
				Sig string `json:"sig"`
			} `json:"signatures"`
		} `json:"dsseEnvelope"`
	}
	must(t, json.Unmarshal(data, &b))
	if b.MediaType != BundleMediaType || b.VerificationMaterial.PublicKey.Hint != s.KeyID() ||
		b.DsseEnvelope.PayloadType != PayloadType || len(b.DsseEnvelope.Signatures) != 1 {
		t.Fatalf("bundle fields: %+v", b)
	}
	sig, err := base64.StdEncoding.DecodeString(b.DsseEnvelope.Signatures[0].Sig)
	if err != nil || !isDERSignature(sig) {
		t.Errorf("signature is not base64 DER: %v", err)
	}
	payload, err := base64.StdEncoding.DecodeString(b.DsseEnvelope.Payload)
	must(t, err)
	if alg == SM2SM3 && !sm2.VerifyASN1WithSM2(pubOf(key), []byte("1234567812345678"), pae(PayloadType, payload), sig) {
		t.Error("the envelope's signature is not an SM2 signature of the PAE with the default user id")
	}
	var st struct {
		Type          string `json:"_type"`
		PredicateType string `json:"predicateType"`
		Subject       []struct {
			Name   string            `json:"name"`
			Digest map[string]string `json:"digest"`
		} `json:"subject"`
		Predicate struct {
			Serialization map[string]any `json:"serialization"`
			Resources     []Resource     `json:"resources"`
		} `json:"predicate"`
	}
	must(t, json.Unmarshal(payload, &st))
	if st.Type != StatementType || st.PredicateType != PredicateType || len(st.Subject) != 1 || st.Subject[0].Name != filepath.Base(dir) {
		t.Errorf("statement header: %+v", st)
	}
	ser := st.Predicate.Serialization
	hash := alg.statementHash()
	if ser["method"] != "files" || ser["hash_type"] != hash || ser["allow_symlinks"] != false {
		t.Errorf("serialization: %v", ser)
	}
	if root := st.Subject[0].Digest; len(root) != 1 || len(root[rootHashOf(hash)]) != 64 {
		t.Errorf("subject digest %v, want only a %s root", root, rootHashOf(hash))
	}
	var ignored []string
	for _, p := range ser["ignore_paths"].([]any) {
		ignored = append(ignored, p.(string))
	}
	for _, p := range []string{".git", ".gitattributes", ".github", ".gitignore", "model.sig"} {
		if !slices.Contains(ignored, p) {
			t.Errorf("ignore_paths %v lacks %s", ignored, p)
		}
	}
	for _, r := range st.Predicate.Resources {
		if r.Algorithm != hash || len(r.Digest) != 64 {
			t.Errorf("resource %+v", r)
		}
	}
	again, err := s.Sign(ctx, dir, SignOptions{SignaturePath: filepath.Join(dir, manifest.SignatureFileName)})
	must(t, err)
	if !json.Valid(again) || strings.ContainsAny(string(again), "\n\t") {
		t.Error("bundle is not compact JSON")
	}
}

// TestPackageRejections is the "must show" list: each tampering, and each
// trust failure, is rejected with its own reason, for every algorithm.
func TestPackageRejections(t *testing.T) {
	for _, alg := range testAlgs {
		t.Run(string(alg), func(t *testing.T) { testPackageRejections(t, alg) })
	}
}

func testPackageRejections(t *testing.T, alg Algorithm) {
	ctx := context.Background()
	key := newKeyOf(t, alg)
	signer := mustSigner(t, key)
	trusted := mustVerifier(t, Trust{Keys: []*ecdsa.PublicKey{pubOf(key)}})

	signed := func(t *testing.T) string {
		dir := newPackage(t, packageFiles)
		_, err := signer.SignPackage(ctx, dir)
		must(t, err)
		return dir
	}

	// Flip one byte of every non-empty file, manifest.json included.
	for _, rel := range []string{"mobilefacenet.onnx", "labels/names.txt", manifest.FileName} {
		t.Run("flip byte of "+rel, func(t *testing.T) {
			dir := signed(t)
			p := filepath.Join(dir, filepath.FromSlash(rel))
			data, err := os.ReadFile(p)
			must(t, err)
			data[len(data)/2] ^= 0x20
			must(t, os.WriteFile(p, data, 0o644))
			_, err = trusted.VerifyPackage(ctx, dir)
			wantReason(t, err, modelrepo.ReasonDigestMismatch)
			var re *modelrepo.Error
			if !errors.As(err, &re) || re.Path != rel || !strings.HasPrefix(re.Expected, alg.statementHash()+":") || !strings.HasPrefix(re.Actual, alg.statementHash()+":") || re.Expected == re.Actual {
				t.Errorf("mismatch error lacks path or digests: %+v", re)
			}
		})
	}

	other := newKeyOf(t, alg)
	otherCA := newRootCAOf(t, alg, "another CA")
	cases := []struct {
		name   string
		mutate func(t *testing.T, dir string)
		v      *Verifier
		want   modelrepo.Reason
	}{
		{"remove a file", func(t *testing.T, dir string) {
			must(t, os.Remove(filepath.Join(dir, "labels", "names.txt")))
		}, trusted, modelrepo.ReasonMissingFile},
		{"remove the empty file", func(t *testing.T, dir string) {
			must(t, os.Remove(filepath.Join(dir, "empty.bin")))
		}, trusted, modelrepo.ReasonMissingFile},
		{"remove manifest.json", func(t *testing.T, dir string) {
			must(t, os.Remove(filepath.Join(dir, manifest.FileName)))
		}, trusted, modelrepo.ReasonMissingFile},
		{"add an unlisted file", func(t *testing.T, dir string) {
			must(t, os.WriteFile(filepath.Join(dir, "labels", "extra.txt"), []byte("eve"), 0o644))
		}, trusted, modelrepo.ReasonUnlistedFile},
		{"add a hidden file", func(t *testing.T, dir string) {
			must(t, os.WriteFile(filepath.Join(dir, ".cache"), nil, 0o644))
		}, trusted, modelrepo.ReasonUnlistedFile},
		{"add a symlink", func(t *testing.T, dir string) {
			must(t, os.Symlink("mobilefacenet.onnx", filepath.Join(dir, "alias.onnx")))
		}, trusted, modelrepo.ReasonUnlistedFile},
		{"remove model.sig", func(t *testing.T, dir string) {
			must(t, os.Remove(filepath.Join(dir, manifest.SignatureFileName)))
		}, trusted, modelrepo.ReasonUnsigned},
		{"truncate model.sig", func(t *testing.T, dir string) {
			p := filepath.Join(dir, manifest.SignatureFileName)
			data, err := os.ReadFile(p)
			must(t, err)
			must(t, os.WriteFile(p, data[:len(data)/2], 0o644))
		}, trusted, modelrepo.ReasonSignatureInvalid},
		{"flip a signature bit", func(t *testing.T, dir string) {
			editBundle(t, dir, func(b map[string]any) {
				env := b["dsseEnvelope"].(map[string]any)
				sig := env["signatures"].([]any)[0].(map[string]any)
				raw, _ := base64.StdEncoding.DecodeString(sig["sig"].(string))
				raw[len(raw)-1] ^= 1
				sig["sig"] = base64.StdEncoding.EncodeToString(raw)
			})
		}, trusted, modelrepo.ReasonBadSignature},
		{"rewrite the payload", func(t *testing.T, dir string) {
			editBundle(t, dir, func(b map[string]any) {
				env := b["dsseEnvelope"].(map[string]any)
				raw, _ := base64.StdEncoding.DecodeString(env["payload"].(string))
				edited := strings.Replace(string(raw), `"allow_symlinks": false`, `"allow_symlinks": true`, 1)
				if edited == string(raw) {
					t.Fatal("test bug: payload not edited")
				}
				raw = []byte(edited)
				env["payload"] = base64.StdEncoding.EncodeToString(raw)
			})
		}, trusted, modelrepo.ReasonBadSignature},
		{"signed with an untrusted key", func(t *testing.T, dir string) {
			_, err := mustSigner(t, other).SignPackage(ctx, dir)
			must(t, err)
		}, trusted, modelrepo.ReasonUntrustedKey},
		{"key signature, only a CA trusted", nil,
			mustVerifier(t, Trust{Roots: []*x509.Certificate{otherCA.cert}}), modelrepo.ReasonUntrustedKey},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := signed(t)
			if tc.mutate != nil {
				tc.mutate(t, dir)
			}
			_, err := tc.v.VerifyPackage(ctx, dir)
			wantReason(t, err, tc.want)
		})
	}
}

// editBundle rewrites dir/model.sig through a JSON map.
func editBundle(t *testing.T, dir string, edit func(map[string]any)) {
	t.Helper()
	p := filepath.Join(dir, manifest.SignatureFileName)
	data, err := os.ReadFile(p)
	must(t, err)
	var b map[string]any
	must(t, json.Unmarshal(data, &b))
	edit(b)
	out, err := json.Marshal(b)
	must(t, err)
	must(t, os.WriteFile(p, out, 0o644))
}

// TestCertificateMethod runs the certificate chain's cases for every
// algorithm: ECDSA chains, and SM2 chains whose CAs sign with SM2-with-SM3.
func TestCertificateMethod(t *testing.T) {
	for _, alg := range testAlgs {
		t.Run(string(alg), func(t *testing.T) { testCertificateMethod(t, alg) })
	}
}

func testCertificateMethod(t *testing.T, alg Algorithm) {
	ctx := context.Background()
	root := newRootCAOf(t, alg, "visionserve test root")
	inter := root.newIntermediate(t, "visionserve test signing CA")
	key := newKeyOf(t, alg)
	leaf := inter.newLeaf(t, key, leafOpts{})
	trustRoot := Trust{Roots: []*x509.Certificate{root.cert}}

	t.Run("valid chain", func(t *testing.T) {
		dir := newPackage(t, packageFiles)
		// The root in the chain is dropped by NewSigner.
		s := mustSigner(t, key, leaf, inter.cert, root.cert)
		if s.Method() != MethodCertificate || len(s.chain) != 2 {
			t.Fatalf("signer method %s, chain %d", s.Method(), len(s.chain))
		}
		_, err := s.SignPackage(ctx, dir)
		must(t, err)
		got, err := mustVerifier(t, trustRoot).VerifyPackage(ctx, dir)
		if err != nil {
			t.Fatalf("VerifyPackage: %v", err)
		}
		r := got.Signature
		if r.Method != MethodCertificate || len(r.Chain) != 3 || !r.Chain[0].Equal(leaf) || !r.Chain[2].Equal(root.cert) {
			t.Errorf("result %+v", r)
		}
		if !r.NotAfter().Equal(leaf.NotAfter) {
			t.Errorf("NotAfter %v, want the leaf's %v", r.NotAfter(), leaf.NotAfter)
		}
		if r.Algorithm != alg {
			t.Errorf("algorithm %s, want %s", r.Algorithm, alg)
		}
		// The same package checked against trust that lacks the CA.
		_, err = mustVerifier(t, Trust{Keys: []*ecdsa.PublicKey{pubOf(key)}}).VerifyPackage(ctx, dir)
		wantReason(t, err, modelrepo.ReasonCertInvalid)
		_, err = mustVerifier(t, Trust{Roots: []*x509.Certificate{newRootCAOf(t, alg, "visionserve test root").cert}}).VerifyPackage(ctx, dir)
		wantReason(t, err, modelrepo.ReasonCertInvalid)
	})

	t.Run("leaf issued directly by the root", func(t *testing.T) {
		dir := newPackage(t, packageFiles)
		_, err := mustSigner(t, key, root.newLeaf(t, key, leafOpts{})).SignPackage(ctx, dir)
		must(t, err)
		if _, err := mustVerifier(t, trustRoot).VerifyPackage(ctx, dir); err != nil {
			t.Fatal(err)
		}
	})

	failures := []struct {
		name  string
		chain func(t *testing.T) []*x509.Certificate
		now   time.Time
		want  modelrepo.Reason
	}{
		{"expired leaf", func(t *testing.T) []*x509.Certificate {
			return []*x509.Certificate{inter.newLeaf(t, key, leafOpts{notBefore: testNow.Add(-48 * time.Hour), notAfter: testNow.Add(-time.Hour)}), inter.cert}
		}, testNow, modelrepo.ReasonCertExpired},
		{"valid leaf checked after it expired", func(t *testing.T) []*x509.Certificate {
			return []*x509.Certificate{leaf, inter.cert}
		}, leaf.NotAfter.Add(time.Second), modelrepo.ReasonCertExpired},
		{"intermediate expired", func(t *testing.T) []*x509.Certificate {
			return []*x509.Certificate{leaf, inter.cert}
		}, inter.cert.NotAfter.Add(time.Minute), modelrepo.ReasonCertExpired},
		{"leaf not yet valid", func(t *testing.T) []*x509.Certificate {
			return []*x509.Certificate{leaf, inter.cert}
		}, leaf.NotBefore.Add(-time.Minute), modelrepo.ReasonCertInvalid},
		{"leaf from a CA that is not trusted", func(t *testing.T) []*x509.Certificate {
			stranger := newRootCAOf(t, alg, "visionserve test root") // same name, other key
			return []*x509.Certificate{stranger.newLeaf(t, key, leafOpts{})}
		}, testNow, modelrepo.ReasonCertInvalid},
		{"intermediate missing from the bundle", func(t *testing.T) []*x509.Certificate {
			return []*x509.Certificate{leaf}
		}, testNow, modelrepo.ReasonCertInvalid},
		{"leaf for server auth only", func(t *testing.T) []*x509.Certificate {
			return []*x509.Certificate{inter.newLeaf(t, key, leafOpts{extKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}), inter.cert}
		}, testNow, modelrepo.ReasonCertInvalid},
		{"leaf without digitalSignature", func(t *testing.T) []*x509.Certificate {
			return []*x509.Certificate{inter.newLeaf(t, key, leafOpts{keyUsage: x509.KeyUsageKeyEncipherment}), inter.cert}
		}, testNow, modelrepo.ReasonCertInvalid},
	}
	for _, tc := range failures {
		t.Run(tc.name, func(t *testing.T) {
			dir := newPackage(t, packageFiles)
			// Build the Signer directly: NewSigner rightly refuses some of
			// these certificates, and the verifier must refuse them too.
			id, _ := KeyID(pubOf(key))
			s := &Signer{key: key, pub: pubOf(key), alg: alg, keyID: id, chain: tc.chain(t)}
			data, err := s.Sign(ctx, dir, SignOptions{SignaturePath: filepath.Join(dir, manifest.SignatureFileName)})
			must(t, err)
			must(t, os.WriteFile(filepath.Join(dir, manifest.SignatureFileName), data, 0o644))
			now := tc.now
			_, err = mustVerifier(t, Trust{Roots: []*x509.Certificate{root.cert}, Now: func() time.Time { return now }}).VerifyPackage(ctx, dir)
			wantReason(t, err, tc.want)
		})
	}

	t.Run("signer refuses a certificate for another key", func(t *testing.T) {
		if _, err := NewSigner(newKeyOf(t, alg), []*x509.Certificate{leaf}); err == nil {
			t.Error("NewSigner accepted a certificate that does not certify the key")
		}
		if _, err := NewSigner(key, []*x509.Certificate{inter.newLeaf(t, key, leafOpts{keyUsage: x509.KeyUsageKeyEncipherment})}); err == nil {
			t.Error("NewSigner accepted a certificate without digitalSignature")
		}
	})
}

func TestVerifierKeySelection(t *testing.T) {
	ctx := context.Background()
	k1, k2 := newKey(t), newKey(t)
	dir := newPackage(t, packageFiles)
	_, err := mustSigner(t, k2).SignPackage(ctx, dir)
	must(t, err)
	v := mustVerifier(t, Trust{Keys: []*ecdsa.PublicKey{&k1.PublicKey, &k2.PublicKey}})
	got, err := v.VerifyPackage(ctx, dir)
	must(t, err)
	if id, _ := KeyID(&k2.PublicKey); got.Signature.KeyID != id {
		t.Errorf("verified by %s, want the second key %s", got.Signature.KeyID, id)
	}
	// Without a hint every trusted key is tried.
	editBundle(t, dir, func(b map[string]any) {
		b["verificationMaterial"].(map[string]any)["publicKey"] = map[string]any{}
	})
	if _, err := v.VerifyPackage(ctx, dir); err != nil {
		t.Fatalf("hint-less bundle: %v", err)
	}
	_, err = mustVerifier(t, Trust{Keys: []*ecdsa.PublicKey{&k1.PublicKey}}).VerifyPackage(ctx, dir)
	wantReason(t, err, modelrepo.ReasonBadSignature)

	_, err = v.VerifyPackage(ctx, filepath.Join(t.TempDir(), "absent"))
	wantReason(t, err, modelrepo.ReasonMissingFile)
	if _, err := NewVerifier(Trust{}); err == nil {
		t.Error("NewVerifier accepted empty trust")
	}
}

func TestPackageManifestRules(t *testing.T) {
	ctx := context.Background()
	key := newKey(t)
	s := mustSigner(t, key)
	v := mustVerifier(t, Trust{Keys: []*ecdsa.PublicKey{&key.PublicKey}})
	sigPath := func(dir string) string { return filepath.Join(dir, manifest.SignatureFileName) }

	t.Run("stale manifest is not signed", func(t *testing.T) {
		dir := newPackage(t, packageFiles)
		must(t, os.WriteFile(filepath.Join(dir, "mobilefacenet.onnx"), []byte("retrained weights"), 0o644))
		_, err := s.SignPackage(ctx, dir)
		wantReason(t, err, modelrepo.ReasonDigestMismatch)
		if _, err := os.Stat(sigPath(dir)); !errors.Is(err, os.ErrNotExist) {
			t.Error("a refused SignPackage wrote model.sig")
		}
	})
	t.Run("signature over files the manifest disagrees with", func(t *testing.T) {
		dir := newPackage(t, packageFiles)
		must(t, os.WriteFile(filepath.Join(dir, "labels", "names.txt"), []byte("mallory\n"), 0o644))
		data, err := s.Sign(ctx, dir, SignOptions{SignaturePath: sigPath(dir)})
		must(t, err)
		must(t, os.WriteFile(sigPath(dir), data, 0o644))
		_, err = v.VerifyPackage(ctx, dir)
		wantReason(t, err, modelrepo.ReasonDigestMismatch)
	})
	t.Run("manifest.json left unsigned", func(t *testing.T) {
		dir := newPackage(t, packageFiles)
		data, err := s.Sign(ctx, dir, SignOptions{SignaturePath: sigPath(dir), IgnorePaths: []string{manifest.FileName}})
		must(t, err)
		must(t, os.WriteFile(sigPath(dir), data, 0o644))
		_, err = v.VerifyPackage(ctx, dir)
		wantReason(t, err, modelrepo.ReasonManifestInvalid)
	})
	t.Run("no manifest at all", func(t *testing.T) {
		dir := t.TempDir()
		must(t, os.WriteFile(filepath.Join(dir, "w.onnx"), []byte("w"), 0o644))
		data, err := s.Sign(ctx, dir, SignOptions{SignaturePath: sigPath(dir)})
		must(t, err)
		must(t, os.WriteFile(sigPath(dir), data, 0o644))
		_, err = v.VerifyPackage(ctx, dir)
		wantReason(t, err, modelrepo.ReasonManifestInvalid)
	})
	t.Run("symlink inside the package", func(t *testing.T) {
		dir := t.TempDir()
		must(t, os.MkdirAll(filepath.Join(dir, "blobs"), 0o755))
		must(t, os.WriteFile(filepath.Join(dir, "blobs", "sha-1"), []byte("weights"), 0o644))
		must(t, os.Symlink(filepath.Join("blobs", "sha-1"), filepath.Join(dir, "model.onnx")))
		_, err := manifest.Pack(ctx, dir, "linked", 1, manifest.KindONNX, nil)
		must(t, err)
		_, err = s.SignPackage(ctx, dir)
		must(t, err)
		got, err := v.VerifyPackage(ctx, dir)
		must(t, err)
		if !got.Signature.Statement.AllowSymlinks {
			t.Error("allow_symlinks not recorded")
		}
		// Re-pointing the link outside the package is refused.
		outside := filepath.Join(t.TempDir(), "w")
		must(t, os.WriteFile(outside, []byte("weights"), 0o644))
		must(t, os.Remove(filepath.Join(dir, "model.onnx")))
		must(t, os.Symlink(outside, filepath.Join(dir, "model.onnx")))
		_, err = v.VerifyPackage(ctx, dir)
		wantReason(t, err, modelrepo.ReasonUnlistedFile)
	})
}

func TestSignVerifyModelShapes(t *testing.T) {
	ctx := context.Background()
	key := newKey(t)
	s := mustSigner(t, key)
	v := mustVerifier(t, Trust{Keys: []*ecdsa.PublicKey{&key.PublicKey}})

	t.Run("single file", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "model.onnx")
		must(t, os.WriteFile(p, []byte("single file model"), 0o644))
		data, err := s.Sign(ctx, p, SignOptions{})
		must(t, err)
		res, err := v.Verify(ctx, p, data, VerifyOptions{})
		must(t, err)
		if len(res.Statement.Resources) != 1 || res.Statement.Resources[0].Name != "." {
			t.Errorf("resources %+v", res.Statement.Resources)
		}
		must(t, os.WriteFile(p, []byte("single file modeL"), 0o644))
		_, err = v.Verify(ctx, p, data, VerifyOptions{})
		wantReason(t, err, modelrepo.ReasonDigestMismatch)
	})

	t.Run("shards", func(t *testing.T) {
		dir := t.TempDir()
		must(t, os.WriteFile(filepath.Join(dir, "big.bin"), []byte(strings.Repeat("0123456789", 5)), 0o644))
		must(t, os.WriteFile(filepath.Join(dir, "empty"), nil, 0o644))
		data, err := s.Sign(ctx, dir, SignOptions{ShardSize: 16})
		must(t, err)
		res, err := v.Verify(ctx, dir, data, VerifyOptions{})
		must(t, err)
		var names []string
		for _, r := range res.Statement.Resources {
			names = append(names, r.Name)
		}
		if want := []string{"big.bin:0:16", "big.bin:16:32", "big.bin:32:48", "big.bin:48:50"}; !slices.Equal(names, want) {
			t.Errorf("shards %v, want %v", names, want)
		}
		f, err := os.OpenFile(filepath.Join(dir, "big.bin"), os.O_WRONLY, 0)
		must(t, err)
		_, err = f.WriteAt([]byte("X"), 40)
		must(t, err)
		must(t, f.Close())
		_, err = v.Verify(ctx, dir, data, VerifyOptions{})
		wantReason(t, err, modelrepo.ReasonDigestMismatch)
		must(t, os.WriteFile(filepath.Join(dir, "big.bin"), []byte(strings.Repeat("0123456789", 6)), 0o644))
		_, err = v.Verify(ctx, dir, data, VerifyOptions{})
		wantReason(t, err, modelrepo.ReasonDigestMismatch)
	})

	t.Run("ignore unsigned files", func(t *testing.T) {
		dir := t.TempDir()
		must(t, os.WriteFile(filepath.Join(dir, "a"), []byte("a"), 0o644))
		data, err := s.Sign(ctx, dir, SignOptions{})
		must(t, err)
		must(t, os.WriteFile(filepath.Join(dir, "b"), []byte("b"), 0o644))
		_, err = v.Verify(ctx, dir, data, VerifyOptions{})
		wantReason(t, err, modelrepo.ReasonUnlistedFile)
		if _, err := v.Verify(ctx, dir, data, VerifyOptions{IgnoreUnsignedFiles: true}); err != nil {
			t.Errorf("IgnoreUnsignedFiles: %v", err)
		}
	})

	t.Run("canceled", func(t *testing.T) {
		dir := newPackage(t, packageFiles)
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := s.SignPackage(cctx, dir); !errors.Is(err, context.Canceled) {
			t.Errorf("SignPackage with a canceled context: %v", err)
		}
	})
}

func TestPythonBytesRepr(t *testing.T) {
	cases := map[string]string{
		"":                    `b''`,
		"abc":                 `b'abc'`,
		"it's":                `b"it's"`,
		`it's "x"`:            `b'it\'s "x"'`,
		"a\\b":                `b'a\\b'`,
		"\t\n\r\x00\x7f\xff~": `b'\t\n\r\x00\x7f\xff~'`,
	}
	for in, want := range cases {
		if got := pythonBytesRepr([]byte(in)); got != want {
			t.Errorf("repr(%q) = %s, want %s", in, got, want)
		}
	}
}
