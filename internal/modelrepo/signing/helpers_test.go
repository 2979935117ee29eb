package signing

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/emmansun/gmsm/smx509"

	"github.com/visionserve/visionserve/internal/modelrepo"
	"github.com/visionserve/visionserve/internal/modelrepo/manifest"
)

// testNow is the fixed verification time of tests that use certificates;
// the test CA is valid for a year around it.
var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func fixedNow() time.Time { return testNow }

// testAlgs are the algorithms every tamper and trust table runs with.
var testAlgs = []Algorithm{ECDSAP256SHA256, SM2SM3}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// newKeyOf makes a private key of algorithm alg.
func newKeyOf(t testing.TB, alg Algorithm) crypto.Signer {
	t.Helper()
	k, err := newPrivateKey(alg)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// pubOf is the public half of key.
func pubOf(key crypto.Signer) *ecdsa.PublicKey { return key.Public().(*ecdsa.PublicKey) }

// testCA is a certificate authority made for one test.
type testCA struct {
	cert *x509.Certificate
	key  crypto.Signer
}

// issue signs tmpl with parent's key (smx509, so that SM2 CAs sign with
// SM2-with-SM3), or self-signs it when parent's certificate is tmpl.
func issue(t testing.TB, tmpl *x509.Certificate, pub *ecdsa.PublicKey, parent *testCA) *x509.Certificate {
	t.Helper()
	sn, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		t.Fatal(err)
	}
	tmpl.SerialNumber = sn
	signerCert, signerKey := tmpl, any(nil)
	if parent != nil {
		signerCert, signerKey = parent.cert, parent.key
	}
	if signerKey == nil {
		t.Fatal("test bug: a self-signed certificate needs its own key as parent")
	}
	der, err := smx509.CreateCertificate(rand.Reader, tmpl, signerCert, pub, signerKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := smx509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c.ToX509()
}

// newRootCAOf makes a self-signed CA of algorithm alg valid around testNow.
func newRootCAOf(t testing.TB, alg Algorithm, name string) *testCA {
	t.Helper()
	key := newKeyOf(t, alg)
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             testNow.Add(-180 * 24 * time.Hour),
		NotAfter:              testNow.Add(180 * 24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	self := &testCA{cert: tmpl, key: key}
	return &testCA{cert: issue(t, tmpl, pubOf(key), self), key: key}
}

// newIntermediate makes a CA issued by ca, with a key of ca's algorithm.
func (ca *testCA) newIntermediate(t testing.TB, name string) *testCA {
	t.Helper()
	alg, err := AlgorithmOf(ca.key.Public())
	must(t, err)
	key := newKeyOf(t, alg)
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             testNow.Add(-90 * 24 * time.Hour),
		NotAfter:              testNow.Add(90 * 24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	return &testCA{cert: issue(t, tmpl, pubOf(key), ca), key: key}
}

// leafOpts tune a signing certificate.
type leafOpts struct {
	notBefore, notAfter time.Time
	keyUsage            x509.KeyUsage
	extKeyUsage         []x509.ExtKeyUsage
}

// newLeaf issues a code-signing certificate for key, valid around testNow
// unless opts say otherwise.
func (ca *testCA) newLeaf(t testing.TB, key crypto.Signer, opts leafOpts) *x509.Certificate {
	t.Helper()
	if opts.notBefore.IsZero() {
		opts.notBefore = testNow.Add(-24 * time.Hour)
	}
	if opts.notAfter.IsZero() {
		opts.notAfter = testNow.Add(30 * 24 * time.Hour)
	}
	if opts.keyUsage == 0 {
		opts.keyUsage = x509.KeyUsageDigitalSignature
	}
	if opts.extKeyUsage == nil {
		opts.extKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning}
	}
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: "model publisher", Organization: []string{"visionserve tests"}},
		NotBefore:   opts.notBefore,
		NotAfter:    opts.notAfter,
		KeyUsage:    opts.keyUsage,
		ExtKeyUsage: opts.extKeyUsage,
	}
	return issue(t, tmpl, pubOf(key), ca)
}

// newPackage writes files into a fresh directory and packs it.
func newPackage(t testing.TB, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for rel, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := manifest.Pack(context.Background(), dir, "face-embed", 7, manifest.KindFaceEmbed, nil); err != nil {
		t.Fatal(err)
	}
	return dir
}

var packageFiles = map[string]string{
	"mobilefacenet.onnx": "\x08\x07\x12\x0connx weights",
	"labels/names.txt":   "alice\nbob\n",
	"empty.bin":          "",
}

func mustSigner(t testing.TB, key crypto.Signer, chain ...*x509.Certificate) *Signer {
	t.Helper()
	s, err := NewSigner(key, chain)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func mustVerifier(t testing.TB, trust Trust) *Verifier {
	t.Helper()
	if trust.Now == nil {
		trust.Now = fixedNow
	}
	v, err := NewVerifier(trust)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func wantReason(t testing.TB, err error, want modelrepo.Reason) {
	t.Helper()
	if err == nil {
		t.Fatalf("got success, want %s", want)
	}
	if got := modelrepo.ReasonOf(err); got != want {
		t.Fatalf("reason %s, want %s (err: %v)", got, want, err)
	}
	if !errors.Is(err, want) {
		t.Fatalf("errors.Is(err, %s) is false", want)
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
