// Package signing signs and verifies model packages in the OpenSSF Model
// Signing (OMS) format, so that packages signed by that project's tooling
// (sigstore/model-transparency, its `model_signing` CLI) verify here and
// ours verify there. model.sig is a Sigstore bundle (JSON) whose DSSE
// envelope carries an in-toto statement listing every file's digest.
//
// Two signing methods are supported: a bare ECDSA key (the bundle names it
// by KeyID, the SHA-256 of its PEM) and an ECDSA key with an X.509
// certificate chain that verifiers check against configured CA
// certificates. Keyless Sigstore signing (Fulcio, Rekor) is not: it needs
// network trust roots that an inference server should not depend on.
//
// What the package owns, and in which order it checks: the bundle's
// structure, trust in its key or certificate (ReasonUntrustedKey,
// ReasonCertExpired, ReasonCertInvalid), the signature (ReasonBadSignature),
// the statement (ReasonSignatureInvalid), then the files on disk against
// the statement (ReasonMissingFile, ReasonUnlistedFile,
// ReasonDigestMismatch). VerifyPackage adds the visionserve rules: model.sig
// must exist (ReasonUnsigned), manifest.json must be signed and must agree
// with the signed digests. A Verifier never reports success for a package
// whose every byte it has not hashed and matched to a trusted signature.
//
// # Libraries
//
// Bundle types, parsing and structural validation (media type, envelope,
// verification material, certificate chains in v0.3 bundles), the DSSE
// signature check and bundle assembly come from github.com/sigstore/sigstore-go
// (pkg/bundle, pkg/verify, pkg/sign) with the Sigstore protobuf types
// underneath. They are the maintained implementation of exactly this bundle
// format, and the OMS spec defers bundle parsing and DSSE verification to
// them. A Go port of model signing exists (sampras343/model-transparency-go,
// module github.com/sigstore/model-signing) but is not published on the Go
// module proxy, so it cannot be a dependency.
//
// Hand-written, because no library does it or does it the way the format
// needs: the OMS statement and its file serialization (the reference's walk,
// exclusions, component-wise ordering, root digest, shards), the choice of
// trusted key by hint, the certificate chain check (crypto/x509, so that an
// expired certificate and an untrusted one get different reasons; sigstore-go
// reports both as one opaque error and expects Fulcio-style observer
// timestamps), and the pre-authentication encoding of model_signing v0.2.0
// bundles, which signed a Python bytes repr by mistake.
//
// Choices where the reference and the draft spec differ: certificate
// validity is checked at verification time (the spec's "MUST be within its
// validity period"; the reference checks at the leaf's NotBefore and so
// never rejects an expired leaf); a certificate-method bundle needs a
// trusted CA even if its key is also trusted; a root digest that does not
// match the resources is rejected; symlinks, when a signature allows them,
// must point at regular files inside the model.
package signing
