package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// API keys are 32 random bytes, base64url-encoded behind the prefix
// "vsk_". Only their SHA-256 is configured. A fast hash is the right one
// here: the key has 256 bits of entropy, so there is no dictionary to slow
// down, and a password-hashing function would cost milliseconds of CPU on
// every request.
const (
	KeyPrefix = "vsk_"
	// MinKeyLength refuses hashing human-chosen short secrets.
	MinKeyLength = 24
	hashPrefix   = "sha256:"
)

type apiKey struct {
	hash      [sha256.Size]byte
	principal Principal
}

// GenerateKey returns a new random API key and its configuration hash.
func GenerateKey() (key, hash string, err error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", "", err
	}
	key = KeyPrefix + base64.RawURLEncoding.EncodeToString(b[:])
	return key, HashKey(key), nil
}

// HashKey returns the configuration form of key's hash.
func HashKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hashPrefix + hex.EncodeToString(sum[:])
}

func parseKeyHash(s string) ([sha256.Size]byte, error) {
	var h [sha256.Size]byte
	hexPart, ok := strings.CutPrefix(s, hashPrefix)
	if !ok {
		return h, errors.New(`must be "sha256:<64 hex digits>" (visionserve auth hash-key prints one)`)
	}
	b, err := hex.DecodeString(hexPart)
	if err != nil || len(b) != sha256.Size {
		return h, fmt.Errorf("must be %q followed by 64 hex digits", hashPrefix)
	}
	copy(h[:], b)
	return h, nil
}

// checkAPIKey compares the key's hash with every configured hash in
// constant time, without stopping at a match, so timing tells nothing
// about which or how many keys exist.
func (a *Authenticator) checkAPIKey(key string) (*Principal, *Error) {
	if len(key) > maxCredentialLen {
		return nil, unauthenticated(ReasonMalformed)
	}
	sum := sha256.Sum256([]byte(key))
	found := -1
	for i := range a.keys {
		if subtle.ConstantTimeCompare(sum[:], a.keys[i].hash[:]) == 1 {
			found = i
		}
	}
	if found < 0 {
		return nil, unauthenticated(ReasonUnknownKey)
	}
	p := a.keys[found].principal
	return &p, nil
}

// maxCredentialLen bounds what is hashed or parsed per request.
const maxCredentialLen = 8 << 10
