package trust_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/visionserve/visionserve/internal/modelrepo"
	"github.com/visionserve/visionserve/internal/modelrepo/manifest"
	"github.com/visionserve/visionserve/internal/modelrepo/repotest"
	"github.com/visionserve/visionserve/internal/modelrepo/signing"
	"github.com/visionserve/visionserve/internal/modelrepo/trust"
)

var files = map[string][]byte{"eng.traineddata": []byte("weights"), "osd.traineddata": []byte("more weights")}

func build(t *testing.T, spec repotest.Spec) string {
	t.Helper()
	spec.Name, spec.Version, spec.Kind = "ocr-eng", 3, manifest.KindOCRTesseract
	if spec.Files == nil {
		spec.Files = files
	}
	dir := t.TempDir()
	repotest.Build(t, dir, spec)
	return dir
}

// algs are the signature algorithms every trust case runs with.
var algs = []signing.Algorithm{signing.ECDSAP256SHA256, signing.SM2SM3}

func TestVerifyDescribesThePackage(t *testing.T) {
	for _, alg := range algs {
		t.Run(string(alg), func(t *testing.T) { testVerifyDescribesThePackage(t, alg) })
	}
}

func testVerifyDescribesThePackage(t *testing.T, alg signing.Algorithm) {
	key := repotest.NewKeyOf(t, alg)
	ca := repotest.NewCAOf(t, alg)
	p, err := trust.New(trust.Config{Keys: []string{key.PublicPath}, CACertificates: []string{ca.CertPath}})
	if err != nil {
		t.Fatal(err)
	}
	pkg, err := p.Verify(context.Background(), build(t, repotest.Spec{Signer: key.Signer, Runtime: map[string]any{"lang": "eng"}}))
	if err != nil {
		t.Fatal(err)
	}
	var runtime bytes.Buffer
	_ = json.Compact(&runtime, pkg.Runtime)
	if pkg.Name != "ocr-eng" || pkg.Version != 3 || pkg.Kind != "ocr-tesseract" || runtime.String() != `{"lang":"eng"}` {
		t.Errorf("package %+v", pkg)
	}
	if pkg.Signer.Method != "key" || pkg.Signer.Algorithm != string(alg) || pkg.Signer.KeyID != key.Signer.KeyID() || !pkg.Signer.NotAfter.IsZero() {
		t.Errorf("signer %+v", pkg.Signer)
	}
	if f := pkg.Files["eng.traineddata"]; f.Size != 7 || len(f.SHA256) != 64 || len(pkg.Files) != 2 {
		t.Errorf("files %+v", pkg.Files)
	}
	notAfter := time.Now().Add(30 * 24 * time.Hour).Truncate(time.Second)
	pkg, err = p.Verify(context.Background(), build(t, repotest.Spec{Signer: ca.Signer(t, time.Now().Add(-time.Hour), notAfter)}))
	if err != nil {
		t.Fatal(err)
	}
	if pkg.Signer.Method != "certificate" || pkg.Signer.Algorithm != string(alg) || !pkg.Signer.NotAfter.Equal(notAfter) || !strings.Contains(pkg.Signer.Subject, "ocr team") {
		t.Errorf("certificate signer %+v", pkg.Signer)
	}
}

func TestVerifyRejects(t *testing.T) {
	for _, alg := range algs {
		t.Run(string(alg), func(t *testing.T) { testVerifyRejects(t, alg) })
	}
}

func testVerifyRejects(t *testing.T, alg signing.Algorithm) {
	key := repotest.NewKeyOf(t, alg)
	other := repotest.NewKeyOf(t, alg)
	ca := repotest.NewCAOf(t, alg)
	otherAlg := repotest.NewKeyOf(t, signing.ECDSAP256SHA256)
	if alg == signing.ECDSAP256SHA256 {
		otherAlg = repotest.NewKeyOf(t, signing.SM2SM3)
	}
	p, err := trust.New(trust.Config{Keys: []string{key.PublicPath}, CACertificates: []string{ca.CertPath}})
	if err != nil {
		t.Fatal(err)
	}
	expired := ca.Signer(t, time.Now().Add(-48*time.Hour), time.Now().Add(-24*time.Hour))
	for _, tc := range []struct {
		name   string
		spec   repotest.Spec
		reason modelrepo.Reason
	}{
		{"flipped byte", repotest.Spec{Signer: key.Signer, Tamper: func(t testing.TB, d string) { repotest.FlipByte(t, d, "eng.traineddata", 2) }}, modelrepo.ReasonDigestMismatch},
		{"removed file", repotest.Spec{Signer: key.Signer, Tamper: func(t testing.TB, d string) { os.Remove(filepath.Join(d, "osd.traineddata")) }}, modelrepo.ReasonMissingFile},
		{"unlisted file", repotest.Spec{Signer: key.Signer, Tamper: func(t testing.TB, d string) { os.WriteFile(filepath.Join(d, "extra.bin"), []byte("x"), 0o644) }}, modelrepo.ReasonUnlistedFile},
		{"untrusted key", repotest.Spec{Signer: other.Signer}, modelrepo.ReasonUntrustedKey},
		{"untrusted key of the other algorithm", repotest.Spec{Signer: otherAlg.Signer}, modelrepo.ReasonUntrustedKey},
		{"flipped signature", repotest.Spec{Signer: key.Signer, Tamper: func(t testing.TB, d string) { repotest.FlipSignatureByte(t, d) }}, modelrepo.ReasonBadSignature},
		{"certificate from another CA", repotest.Spec{Signer: repotest.NewCAOf(t, alg).Signer(t, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))}, modelrepo.ReasonCertInvalid},
		{"expired certificate", repotest.Spec{Signer: expired}, modelrepo.ReasonCertExpired},
		{"unsigned", repotest.Spec{}, modelrepo.ReasonUnsigned},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := p.Verify(context.Background(), build(t, tc.spec))
			if got := modelrepo.ReasonOf(err); got != tc.reason {
				t.Fatalf("reason %s, want %s (%v)", got, tc.reason, err)
			}
		})
	}
}

// Allow-unsigned admits packages without a signature (with a warning per
// load) and never excuses a bad one.
func TestAllowUnsigned(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	other := repotest.NewKey(t)
	for _, cfg := range []trust.Config{{AllowUnsigned: true, Log: log}, {AllowUnsigned: true, Keys: []string{repotest.NewKey(t).PublicPath}, Log: log}} {
		p, err := trust.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		logs.Reset()
		pkg, err := p.Verify(context.Background(), build(t, repotest.Spec{}))
		if err != nil {
			t.Fatal(err)
		}
		if pkg.Signer.Method != "unsigned" || !strings.Contains(logs.String(), "UNSIGNED") {
			t.Errorf("signer %+v, log %q", pkg.Signer, logs.String())
		}
		_, err = p.Verify(context.Background(), build(t, repotest.Spec{Tamper: func(t testing.TB, d string) { repotest.FlipByte(t, d, "eng.traineddata", 0) }}))
		if !errors.Is(err, modelrepo.ReasonDigestMismatch) {
			t.Errorf("unsigned and tampered: %v", err)
		}
		_, err = p.Verify(context.Background(), build(t, repotest.Spec{Signer: other.Signer}))
		if !errors.Is(err, modelrepo.ReasonUntrustedKey) {
			t.Errorf("signed by an untrusted key with allow-unsigned: %v", err)
		}
	}
}

func TestNothingTrusted(t *testing.T) {
	p, err := trust.New(trust.Config{})
	if err != nil {
		t.Fatal(err)
	}
	ca := repotest.NewCA(t)
	for spec, want := range map[*repotest.Spec]modelrepo.Reason{
		{Signer: repotest.NewKey(t).Signer}:                                           modelrepo.ReasonUntrustedKey,
		{Signer: ca.Signer(t, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))}: modelrepo.ReasonCertInvalid,
		{}: modelrepo.ReasonUnsigned,
	} {
		if _, err := p.Verify(context.Background(), build(t, *spec)); modelrepo.ReasonOf(err) != want {
			t.Errorf("want %s, got %v", want, err)
		}
	}
}

func TestNewRejectsBadFiles(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.pem")
	os.WriteFile(bad, []byte("not a key"), 0o644)
	for _, cfg := range []trust.Config{
		{Keys: []string{filepath.Join(t.TempDir(), "missing.pem")}},
		{Keys: []string{bad}},
		{CACertificates: []string{bad}},
	} {
		if _, err := trust.New(cfg); err == nil {
			t.Errorf("%+v accepted", cfg)
		}
	}
}
