package keys

import (
	"crypto/cipher"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
)

// KEK is a key-encryption key: it seals a store's keyring, never a
// record. Its algorithm follows from its length: 32 bytes wrap with
// AES-256-GCM, 16 with SM4-GCM.
type KEK struct {
	id     string
	alg    Algorithm
	aead   cipher.AEAD
	source string
}

// ParseKEK reads a KEK in its text form, the standard base64 of its bytes
// (what `visionserve keys new` prints); source names where it came from,
// for messages ("encryption.kek_file /run/secrets/kek").
func ParseKEK(text, source string) (*KEK, error) {
	text = strings.TrimSpace(text)
	raw, err := base64.StdEncoding.DecodeString(text)
	if err != nil {
		return nil, fmt.Errorf("the key-encryption key in %s is not base64 (make one with visionserve keys new)", source)
	}
	alg, ok := algorithmOfSize(len(raw))
	if !ok {
		return nil, fmt.Errorf("the key-encryption key in %s is %d bytes; use 32 random bytes (AES-256-GCM) or 16 (SM4-GCM), as visionserve keys new makes them", source, len(raw))
	}
	aead, err := newAEAD(alg, raw)
	if err != nil {
		return nil, err
	}
	return &KEK{id: kekID(raw), alg: alg, aead: aead, source: source}, nil
}

// NewKEK returns a new random KEK for a in its text form.
func NewKEK(a Algorithm) (string, error) {
	if a.KeySize() == 0 {
		return "", fmt.Errorf("unknown algorithm %q: use %s or %s", a, AES256GCM, SM4GCM)
	}
	return base64.StdEncoding.EncodeToString(randomKey(a)), nil
}

// kekID fingerprints a KEK, so that a store can say which KEK its keyring
// needs without holding anything that helps to find it: 64 bits of a
// domain-separated SHA-256 of a random key of 128 or 256 bits.
func kekID(raw []byte) string {
	h := sha256.New()
	h.Write([]byte("visionserve key-encryption key id\x00"))
	h.Write(raw)
	return hex.EncodeToString(h.Sum(nil)[:8])
}

// ID is the KEK's fingerprint, as keyrings and messages name it.
func (k *KEK) ID() string { return k.id }

// Algorithm is the AEAD the KEK wraps keyrings with.
func (k *KEK) Algorithm() Algorithm { return k.alg }

// Source says where the KEK came from.
func (k *KEK) Source() string { return k.source }

// String never shows the key.
func (k *KEK) String() string { return fmt.Sprintf("KEK %s (%s, from %s)", k.id, k.alg, k.source) }
