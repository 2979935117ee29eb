package manifest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/visionserve/visionserve/internal/atomicfile"
	"github.com/visionserve/visionserve/internal/modelrepo"
)

// File names with a fixed meaning inside a package directory.
const (
	// FileName is the manifest's file name.
	FileName = "manifest.json"
	// SignatureFileName is the signature bundle's file name. It is never
	// listed in the manifest and never covered by the signature.
	SignatureFileName = "model.sig"
)

// SchemaVersion is the manifest schema this package writes and reads.
const SchemaVersion = 1

// Limits that keep a hostile manifest from costing unbounded memory.
const (
	// MaxManifestBytes bounds the size of manifest.json.
	MaxManifestBytes = 16 << 20
	// MaxFiles bounds the number of files a package may hold.
	MaxFiles = 100_000
	// MaxPathBytes bounds the length of one file path.
	MaxPathBytes = 1024
	// MaxVersion is the largest version number accepted.
	MaxVersion = modelrepo.MaxVersion
)

// Kind says which pipeline and engine a model is for.
type Kind string

// The model kinds.
const (
	KindOCRTesseract Kind = "ocr-tesseract"
	KindOCRPPOCR     Kind = "ocr-ppocr"
	KindFaceDetect   Kind = "face-detect"
	KindFaceEmbed    Kind = "face-embed"
	KindONNX         Kind = "onnx"
)

// Kinds returns every valid Kind.
func Kinds() []Kind {
	return []Kind{KindOCRTesseract, KindOCRPPOCR, KindFaceDetect, KindFaceEmbed, KindONNX}
}

// Valid reports whether k is one of Kinds.
func (k Kind) Valid() bool {
	for _, v := range Kinds() {
		if k == v {
			return true
		}
	}
	return false
}

// ParseKind returns s as a Kind, or an error listing the valid kinds.
func ParseKind(s string) (Kind, error) {
	k := Kind(s)
	if !k.Valid() {
		names := make([]string, 0, len(Kinds()))
		for _, v := range Kinds() {
			names = append(names, string(v))
		}
		return "", fmt.Errorf("unknown kind %q (want one of %s)", s, strings.Join(names, ", "))
	}
	return k, nil
}

// File is one listed file: its slash-separated path relative to the package
// directory, the lowercase hex SHA-256 of its content and its size in bytes.
type File struct {
	Path   string `json:"path"`
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
}

// Manifest is the content of manifest.json.
type Manifest struct {
	SchemaVersion int    `json:"schema_version"`
	Name          string `json:"name"`
	Version       int    `json:"version"`
	Kind          Kind   `json:"kind"`
	// Runtime holds engine options as a JSON object; the engine adapter for
	// Kind interprets it. It is nil when the manifest has none.
	Runtime json.RawMessage `json:"runtime,omitempty"`
	// Files lists every file of the package except manifest.json and
	// model.sig, sorted by Path.
	Files   []File    `json:"files"`
	Created time.Time `json:"created"`
	// Provenance is set on packages made by `visionserve model import`:
	// where the model came from and how its origin was verified before
	// the repository's key signed the package. Nil otherwise.
	Provenance *Provenance `json:"provenance,omitempty"`
}

// Provenance formats: how an imported model was signed at its origin.
const (
	// ProvenanceZip is the simple zip layout: a model file, config.json,
	// checksum.sha256 and an RSA-PSS signature.sig over the model file.
	ProvenanceZip = "zip-rsa-pss"
	// ProvenanceOpenSSF is a directory (or file) signed with the OpenSSF
	// model signing format and no visionserve manifest.
	ProvenanceOpenSSF = "openssf-model-signing"
)

// Provenance records an import. It is covered by the package signature
// like the rest of the manifest.
type Provenance struct {
	// Format is ProvenanceZip or ProvenanceOpenSSF.
	Format string `json:"format"`
	// Source is the base name of the imported archive, directory or file.
	Source string `json:"source"`
	// SourceSHA256 is the digest of the imported archive (zip only).
	SourceSHA256 string `json:"source_sha256,omitempty"`
	// Imported is when the import verified the source.
	Imported time.Time `json:"imported"`
	// Signer is who signed the source, as verified.
	Signer ProvenanceSigner `json:"signer"`
	// Evidence lists package files holding the source's own signature
	// material (its signature, checksum file or bundle), so that the
	// origin can be checked again later.
	Evidence []string `json:"evidence,omitempty"`
}

// ProvenanceSigner identifies the verified signer of an imported model.
type ProvenanceSigner struct {
	// Method is "key" or "certificate".
	Method string `json:"method"`
	// Algorithm is e.g. "rsa-pss-sha256", "ecdsa-p384-sha384", "sm2-sm3".
	Algorithm string `json:"algorithm"`
	// KeyID is the hex SHA-256 of the signing key's public key PEM.
	KeyID string `json:"key_id,omitempty"`
	// Subject and Issuer name the signing certificate and the trust
	// anchor of its chain (certificate method).
	Subject string `json:"subject,omitempty"`
	Issuer  string `json:"issuer,omitempty"`
}

// validate checks a provenance record's fields.
func (p *Provenance) validate() error {
	switch p.Format {
	case ProvenanceZip, ProvenanceOpenSSF:
	default:
		return invalid("provenance: unknown format %q", p.Format)
	}
	for _, s := range []string{p.Source, p.Signer.Method, p.Signer.Algorithm, p.Signer.KeyID, p.Signer.Subject, p.Signer.Issuer} {
		if len(s) > MaxPathBytes || !utf8.ValidString(s) || strings.ContainsFunc(s, unicode.IsControl) {
			return invalid("provenance: a field is not one line of text of at most %d bytes", MaxPathBytes)
		}
	}
	if p.Source == "" || p.Signer.Method == "" || p.Signer.Algorithm == "" || p.Imported.IsZero() {
		return invalid("provenance needs format, source, imported, signer.method and signer.algorithm")
	}
	if p.SourceSHA256 != "" && !validSHA256(p.SourceSHA256) {
		return invalid("provenance: source_sha256 must be 64 lowercase hex digits")
	}
	for _, e := range p.Evidence {
		if err := CheckPath(e); err != nil {
			return invalid("provenance: evidence: %v", err)
		}
	}
	return nil
}

// ValidName reports whether name can name a model: 1 to 64 characters of
// lowercase ASCII letters, digits, '.', '_' and '-', starting with a letter
// or digit. Names appear in directory names, URLs and metric labels. The
// rule lives in modelrepo, which discovers model directories by it.
func ValidName(name string) bool { return modelrepo.ValidName(name) }

// Validate checks every field. It returns a *modelrepo.Error with
// ReasonManifestInvalid.
func (m *Manifest) Validate() error {
	if err := m.validateHeader(); err != nil {
		return err
	}
	if err := m.validateFiles(); err != nil {
		return err
	}
	if m.Provenance != nil {
		for _, e := range m.Provenance.Evidence {
			if !slices.ContainsFunc(m.Files, func(f File) bool { return f.Path == e }) {
				return invalid("provenance: evidence %q is not a listed file", e)
			}
		}
	}
	return nil
}

func invalid(format string, args ...any) error {
	return modelrepo.NewError(modelrepo.ReasonManifestInvalid, FileName, fmt.Sprintf(format, args...))
}

// validateHeader checks everything but the file list.
func (m *Manifest) validateHeader() error {
	if m.SchemaVersion != SchemaVersion {
		return invalid("unsupported schema_version %d (want %d)", m.SchemaVersion, SchemaVersion)
	}
	if !ValidName(m.Name) {
		return invalid("invalid name %q: want 1-64 of [a-z0-9._-], starting with a letter or digit", m.Name)
	}
	if m.Version < 1 || m.Version > MaxVersion {
		return invalid("invalid version %d: want a positive integer", m.Version)
	}
	if !m.Kind.Valid() {
		_, err := ParseKind(string(m.Kind))
		return invalid("%v", err)
	}
	if m.Runtime != nil {
		if err := checkRuntime(m.Runtime); err != nil {
			return invalid("%v", err)
		}
	}
	if m.Created.IsZero() {
		return invalid("created time missing")
	}
	if m.Provenance != nil {
		return m.Provenance.validate()
	}
	return nil
}

func (m *Manifest) validateFiles() error {
	if len(m.Files) == 0 {
		return invalid("no files listed")
	}
	if len(m.Files) > MaxFiles {
		return invalid("%d files listed, more than %d", len(m.Files), MaxFiles)
	}
	seen := make(map[string]bool, len(m.Files))
	for _, f := range m.Files {
		if err := CheckPath(f.Path); err != nil {
			return invalid("%v", err)
		}
		if seen[f.Path] {
			return invalid("file %q listed twice", f.Path)
		}
		seen[f.Path] = true
		if !validSHA256(f.SHA256) {
			return invalid("file %q: sha256 must be 64 lowercase hex digits", f.Path)
		}
		if f.Size < 0 {
			return invalid("file %q: negative size", f.Path)
		}
	}
	return nil
}

// checkRuntime requires raw to be one JSON object.
func checkRuntime(raw json.RawMessage) error {
	trimmed := bytes.TrimSpace(raw)
	if len(trimmed) == 0 || trimmed[0] != '{' || !json.Valid(trimmed) {
		return errors.New("runtime must be a JSON object")
	}
	return nil
}

func validSHA256(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// CheckPath reports whether p is acceptable as a listed file path: relative,
// slash-separated, clean (no "", "." or ".." elements), valid UTF-8 without
// control characters, at most MaxPathBytes long, and not a name reserved
// for the package itself (manifest.json, model.sig, top-level git entries).
func CheckPath(p string) error {
	switch {
	case p == "":
		return errors.New("empty file path")
	case len(p) > MaxPathBytes:
		return fmt.Errorf("file path longer than %d bytes", MaxPathBytes)
	case !utf8.ValidString(p):
		return fmt.Errorf("file path %q is not valid UTF-8", p)
	case strings.ContainsFunc(p, unicode.IsControl):
		return fmt.Errorf("file path %q contains control characters", p)
	case strings.HasPrefix(p, "/") || filepath.IsAbs(p):
		return fmt.Errorf("file path %q is absolute", p)
	case strings.Contains(p, `\`):
		return fmt.Errorf("file path %q contains a backslash", p)
	}
	for _, elem := range strings.Split(p, "/") {
		if elem == "" || elem == "." || elem == ".." {
			return fmt.Errorf("file path %q is not a clean relative path", p)
		}
	}
	if path.Clean(p) != p {
		return fmt.Errorf("file path %q is not clean", p)
	}
	if excluded(p) {
		return fmt.Errorf("file path %q is reserved", p)
	}
	return nil
}

// excluded reports whether a slash-separated relative path is outside the
// listed content of a package: the manifest, the signature, and the git
// entries that OpenSSF model signing ignores by default at the top level.
func excluded(rel string) bool {
	top, _, _ := strings.Cut(rel, "/")
	switch top {
	case ".git", ".gitattributes", ".github", ".gitignore":
		return true
	}
	return rel == FileName || rel == SignatureFileName
}

// Parse decodes and validates a manifest. It is strict: unknown fields,
// duplicate keys, trailing data and documents over MaxManifestBytes are
// rejected with ReasonManifestInvalid.
func Parse(data []byte) (*Manifest, error) {
	invalid := func(err error) error {
		return &modelrepo.Error{Reason: modelrepo.ReasonManifestInvalid, Path: FileName, Err: err}
	}
	if len(data) > MaxManifestBytes {
		return nil, invalid(fmt.Errorf("larger than %d bytes", MaxManifestBytes))
	}
	if err := checkDuplicateKeys(data); err != nil {
		return nil, invalid(err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var m Manifest
	if err := dec.Decode(&m); err != nil {
		return nil, invalid(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, invalid(errors.New("trailing data after the JSON object"))
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return &m, nil
}

// checkDuplicateKeys walks the JSON token stream and fails on an object
// with the same key twice (encoding/json would silently keep the last).
// The decoder enforces the grammar; this only tracks, per open object,
// which keys it has seen and whether the next token is a key.
func checkDuplicateKeys(data []byte) error {
	type frame struct {
		object  bool
		wantKey bool
		keys    map[string]bool
	}
	var stack []*frame
	valueDone := func() {
		if n := len(stack); n > 0 && stack[n-1].object {
			stack[n-1].wantKey = true
		}
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if n := len(stack); n > 0 && stack[n-1].object && stack[n-1].wantKey {
			top := stack[n-1]
			if tok == json.Delim('}') {
				stack = stack[:n-1]
				valueDone()
				continue
			}
			key, _ := tok.(string)
			if top.keys[key] {
				return fmt.Errorf("duplicate key %q", key)
			}
			top.keys[key] = true
			top.wantKey = false
			continue
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, &frame{object: true, wantKey: true, keys: map[string]bool{}})
		case json.Delim('['):
			stack = append(stack, &frame{})
		case json.Delim(']'):
			stack = stack[:len(stack)-1]
			valueDone()
		default:
			valueDone()
		}
	}
}

// Load reads and parses dir/manifest.json.
func Load(dir string) (*Manifest, error) {
	data, err := Read(dir)
	if err != nil {
		return nil, err
	}
	return Parse(data)
}

// Read returns the bytes of dir/manifest.json, at most MaxManifestBytes+1
// of them (Parse refuses more). A verifier that checks these bytes against
// a signature then parses the same bytes, never the file a second time.
func Read(dir string) ([]byte, error) {
	f, err := os.Open(filepath.Join(dir, FileName))
	if err != nil {
		return nil, &modelrepo.Error{Reason: modelrepo.ReasonManifestInvalid, Path: FileName, Err: err}
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxManifestBytes+1))
	if err != nil {
		return nil, &modelrepo.Error{Reason: modelrepo.ReasonIOError, Path: FileName, Err: err}
	}
	return data, nil
}

// Marshal returns the manifest as indented JSON with a trailing newline.
func (m *Manifest) Marshal() ([]byte, error) {
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(data, '\n'), nil
}

// Write validates m and writes it to dir/manifest.json through a temporary
// file and a rename, so a reader never sees a partial manifest.
func Write(dir string, m *Manifest) error {
	if err := m.Validate(); err != nil {
		return err
	}
	data, err := m.Marshal()
	if err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(dir, FileName), data, 0o644)
}
