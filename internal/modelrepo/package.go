package modelrepo

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// Package is a version directory that a Verifier accepted: what it is, the
// digest of every file, and who signed it. Loaders build from it.
type Package struct {
	Dir     string
	Name    string
	Version int
	Kind    string
	// Runtime is the manifest's engine options (a JSON object), or nil.
	Runtime json.RawMessage
	// Files are the verified files by slash-separated relative path.
	Files  map[string]File
	Signer Signer
}

// File is a verified file's size and lowercase hex SHA-256.
type File struct {
	SHA256 string
	Size   int64
}

// Signer says who signed a package.
type Signer struct {
	// Method is "key", "certificate", or "" for an unsigned package
	// admitted by the allow-unsigned switch.
	Method string `json:"method"`
	// Algorithm is the signature algorithm (signing.Algorithm, e.g.
	// "ecdsa-p256-sha256" or "sm2-sm3"); empty for an unsigned package.
	Algorithm string `json:"algorithm,omitempty"`
	// KeyID is the signing key's identifier (SHA-256 of its PEM).
	KeyID string `json:"key_id,omitempty"`
	// Subject is the signing certificate's subject (certificate method).
	Subject string `json:"subject,omitempty"`
	// NotAfter is the earliest expiry in the verified certificate chain;
	// zero for the key method.
	NotAfter time.Time `json:"not_after,omitzero"`
}

// MaxReadBytes bounds a file ReadFile reads into memory: 2 GiB, beyond
// which neither engine loads a model from memory (a serialised ONNX
// protobuf, a traineddata image).
const MaxReadBytes = 1<<31 - 1

// ReadFile reads the listed file rel and checks its size and SHA-256
// against the verified ones. Loaders read model bytes through it and hand
// those very bytes to their engine, so what is loaded is what was verified
// even if the file changed on disk after verification: a changed file is
// refused with ReasonDigestMismatch. Every kind loads this way; no loader
// opens a package file by path.
func (p *Package) ReadFile(ctx context.Context, rel string) ([]byte, error) {
	f, ok := p.Files[rel]
	if !ok {
		return nil, NewError(ReasonMissingFile, rel, "the loader needs this file and the package does not list it")
	}
	if f.Size > MaxReadBytes {
		return nil, NewError(ReasonLoadError, rel, fmt.Sprintf("%d bytes: larger than the %d bytes an engine loads from memory", f.Size, int64(MaxReadBytes)))
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	fh, err := os.Open(filepath.Join(p.Dir, filepath.FromSlash(rel)))
	if err != nil {
		reason := ReasonIOError
		if errors.Is(err, fs.ErrNotExist) {
			reason = ReasonMissingFile
		}
		return nil, &Error{Reason: reason, Path: rel, Err: err}
	}
	defer fh.Close()
	data := make([]byte, f.Size)
	if _, err := io.ReadFull(fh, data); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return nil, &Error{Reason: ReasonDigestMismatch, Path: rel, Expected: fmt.Sprintf("%d bytes", f.Size), Actual: "fewer bytes"}
		}
		return nil, &Error{Reason: ReasonIOError, Path: rel, Err: err}
	}
	var one [1]byte
	if n, _ := fh.Read(one[:]); n > 0 {
		return nil, &Error{Reason: ReasonDigestMismatch, Path: rel, Expected: fmt.Sprintf("%d bytes", f.Size), Actual: "more bytes"}
	}
	sum := sha256.Sum256(data)
	if got := hex.EncodeToString(sum[:]); got != f.SHA256 {
		return nil, NewDigestMismatch(rel, "sha256:"+f.SHA256, "sha256:"+got)
	}
	return data, nil
}

// Digest identifies what the package would load: its kind, its runtime
// options and every file's path, size and SHA-256 (manifest.json
// included), as "sha256:<hex>". Two packages with the same digest load the
// same way, so a failure to load one is a failure to load the other.
func (p *Package) Digest() string {
	h := sha256.New()
	fmt.Fprintf(h, "kind\x00%s\x00runtime\x00%s\x00", p.Kind, p.Runtime)
	for _, rel := range slices.Sorted(maps.Keys(p.Files)) {
		f := p.Files[rel]
		fmt.Fprintf(h, "file\x00%s\x00%d\x00%s\x00", rel, f.Size, f.SHA256)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// Verifier checks a version directory (digests, signature, trust) and
// describes what it accepted. Every failure is an *Error with a Reason.
type Verifier interface {
	Verify(ctx context.Context, dir string) (*Package, error)
}

// Loader builds a servable Instance from a verified package. One Loader is
// registered per package kind (Options.Loaders).
type Loader interface {
	Load(ctx context.Context, pkg *Package) (Instance, error)
}

// RuntimeChecker is implemented by a Loader that can check a package's
// runtime options without loading anything. The repository calls it as
// the last step of verification, so a version with options its loader
// refuses (an unknown key, an engine variable outside the allowlist) fails
// verification, with the loader's Reason (ReasonManifestInvalid), before
// any engine sees its files.
type RuntimeChecker interface {
	CheckRuntime(pkg *Package) error
}

// Checker tries a verified version outside the serving process before it
// is loaded there: a model file that crashes its engine, loads for ever or
// takes all the memory must cost a short-lived process, never the server.
// Check returns nil when the version loaded and warmed up there, or an
// error with a Reason: ReasonLoadError or ReasonWarmupError for what the
// version did (the error says whether it crashed, hung or ran out of
// memory), ReasonManifestInvalid and the like for what the loader refused.
// A version the Checker refuses is never loaded in the serving process.
type Checker interface {
	Check(ctx context.Context, pkg *Package) error
}

// CheckerFunc adapts a function to Checker.
type CheckerFunc func(ctx context.Context, pkg *Package) error

// Check implements Checker.
func (f CheckerFunc) Check(ctx context.Context, pkg *Package) error { return f(ctx, pkg) }

// LoaderFunc adapts a function to Loader.
type LoaderFunc func(ctx context.Context, pkg *Package) (Instance, error)

// Load implements Loader.
func (f LoaderFunc) Load(ctx context.Context, pkg *Package) (Instance, error) { return f(ctx, pkg) }

// Instance is one loaded model version. The repository calls Warmup once
// before publishing it and Close once after it has drained: no request
// holds it then, so Close may free every engine.
type Instance interface {
	Warmup(ctx context.Context) error
	Close() error
}
