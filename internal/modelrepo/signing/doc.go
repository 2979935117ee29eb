// Package signing signs and verifies model packages in the OpenSSF Model
// Signing (OMS) format, so that packages signed by that project's tooling
// (sigstore/model-transparency, its `model_signing` CLI) verify here and
// ours verify there. model.sig is a Sigstore bundle (JSON) whose DSSE
// envelope carries an in-toto statement listing every file's digest.
//
// Two signing methods are supported: a bare key (the bundle names it by
// KeyID, the SHA-256 of its PEM) and a key with an X.509 certificate chain
// that verifiers check against configured CA certificates. Keys are ECDSA
// (P-256, P-384, P-521, as in the reference) or SM2. Keyless Sigstore
// signing (Fulcio, Rekor) is not supported: it needs network trust roots
// that an inference server should not depend on.
//
// # SM2 and SM3: where this package extends the format
//
// An SM2 bundle has the OMS shape unchanged: the same media type, DSSE
// envelope, payload type, in-toto statement and predicate type, and the
// same verification material (publicKey.hint = hex SHA-256 of the key's
// SubjectPublicKeyInfo PEM, or an x509CertificateChain). It differs in
// three places:
//
//   - the statement's serialization.hash_type is "sm3", every resource's
//     algorithm is "sm3" (or "sm3-sharded-N") with an SM3 digest, and the
//     subject's root digest is keyed "sm3" (the in-toto DigestSet name) and
//     is the SM3 of the concatenated raw resource digests;
//   - the envelope's signature is an SM2 signature (GB/T 32918.2, ASN.1 DER
//     SEQUENCE{r, s} like ECDSA's) of the DSSE PAE, that is SM2 over
//     SM3(Z || PAE) with Z computed from the GM/T 0009 default user id
//     1234567812345678 (SM2UserID); no other user id is accepted;
//   - the key is an SM2 public key: id-ecPublicKey on the SM2 curve (OID
//     1.2.156.10197.1.301), as OpenSSL 3 writes it, and certificates are
//     GM/T 0015 ones, signed with SM2-with-SM3 (OID 1.2.156.10197.1.501)
//     under the same default user id.
//
// The bundle never names its algorithm: the trusted key, or the leaf
// certificate's key, decides it, and an SM2 signature must cover an sm3
// statement. Verifiers that do not know SM2 (the reference included)
// reject such bundles; that is the price of the national algorithms.
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
// verification material) come from github.com/sigstore/sigstore-go
// (pkg/bundle) with the Sigstore protobuf types underneath, the maintained
// implementation of exactly this bundle format; the DSSE pre-authentication
// encoding from go-securesystemslib. Bundles are assembled from the
// protobuf types here, and signatures checked here, because sigstore-go's
// signer and verifier know only their own key types and its crypto/x509
// refuses SM2 certificates. ECDSA is crypto/ecdsa. SM2, SM3, SM2 keys and
// GM/T certificates (parsing and chain verification, ECDSA and RSA chains
// included) come from github.com/emmansun/gmsm (sm2, sm3, smx509): a
// maintained pure-Go implementation of the GM/T algorithms, on the Go
// module proxy, whose smx509 is crypto/x509 with SM2 added and whose
// smx509.Certificate is the x509.Certificate type. It was chosen over
// github.com/tjfoc/gmsm, whose last release is from 2021 and which forks an
// old crypto/x509. A Go port of model signing exists
// (sampras343/model-transparency-go, module github.com/sigstore/model-signing)
// but is not published on the Go module proxy, so it cannot be a
// dependency.
//
// Hand-written, because no library does it or does it the way the format
// needs: the OMS statement and its file serialization (the reference's walk,
// exclusions, component-wise ordering, root digest, shards), the choice of
// trusted key by hint, the certificate chain's reasons (an expired
// certificate and an untrusted one get different reasons; sigstore-go
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
