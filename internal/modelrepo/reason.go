package modelrepo

import (
	"errors"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Reason is the bounded cause of a failure to verify or load a model
// version. It is used as a metric label and in lifecycle events, so the set
// of values is fixed here and never grows at run time: code that cannot name
// a cause uses ReasonUnknown.
//
// A Reason is also an error, so the constants work as sentinels:
// errors.Is(err, modelrepo.ReasonDigestMismatch) is true for any *Error with
// that reason anywhere in err's chain.
type Reason string

// The failure reasons. The first group is about the bytes on disk, the
// second about the signature, the third about loading.
const (
	// ReasonDigestMismatch: a file's size or digest differs from the one
	// recorded in the manifest or the signature.
	ReasonDigestMismatch Reason = "digest_mismatch"
	// ReasonMissingFile: a file listed in the manifest or the signature is
	// absent, or is not a regular file inside the package.
	ReasonMissingFile Reason = "missing_file"
	// ReasonUnlistedFile: a file exists that neither the manifest nor the
	// signature lists (or a symlink the signature does not allow).
	ReasonUnlistedFile Reason = "unlisted_file"
	// ReasonIOError: a file could not be read for a reason other than its
	// absence (permissions, I/O error).
	ReasonIOError Reason = "io_error"
	// ReasonManifestInvalid: manifest.json is absent, malformed, fails
	// validation, or is not covered by the signature.
	ReasonManifestInvalid Reason = "manifest_invalid"

	// ReasonUnsigned: the package has no model.sig.
	ReasonUnsigned Reason = "unsigned"
	// ReasonSignatureInvalid: model.sig is not a well-formed OpenSSF Model
	// Signing bundle, or the statement it signs is malformed, inconsistent
	// or of an unsupported kind.
	ReasonSignatureInvalid Reason = "signature_invalid"
	// ReasonBadSignature: the cryptographic signature does not verify with
	// the key or certificate it names.
	ReasonBadSignature Reason = "bad_signature"
	// ReasonUntrustedKey: the package is signed with a public key that is
	// not among the trusted keys (or no key is trusted).
	ReasonUntrustedKey Reason = "untrusted_key"
	// ReasonCertExpired: the signing certificate, or a certificate of its
	// chain, is past its NotAfter time.
	ReasonCertExpired Reason = "cert_expired"
	// ReasonCertInvalid: the signing certificate does not chain to a
	// trusted CA, is not yet valid, or lacks the required key usage.
	ReasonCertInvalid Reason = "cert_invalid"

	// ReasonLoadError: the engine failed to load a verified version.
	ReasonLoadError Reason = "load_error"
	// ReasonWarmupError: the loaded version failed its warm-up inference.
	ReasonWarmupError Reason = "warmup_error"
	// ReasonCheckError: the isolated check (Options.Checker) could not run
	// at all (no binary to start, no pipe): not the version's doing, so
	// not remembered; the version is tried again when it changes or the
	// admin API loads it.
	ReasonCheckError Reason = "check_error"

	// ReasonUnknown labels an error that carries no Reason.
	ReasonUnknown Reason = "unknown"
)

// Reasons returns every Reason, in a stable order, so that metrics can
// initialise each label value to zero.
func Reasons() []Reason {
	return []Reason{
		ReasonDigestMismatch, ReasonMissingFile, ReasonUnlistedFile, ReasonIOError,
		ReasonManifestInvalid, ReasonUnsigned, ReasonSignatureInvalid, ReasonBadSignature,
		ReasonUntrustedKey, ReasonCertExpired, ReasonCertInvalid, ReasonLoadError,
		ReasonWarmupError, ReasonCheckError, ReasonUnknown,
	}
}

// Valid reports whether r is one of the values Reasons returns.
func (r Reason) Valid() bool {
	for _, v := range Reasons() {
		if r == v {
			return true
		}
	}
	return false
}

// String returns the label value.
func (r Reason) String() string { return string(r) }

// Error makes a Reason usable as a sentinel error.
func (r Reason) Error() string { return string(r) }

// maxDetail bounds the free text an Error carries, so that a hostile
// package cannot make log lines or CLI output arbitrarily long.
const maxDetail = 512

// Error is a failure with a bounded Reason and the data needed to act on
// it. Path names the file concerned, relative to the package or model root,
// when there is one. Expected and Actual hold the recorded and the observed
// digest (as "sha256:<hex>") for ReasonDigestMismatch.
type Error struct {
	Reason   Reason
	Path     string
	Expected string
	Actual   string
	Detail   string
	Err      error
}

// NewError returns an *Error with the given reason, path and detail.
// Callers that wrap an underlying error set Err instead of formatting it
// into detail, so errors.Is and errors.As still reach it.
func NewError(reason Reason, path, detail string) *Error {
	return &Error{Reason: reason, Path: path, Detail: detail}
}

// NewDigestMismatch returns the ReasonDigestMismatch error for path, with the
// recorded (expected) and observed (actual) digests.
func NewDigestMismatch(path, expected, actual string) *Error {
	return &Error{Reason: ReasonDigestMismatch, Path: path, Expected: expected, Actual: actual}
}

// Error renders "<reason>: <path>: <detail>", with "expected X, got Y" for
// digest mismatches. The result is a single line of bounded length.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(string(e.Reason))
	if e.Path != "" {
		b.WriteString(": ")
		b.WriteString(e.Path)
	}
	if e.Expected != "" || e.Actual != "" {
		b.WriteString(": expected ")
		b.WriteString(e.Expected)
		b.WriteString(", got ")
		b.WriteString(e.Actual)
	}
	if e.Detail != "" {
		b.WriteString(": ")
		b.WriteString(e.Detail)
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return oneLine(b.String(), 3*maxDetail)
}

// Unwrap returns the underlying cause.
func (e *Error) Unwrap() error { return e.Err }

// Is reports whether target is e's Reason, so Reasons work as sentinels.
func (e *Error) Is(target error) bool {
	r, ok := target.(Reason)
	return ok && r == e.Reason
}

// ReasonOf returns the Reason of the first *Error (or bare Reason) in err's
// chain, "" for a nil error and ReasonUnknown for any other error.
func ReasonOf(err error) Reason {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) && e.Reason.Valid() {
		return e.Reason
	}
	var r Reason
	if errors.As(err, &r) && r.Valid() {
		return r
	}
	return ReasonUnknown
}

// oneLine replaces control characters (newlines included) so that text from
// file names or payloads cannot forge extra log or terminal lines, and cuts
// the result to at most limit bytes on a rune boundary.
func oneLine(s string, limit int) string {
	clean := strings.Map(func(r rune) rune {
		if r == utf8.RuneError || unicode.IsControl(r) {
			return '?'
		}
		return r
	}, s)
	if len(clean) <= limit {
		return clean
	}
	cut := limit
	for cut > 0 && !utf8.RuneStart(clean[cut]) {
		cut--
	}
	return clean[:cut] + "…"
}
