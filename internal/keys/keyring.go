package keys

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Keyring keeps a store's keyring document: one value per store, in the
// store's own database (so that every replica of a shared store reads the
// same data keys), changed only by compare-and-swap.
type Keyring interface {
	// Load returns the document, or nil when the store has none yet.
	Load(ctx context.Context) ([]byte, error)
	// Save replaces prev with next (prev nil: there is no document yet),
	// or returns ErrConflict when the stored document is no longer prev.
	Save(ctx context.Context, prev, next []byte) error
}

// SharedKeyring is implemented by keyrings that other processes change
// while this one runs (a database shared by replicas, where `visionserve
// keys rotate` may add a data key): a record under a data key this
// process has not loaded makes it read the keyring again. An embedded
// store, which one process holds at a time, is not one.
type SharedKeyring interface {
	Keyring
	Shared()
}

// Records is a store's walk over the payloads it seals, for re-encryption
// and census.
type Records interface {
	// Reseal calls fn with every sealed payload of the store (its ref
	// and its stored bytes, which fn must not keep) and, when fn returns
	// bytes, stores them in the payload's place, unless the payload was
	// changed or deleted meanwhile (then it is left as it is). fn
	// returning nil leaves the payload. An error from fn stops the walk
	// and is returned, wrapped or not.
	Reseal(ctx context.Context, fn func(ref string, stored []byte) ([]byte, error)) error
}

// Store is a store as the package sees it.
type Store struct {
	// Domain names the kind of store ("gallery", "jobs"): it is bound
	// into every record's and the keyring's associated data, so nothing
	// sealed for one kind of store opens in another.
	Domain  string
	Keyring Keyring
	Records Records
}

// document is the keyring as stored: the KEK's fingerprint in clear, so
// that a wrong KEK is named as such, and the state sealed by the KEK, so
// that no data key, and no flag, can be read or changed without it.
type document struct {
	Format       int       `json:"format"`
	Domain       string    `json:"domain"`
	KEK          string    `json:"kek"`
	KEKAlgorithm Algorithm `json:"kek_algorithm"`
	// Sealed is the nonce and the sealed state.
	Sealed []byte `json:"sealed"`
}

const documentFormat = 1

// state is the keyring's content.
type state struct {
	Keys   []dataKey `json:"keys"`
	Active uint32    `json:"active"`
	// ClearRecords: the store held records before its keyring was made,
	// and some may still be in clear (until Reencrypt has sealed them).
	ClearRecords bool      `json:"clear_records"`
	Updated      time.Time `json:"updated"`
}

type dataKey struct {
	ID        uint32    `json:"id"`
	Algorithm Algorithm `json:"algorithm"`
	Key       []byte    `json:"key"`
	Created   time.Time `json:"created"`
}

func (s state) clone() state {
	s.Keys = slices.Clone(s.Keys)
	return s
}

// key returns data key id, or nil.
func (s state) key(id uint32) *dataKey {
	for i := range s.Keys {
		if s.Keys[i].ID == id {
			return &s.Keys[i]
		}
	}
	return nil
}

func documentAAD(domain, kekID string) []byte {
	return []byte("visionserve keyring\x00" + domain + "\x00" + kekID)
}

// sealState seals st under kek as domain's keyring document.
func sealState(st state, kek *KEK, domain string) ([]byte, error) {
	plain, err := json.Marshal(st)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, kek.aead.NonceSize())
	_, _ = rand.Read(nonce)
	sealed := kek.aead.Seal(nonce, nonce, plain, documentAAD(domain, kek.id))
	return json.Marshal(document{Format: documentFormat, Domain: domain, KEK: kek.id, KEKAlgorithm: kek.alg, Sealed: sealed})
}

// openState opens domain's keyring document with kek.
func openState(raw []byte, kek *KEK, domain string) (state, error) {
	var doc document
	if err := json.Unmarshal(raw, &doc); err != nil {
		return state{}, fmt.Errorf("the %s store's keyring is corrupt: %w", domain, err)
	}
	if doc.Format != documentFormat {
		return state{}, fmt.Errorf("the %s store's keyring has format %d; this visionserve reads %d", domain, doc.Format, documentFormat)
	}
	if doc.Domain != domain {
		return state{}, fmt.Errorf("the %s store holds the keyring of a %s store", domain, doc.Domain)
	}
	if doc.KEK != kek.id {
		return state{}, &WrongKEKError{Domain: domain, Want: doc.KEK, Got: kek.id, Source: kek.source}
	}
	n := kek.aead.NonceSize()
	if len(doc.Sealed) < n {
		return state{}, fmt.Errorf("the %s store's keyring is corrupt: its sealed state is %d bytes", domain, len(doc.Sealed))
	}
	plain, err := kek.aead.Open(nil, doc.Sealed[:n], doc.Sealed[n:], documentAAD(domain, doc.KEK))
	if err != nil {
		return state{}, fmt.Errorf("%w: the %s store's keyring names key-encryption key %s, which %s fingerprints as, but does not open with it: the keyring was altered", ErrWrongKEK, domain, doc.KEK, kek.source)
	}
	var st state
	if err := json.Unmarshal(plain, &st); err != nil {
		return state{}, fmt.Errorf("the %s store's keyring is corrupt: %w", domain, err)
	}
	if st.key(st.Active) == nil {
		return state{}, fmt.Errorf("the %s store's keyring is corrupt: its active data key %d is not in it", domain, st.Active)
	}
	return st, nil
}

// errStop ends a walk early.
var errStop = errors.New("stop")

// hasRecords reports whether the store holds any payload.
func hasRecords(ctx context.Context, recs Records) (bool, error) {
	err := recs.Reseal(ctx, func(string, []byte) ([]byte, error) { return nil, errStop })
	if errors.Is(err, errStop) {
		return true, nil
	}
	return false, err
}
