package signing

import (
	"context"
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/visionserve/visionserve/internal/modelrepo"
	"github.com/visionserve/visionserve/internal/modelrepo/signing/signingtest"
	"github.com/visionserve/visionserve/internal/testenv"
)

func TestFixtures(t *testing.T) {
	base, cases := signingtest.Cases(t)
	var passed, failed int
	for _, tc := range cases {
		t.Run(tc.ID, func(t *testing.T) {
			var trust Trust
			trust.Now = func() time.Time { return signingtest.Now }
			if tc.PublicKey != "" {
				k, err := LoadPublicKey(filepath.Join(base, tc.PublicKey))
				if err != nil {
					t.Fatal(err)
				}
				trust.Keys = append(trust.Keys, k)
			}
			for _, p := range tc.CertChain {
				certs, err := LoadCertificates(filepath.Join(base, p))
				if err != nil {
					t.Fatal(err)
				}
				trust.Roots = append(trust.Roots, certs...)
			}
			v, err := NewVerifier(trust)
			if err != nil {
				t.Fatal(err)
			}
			bundlePath := filepath.Join(base, tc.Bundle)
			bundleJSON, err := os.ReadFile(bundlePath)
			if err != nil {
				t.Fatal(err)
			}
			res, err := v.Verify(context.Background(), filepath.Join(base, tc.Model), bundleJSON, VerifyOptions{
				SignaturePath:       bundlePath,
				IgnorePaths:         tc.IgnorePaths,
				IgnoreUnsignedFiles: tc.IgnoreUnsignedFiles,
			})

			shouldPass, want := tc.Want(t)
			if shouldPass {
				if err != nil {
					t.Fatalf("%s: want pass, got %v", tc.Reason, err)
				}
				if res.Method != Method(tc.Method) {
					t.Errorf("method = %s, want %s", res.Method, tc.Method)
				}
				if len(res.Digests) == 0 {
					t.Error("no verified digests")
				}
				if tc.Method == "certificate" && (len(res.Chain) < 2 || res.NotAfter().IsZero()) {
					t.Errorf("certificate result without a chain: %+v", res.Chain)
				}
				passed++
				return
			}
			if err == nil {
				t.Fatalf("%s: want %s, got success", tc.Reason, want)
			}
			if got := modelrepo.ReasonOf(err); got != want {
				t.Fatalf("%s: reason %s, want %s (err: %v)", tc.Reason, got, want, err)
			}
			failed++
		})
	}
	t.Logf("%d cases verified, %d rejected with the expected reason", passed, failed)
}

// TestFixtureInspect checks that Inspect reports the material of the
// upstream bundles: the key's hint (or the ID of its legacy rawBytes key)
// and the certificate chain.
func TestFixtureInspect(t *testing.T) {
	base := testenv.Shared(t, "data/model-signing")
	pub, err := LoadPublicKey(filepath.Join(base, "model-transparency/keys/certificate/signing-key-pub.pem"))
	if err != nil {
		t.Fatal(err)
	}
	id, _ := KeyID(pub)
	if id != "e8450dec4eb99dae995da9af1bc2cc9f76ed669ee2e744f57abba763df3e3f8e" {
		t.Fatalf("KeyID of the upstream test key = %s", id)
	}
	for _, set := range []string{"v1.1.0-elliptic-key", "v1.0.1-elliptic-key", "v0.3.1-elliptic-key"} {
		data, err := os.ReadFile(filepath.Join(base, "model-transparency", set, "model.sig"))
		if err != nil {
			t.Fatal(err)
		}
		info, err := Inspect(data)
		if err != nil {
			t.Fatalf("%s: %v", set, err)
		}
		if info.Method != MethodKey || info.KeyID != id || info.Statement == nil {
			t.Errorf("%s: %+v", set, info)
		}
	}
	data, err := os.ReadFile(filepath.Join(base, "model-transparency/v1.1.0-certificate/model.sig"))
	if err != nil {
		t.Fatal(err)
	}
	info, err := Inspect(data)
	if err != nil {
		t.Fatal(err)
	}
	if info.Method != MethodCertificate || len(info.Certificates) != 2 || !pub.Equal(info.Certificates[0].PublicKey) {
		t.Errorf("certificate bundle: %+v", info)
	}
	if info.Certificates[1].Subject.CommonName != "intermediate-ca" || info.Certificates[0].ExtKeyUsage[0] != x509.ExtKeyUsageCodeSigning {
		t.Errorf("chain: leaf %v, second %v", info.Certificates[0].Subject, info.Certificates[1].Subject)
	}
}
