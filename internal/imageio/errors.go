package imageio

import (
	"errors"
	"fmt"
)

// Sentinel errors callers branch on; every error Open and Decode return
// wraps exactly one of them. Transports map them to status codes.
var (
	// ErrUnsupported: the bytes are not an image format visionserve reads.
	ErrUnsupported = errors.New("unsupported image format")
	// ErrUndecodable: the format is known but the bytes are corrupt or truncated.
	ErrUndecodable = errors.New("undecodable image")
	// ErrTooLarge: a configured limit (bytes, pixels, pages) was exceeded.
	ErrTooLarge = errors.New("image too large")
	// ErrUnusable: decodable, but not something that can be processed
	// (for instance a page smaller than the minimum side).
	ErrUnusable = errors.New("unusable image")
	// ErrDecodeTimeout: decoding took longer than Limits.DecodeTimeout.
	ErrDecodeTimeout = errors.New("image decode timed out")
)

// Error is an input error with the detail a client needs to fix its
// request. Kind is one of the sentinels above.
type Error struct {
	Kind   error
	Detail string
}

func (e *Error) Error() string { return fmt.Sprintf("%v: %s", e.Kind, e.Detail) }

// Unwrap lets errors.Is match the Kind sentinel.
func (e *Error) Unwrap() error { return e.Kind }

func errorf(kind error, format string, args ...any) error {
	return &Error{Kind: kind, Detail: fmt.Sprintf(format, args...)}
}
