package importer

import (
	"errors"
	"strings"

	"github.com/visionserve/visionserve/internal/modelrepo"
)

// Reason is the bounded cause of a refused import that is not about a
// signature; signature and digest failures carry modelrepo's reasons
// (bad_signature, untrusted_key, signature_invalid, digest_mismatch,
// missing_file, unlisted_file, cert_expired, cert_invalid).
type Reason string

// The import reasons.
const (
	// ReasonArchiveInvalid: not a zip archive, or an entry is encrypted or
	// compressed with an unsupported method.
	ReasonArchiveInvalid Reason = "archive_invalid"
	// ReasonUnsafePath: an entry's name is absolute, climbs out with "..",
	// uses backslashes or control characters, or the entry is a symlink
	// or device (zip-slip).
	ReasonUnsafePath Reason = "unsafe_path"
	// ReasonTooLarge: the archive, an entry, the total, the entry count or
	// a compression ratio is over its limit (zip bombs).
	ReasonTooLarge Reason = "too_large"
	// ReasonLayout: a required file is missing, an unexpected one is
	// present, or checksum.sha256 is malformed.
	ReasonLayout Reason = "layout_invalid"
	// ReasonConfigInvalid: config.json or the name, version, kind or
	// runtime given is unusable.
	ReasonConfigInvalid Reason = "config_invalid"
	// ReasonVersionExists: the version to publish already exists.
	ReasonVersionExists Reason = "version_exists"
)

// Reasons returns every Reason, for metrics.
func Reasons() []Reason {
	return []Reason{ReasonArchiveInvalid, ReasonUnsafePath, ReasonTooLarge, ReasonLayout, ReasonConfigInvalid, ReasonVersionExists}
}

// Error is a refused import: a Reason, the file concerned and a detail.
type Error struct {
	Reason Reason
	Path   string
	Detail string
	Err    error
}

func (e *Error) Error() string {
	parts := []string{string(e.Reason)}
	if e.Path != "" {
		parts = append(parts, e.Path)
	}
	if e.Detail != "" {
		parts = append(parts, e.Detail)
	}
	if e.Err != nil {
		parts = append(parts, e.Err.Error())
	}
	return strings.Join(parts, ": ")
}

func (e *Error) Unwrap() error { return e.Err }

func refuse(reason Reason, path, detail string) *Error {
	return &Error{Reason: reason, Path: path, Detail: detail}
}

// ReasonOf returns the cause of a failed import as a bounded label: an
// importer Reason, a modelrepo.Reason, or "unknown"; "" for nil.
func ReasonOf(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return string(e.Reason)
	}
	return string(modelrepo.ReasonOf(err))
}
