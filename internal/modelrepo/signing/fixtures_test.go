package signing

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/visionserve/visionserve/internal/modelrepo"
	"github.com/visionserve/visionserve/internal/testenv"
)

// fixtureCase is one entry of shared/data/model-signing/cases.json.
type fixtureCase struct {
	ID                  string   `json:"id"`
	Method              string   `json:"method"`
	Model               string   `json:"model"`
	Bundle              string   `json:"bundle"`
	PublicKey           string   `json:"public_key"`
	CertChain           []string `json:"cert_chain"`
	IgnorePaths         []string `json:"ignore_paths"`
	IgnoreUnsignedFiles bool     `json:"ignore_unsigned_files"`
	Expect              string   `json:"expect"`
	Reason              string   `json:"reason"`
}

// fixtureNow is inside the validity of the fixtures' certificates
// (2025-05-02 to 2035-04-30), so the test does not depend on the clock.
var fixtureNow = time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)

// wantFailure maps every case cases.json expects to fail, or leaves to the
// implementation, to the reason this package gives. A case missing here
// fails the test, so new fixtures get a decision.
var wantFailure = map[string]modelrepo.Reason{
	// implementation-defined: a certificate bundle needs a trusted CA,
	// even when its key happens to be trusted.
	"mt-v1.0.0-certificate-verified-as-key":        modelrepo.ReasonCertInvalid,
	"mt-v1.0.1-elliptic-key-ignore-me-not-ignored": modelrepo.ReasonUnlistedFile,
	"mt-v1.1.0-elliptic-key-wrong-key":             modelrepo.ReasonUntrustedKey, // hint names another key
	"mt-v1.0.1-elliptic-key-wrong-key":             modelrepo.ReasonUntrustedKey, // rawBytes holds another key
	"mt-v1.1.0-elliptic-key-as-certificate":        modelrepo.ReasonUntrustedKey, // only a CA is trusted
	"mt-v1.1.0-sigstore-as-key":                    modelrepo.ReasonSignatureInvalid,
	"mt-v1.1.0-certificate-wrong-root":             modelrepo.ReasonCertInvalid,
	"spec-wrong-predicate":                         modelrepo.ReasonBadSignature, // edited after signing
	"spec-missing-envelope":                        modelrepo.ReasonSignatureInvalid,
	"spec-missing-verification-material":           modelrepo.ReasonSignatureInvalid,
	"spec-empty-bundle":                            modelrepo.ReasonSignatureInvalid,
	"spec-sigstore-as-key":                         modelrepo.ReasonSignatureInvalid,
	"dv-key-tampered-content":                      modelrepo.ReasonDigestMismatch,
	"dv-key-extra-file":                            modelrepo.ReasonUnlistedFile,
	"dv-key-missing-file":                          modelrepo.ReasonMissingFile,
	"dv-key-renamed-file":                          modelrepo.ReasonMissingFile, // signme-2 is reported first
	"dv-key-bad-signature":                         modelrepo.ReasonBadSignature,
	"dv-key-payload-edited":                        modelrepo.ReasonBadSignature,
	"dv-key-wrong-mediatype":                       modelrepo.ReasonSignatureInvalid,
	"dv-key-wrong-payloadtype":                     modelrepo.ReasonSignatureInvalid,
	"dv-key-wrong-predicatetype-resigned":          modelrepo.ReasonSignatureInvalid,
	"dv-key-wrong-statement-type-resigned":         modelrepo.ReasonSignatureInvalid,
	"dv-key-root-digest-mismatch-resigned":         modelrepo.ReasonSignatureInvalid,
	"dv-key-two-subjects-resigned":                 modelrepo.ReasonSignatureInvalid,
	"dv-key-unlisted-file-resigned":                modelrepo.ReasonUnlistedFile,
	"dv-key-no-signatures":                         modelrepo.ReasonSignatureInvalid,
	"dv-key-raw-rs-signature":                      modelrepo.ReasonBadSignature,
	"dv-key-truncated-bundle":                      modelrepo.ReasonSignatureInvalid,
	"dv-key-empty-bundle":                          modelrepo.ReasonSignatureInvalid,
	"dv-key-missing-envelope":                      modelrepo.ReasonSignatureInvalid,
	"dv-cert-tampered-content":                     modelrepo.ReasonDigestMismatch,
	"dv-key-p256-resigned-wrong-key":               modelrepo.ReasonUntrustedKey,
}

// implementationPasses lists implementation-defined cases this package
// accepts: Go's crypto/x509 treats every configured certificate as a trust
// anchor, so configuring the intermediate CA trusts what it issued.
var implementationPasses = map[string]bool{
	"mt-v1.1.0-certificate-intermediate-as-root": true,
}

func loadCases(t *testing.T) (string, []fixtureCase) {
	t.Helper()
	dir := testenv.Shared(t, "data/model-signing")
	data, err := os.ReadFile(filepath.Join(dir, "cases.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Cases []fixtureCase `json:"cases"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Cases) == 0 {
		t.Fatal("cases.json has no cases")
	}
	return dir, doc.Cases
}

func TestFixtures(t *testing.T) {
	base, cases := loadCases(t)
	var passed, failed int
	for _, tc := range cases {
		t.Run(tc.ID, func(t *testing.T) {
			var trust Trust
			trust.Now = func() time.Time { return fixtureNow }
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

			shouldPass := tc.Expect == "pass" || (tc.Expect == "implementation-defined" && implementationPasses[tc.ID])
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
			want, ok := wantFailure[tc.ID]
			if !ok {
				t.Fatalf("case %s (expect %s) has no expected reason in wantFailure", tc.ID, tc.Expect)
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
