package signing

import (
	"crypto/x509"
	"encoding/json"
	"fmt"

	"github.com/emmansun/gmsm/smx509"
	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	"github.com/sigstore/sigstore-go/pkg/bundle"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/visionserve/visionserve/internal/modelrepo"
)

// Constants of the OpenSSF Model Signing format.
const (
	// BundleMediaType is the only Sigstore bundle media type the reference
	// implementation writes and accepts.
	BundleMediaType = "application/vnd.dev.sigstore.bundle.v0.3+json"
	// PayloadType is the DSSE payload type of an in-toto statement.
	PayloadType = "application/vnd.in-toto+json"
	// StatementType is the in-toto statement type.
	StatementType = "https://in-toto.io/Statement/v1"
	// PredicateType is the OMS predicate type.
	PredicateType = "https://model_signing/signature/v1.0"
	// LegacyPredicateType is the predicate type of model_signing v0.2.0
	// bundles; they are verified, never produced.
	LegacyPredicateType = "https://model_signing/Digests/v0.1"
)

// MaxBundleBytes bounds the size of a signature bundle.
const MaxBundleBytes = 64 << 20

// Method is how a bundle names its signer.
type Method string

// The signing methods this package signs and verifies. Keyless Sigstore
// bundles (a Fulcio certificate plus transparency log entries) are rejected.
const (
	MethodKey         Method = "key"
	MethodCertificate Method = "certificate"
)

// parsedBundle is a structurally valid OMS bundle, before any trust
// decision or signature check.
type parsedBundle struct {
	method      Method
	hint        string              // key method: publicKey.hint, if present
	rawKeyPEM   []byte              // key method: legacy publicKey.rawBytes (PEM text)
	certs       []*x509.Certificate // certificate method: leaf first
	payload     []byte              // the exact signed statement bytes
	payloadType string
	sig         []byte
}

func invalidBundle(format string, args ...any) error {
	return modelrepo.NewError(modelrepo.ReasonSignatureInvalid, "", fmt.Sprintf(format, args...))
}

// parseBundle decodes a bundle with the Sigstore protobuf types and has
// sigstore-go validate its structure. Every failure is
// ReasonSignatureInvalid.
func parseBundle(data []byte) (*parsedBundle, error) {
	if len(data) == 0 {
		return nil, invalidBundle("empty signature file")
	}
	if len(data) > MaxBundleBytes {
		return nil, invalidBundle("signature larger than %d bytes", MaxBundleBytes)
	}
	// DiscardUnknown: bundles from model_signing v0.3.1 to v1.0.1 carry
	// publicKey.rawBytes and keyDetails, which are not fields of the
	// PublicKeyIdentifier message; the format notes ask verifiers to
	// accept them.
	var pb protobundle.Bundle
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(data, &pb); err != nil {
		return nil, &modelrepo.Error{Reason: modelrepo.ReasonSignatureInvalid, Detail: "not a Sigstore bundle", Err: err}
	}
	if pb.GetMediaType() != BundleMediaType {
		return nil, invalidBundle("unsupported mediaType %q (want %s)", truncate(pb.GetMediaType(), 100), BundleMediaType)
	}
	if _, err := bundle.NewBundle(&pb, bundle.AllowCertificateChain()); err != nil {
		return nil, &modelrepo.Error{Reason: modelrepo.ReasonSignatureInvalid, Detail: "invalid Sigstore bundle", Err: err}
	}
	env := pb.GetDsseEnvelope()
	if env == nil {
		return nil, invalidBundle("bundle has no DSSE envelope")
	}
	if len(env.GetSignatures()) != 1 {
		return nil, invalidBundle("DSSE envelope has %d signatures, want exactly 1", len(env.GetSignatures()))
	}
	out := &parsedBundle{
		payload:     env.GetPayload(),
		payloadType: env.GetPayloadType(),
		sig:         env.GetSignatures()[0].GetSig(),
	}
	if len(out.payload) == 0 || len(out.sig) == 0 {
		return nil, invalidBundle("DSSE envelope has an empty payload or signature")
	}
	switch m := pb.GetVerificationMaterial().GetContent().(type) {
	case *protobundle.VerificationMaterial_PublicKey:
		out.method = MethodKey
		out.hint = m.PublicKey.GetHint()
		if out.hint == "" {
			out.rawKeyPEM = legacyRawKey(data)
		}
	case *protobundle.VerificationMaterial_X509CertificateChain:
		// Parsed here rather than by sigstore-go, whose crypto/x509
		// refuses certificates with SM2 keys or signatures.
		out.method = MethodCertificate
		raw := m.X509CertificateChain.GetCertificates()
		if len(raw) == 0 {
			return nil, invalidBundle("empty certificate chain")
		}
		for _, c := range raw {
			cert, err := smx509.ParseCertificate(c.GetRawBytes())
			if err != nil {
				return nil, &modelrepo.Error{Reason: modelrepo.ReasonSignatureInvalid, Detail: "invalid certificate chain", Err: err}
			}
			out.certs = append(out.certs, cert.ToX509())
		}
	case *protobundle.VerificationMaterial_Certificate:
		return nil, invalidBundle("keyless Sigstore (Fulcio) signatures are not supported; sign with a key or a certificate chain")
	default:
		return nil, invalidBundle("bundle has no verification material")
	}
	return out, nil
}

// legacyRawKey returns verificationMaterial.publicKey.rawBytes, which older
// model_signing versions fill with the base64 of the public key's PEM text.
// protojson drops the field, so it is read with encoding/json.
func legacyRawKey(data []byte) []byte {
	var doc struct {
		VerificationMaterial struct {
			PublicKey struct {
				RawBytes []byte `json:"rawBytes"`
			} `json:"publicKey"`
		} `json:"verificationMaterial"`
	}
	if json.Unmarshal(data, &doc) != nil {
		return nil
	}
	return doc.VerificationMaterial.PublicKey.RawBytes
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
