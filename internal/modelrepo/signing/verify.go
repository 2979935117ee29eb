package signing

import (
	"bytes"
	"cmp"
	"context"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/emmansun/gmsm/smx509"
	"golang.org/x/crypto/cryptobyte"
	"golang.org/x/crypto/cryptobyte/asn1"

	"github.com/visionserve/visionserve/internal/modelrepo"
	"github.com/visionserve/visionserve/internal/modelrepo/manifest"
)

// Trust is what a Verifier accepts signatures from.
type Trust struct {
	// Keys are trusted public keys for the key method.
	Keys []*ecdsa.PublicKey
	// Roots are trusted CA certificates for the certificate method. Every
	// certificate here is a trust anchor, including an intermediate CA
	// configured on purpose to narrow trust to it.
	Roots []*x509.Certificate
	// Now returns the time certificates must be valid at; nil means
	// time.Now. Bundles of the key and certificate methods carry no trusted
	// signing time, so the certificate method checks validity now, as the
	// OpenSSF Model Signing spec requires ("the leaf certificate MUST be
	// within its validity period").
	Now func() time.Time
}

// Verifier checks OpenSSF Model Signing bundles against a fixed Trust. It
// is safe for concurrent use.
type Verifier struct {
	keys     map[string]*ecdsa.PublicKey // by KeyID
	keyOrder []string
	roots    *smx509.CertPool
	rootList []*x509.Certificate
	now      func() time.Time
	// afterSignature, when set, runs between checking the signature over
	// the files and reading the manifest (a test's seam for a file
	// replaced in between).
	afterSignature func()
}

// NewVerifier returns a Verifier for trust. It fails when trust names no
// key and no CA, since such a verifier could only reject.
func NewVerifier(trust Trust) (*Verifier, error) {
	if len(trust.Keys) == 0 && len(trust.Roots) == 0 {
		return nil, errors.New("no trusted public keys or CA certificates")
	}
	v := &Verifier{keys: map[string]*ecdsa.PublicKey{}, now: trust.Now}
	if v.now == nil {
		v.now = time.Now
	}
	for _, k := range trust.Keys {
		if _, err := AlgorithmOf(k); err != nil {
			return nil, err
		}
		id, err := KeyID(k)
		if err != nil {
			return nil, err
		}
		if _, dup := v.keys[id]; !dup {
			v.keys[id] = k
			v.keyOrder = append(v.keyOrder, id)
		}
	}
	if len(trust.Roots) > 0 {
		v.roots = smx509.NewCertPool()
		v.rootList = slices.Clone(trust.Roots)
		for _, c := range trust.Roots {
			v.roots.AddCert((*smx509.Certificate)(c))
		}
	}
	return v, nil
}

// VerifyOptions adjust which files a verification covers.
type VerifyOptions struct {
	// SignaturePath is where the bundle was read from; it is excluded
	// when it lies inside the model directory.
	SignaturePath string
	// IgnorePaths are further model-relative paths to skip, for bundles
	// that predate recording ignore_paths.
	IgnorePaths []string
	// IgnoreUnsignedFiles accepts files the signature does not list.
	// Packages never use it.
	IgnoreUnsignedFiles bool
}

// Result describes a successful verification.
type Result struct {
	Method Method
	// Algorithm is the signature algorithm, the verifying key's.
	Algorithm Algorithm
	// KeyID identifies the trusted key that verified (key method) or the
	// leaf certificate's key (certificate method).
	KeyID string
	// Chain is the verified certificate chain, leaf first and trust anchor
	// last (certificate method only).
	Chain     []*x509.Certificate
	Statement *Statement
	// Digests are the verified hex digests (of Statement.HashType) by
	// resource name.
	Digests map[string]string
}

// NotAfter returns the earliest expiry in the verified chain, or the zero
// time for the key method. Exported as a gauge, it lets alerts fire before
// a signing certificate expires and its packages stop verifying.
func (r *Result) NotAfter() time.Time {
	var t time.Time
	for _, c := range r.Chain {
		if t.IsZero() || c.NotAfter.Before(t) {
			t = c.NotAfter
		}
	}
	return t
}

// Verify checks the bundle bundleJSON for the model at modelPath (a
// directory or a single file), in the reference's order: bundle structure,
// trust in the key or certificate, the DSSE signature, the statement, then
// the files on disk. Every failure is a *modelrepo.Error.
func (v *Verifier) Verify(ctx context.Context, modelPath string, bundleJSON []byte, opts VerifyOptions) (*Result, error) {
	pb, err := parseBundle(bundleJSON)
	if err != nil {
		return nil, err
	}
	if pb.payloadType != PayloadType {
		return nil, invalidBundle("payloadType %q, want %s", truncate(pb.payloadType, 100), PayloadType)
	}
	res := &Result{Method: pb.method}
	var signer *ecdsa.PublicKey
	switch pb.method {
	case MethodKey:
		candidates, err := v.keysFor(pb)
		if err != nil {
			return nil, err
		}
		var sigErr error
		for _, id := range candidates {
			if sigErr = checkSignature(pb, v.keys[id]); sigErr == nil {
				res.KeyID, signer = id, v.keys[id]
				break
			}
		}
		if sigErr != nil {
			return nil, sigErr
		}
	case MethodCertificate:
		chain, err := v.verifyChain(pb.certs)
		if err != nil {
			return nil, err
		}
		signer = chain[0].PublicKey.(*ecdsa.PublicKey) // checked by verifyChain
		if err := checkSignature(pb, signer); err != nil {
			return nil, err
		}
		res.Chain = chain
		res.KeyID, _ = KeyID(signer)
	}
	res.Algorithm, _ = AlgorithmOf(signer) // checked when the key was trusted
	st, err := parseStatement(pb.payload)
	if err != nil {
		return nil, err
	}
	// An SM2 signature vouches for SM3 digests only: a regulated
	// deployment must not find SHA-256 (or BLAKE2b) behind an SM2 key.
	if res.Algorithm == SM2SM3 && st.HashType != HashSM3 {
		return nil, invalidStatement("an SM2 signature over %q digests; SM2 statements must use %s", truncate(st.HashType, 50), HashSM3)
	}
	res.Statement = st

	ex := buildExclusions(modelPath, opts.SignaturePath, st.IgnorePaths, opts.IgnorePaths)
	items, err := collect(ctx, modelPath, ex, st.AllowSymlinks)
	if err != nil {
		return nil, err
	}
	single := len(items) == 1 && items[0].name == "."
	res.Digests, err = compare(ctx, st, items, opts.IgnoreUnsignedFiles, single, filepath.Base(modelPath))
	if err != nil {
		return nil, err
	}
	return res, nil
}

// keysFor picks the trusted keys that may have made pb's signature: the one
// its hint names, the one its legacy rawBytes PEM holds, or, when the bundle
// names no key, every trusted key.
func (v *Verifier) keysFor(pb *parsedBundle) ([]string, error) {
	if len(v.keys) == 0 {
		return nil, modelrepo.NewError(modelrepo.ReasonUntrustedKey, "", "signed with a key, and no public keys are trusted")
	}
	id := strings.ToLower(pb.hint)
	if id == "" && len(pb.rawKeyPEM) > 0 {
		pub, err := ParsePublicKey(pb.rawKeyPEM)
		if err != nil {
			return nil, &modelrepo.Error{Reason: modelrepo.ReasonSignatureInvalid, Detail: "publicKey.rawBytes", Err: err}
		}
		if id, err = KeyID(pub); err != nil {
			return nil, &modelrepo.Error{Reason: modelrepo.ReasonSignatureInvalid, Detail: "publicKey.rawBytes", Err: err}
		}
	}
	if id == "" {
		return v.keyOrder, nil
	}
	if _, ok := v.keys[id]; !ok {
		return nil, modelrepo.NewError(modelrepo.ReasonUntrustedKey, "", fmt.Sprintf("signed by key %s, which is not trusted", truncate(id, 64)))
	}
	return []string{id}, nil
}

// verifyChain checks the bundle's certificates against the trusted roots
// at v.now(): expiry first (ReasonCertExpired), then the leaf's key and
// usage and the chain itself (ReasonCertInvalid). It returns the chain
// from leaf to anchor.
func (v *Verifier) verifyChain(certs []*x509.Certificate) ([]*x509.Certificate, error) {
	if v.roots == nil {
		return nil, modelrepo.NewError(modelrepo.ReasonCertInvalid, "", "signed with a certificate, and no CA certificates are trusted")
	}
	now := v.now()
	leaf := certs[0]
	for _, c := range certs {
		if now.After(c.NotAfter) {
			return nil, modelrepo.NewError(modelrepo.ReasonCertExpired, "", fmt.Sprintf("certificate %q expired at %s", truncate(c.Subject.String(), 200), c.NotAfter.UTC().Format(time.RFC3339)))
		}
		if now.Before(c.NotBefore) {
			return nil, modelrepo.NewError(modelrepo.ReasonCertInvalid, "", fmt.Sprintf("certificate %q is not valid before %s", truncate(c.Subject.String(), 200), c.NotBefore.UTC().Format(time.RFC3339)))
		}
	}
	pub, ok := leaf.PublicKey.(*ecdsa.PublicKey)
	if !ok {
		return nil, modelrepo.NewError(modelrepo.ReasonCertInvalid, "", "the signing certificate's key is not ECDSA or SM2")
	}
	if _, err := AlgorithmOf(pub); err != nil {
		return nil, &modelrepo.Error{Reason: modelrepo.ReasonCertInvalid, Err: err}
	}
	if err := checkLeafUsage(leaf); err != nil {
		return nil, &modelrepo.Error{Reason: modelrepo.ReasonCertInvalid, Err: err}
	}
	// smx509 is crypto/x509's chain builder with SM2 keys and SM2-with-SM3
	// signatures added (GM/T 0015 certificates); the other algorithms
	// verify as crypto/x509 verifies them.
	inter := smx509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert((*smx509.Certificate)(c))
	}
	chains, err := (*smx509.Certificate)(leaf).Verify(smx509.VerifyOptions{
		Roots:         v.roots,
		Intermediates: inter,
		CurrentTime:   now,
		// The default would be ServerAuth. Code signing is what the
		// reference's certificates carry; a chain without any EKU passes.
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
	})
	if err != nil {
		var inv x509.CertificateInvalidError
		if errors.As(err, &inv) && inv.Reason == x509.Expired && inv.Cert != nil && now.After(inv.Cert.NotAfter) {
			// A trusted root past its NotAfter.
			return nil, &modelrepo.Error{Reason: modelrepo.ReasonCertExpired, Err: err}
		}
		detail := "certificate does not chain to a trusted CA"
		if v.emptyUserIDCertificate(certs) {
			detail += "; " + emptyUserIDHint
		}
		return nil, &modelrepo.Error{Reason: modelrepo.ReasonCertInvalid, Detail: detail, Err: err}
	}
	chain := make([]*x509.Certificate, len(chains[0]))
	for i, c := range chains[0] {
		chain[i] = c.ToX509()
	}
	return chain, nil
}

// emptyUserIDCertificate reports whether a certificate of the bundle's
// chain, or a trusted root, carries an SM2 signature of its issuer (found
// among them by name) made with an empty user id rather than the GM/T
// 0015 default: the one way OpenSSL 3.0 makes SM2 certificates that no
// conforming verifier accepts, worth naming.
func (v *Verifier) emptyUserIDCertificate(certs []*x509.Certificate) bool {
	all := append(append([]*x509.Certificate(nil), certs...), v.rootList...)
	for _, c := range all {
		for _, issuer := range all {
			pub, ok := issuer.PublicKey.(*ecdsa.PublicKey)
			if ok && bytes.Equal(c.RawIssuer, issuer.RawSubject) && signedWithEmptySM2UserID(pub, c.RawTBSCertificate, c.Signature) {
				return true
			}
		}
	}
	return false
}

// checkLeafUsage requires the signing certificate to allow digital
// signatures: keyUsage digitalSignature when the extension is present,
// otherwise an explicit code-signing extended key usage. This is the
// reference's rule ("digitalSignature, or else codeSigning").
func checkLeafUsage(leaf *x509.Certificate) error {
	if leaf.KeyUsage != 0 {
		if leaf.KeyUsage&x509.KeyUsageDigitalSignature == 0 {
			return errors.New("the signing certificate's key usage lacks digitalSignature")
		}
		return nil
	}
	if slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageCodeSigning) {
		return nil
	}
	return errors.New("the signing certificate allows neither digitalSignature nor codeSigning")
}

func isSelfSigned(c *x509.Certificate) bool {
	sc := (*smx509.Certificate)(c)
	return bytes.Equal(c.RawIssuer, c.RawSubject) && sc.CheckSignatureFrom(sc) == nil
}

// checkSignature verifies pb's DSSE signature with pub: over the
// pre-authentication encoding of the envelope's payload type and payload,
// an ASN.1 DER signature of pub's algorithm. Bundles made by model_signing
// v0.2.0 signed a different, buggy encoding; for those alone the legacy
// encoding is tried as well.
func checkSignature(pb *parsedBundle, pub *ecdsa.PublicKey) error {
	// The OMS reference accepts only ASN.1 DER signatures (not IEEE P1363
	// raw r||s); anything else is refused with that reason.
	if !isDERSignature(pb.sig) {
		return modelrepo.NewError(modelrepo.ReasonBadSignature, "", "the signature is not an ASN.1 DER signature")
	}
	if verifyMessage(pub, pae(pb.payloadType, pb.payload), pb.sig) {
		return nil
	}
	if isLegacyPayload(pb.payload) && verifyLegacy(pub, pb.payload, pb.sig) {
		return nil
	}
	if signedWithEmptySM2UserID(pub, pae(pb.payloadType, pb.payload), pb.sig) {
		return modelrepo.NewError(modelrepo.ReasonBadSignature, "", emptyUserIDHint)
	}
	return modelrepo.NewError(modelrepo.ReasonBadSignature, "", "the DSSE signature does not verify")
}

// isDERSignature reports whether sig is exactly one DER SEQUENCE of two
// INTEGERs, with nothing after it.
func isDERSignature(sig []byte) bool {
	var inner cryptobyte.String
	var r, s big.Int
	in := cryptobyte.String(sig)
	return in.ReadASN1(&inner, asn1.SEQUENCE) && in.Empty() &&
		inner.ReadASN1Integer(&r) && inner.ReadASN1Integer(&s) && inner.Empty()
}

// Verified is a package that passed VerifyPackage.
type Verified struct {
	Manifest  *manifest.Manifest
	Signature *Result
}

// VerifyPackage verifies the package directory dir: dir/model.sig must be
// a valid, trusted signature over exactly the files in dir (model.sig
// excepted), manifest.json must be one of them, and manifest.json must list
// every other file with the signed digest. A package without model.sig
// fails with modelrepo.ReasonUnsigned; whether to load it anyway (an
// allow-unsigned switch, with manifest.VerifyFiles) is the caller's choice.
func (v *Verifier) VerifyPackage(ctx context.Context, dir string) (*Verified, error) {
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		if err == nil {
			err = errors.New("not a directory")
		}
		return nil, &modelrepo.Error{Reason: modelrepo.ReasonMissingFile, Detail: "package directory", Err: err}
	}
	sigPath := filepath.Join(dir, manifest.SignatureFileName)
	data, err := readLimited(sigPath, MaxBundleBytes)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, modelrepo.NewError(modelrepo.ReasonUnsigned, manifest.SignatureFileName, "the package has no signature")
	}
	if err != nil {
		return nil, &modelrepo.Error{Reason: modelrepo.ReasonSignatureInvalid, Path: manifest.SignatureFileName, Err: err}
	}
	res, err := v.Verify(ctx, dir, data, VerifyOptions{SignaturePath: sigPath})
	if err != nil {
		return nil, err
	}
	if v.afterSignature != nil {
		v.afterSignature()
	}
	m, err := signedManifest(dir, res.Statement)
	if err != nil {
		return nil, err
	}
	if err := agreeWithManifest(ctx, m, dir, res.Statement, res.Digests); err != nil {
		return nil, err
	}
	return &Verified{Manifest: m, Signature: res}, nil
}

// signedManifest reads dir/manifest.json once, checks those bytes against
// the digests the statement signed for it, and parses the same bytes. The
// signature's digests were computed from the file moments before; reading
// it again by name and trusting what comes back would let a manifest
// swapped in between (another runtime object, other file digests) be
// loaded under a valid signature.
func signedManifest(dir string, st *Statement) (*manifest.Manifest, error) {
	data, err := manifest.Read(dir)
	if err != nil {
		return nil, err
	}
	if err := matchesStatement(data, manifest.FileName, st); err != nil {
		return nil, err
	}
	return manifest.Parse(data)
}

// matchesStatement checks data, the content of the resource name, against
// the statement: its one digest, or its shards, which must cover data
// exactly.
func matchesStatement(data []byte, name string, st *Statement) error {
	type span struct {
		start, end int64
		digest     string
	}
	var spans []span
	for _, r := range st.Resources {
		switch {
		case st.Method == SerializeShards:
			if file, start, end, ok := splitShard(r.Name); ok && file == name {
				spans = append(spans, span{start, end, r.Digest})
			}
		case r.Name == name:
			spans = append(spans, span{0, int64(len(data)), r.Digest})
		}
	}
	if len(spans) == 0 {
		return modelrepo.NewError(modelrepo.ReasonManifestInvalid, name, "absent or not covered by the signature")
	}
	slices.SortFunc(spans, func(a, b span) int { return cmp.Compare(a.start, b.start) })
	var next int64
	for _, s := range spans {
		if s.start != next || s.end > int64(len(data)) {
			return modelrepo.NewError(modelrepo.ReasonDigestMismatch, name, fmt.Sprintf("the signed content does not match the file's %d bytes as read", len(data)))
		}
		h, err := newHash(st.HashType)
		if err != nil {
			return err
		}
		h.Write(data[s.start:s.end])
		if got := hex.EncodeToString(h.Sum(nil)); got != s.digest {
			return modelrepo.NewDigestMismatch(name, st.HashType+":"+s.digest, st.HashType+":"+got)
		}
		next = s.end
	}
	if next != int64(len(data)) {
		return modelrepo.NewError(modelrepo.ReasonDigestMismatch, name, fmt.Sprintf("the signed content does not match the file's %d bytes as read", len(data)))
	}
	return nil
}

// agreeWithManifest checks dir against m given the digests a statement
// signed: when those are whole-file SHA-256 digests, by comparing them
// (no byte hashed again); otherwise (shards, BLAKE2b, SM3) by hashing the
// files for the manifest's own SHA-256 digests.
func agreeWithManifest(ctx context.Context, m *manifest.Manifest, dir string, st *Statement, digests map[string]string) error {
	if st.Method == SerializeFiles && st.HashType == HashSHA256 {
		return m.VerifyDigests(ctx, dir, digests)
	}
	return m.Verify(ctx, dir)
}
