// Package signingtest reads the shared OpenSSF model signing fixtures
// (../shared/data/model-signing/cases.json) and says what each case must
// give here: the library's tests and the CLI's run the same table.
package signingtest

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/visionserve/visionserve/internal/modelrepo"
	"github.com/visionserve/visionserve/internal/testenv"
)

// Case is one entry of cases.json; paths are relative to the fixtures'
// directory.
type Case struct {
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

// Now is inside the validity of the fixtures' certificates (2025-05-02 to
// 2035-04-30), for tests that do not want to depend on the clock.
var Now = time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)

// wantFailure maps every case cases.json expects to fail, or leaves to the
// implementation, to the reason visionserve gives. A case missing here
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

// implementationPasses lists implementation-defined cases visionserve
// accepts: Go's crypto/x509 treats every configured certificate as a
// trust anchor, so configuring the intermediate CA trusts what it issued.
var implementationPasses = map[string]bool{
	"mt-v1.1.0-certificate-intermediate-as-root": true,
}

// Want returns whether c must verify, and otherwise the reason it must
// fail with. It fails t for a case that has no decision yet.
func (c Case) Want(t testing.TB) (pass bool, reason modelrepo.Reason) {
	t.Helper()
	if c.Expect == "pass" || (c.Expect == "implementation-defined" && implementationPasses[c.ID]) {
		return true, ""
	}
	want, ok := wantFailure[c.ID]
	if !ok {
		t.Fatalf("case %s (expect %s) has no expected reason in signingtest's wantFailure", c.ID, c.Expect)
	}
	return false, want
}

// Cases returns the fixtures' directory and its cases; without the shared
// data the test skips (fails under CI).
func Cases(t testing.TB) (string, []Case) {
	t.Helper()
	dir := testenv.Shared(t, "data/model-signing")
	data, err := os.ReadFile(filepath.Join(dir, "cases.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Cases []Case `json:"cases"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Cases) == 0 {
		t.Fatal("cases.json has no cases")
	}
	return dir, doc.Cases
}
