package signing

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"

	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	protodsse "github.com/sigstore/protobuf-specs/gen/pb-go/dsse"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/visionserve/visionserve/internal/atomicfile"
	"github.com/visionserve/visionserve/internal/modelrepo"
	"github.com/visionserve/visionserve/internal/modelrepo/manifest"
)

// Signer signs models with a private key, either bare (the key method:
// the bundle names the key by its KeyID) or with a certificate chain (the
// certificate method: the bundle carries the leaf and any intermediates;
// verifiers supply the root).
type Signer struct {
	key   crypto.Signer
	pub   *ecdsa.PublicKey
	alg   Algorithm
	keyID string
	chain []*x509.Certificate // leaf first; empty for the key method
}

// NewSigner returns a Signer for key (an *ecdsa.PrivateKey). With a
// non-empty chain (leaf first, then intermediates) it signs with the
// certificate method; the leaf must certify key's public key and allow
// digital signatures or code signing. Self-signed certificates after the
// leaf (a root CA included by habit) are dropped: verifiers bring their own
// roots.
func NewSigner(key crypto.Signer, chain []*x509.Certificate) (*Signer, error) {
	if key == nil {
		return nil, errors.New("no private key")
	}
	pub, ok := key.Public().(*ecdsa.PublicKey)
	if !ok {
		return nil, ErrUnsupportedKey
	}
	alg, err := AlgorithmOf(pub)
	if err != nil {
		return nil, err
	}
	id, err := KeyID(pub)
	if err != nil {
		return nil, err
	}
	s := &Signer{key: key, pub: pub, alg: alg, keyID: id}
	if len(chain) == 0 {
		return s, nil
	}
	leaf := chain[0]
	if !pub.Equal(leaf.PublicKey) {
		return nil, errors.New("the certificate does not certify this private key")
	}
	if err := checkLeafUsage(leaf); err != nil {
		return nil, err
	}
	s.chain = append(s.chain, leaf)
	for _, c := range chain[1:] {
		if isSelfSigned(c) {
			continue
		}
		s.chain = append(s.chain, c)
	}
	return s, nil
}

// LoadSigner reads a private key and, if certPath is set, the signing
// certificate and an optional chain file of intermediates.
func LoadSigner(keyPath, certPath, chainPath string) (*Signer, error) {
	key, err := LoadPrivateKey(keyPath)
	if err != nil {
		return nil, err
	}
	if certPath == "" {
		if chainPath != "" {
			return nil, errors.New("a certificate chain needs a certificate")
		}
		return NewSigner(key, nil)
	}
	chain, err := LoadCertificates(certPath)
	if err != nil {
		return nil, err
	}
	if chainPath != "" {
		more, err := LoadCertificates(chainPath)
		if err != nil {
			return nil, err
		}
		chain = append(chain, more...)
	}
	return NewSigner(key, chain)
}

// Method returns the signing method the Signer uses.
func (s *Signer) Method() Method {
	if len(s.chain) > 0 {
		return MethodCertificate
	}
	return MethodKey
}

// Certificate returns the signing certificate, or nil for the key method.
func (s *Signer) Certificate() *x509.Certificate {
	if len(s.chain) == 0 {
		return nil
	}
	return s.chain[0]
}

// KeyID returns the KeyID of the signing key.
func (s *Signer) KeyID() string { return s.keyID }

// PublicKey returns the public half of the signing key.
func (s *Signer) PublicKey() *ecdsa.PublicKey { return s.pub }

// Algorithm returns the signature algorithm of the signing key.
func (s *Signer) Algorithm() Algorithm { return s.alg }

// SignOptions choose what a signature covers.
type SignOptions struct {
	// SignaturePath is where the bundle will be stored. When it lies
	// inside the model directory it is excluded and recorded as ignored.
	SignaturePath string
	// IgnorePaths are further model-relative paths to leave unsigned; they
	// are recorded in the statement so verifiers skip them too.
	IgnorePaths []string
	// ShardSize, when positive, signs byte ranges of this many bytes
	// instead of whole files (the OMS "shards" serialization).
	ShardSize int64
}

// Sign hashes the model at modelPath (a directory or a single file) and
// returns an OpenSSF Model Signing bundle (Sigstore bundle JSON) over it.
func (s *Signer) Sign(ctx context.Context, modelPath string, opts SignOptions) ([]byte, error) {
	data, _, err := s.sign(ctx, modelPath, opts)
	return data, err
}

func (s *Signer) sign(ctx context.Context, modelPath string, opts SignOptions) ([]byte, *Statement, error) {
	st, payload, err := buildStatement(ctx, modelPath, s.alg.statementHash(), opts)
	if err != nil {
		return nil, nil, err
	}
	data, err := s.signPayload(ctx, payload)
	if err != nil {
		return nil, nil, err
	}
	return data, st, nil
}

// signPayload signs payload's DSSE pre-authentication encoding and wraps
// both in a bundle (see assembleBundle), then checks the result with the
// verification path so a broken signer cannot write a bundle nobody can
// verify.
func (s *Signer) signPayload(_ context.Context, payload []byte) ([]byte, error) {
	sig, err := signMessage(s.alg, s.key, pae(PayloadType, payload))
	if err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	data, err := assembleBundle(payload, sig, s.keyID, s.chain)
	if err != nil {
		return nil, err
	}
	parsed, err := parseBundle(data)
	if err != nil {
		return nil, fmt.Errorf("self-check: %w", err)
	}
	if err := checkSignature(parsed, s.pub); err != nil {
		return nil, fmt.Errorf("self-check: %w", err)
	}
	return data, nil
}

// assembleBundle wraps an in-toto payload and its signature in a DSSE
// envelope inside a Sigstore bundle (the protobuf types of
// sigstore/protobuf-specs), naming the signer by keyID (key method) or by
// chain (certificate method, leaf first). The bundle is assembled here
// rather than by sigstore-go's sign.Bundle, which knows only the
// algorithms of its own key types; the shape is the same for every
// algorithm, SM2 included.
func assembleBundle(payload, sig []byte, keyID string, chain []*x509.Certificate) ([]byte, error) {
	pb := &protobundle.Bundle{
		MediaType: BundleMediaType,
		Content: &protobundle.Bundle_DsseEnvelope{DsseEnvelope: &protodsse.Envelope{
			Payload:     payload,
			PayloadType: PayloadType,
			Signatures:  []*protodsse.Signature{{Sig: sig}},
		}},
	}
	if len(chain) == 0 {
		pb.VerificationMaterial = &protobundle.VerificationMaterial{
			Content: &protobundle.VerificationMaterial_PublicKey{PublicKey: &protocommon.PublicKeyIdentifier{Hint: keyID}},
		}
	} else {
		certs := &protocommon.X509CertificateChain{}
		for _, c := range chain {
			certs.Certificates = append(certs.Certificates, &protocommon.X509Certificate{RawBytes: c.Raw})
		}
		pb.VerificationMaterial = &protobundle.VerificationMaterial{
			Content: &protobundle.VerificationMaterial_X509CertificateChain{X509CertificateChain: certs},
		}
	}
	out, err := protojson.Marshal(pb)
	if err != nil {
		return nil, err
	}
	// protojson deliberately varies its whitespace; compact it so the same
	// signature always serialises to the same bytes.
	var buf bytes.Buffer
	if err := json.Compact(&buf, out); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// SignPackage signs the package directory dir and writes dir/model.sig. It
// first checks dir against its manifest.json, so a stale manifest is never
// signed, and afterwards that the signed digests agree with the manifest.
// The signature file is written to a temporary name and renamed.
func (s *Signer) SignPackage(ctx context.Context, dir string) (*manifest.Manifest, error) {
	m, err := manifest.VerifyFiles(ctx, dir)
	if err != nil {
		return nil, err
	}
	sigPath := filepath.Join(dir, manifest.SignatureFileName)
	data, st, err := s.sign(ctx, dir, SignOptions{SignaturePath: sigPath})
	if err != nil {
		return nil, err
	}
	digests := make(map[string]string, len(st.Resources))
	for _, r := range st.Resources {
		digests[r.Name] = r.Digest
	}
	if _, ok := digests[manifest.FileName]; !ok {
		return nil, modelrepo.NewError(modelrepo.ReasonManifestInvalid, manifest.FileName, "not covered by the signature")
	}
	// Files may change while they are hashed twice; refuse to write a
	// signature that disagrees with the manifest.
	if err := agreeWithManifest(ctx, m, dir, st, digests); err != nil {
		return nil, err
	}
	if err := atomicfile.Write(sigPath, data, 0o644); err != nil {
		return nil, err
	}
	return m, nil
}

// buildStatement serialises the model as the reference does (files or
// shards, component-wise path order) with the hash hashType (HashSHA256,
// or HashSM3 for SM2 signers) and returns the statement and its JSON
// encoding, the DSSE payload.
func buildStatement(ctx context.Context, modelPath, hashType string, opts SignOptions) (*Statement, []byte, error) {
	ex := buildExclusions(modelPath, opts.SignaturePath, opts.IgnorePaths)
	items, err := collect(ctx, modelPath, ex, true)
	if err != nil {
		return nil, nil, err
	}
	st := &Statement{PredicateType: PredicateType, Method: SerializeFiles, HashType: hashType}
	if opts.ShardSize > 0 {
		st.Method, st.ShardSize = SerializeShards, opts.ShardSize
	}
	algorithm := st.HashType
	if st.Method == SerializeShards {
		algorithm += "-sharded-" + strconv.FormatInt(st.ShardSize, 10)
	}
	buf := make([]byte, hashBufSize)
	for _, it := range items {
		st.AllowSymlinks = st.AllowSymlinks || it.symlink
		if st.Method == SerializeFiles {
			d, _, err := hashRange(ctx, it.open, st.HashType, 0, -1, buf)
			if err != nil {
				return nil, nil, fileErr(it.name, err)
			}
			st.Resources = append(st.Resources, Resource{Name: it.name, Algorithm: algorithm, Digest: d})
			continue
		}
		for start := int64(0); start < it.size; start += st.ShardSize {
			end := min(start+st.ShardSize, it.size)
			d, _, err := hashRange(ctx, it.open, st.HashType, start, end-start, buf)
			if err != nil {
				return nil, nil, fileErr(it.name, err)
			}
			name := fmt.Sprintf("%s:%d:%d", it.name, start, end)
			st.Resources = append(st.Resources, Resource{Name: name, Algorithm: algorithm, Digest: d})
		}
	}
	slices.SortFunc(st.Resources, func(a, b Resource) int {
		return componentCompare(a.Name, b.Name, st.Method == SerializeShards)
	})
	rootHash := rootHashOf(st.HashType)
	h, err := newHash(rootHash)
	if err != nil {
		return nil, nil, err
	}
	for _, r := range st.Resources {
		raw, _ := hex.DecodeString(r.Digest)
		h.Write(raw)
	}
	st.RootDigest = hex.EncodeToString(h.Sum(nil))
	st.SubjectName = subjectName(modelPath)
	st.IgnorePaths = slices.Sorted(slices.Values(ex))

	w := struct {
		Type          string        `json:"_type"`
		Subject       []wireSubject `json:"subject"`
		PredicateType string        `json:"predicateType"`
		Predicate     struct {
			Serialization struct {
				Method        string   `json:"method"`
				HashType      string   `json:"hash_type"`
				AllowSymlinks bool     `json:"allow_symlinks"`
				ShardSize     int64    `json:"shard_size,omitempty"`
				IgnorePaths   []string `json:"ignore_paths"`
			} `json:"serialization"`
			Resources []Resource `json:"resources"`
		} `json:"predicate"`
	}{
		Type:          StatementType,
		Subject:       []wireSubject{{Name: st.SubjectName, Digest: map[string]string{rootHash: st.RootDigest}}},
		PredicateType: PredicateType,
	}
	ser := &w.Predicate.Serialization
	ser.Method, ser.HashType, ser.AllowSymlinks = st.Method, st.HashType, st.AllowSymlinks
	ser.ShardSize, ser.IgnorePaths = st.ShardSize, st.IgnorePaths
	w.Predicate.Resources = st.Resources
	if w.Predicate.Resources == nil {
		w.Predicate.Resources = []Resource{}
	}
	payload, err := json.MarshalIndent(w, "", "  ")
	if err != nil {
		return nil, nil, err
	}
	return st, payload, nil
}

// subjectName is the informational subject name: the model path's final
// element, resolved for "." and similar.
func subjectName(modelPath string) string {
	if abs, err := filepath.Abs(modelPath); err == nil {
		modelPath = abs
	}
	return filepath.Base(modelPath)
}
