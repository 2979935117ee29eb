package keys

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"fmt"

	"github.com/emmansun/gmsm/sm4"
)

// Algorithm names an AEAD that seals records and keyrings.
type Algorithm string

// The algorithms: 96-bit random nonces, 128-bit tags.
const (
	// AES256GCM is AES with a 256-bit key in Galois/Counter Mode (NIST SP 800-38D), Go's crypto/aes.
	AES256GCM Algorithm = "aes-256-gcm"
	// SM4GCM is SM4 (GB/T 32907, 128-bit key) in Galois/Counter Mode
	// (GB/T 36624, RFC 8998), github.com/emmansun/gmsm's sm4.
	SM4GCM Algorithm = "sm4-gcm"
)

// Algorithms lists the algorithms, the default first.
var Algorithms = []Algorithm{AES256GCM, SM4GCM}

// KeySize is the length of the algorithm's keys in bytes; 0 for an
// unknown algorithm.
func (a Algorithm) KeySize() int {
	switch a {
	case AES256GCM:
		return 32
	case SM4GCM:
		return 16
	}
	return 0
}

// algorithmOfSize is the algorithm whose keys are n bytes long.
func algorithmOfSize(n int) (Algorithm, bool) {
	for _, a := range Algorithms {
		if a.KeySize() == n {
			return a, true
		}
	}
	return "", false
}

// newAEAD returns the AEAD of a with key.
func newAEAD(a Algorithm, key []byte) (cipher.AEAD, error) {
	if len(key) != a.KeySize() {
		return nil, fmt.Errorf("keys: a %s key is %d bytes, not %d", a, a.KeySize(), len(key))
	}
	var block cipher.Block
	var err error
	switch a {
	case AES256GCM:
		block, err = aes.NewCipher(key)
	case SM4GCM:
		block, err = sm4.NewCipher(key)
	default:
		return nil, fmt.Errorf("keys: unknown algorithm %q", a)
	}
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// randomKey returns a new key for a.
func randomKey(a Algorithm) []byte {
	k := make([]byte, a.KeySize())
	_, _ = rand.Read(k) // crypto/rand.Read never fails (Go 1.24+)
	return k
}
