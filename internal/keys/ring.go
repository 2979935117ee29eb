package keys

import (
	"bytes"
	"context"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"
)

// A sealed record:
//
//	magic    4 bytes  "VS" 0xC1 0xFF
//	version  1 byte   1
//	key id   4 bytes  big-endian: the data key, in the store's keyring
//	nonce   12 bytes  random
//	sealed   the AEAD's ciphertext and 16-byte tag
//
// The associated data is the first 9 bytes, the store's domain, a NUL
// and the record's ref. The magic read as a little-endian float32 is a
// NaN, which no stored embedding holds, and starts neither an image, a
// PDF nor UTF-8 text, so a record in clear is never taken for a sealed
// one.
var magic = [4]byte{'V', 'S', 0xC1, 0xFF}

const (
	recordVersion = 1
	headerSize    = 9
	nonceSize     = 12
	// Overhead is how many bytes sealing adds to a record.
	Overhead = headerSize + nonceSize + 16
)

// Sealed reports whether b is a sealed record (by its magic).
func Sealed(b []byte) bool { return bytes.HasPrefix(b, magic[:]) }

// Ring seals and opens one store's records. Encryption off, it is clear:
// Seal returns records as they are, and Open refuses a sealed one. It is
// safe for concurrent use.
type Ring struct {
	domain string
	store  Store
	shared bool

	mu     sync.RWMutex
	kek    *KEK // nil: clear
	doc    []byte
	st     state
	aeads  map[uint32]cipher.AEAD
	active cipher.AEAD

	reload     sync.Mutex // one reload at a time
	lastReload time.Time
}

// Clear returns a ring that keeps domain's records in clear, for stores
// that have no keyring to consult (tests, parsers).
func Clear(domain string) *Ring { return &Ring{domain: domain} }

// Open returns the ring of store s. With a KEK it reads the store's
// keyring, or makes one (a first data key of cfg.Algorithm; the store's
// records, if it has any, are flagged as possibly in clear); a keyring
// sealed by another KEK is a WrongKEKError. Without a KEK it returns a
// clear ring, unless the store has a keyring: then ErrEncryptedStore,
// so that no process writes records in clear into an encrypted store.
func Open(ctx context.Context, cfg Config, s Store) (*Ring, error) {
	r := &Ring{domain: s.Domain, store: s}
	_, r.shared = s.Keyring.(SharedKeyring)
	for range 3 {
		doc, err := s.Keyring.Load(ctx)
		if err != nil {
			return nil, fmt.Errorf("reading the %s store's keyring: %w", s.Domain, err)
		}
		switch {
		case doc == nil && cfg.KEK == nil:
			return r, nil
		case doc == nil:
			st, next, err := r.first(ctx, cfg)
			if err != nil {
				return nil, err
			}
			err = s.Keyring.Save(ctx, nil, next)
			if errors.Is(err, ErrConflict) {
				continue // another replica made it first: use theirs
			}
			if err != nil {
				return nil, fmt.Errorf("storing the %s store's new keyring: %w", s.Domain, err)
			}
			r.install(cfg.KEK, next, st)
			return r, nil
		case cfg.KEK == nil:
			var d document
			_ = json.Unmarshal(doc, &d)
			return nil, fmt.Errorf("%w: the %s store's records are sealed under data keys wrapped by key-encryption key %s; configure encryption.kek_file or encryption.kek_env to open it (a server never writes records in clear into an encrypted store)",
				ErrEncryptedStore, s.Domain, d.KEK)
		}
		st, err := openState(doc, cfg.KEK, s.Domain)
		if err != nil {
			return nil, err
		}
		r.install(cfg.KEK, doc, st)
		return r, nil
	}
	return nil, fmt.Errorf("the %s store's keyring: %w three times", s.Domain, ErrConflict)
}

// first makes the first keyring of a store.
func (r *Ring) first(ctx context.Context, cfg Config) (state, []byte, error) {
	alg := cfg.Algorithm
	if alg == "" {
		alg = AES256GCM
	}
	clear, err := hasRecords(ctx, r.store.Records)
	if err != nil {
		return state{}, nil, fmt.Errorf("the %s store: %w", r.domain, err)
	}
	now := time.Now().UTC()
	st := state{Keys: []dataKey{{ID: 1, Algorithm: alg, Key: randomKey(alg), Created: now}}, Active: 1, ClearRecords: clear, Updated: now}
	doc, err := sealState(st, cfg.KEK, r.domain)
	return st, doc, err
}

// install makes st, stored as doc and sealed by kek, the ring's keys.
func (r *Ring) install(kek *KEK, doc []byte, st state) {
	aeads := make(map[uint32]cipher.AEAD, len(st.Keys))
	for _, k := range st.Keys {
		a, err := newAEAD(k.Algorithm, k.Key)
		if err != nil {
			continue // openState checked the active key; an unusable old one opens nothing
		}
		aeads[k.ID] = a
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.kek, r.doc, r.st, r.aeads, r.active = kek, doc, st, aeads, aeads[st.Active]
}

// Enabled reports whether the ring seals.
func (r *Ring) Enabled() bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.kek != nil
}

// Domain is the store's kind.
func (r *Ring) Domain() string { return r.domain }

func (r *Ring) aad(header []byte, ref string) []byte {
	aad := make([]byte, 0, len(header)+len(r.domain)+1+len(ref))
	aad = append(aad, header...)
	aad = append(aad, r.domain...)
	aad = append(aad, 0)
	return append(aad, ref...)
}

// Seal seals b as the record named ref under the active data key; a clear
// ring returns b.
func (r *Ring) Seal(ref string, b []byte) ([]byte, error) {
	r.mu.RLock()
	kek, id, aead := r.kek, r.st.Active, r.active
	r.mu.RUnlock()
	if kek == nil {
		return b, nil
	}
	out := make([]byte, headerSize+nonceSize, Overhead+len(b))
	copy(out, magic[:])
	out[4] = recordVersion
	binary.BigEndian.PutUint32(out[5:9], id)
	var nonce [nonceSize]byte
	_, _ = rand.Read(nonce[:])
	copy(out[headerSize:], nonce[:])
	return aead.Seal(out, nonce[:], b, r.aad(out[:headerSize], ref)), nil
}

// Open returns the content of the record named ref, stored as b: opened
// and authenticated when sealed; as it is when in clear and the store may
// hold such records (encryption off, or records from before it was on
// that are not re-encrypted yet). It never returns a sealed record that
// does not authenticate.
func (r *Ring) Open(ref string, b []byte) ([]byte, error) {
	r.mu.RLock()
	allowClear := r.kek == nil || r.st.ClearRecords
	r.mu.RUnlock()
	return r.open(ref, b, allowClear)
}

func (r *Ring) open(ref string, b []byte, allowClear bool) ([]byte, error) {
	if !Sealed(b) {
		if allowClear {
			return b, nil
		}
		return nil, fmt.Errorf("%w: %s record %s (the keyring says every record is sealed: it was planted or restored from elsewhere)", ErrClearRecord, r.domain, ref)
	}
	if len(b) < Overhead || b[4] != recordVersion {
		return nil, fmt.Errorf("%w: %s record %s: malformed or unknown sealed format", ErrUnauthentic, r.domain, ref)
	}
	id := binary.BigEndian.Uint32(b[5:9])
	aead, err := r.key(id)
	if err != nil {
		return nil, fmt.Errorf("%s record %s: %w", r.domain, ref, err)
	}
	out, err := aead.Open(nil, b[headerSize:headerSize+nonceSize], b[headerSize+nonceSize:], r.aad(b[:headerSize], ref))
	if err != nil {
		return nil, fmt.Errorf("%w: %s record %s does not open under data key %d: it was altered, or belongs to another record", ErrUnauthentic, r.domain, ref, id)
	}
	return out, nil
}

// reloadEvery bounds how often a shared keyring is read again for
// records of unknown keys.
const reloadEvery = time.Second

// key returns data key id's AEAD. A shared keyring is read again for a
// key this process has not loaded (a rotation by another process).
func (r *Ring) key(id uint32) (cipher.AEAD, error) {
	r.mu.RLock()
	kek, aead := r.kek, r.aeads[id]
	r.mu.RUnlock()
	switch {
	case kek == nil:
		return nil, fmt.Errorf("%w: the record is sealed, and this store has no keyring", ErrUnknownKey)
	case aead != nil:
		return aead, nil
	case !r.shared:
		return nil, fmt.Errorf("%w %d", ErrUnknownKey, id)
	}
	r.reload.Lock()
	defer r.reload.Unlock()
	r.mu.RLock()
	aead = r.aeads[id]
	r.mu.RUnlock()
	if aead == nil && time.Since(r.lastReload) >= reloadEvery {
		r.lastReload = time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := r.refresh(ctx); err != nil {
			return nil, fmt.Errorf("%w %d, and reading the keyring again failed: %w", ErrUnknownKey, id, err)
		}
		r.mu.RLock()
		aead = r.aeads[id]
		r.mu.RUnlock()
	}
	if aead == nil {
		return nil, fmt.Errorf("%w %d", ErrUnknownKey, id)
	}
	return aead, nil
}

// refresh reads the stored keyring again.
func (r *Ring) refresh(ctx context.Context) error {
	r.mu.RLock()
	kek := r.kek
	r.mu.RUnlock()
	doc, err := r.store.Keyring.Load(ctx)
	if err != nil {
		return err
	}
	if doc == nil {
		return fmt.Errorf("the %s store's keyring is gone", r.domain)
	}
	st, err := openState(doc, kek, r.domain)
	if err != nil {
		return err
	}
	r.install(kek, doc, st)
	return nil
}

// KeyInfo describes a data key.
type KeyInfo struct {
	ID        uint32    `json:"id"`
	Algorithm Algorithm `json:"algorithm"`
	Created   time.Time `json:"created"`
	Active    bool      `json:"active"`
}

// Info describes a ring.
type Info struct {
	Domain       string    `json:"domain"`
	Encrypted    bool      `json:"encrypted"`
	KEK          string    `json:"kek,omitempty"`
	KEKAlgorithm Algorithm `json:"kek_algorithm,omitempty"`
	Keys         []KeyInfo `json:"keys,omitempty"`
	// ClearRecords: records from before encryption may still be in clear.
	ClearRecords bool `json:"clear_records"`
}

// Info describes the ring's keys (never their bytes).
func (r *Ring) Info() Info {
	r.mu.RLock()
	defer r.mu.RUnlock()
	in := Info{Domain: r.domain, Encrypted: r.kek != nil, ClearRecords: r.st.ClearRecords}
	if r.kek == nil {
		return in
	}
	in.KEK, in.KEKAlgorithm = r.kek.id, r.kek.alg
	for _, k := range r.st.Keys {
		in.Keys = append(in.Keys, KeyInfo{ID: k.ID, Algorithm: k.Algorithm, Created: k.Created, Active: k.ID == r.st.Active})
	}
	return in
}

// Active returns the active data key's id and algorithm (0, "" when the
// ring is clear).
func (r *Ring) Active() (uint32, Algorithm) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if k := r.st.key(r.st.Active); r.kek != nil && k != nil {
		return k.ID, k.Algorithm
	}
	return 0, ""
}

// update changes the keyring: change edits a copy of the state, which is
// sealed by kek (nil: the ring's) and stored by compare-and-swap; on a
// conflict the keyring is read again and change applied to it anew.
func (r *Ring) update(ctx context.Context, kek *KEK, change func(*state) error) error {
	for range 3 {
		r.mu.RLock()
		cur, prev, st := r.kek, r.doc, r.st.clone()
		r.mu.RUnlock()
		if cur == nil {
			return fmt.Errorf("the %s store: %w", r.domain, ErrNotEncrypted)
		}
		if kek == nil {
			kek = cur
		}
		if err := change(&st); err != nil {
			return err
		}
		st.Updated = time.Now().UTC()
		next, err := sealState(st, kek, r.domain)
		if err != nil {
			return err
		}
		err = r.store.Keyring.Save(ctx, prev, next)
		if errors.Is(err, ErrConflict) {
			if err := r.refresh(ctx); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("storing the %s store's keyring: %w", r.domain, err)
		}
		r.install(kek, next, st)
		return nil
	}
	return fmt.Errorf("the %s store's keyring: %w three times", r.domain, ErrConflict)
}

// Rewrap seals the keyring under next instead of the current KEK. Records
// are not touched; from now on the store opens only with next.
func (r *Ring) Rewrap(ctx context.Context, next *KEK) error {
	r.mu.RLock()
	same := r.kek != nil && r.kek.id == next.id
	r.mu.RUnlock()
	if same {
		return fmt.Errorf("the new key-encryption key (%s) is the one in use", next.source)
	}
	return r.update(ctx, next, func(*state) error { return nil })
}

// AddKey makes a new data key of alg and makes it the active one: records
// sealed from now on use it; the older keys stay, so that the records
// sealed under them stay readable.
func (r *Ring) AddKey(ctx context.Context, alg Algorithm) (uint32, error) {
	if alg == "" {
		alg = AES256GCM
	}
	if alg.KeySize() == 0 {
		return 0, fmt.Errorf("unknown algorithm %q", alg)
	}
	var id uint32
	err := r.update(ctx, nil, func(st *state) error {
		id = 1
		for _, k := range st.Keys {
			id = max(id, k.ID+1)
		}
		st.Keys = append(st.Keys, dataKey{ID: id, Algorithm: alg, Key: randomKey(alg), Created: time.Now().UTC()})
		st.Active = id
		return nil
	})
	return id, err
}

// Census counts a store's records by how they are stored.
type Census struct {
	// Clear counts records in clear; ByKey sealed records per data key.
	Clear int            `json:"clear"`
	ByKey map[uint32]int `json:"by_key"`
	// Resealed counts the records a Reencrypt sealed anew.
	Resealed int `json:"resealed,omitempty"`
}

func (c *Census) count(b []byte) {
	if c.ByKey == nil {
		c.ByKey = map[uint32]int{}
	}
	if !Sealed(b) || len(b) < headerSize {
		c.Clear++
		return
	}
	c.ByKey[binary.BigEndian.Uint32(b[5:9])]++
}

// Census walks the store's records and counts them by data key.
func (r *Ring) Census(ctx context.Context) (Census, error) {
	var c Census
	err := r.store.Records.Reseal(ctx, func(_ string, b []byte) ([]byte, error) {
		c.count(b)
		return nil, nil
	})
	return c, err
}

// Reencrypt seals anew, under the active data key, the records in clear
// and (unless onlyClear) those sealed under older data keys. Every record
// it reseals must open first: one that does not stops it with an error
// naming the record. When the walk is complete the keyring stops taking
// records in clear.
func (r *Ring) Reencrypt(ctx context.Context, onlyClear bool) (Census, error) {
	if !r.Enabled() {
		return Census{}, fmt.Errorf("the %s store: %w", r.domain, ErrNotEncrypted)
	}
	active, _ := r.Active()
	var c Census
	err := r.store.Records.Reseal(ctx, func(ref string, b []byte) ([]byte, error) {
		if Sealed(b) && (onlyClear || len(b) >= headerSize && binary.BigEndian.Uint32(b[5:9]) == active) {
			c.count(b)
			return nil, nil
		}
		plain, err := r.open(ref, b, true)
		if err != nil {
			return nil, err
		}
		out, err := r.Seal(ref, plain)
		if err != nil {
			return nil, err
		}
		c.count(out)
		c.Resealed++
		return out, nil
	})
	if err != nil {
		return c, err
	}
	if r.Info().ClearRecords {
		err = r.update(ctx, nil, func(st *state) error {
			st.ClearRecords = false
			return nil
		})
	}
	return c, err
}

// String summarises the ring for logs: off, or the active data key, the
// KEK's fingerprint and whether records in clear may remain.
func (r *Ring) String() string {
	if r == nil {
		return "off"
	}
	in := r.Info()
	if !in.Encrypted {
		return "off"
	}
	id, alg := r.Active()
	s := fmt.Sprintf("%s, data key %d of %d, key-encryption key %s (%s)", alg, id, len(in.Keys), in.KEK, in.KEKAlgorithm)
	if in.ClearRecords {
		s += ", records from before encryption may be in clear (visionserve keys rotate --reencrypt)"
	}
	return s
}
