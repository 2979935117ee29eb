// Package repotest builds signed model packages and repositories for
// tests: keys and certificate authorities made on the fly, packages
// packed, signed, optionally tampered with, and published by rename the way
// operators are told to. Model files come from the caller (typically the
// system's Tesseract data, see Tessdata); nothing is ever committed.
package repotest

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/emmansun/gmsm/smx509"

	"github.com/visionserve/visionserve/internal/engine/tesseract"
	"github.com/visionserve/visionserve/internal/modelrepo"
	"github.com/visionserve/visionserve/internal/modelrepo/manifest"
	"github.com/visionserve/visionserve/internal/modelrepo/signing"
	"github.com/visionserve/visionserve/internal/modelrepo/trust"
	"github.com/visionserve/visionserve/internal/testenv"
)

// Key is a signing key with its public half written to PublicPath.
type Key struct {
	Signer     *signing.Signer
	PublicPath string
	private    crypto.Signer
}

// NewKey makes an ECDSA P-256 key.
func NewKey(t testing.TB) *Key {
	t.Helper()
	return NewKeyOf(t, signing.ECDSAP256SHA256)
}

// NewKeyOf makes a key of algorithm alg.
func NewKeyOf(t testing.TB, alg signing.Algorithm) *Key {
	t.Helper()
	dir := t.TempDir()
	privPath, path, err := signing.GenerateKey(dir, alg)
	if err != nil {
		t.Fatal(err)
	}
	k, err := signing.LoadPrivateKey(privPath)
	if err != nil {
		t.Fatal(err)
	}
	s, err := signing.NewSigner(k, nil)
	if err != nil {
		t.Fatal(err)
	}
	return &Key{Signer: s, PublicPath: path, private: k}
}

// CA is a certificate authority, its certificate written to CertPath.
type CA struct {
	Cert     *x509.Certificate
	key      crypto.Signer
	CertPath string
}

// NewCA makes an ECDSA P-256 root CA valid from a year ago to a year
// ahead.
func NewCA(t testing.TB) *CA {
	t.Helper()
	return NewCAOf(t, signing.ECDSAP256SHA256)
}

// NewCAOf makes a root CA of algorithm alg (an SM2 CA signs with
// SM2-with-SM3) valid from a year ago to a year ahead.
func NewCAOf(t testing.TB, alg signing.Algorithm) *CA {
	t.Helper()
	key := NewKeyOf(t, alg)
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(t),
		Subject:               pkix.Name{CommonName: "visionserve test models CA"},
		NotBefore:             now.Add(-365 * 24 * time.Hour),
		NotAfter:              now.Add(365 * 24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	cert, der := createCert(t, tmpl, tmpl, key.Signer.PublicKey(), key.private)
	path := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	return &CA{Cert: cert, key: key.private, CertPath: path}
}

// createCert issues tmpl for pub, signed by parentKey as parent, with
// smx509 so that SM2 keys and SM2-with-SM3 signatures work too.
func createCert(t testing.TB, tmpl, parent *x509.Certificate, pub *ecdsa.PublicKey, parentKey crypto.Signer) (*x509.Certificate, []byte) {
	t.Helper()
	der, err := smx509.CreateCertificate(rand.Reader, tmpl, parent, pub, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := smx509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert.ToX509(), der
}

// Signer returns a certificate-method signer: a fresh key of the CA's
// algorithm with a code-signing certificate from ca valid between
// notBefore and notAfter.
func (ca *CA) Signer(t testing.TB, notBefore, notAfter time.Time) *signing.Signer {
	t.Helper()
	alg, err := signing.AlgorithmOf(ca.key.Public())
	if err != nil {
		t.Fatal(err)
	}
	key := NewKeyOf(t, alg)
	tmpl := &x509.Certificate{
		SerialNumber: serial(t),
		Subject:      pkix.Name{CommonName: "ocr team", Organization: []string{"visionserve tests"}},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
	}
	leaf, _ := createCert(t, tmpl, ca.Cert, key.Signer.PublicKey(), ca.key)
	s, err := signing.NewSigner(key.private, []*x509.Certificate{leaf})
	if err != nil {
		t.Fatal(err)
	}
	return s
}
func serial(t testing.TB) *big.Int {
	n, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// Spec describes a package to build.
type Spec struct {
	Name    string
	Version int
	Kind    manifest.Kind
	// Runtime is the manifest's runtime object; nil for none.
	Runtime map[string]any
	// Files are the model files by relative path.
	Files map[string][]byte
	// Signer signs the package; nil leaves it unsigned.
	Signer *signing.Signer
	// Tamper, when set, changes the signed directory before it is
	// published.
	Tamper func(t testing.TB, dir string)
	// PublishAs, when not 0, is the version directory's name: a package
	// whose manifest names another version than its directory.
	PublishAs int
}

// Publish builds spec under <root>/<name>/.incoming-*, in the same
// filesystem as the repository, and renames it to <root>/<name>/<version>.
// It returns the published directory.
func Publish(t testing.TB, root string, spec Spec) string {
	t.Helper()
	parent := filepath.Join(root, spec.Name)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		t.Fatal(err)
	}
	staging, err := os.MkdirTemp(parent, ".incoming-")
	if err != nil {
		t.Fatal(err)
	}
	Build(t, staging, spec)
	as := spec.Version
	if spec.PublishAs != 0 {
		as = spec.PublishAs
	}
	final := filepath.Join(parent, strconv.Itoa(as))
	if err := os.Rename(staging, final); err != nil {
		t.Fatal(err)
	}
	return final
}

// Build writes, packs, signs and tampers spec's package in dir.
func Build(t testing.TB, dir string, spec Spec) {
	t.Helper()
	for rel, data := range spec.Files {
		p := filepath.Join(dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var runtime json.RawMessage
	if spec.Runtime != nil {
		b, err := json.Marshal(spec.Runtime)
		if err != nil {
			t.Fatal(err)
		}
		runtime = b
	}
	ctx := context.Background()
	if _, err := manifest.Pack(ctx, dir, spec.Name, spec.Version, spec.Kind, runtime); err != nil {
		t.Fatal(err)
	}
	if spec.Signer != nil {
		if _, err := spec.Signer.SignPackage(ctx, dir); err != nil {
			t.Fatal(err)
		}
	}
	if spec.Tamper != nil {
		spec.Tamper(t, dir)
	}
}

// Verified publishes spec, signed with a new key, in a new repository and
// returns what the server's verifier (a trust policy trusting that key)
// accepts, and the version's directory.
func Verified(t testing.TB, spec Spec) (*modelrepo.Package, string) {
	t.Helper()
	key := NewKey(t)
	spec.Signer = key.Signer
	dir := Publish(t, t.TempDir(), spec)
	p, err := trust.New(trust.Config{Keys: []string{key.PublicPath}})
	if err != nil {
		t.Fatal(err)
	}
	pkg, err := p.Verify(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	return pkg, dir
}

// Tessdata returns the system's eng.traineddata and osd.traineddata. It
// skips the test (fails under CI) when they are not installed.
func Tessdata(t testing.TB) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, name := range []string{"eng.traineddata", "osd.traineddata"} {
		b, err := os.ReadFile(filepath.Join(tesseract.DefaultDataPath(), name))
		if err != nil {
			testenv.Missing(t, "system tessdata missing (run hack/setup.sh): "+err.Error())
		}
		out[name] = b
	}
	return out
}

// FlipSignatureByte changes one character of the base64 signature value
// inside dir/model.sig, keeping the bundle well-formed JSON: the signature
// no longer verifies (bad_signature).
func FlipSignatureByte(t testing.TB, dir string) {
	t.Helper()
	p := filepath.Join(dir, "model.sig")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(b, []byte(`"sig"`))
	if i < 0 {
		t.Fatal("model.sig has no sig field")
	}
	i += bytes.IndexByte(b[i+len(`"sig"`):], '"') + len(`"sig"`) + 1 + 8
	if b[i] == 'A' {
		b[i] = 'B'
	} else {
		b[i] = 'A'
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// FlipByte inverts one bit of the byte at offset off of dir/rel (a
// negative offset counts from the end).
func FlipByte(t testing.TB, dir, rel string, off int) {
	t.Helper()
	p := filepath.Join(dir, filepath.FromSlash(rel))
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if off < 0 {
		off += len(b)
	}
	b[off] ^= 0x01
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
