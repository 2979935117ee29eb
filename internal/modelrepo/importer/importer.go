package importer

import (
	"context"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/visionserve/visionserve/internal/ctxio"
	"github.com/visionserve/visionserve/internal/modelrepo"
	"github.com/visionserve/visionserve/internal/modelrepo/manifest"
	"github.com/visionserve/visionserve/internal/modelrepo/signing"
)

// Limits bound what an import reads and writes.
type Limits struct {
	// MaxArchiveBytes bounds the zip file.
	MaxArchiveBytes int64
	// MaxEntries bounds the zip's entries, directories included.
	MaxEntries int
	// MaxFileBytes bounds one uncompressed file.
	MaxFileBytes int64
	// MaxTotalBytes bounds all files of one import, uncompressed.
	MaxTotalBytes int64
	// MaxRatio bounds an entry's uncompressed/compressed size ratio, for
	// entries over ratioFloor bytes.
	MaxRatio int64
}

// DefaultLimits are generous for models (ONNX weights compress by about
// 1.1:1, traineddata by 2:1) and small for bombs.
func DefaultLimits() Limits {
	return Limits{MaxArchiveBytes: 8 << 30, MaxEntries: 64, MaxFileBytes: 4 << 30, MaxTotalBytes: 8 << 30, MaxRatio: 100}
}

// ratioFloor is the size under which an entry's compression ratio is not
// checked: a small file cannot amplify much, and text compresses well.
const ratioFloor = 1 << 20

// Trust is what an import accepts sources from.
type Trust struct {
	// RSAKeys verify the signature.sig of zip packages.
	RSAKeys []*rsa.PublicKey
	// OpenSSF verifies directories signed with OpenSSF model signing
	// (ECDSA or SM2 keys, CA certificates); nil when none are trusted.
	OpenSSF *signing.Verifier
}

// LoadTrust reads trusted public keys (RSA for zips; ECDSA or SM2 for
// OpenSSF-signed directories) and CA certificates from PEM files. An
// unreadable or unsupported file is an error naming it.
func LoadTrust(keys, caCertificates []string) (Trust, error) {
	var t Trust
	var st signing.Trust
	for _, path := range keys {
		data, err := os.ReadFile(path)
		if err != nil {
			return Trust{}, fmt.Errorf("trusted key %s: %w", path, err)
		}
		if k, err := ParseRSAPublicKey(data); err == nil {
			t.RSAKeys = append(t.RSAKeys, k)
			continue
		}
		k, err := signing.ParsePublicKey(data)
		if err != nil {
			return Trust{}, fmt.Errorf("trusted key %s: neither an RSA (2048 bits or more) nor an ECDSA/SM2 public key: %w", path, err)
		}
		st.Keys = append(st.Keys, k)
	}
	for _, path := range caCertificates {
		certs, err := signing.LoadCertificates(path)
		if err != nil {
			return Trust{}, fmt.Errorf("trusted CA certificates %s: %w", path, err)
		}
		st.Roots = append(st.Roots, certs...)
	}
	if len(st.Keys) > 0 || len(st.Roots) > 0 {
		v, err := signing.NewVerifier(st)
		if err != nil {
			return Trust{}, err
		}
		t.OpenSSF = v
	}
	return t, nil
}

// minRSABits is the smallest RSA key trusted.
const minRSABits = 2048

// ParseRSAPublicKey decodes the first RSA public key PEM block in data:
// SubjectPublicKeyInfo ("PUBLIC KEY", as `openssl pkey -pubout` writes)
// or PKCS#1 ("RSA PUBLIC KEY"). Keys under 2048 bits are refused.
func ParseRSAPublicKey(data []byte) (*rsa.PublicKey, error) {
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return nil, errors.New("no PEM RSA public key found")
		}
		var key any
		var err error
		switch block.Type {
		case "PUBLIC KEY":
			key, err = x509.ParsePKIXPublicKey(block.Bytes)
		case "RSA PUBLIC KEY":
			key, err = x509.ParsePKCS1PublicKey(block.Bytes)
		default:
			continue
		}
		if err != nil {
			return nil, err
		}
		k, ok := key.(*rsa.PublicKey)
		if !ok {
			return nil, errors.New("not an RSA key")
		}
		if k.N.BitLen() < minRSABits {
			return nil, fmt.Errorf("RSA key of %d bits; at least %d are required", k.N.BitLen(), minRSABits)
		}
		return k, nil
	}
}

// rsaKeyID is the hex SHA-256 of an RSA key's SubjectPublicKeyInfo PEM,
// the same rule as signing.KeyID.
func rsaKeyID(k *rsa.PublicKey) string {
	der, err := x509.MarshalPKIXPublicKey(k)
	if err != nil {
		return ""
	}
	sum := sha256.Sum256(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	return hex.EncodeToString(sum[:])
}

// Options configure an Importer.
type Options struct {
	// Repo is the repository root, <repo>/<model>/<version>/.
	Repo string
	// Signer is the repository's key: it signs every imported package.
	Signer *signing.Signer
	// Trust is whom sources are accepted from.
	Trust Trust
	// Check, when set, verifies the signed package before it is published
	// (the server passes its own trust policy, so that an import the
	// server would refuse to load is refused here instead).
	Check func(ctx context.Context, dir string) error
	// Limits; zero fields take DefaultLimits.
	Limits Limits
	// Now is the clock of the provenance record; nil means time.Now.
	Now func() time.Time
}

// Importer imports sources into one repository. It is safe for
// concurrent use; two imports that pick the same new version cannot both
// publish it.
type Importer struct {
	opts Options
}

// New returns an Importer.
func New(opts Options) (*Importer, error) {
	if opts.Repo == "" {
		return nil, errors.New("importer: no repository directory")
	}
	if opts.Signer == nil {
		return nil, errors.New("importer: no signing key for the repository")
	}
	d := DefaultLimits()
	l := &opts.Limits
	for _, f := range []struct {
		v   *int64
		def int64
	}{{&l.MaxArchiveBytes, d.MaxArchiveBytes}, {&l.MaxFileBytes, d.MaxFileBytes}, {&l.MaxTotalBytes, d.MaxTotalBytes}, {&l.MaxRatio, d.MaxRatio}} {
		if *f.v <= 0 {
			*f.v = f.def
		}
	}
	if l.MaxEntries <= 0 {
		l.MaxEntries = d.MaxEntries
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Importer{opts: opts}, nil
}

// Source is one thing to import, and what to call it.
type Source struct {
	// Path is a .zip file, or a directory or file signed with OpenSSF
	// model signing.
	Path string
	// Name, Version, Kind and Runtime override config.json and the
	// inferred values; zero values mean "from config.json, else inferred"
	// (the name from the file name, the next free version, the kind from
	// the model file).
	Name    string
	Version int
	Kind    manifest.Kind
	Runtime json.RawMessage
	// Signature is the OpenSSF bundle's path; "" means <Path>/model.sig.
	Signature string
	// IgnorePaths are model-relative paths the OpenSSF verification skips.
	IgnorePaths []string
	// IgnoreUnsignedFiles accepts files the OpenSSF signature does not
	// list; they are left out of the package (model_signing's
	// --ignore-unsigned-files).
	IgnoreUnsignedFiles bool
}

// Result is a published import.
type Result struct {
	Dir      string
	Manifest *manifest.Manifest
}

// Import verifies src and publishes it as a signed package. A path
// ending in .zip is read as the zip layout, anything else as an
// OpenSSF-signed model.
func (im *Importer) Import(ctx context.Context, src Source) (*Result, error) {
	if strings.EqualFold(filepath.Ext(src.Path), ".zip") {
		return im.importZip(ctx, src)
	}
	return im.importOpenSSF(ctx, src)
}

// plan is what a verified source becomes.
type plan struct {
	name    string
	version int
	kind    manifest.Kind
	runtime json.RawMessage
}

// config is the part of a source's config.json an import reads; other
// keys are the vendor's and are kept in the file.
type config struct {
	Name    string          `json:"name"`
	Version int             `json:"version"`
	Kind    string          `json:"kind"`
	Runtime json.RawMessage `json:"runtime"`
}

// maxConfigBytes bounds config.json.
const maxConfigBytes = 1 << 20

func parseConfig(data []byte) (config, error) {
	var c config
	if err := json.Unmarshal(data, &c); err != nil {
		return c, &Error{Reason: ReasonConfigInvalid, Path: "config.json", Detail: "not a JSON object with name, version, kind and runtime of the right types", Err: err}
	}
	if c.Runtime != nil && (len(c.Runtime) == 0 || c.Runtime[0] != '{') && string(c.Runtime) != "null" {
		return c, refuse(ReasonConfigInvalid, "config.json", "runtime must be a JSON object")
	}
	if string(c.Runtime) == "null" {
		c.Runtime = nil
	}
	return c, nil
}

// makePlan settles name, version, kind and runtime: src's fields, else
// config.json's, else inferred (defaultName from the source's file name,
// kind and runtime from the model files).
func (im *Importer) makePlan(src Source, cfg config, defaultName string, kind manifest.Kind, runtime map[string]any) (plan, error) {
	p := plan{name: src.Name, version: src.Version, kind: src.Kind, runtime: src.Runtime}
	if p.name == "" {
		p.name = cfg.Name
	}
	if p.name == "" {
		p.name = sanitizeName(defaultName)
	}
	if !modelrepo.ValidName(p.name) {
		return p, refuse(ReasonConfigInvalid, "", fmt.Sprintf("model name %q is not valid (1-64 of a-z 0-9 . _ -); give one", p.name))
	}
	if p.kind == "" && cfg.Kind != "" {
		k, err := manifest.ParseKind(cfg.Kind)
		if err != nil {
			return p, &Error{Reason: ReasonConfigInvalid, Path: "config.json", Err: err}
		}
		p.kind = k
	}
	if p.kind == "" {
		p.kind = kind
	}
	if p.kind == "" {
		return p, refuse(ReasonConfigInvalid, "", "cannot tell the model's kind from its files; give one")
	}
	if p.runtime == nil {
		p.runtime = cfg.Runtime
	}
	if p.runtime == nil && len(runtime) > 0 && p.kind == kind {
		b, err := json.Marshal(runtime)
		if err != nil {
			return p, err
		}
		p.runtime = b
	}
	if p.version == 0 {
		p.version = cfg.Version
	}
	if p.version == 0 {
		v, err := nextVersion(filepath.Join(im.opts.Repo, p.name))
		if err != nil {
			return p, err
		}
		p.version = v
	}
	if p.version < 1 || p.version > manifest.MaxVersion {
		return p, refuse(ReasonConfigInvalid, "", fmt.Sprintf("version %d is not a positive integer", p.version))
	}
	return p, nil
}

// sanitizeName makes a model name of a file name: lower case, the
// extension dropped, other characters replaced by '-'.
func sanitizeName(base string) string {
	base = strings.TrimSuffix(base, filepath.Ext(base))
	b := []byte(strings.ToLower(base))
	for i, c := range b {
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			b[i] = '-'
		}
	}
	s := strings.TrimLeft(string(b), "._-")
	if len(s) > 64 {
		s = s[:64]
	}
	return s
}

// nextVersion is one more than the highest version of the model directory,
// retired (".retired-N") versions included, so a number is never reused.
func nextVersion(dir string) (int, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return 1, nil
	}
	if err != nil {
		return 0, &modelrepo.Error{Reason: modelrepo.ReasonIOError, Path: dir, Err: err}
	}
	high := 0
	for _, e := range entries {
		if n, ok := modelrepo.ParseVersion(strings.TrimPrefix(e.Name(), ".retired-")); ok && n > high {
			high = n
		}
	}
	return high + 1, nil
}

// staging is a directory beside the version directories, under a dot name
// the repository never loads, removed unless published.
type staging struct {
	dir, final string
	done       bool
}

func (im *Importer) newStaging(p plan) (*staging, error) {
	parent := filepath.Join(im.opts.Repo, p.name)
	final := filepath.Join(parent, strconv.Itoa(p.version))
	if _, err := os.Lstat(final); err == nil {
		return nil, refuse(ReasonVersionExists, final, "not overwriting a published version")
	}
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return nil, &modelrepo.Error{Reason: modelrepo.ReasonIOError, Path: parent, Err: err}
	}
	dir, err := os.MkdirTemp(parent, ".incoming-import-")
	if err != nil {
		return nil, &modelrepo.Error{Reason: modelrepo.ReasonIOError, Path: parent, Err: err}
	}
	return &staging{dir: dir, final: final}, nil
}

func (s *staging) cleanup() {
	if !s.done {
		os.RemoveAll(s.dir)
	}
}

// writeFile writes data to rel inside the staging directory.
func (s *staging) writeFile(rel string, data []byte) error {
	p := filepath.Join(s.dir, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	return os.WriteFile(p, data, 0o644)
}

// copyIn streams r into rel inside the staging directory, at most limit
// bytes, and returns the hex SHA-256 of what was written.
func (s *staging) copyIn(ctx context.Context, rel string, r io.Reader, limit int64) (string, int64, error) {
	p := filepath.Join(s.dir, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return "", 0, err
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return "", 0, err
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), ctxio.NewReader(ctx, io.LimitReader(r, limit+1)))
	if err == nil && n > limit {
		err = refuse(ReasonTooLarge, rel, fmt.Sprintf("more than %d bytes", limit))
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", n, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// finish packs the staged files with the provenance record, signs them
// with the repository's key, runs the Check and publishes by rename.
func (im *Importer) finish(ctx context.Context, s *staging, p plan, prov *manifest.Provenance) (*Result, error) {
	m, err := manifest.Build(ctx, s.dir, p.name, p.version, p.kind, p.runtime)
	if err != nil {
		return nil, err
	}
	m.Provenance = prov
	if err := manifest.Write(s.dir, m); err != nil {
		return nil, err
	}
	if _, err := im.opts.Signer.SignPackage(ctx, s.dir); err != nil {
		return nil, fmt.Errorf("sign with the repository key: %w", err)
	}
	if im.opts.Check != nil {
		if err := im.opts.Check(ctx, s.dir); err != nil {
			return nil, fmt.Errorf("the signed package does not pass the server's trust policy: %w", err)
		}
	}
	// Rename refuses a non-empty target; the Lstat makes an empty one
	// (and a race lost to another import) a refusal too.
	if _, err := os.Lstat(s.final); err == nil {
		return nil, refuse(ReasonVersionExists, s.final, "not overwriting a published version")
	}
	if err := os.Rename(s.dir, s.final); err != nil {
		return nil, refuse(ReasonVersionExists, s.final, err.Error())
	}
	s.done = true
	return &Result{Dir: s.final, Manifest: m}, nil
}
