package signing

import (
	"context"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/base64"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/visionserve/visionserve/internal/modelrepo"
	"github.com/visionserve/visionserve/internal/modelrepo/manifest"
	"github.com/visionserve/visionserve/internal/testenv"
)

// opensslIn runs Debian's openssl in dir and returns its output.
func opensslIn(t testing.TB, dir string, args ...string) string {
	t.Helper()
	if _, err := exec.LookPath("openssl"); err != nil {
		testenv.Missing(t, "openssl is not installed (Debian package openssl): "+err.Error())
	}
	cmd := exec.Command("openssl", args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("openssl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// opensslSM2 is an SM2 PKI made by openssl for one test: a root CA, an
// intermediate and code-signing leaves, every certificate signed with
// SM2-with-SM3 (openssl req/x509 -sm3). OpenSSL 3.0 signs with an empty
// SM2 user id unless -sigopt distid sets one, so every signing command
// passes the GM/T default (distid) unless emptyID is set.
type opensslSM2 struct {
	t       *testing.T
	dir     string
	emptyID bool
}

const distid = "distid:1234567812345678"

// sigopt returns the options that make openssl sign with the GM/T user id
// (flag is -sigopt, -vfyopt or -pkeyopt).
func (p *opensslSM2) sigopt(flag string) []string {
	if p.emptyID {
		return nil
	}
	return []string{flag, distid}
}

func cat(parts ...[]string) []string {
	var out []string
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

const opensslExtensions = `[ca]
basicConstraints=critical,CA:TRUE
keyUsage=critical,keyCertSign,cRLSign
[leaf]
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=codeSigning
[encipher]
basicConstraints=critical,CA:FALSE
keyUsage=critical,keyEncipherment
`

func newOpenSSLSM2(t *testing.T) *opensslSM2 {
	p := &opensslSM2{t: t, dir: t.TempDir()}
	must(t, os.WriteFile(filepath.Join(p.dir, "ext.cnf"), []byte(opensslExtensions), 0o644))
	return p
}

func (p *opensslSM2) path(name string) string { return filepath.Join(p.dir, name) }

// key makes an SM2 key NAME.key (PKCS#8) and NAME.pub (SPKI).
func (p *opensslSM2) key(name string) {
	opensslIn(p.t, p.dir, "genpkey", "-algorithm", "SM2", "-out", name+".key")
	opensslIn(p.t, p.dir, "pkey", "-in", name+".key", "-pubout", "-out", name+".pub")
}

// root makes a self-signed CA NAME.pem.
func (p *opensslSM2) root(name, cn string) {
	p.key(name)
	opensslIn(p.t, p.dir, cat([]string{"req", "-x509", "-new", "-key", name + ".key", "-sm3"}, p.sigopt("-sigopt"),
		[]string{"-subj", "/CN=" + cn, "-days", "3650", "-addext", "basicConstraints=critical,CA:TRUE",
			"-addext", "keyUsage=critical,keyCertSign,cRLSign", "-out", name + ".pem"})...)
}

// issue makes NAME.pem for a new key NAME, signed by issuer, with the
// extension section ext of opensslExtensions.
func (p *opensslSM2) issue(name, cn, issuer, ext string, days int) {
	p.key(name)
	opensslIn(p.t, p.dir, cat([]string{"req", "-new", "-key", name + ".key", "-sm3"}, p.sigopt("-sigopt"),
		[]string{"-subj", "/CN=" + cn + "/O=visionserve tests", "-out", name + ".csr"})...)
	opensslIn(p.t, p.dir, cat([]string{"x509", "-req", "-in", name + ".csr"}, p.sigopt("-vfyopt"), p.sigopt("-sigopt"),
		[]string{"-CA", issuer + ".pem", "-CAkey", issuer + ".key", "-CAcreateserial", "-sm3", "-days", strconv.Itoa(days),
			"-extfile", "ext.cnf", "-extensions", ext, "-out", name + ".pem"})...)
}

func (p *opensslSM2) certs(names ...string) []*x509.Certificate {
	var out []*x509.Certificate
	for _, n := range names {
		c, err := LoadCertificates(p.path(n + ".pem"))
		must(p.t, err)
		out = append(out, c...)
	}
	return out
}

// signedByOpenSSL writes dir/model.sig whose signature openssl made: the
// statement and PAE are built here, the PAE is signed with
// `openssl dgst -sm3 -sign` (or `openssl pkeyutl -sign -rawin -digest sm3`
// when pkeyutl), and the bundle names keyID or carries chain.
func (p *opensslSM2) signedByOpenSSL(dir, keyName string, pkeyutl bool, chain []*x509.Certificate) {
	t := p.t
	sigPath := filepath.Join(dir, manifest.SignatureFileName)
	_, payload, err := buildStatement(context.Background(), dir, HashSM3, SignOptions{SignaturePath: sigPath})
	must(t, err)
	must(t, os.WriteFile(p.path("pae.bin"), pae(PayloadType, payload), 0o644))
	if pkeyutl {
		opensslIn(t, p.dir, cat([]string{"pkeyutl", "-sign", "-rawin", "-digest", "sm3"}, p.sigopt("-pkeyopt"),
			[]string{"-inkey", keyName + ".key", "-in", "pae.bin", "-out", "sig.der"})...)
	} else {
		opensslIn(t, p.dir, cat([]string{"dgst", "-sm3"}, p.sigopt("-sigopt"), []string{"-sign", keyName + ".key", "-out", "sig.der", "pae.bin"})...)
	}
	sig, err := os.ReadFile(p.path("sig.der"))
	must(t, err)
	pub, err := LoadPublicKey(p.path(keyName + ".pub"))
	must(t, err)
	id, err := KeyID(pub)
	must(t, err)
	data, err := assembleBundle(payload, sig, id, chain)
	must(t, err)
	must(t, os.WriteFile(sigPath, data, 0o644))
}

// TestOpenSSLSM2Keys: SM2 keys made by openssl sign packages here, openssl
// verifies those signatures, and packages whose signature openssl made
// (dgst -sm3 and pkeyutl -digest sm3) verify here.
func TestOpenSSLSM2Keys(t *testing.T) {
	ctx := context.Background()
	p := newOpenSSLSM2(t)
	p.key("vendor")
	pub, err := LoadPublicKey(p.path("vendor.pub"))
	must(t, err)
	if alg, _ := AlgorithmOf(pub); alg != SM2SM3 {
		t.Fatalf("openssl's SM2 public key reads as %q", alg)
	}
	v := mustVerifier(t, Trust{Keys: []*ecdsa.PublicKey{pub}})

	t.Run("signed here with openssl's key, verified by openssl", func(t *testing.T) {
		dir := newPackage(t, packageFiles)
		s, err := LoadSigner(p.path("vendor.key"), "", "")
		must(t, err)
		_, err = s.SignPackage(ctx, dir)
		must(t, err)
		got, err := v.VerifyPackage(ctx, dir)
		must(t, err)
		if got.Signature.Algorithm != SM2SM3 {
			t.Errorf("algorithm %s", got.Signature.Algorithm)
		}
		data, err := os.ReadFile(filepath.Join(dir, manifest.SignatureFileName))
		must(t, err)
		pb, err := parseBundle(data)
		must(t, err)
		must(t, os.WriteFile(p.path("ours.pae"), pae(pb.payloadType, pb.payload), 0o644))
		must(t, os.WriteFile(p.path("ours.sig"), pb.sig, 0o644))
		if out := opensslIn(t, p.dir, "dgst", "-sm3", "-sigopt", distid, "-verify", "vendor.pub", "-signature", "ours.sig", "ours.pae"); !strings.Contains(out, "Verified OK") {
			t.Errorf("openssl does not verify our SM2 signature: %s", out)
		}
	})
	for _, pkeyutl := range []bool{false, true} {
		name := "signed by openssl dgst -sm3"
		if pkeyutl {
			name = "signed by openssl pkeyutl -digest sm3"
		}
		t.Run(name, func(t *testing.T) {
			dir := newPackage(t, packageFiles)
			p.signedByOpenSSL(dir, "vendor", pkeyutl, nil)
			got, err := v.VerifyPackage(ctx, dir)
			must(t, err)
			if got.Signature.Method != MethodKey || got.Signature.Algorithm != SM2SM3 {
				t.Errorf("result %+v", got.Signature)
			}
			// And a tampered file is caught, with the SM3 digests.
			must(t, os.WriteFile(filepath.Join(dir, "labels", "names.txt"), []byte("mallory\n"), 0o644))
			_, err = v.VerifyPackage(ctx, dir)
			wantReason(t, err, modelrepo.ReasonDigestMismatch)
		})
	}
	t.Run("signed by openssl with its default, empty user id", func(t *testing.T) {
		dir := newPackage(t, packageFiles)
		p.emptyID = true
		defer func() { p.emptyID = false }()
		p.signedByOpenSSL(dir, "vendor", false, nil)
		_, err := v.VerifyPackage(ctx, dir)
		wantReason(t, err, modelrepo.ReasonBadSignature)
		if !strings.Contains(err.Error(), "empty user id") || !strings.Contains(err.Error(), distid) {
			t.Errorf("the refusal does not say how to sign: %v", err)
		}
	})
}

// TestOpenSSLSM2Certificates: an SM2 CA chain made with openssl req/x509
// -sm3 signs packages (here and with openssl), which verify against the
// root; the trust cases fail with their reasons.
func TestOpenSSLSM2Certificates(t *testing.T) {
	ctx := context.Background()
	p := newOpenSSLSM2(t)
	p.root("ca", "SM2 Root CA")
	p.issue("int", "SM2 Signing CA", "ca", "ca", 1000)
	p.issue("leaf", "model publisher", "int", "leaf", 30)
	p.issue("encipher", "encryption only", "int", "encipher", 30)
	p.root("other", "SM2 Root CA") // same name, another key
	roots := p.certs("ca")
	v := mustVerifier(t, Trust{Roots: roots, Now: time.Now})
	leaf := p.certs("leaf")[0]

	t.Run("signed here", func(t *testing.T) {
		dir := newPackage(t, packageFiles)
		s, err := LoadSigner(p.path("leaf.key"), p.path("leaf.pem"), p.path("int.pem"))
		must(t, err)
		_, err = s.SignPackage(ctx, dir)
		must(t, err)
		got, err := v.VerifyPackage(ctx, dir)
		must(t, err)
		r := got.Signature
		if r.Method != MethodCertificate || r.Algorithm != SM2SM3 || len(r.Chain) != 3 || r.Chain[0].Subject.CommonName != "model publisher" || r.Chain[2].Subject.CommonName != "SM2 Root CA" {
			t.Errorf("result %+v", r)
		}
	})
	t.Run("signed by openssl", func(t *testing.T) {
		dir := newPackage(t, packageFiles)
		p.signedByOpenSSL(dir, "leaf", false, p.certs("leaf", "int"))
		if _, err := v.VerifyPackage(ctx, dir); err != nil {
			t.Fatal(err)
		}
	})

	// The trust cases, each with a bundle signed by openssl.
	for _, tc := range []struct {
		name  string
		key   string
		chain []string
		trust Trust
		want  modelrepo.Reason
	}{
		{"another root trusted", "leaf", []string{"leaf", "int"}, Trust{Roots: p.certs("other"), Now: time.Now}, modelrepo.ReasonCertInvalid},
		{"intermediate missing", "leaf", []string{"leaf"}, Trust{Roots: roots, Now: time.Now}, modelrepo.ReasonCertInvalid},
		{"leaf without digitalSignature", "encipher", []string{"encipher", "int"}, Trust{Roots: roots, Now: time.Now}, modelrepo.ReasonCertInvalid},
		{"checked after the leaf expired", "leaf", []string{"leaf", "int"}, Trust{Roots: roots, Now: func() time.Time { return leaf.NotAfter.Add(time.Second) }}, modelrepo.ReasonCertExpired},
		{"checked before the leaf is valid", "leaf", []string{"leaf", "int"}, Trust{Roots: roots, Now: func() time.Time { return leaf.NotBefore.Add(-time.Minute) }}, modelrepo.ReasonCertInvalid},
		{"only a key trusted", "leaf", []string{"leaf", "int"}, Trust{Keys: []*ecdsa.PublicKey{leaf.PublicKey.(*ecdsa.PublicKey)}}, modelrepo.ReasonCertInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := newPackage(t, packageFiles)
			p.signedByOpenSSL(dir, tc.key, false, p.certs(tc.chain...))
			_, err := mustVerifier(t, tc.trust).VerifyPackage(ctx, dir)
			wantReason(t, err, tc.want)
		})
	}

	t.Run("signature by another key under the leaf's certificate", func(t *testing.T) {
		dir := newPackage(t, packageFiles)
		p.signedByOpenSSL(dir, "encipher", false, p.certs("leaf", "int"))
		_, err := v.VerifyPackage(ctx, dir)
		wantReason(t, err, modelrepo.ReasonBadSignature)
	})
	t.Run("chain made by openssl with its default, empty user id", func(t *testing.T) {
		q := newOpenSSLSM2(t)
		q.emptyID = true
		q.root("ca", "SM2 Root CA")
		q.issue("leaf", "model publisher", "ca", "leaf", 30)
		q.emptyID = false
		dir := newPackage(t, packageFiles)
		q.signedByOpenSSL(dir, "leaf", false, q.certs("leaf"))
		_, err := mustVerifier(t, Trust{Roots: q.certs("ca"), Now: time.Now}).VerifyPackage(ctx, dir)
		wantReason(t, err, modelrepo.ReasonCertInvalid)
		if !strings.Contains(err.Error(), "empty user id") {
			t.Errorf("the refusal does not name the user id: %v", err)
		}
	})
	t.Run("bundle certificate is base64 of openssl's DER", func(t *testing.T) {
		dir := newPackage(t, packageFiles)
		p.signedByOpenSSL(dir, "leaf", true, p.certs("leaf", "int"))
		data, err := os.ReadFile(filepath.Join(dir, manifest.SignatureFileName))
		must(t, err)
		opensslIn(t, p.dir, "x509", "-in", "leaf.pem", "-outform", "DER", "-out", "leaf.der")
		der, err := os.ReadFile(p.path("leaf.der"))
		must(t, err)
		if !strings.Contains(string(data), base64.StdEncoding.EncodeToString(der)) {
			t.Error("the bundle does not carry the leaf certificate as openssl encoded it")
		}
	})
}
