package keys

import (
	"errors"
	"fmt"
)

// Sentinel errors callers branch on.
var (
	// ErrConflict: a keyring's document changed between Load and Save.
	ErrConflict = errors.New("the keyring changed meanwhile")
	// ErrWrongKEK: the configured KEK is not the one that seals the
	// store's keyring (a WrongKEKError says which is which).
	ErrWrongKEK = errors.New("wrong key-encryption key")
	// ErrEncryptedStore: the store has a keyring, and no KEK was given
	// to open it with.
	ErrEncryptedStore = errors.New("the store is encrypted")
	// ErrClearRecord: a record in clear where every record is sealed.
	ErrClearRecord = errors.New("record stored in clear in an encrypted store")
	// ErrUnauthentic: a sealed record does not open under its data key
	// and ref: it was altered, or copied from another record.
	ErrUnauthentic = errors.New("record does not authenticate")
	// ErrUnknownKey: a sealed record names a data key the keyring lacks.
	ErrUnknownKey = errors.New("record sealed under an unknown data key")
	// ErrNotEncrypted: an operation on the keys of a store opened
	// without encryption.
	ErrNotEncrypted = errors.New("encryption is not configured")
)

// WrongKEKError names the KEK a keyring wants and the one given; it
// wraps ErrWrongKEK.
type WrongKEKError struct {
	Domain    string
	Want, Got string // fingerprints
	Source    string
}

// Error implements error.
func (e *WrongKEKError) Error() string {
	return fmt.Sprintf("%v: the %s store's data keys are wrapped by key-encryption key %s, and the key in %s is %s (a different key, or the store was rotated to a new one: visionserve keys status names it)",
		ErrWrongKEK, e.Domain, e.Want, e.Source, e.Got)
}

// Unwrap lets errors.Is match ErrWrongKEK.
func (e *WrongKEKError) Unwrap() error { return ErrWrongKEK }
