package signing

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"fmt"

	"github.com/secure-systems-lab/go-securesystemslib/dsse"
)

// Algorithm is a signature algorithm: a key type and the hash it signs
// with. It is never read from a bundle: the trusted key, or the leaf
// certificate's key, decides it, so a bundle cannot choose a weaker one.
type Algorithm string

// The signature algorithms this package signs and verifies.
const (
	ECDSAP256SHA256 Algorithm = "ecdsa-p256-sha256"
	ECDSAP384SHA384 Algorithm = "ecdsa-p384-sha384"
	ECDSAP521SHA512 Algorithm = "ecdsa-p521-sha512"
)

// ErrUnsupportedKey reports a key of no supported Algorithm.
var ErrUnsupportedKey = errors.New("unsupported key: want ECDSA P-256, P-384 or P-521")

// AlgorithmOf returns the algorithm a public key signs with.
func AlgorithmOf(pub crypto.PublicKey) (Algorithm, error) {
	ec, ok := pub.(*ecdsa.PublicKey)
	if !ok || ec == nil {
		return "", ErrUnsupportedKey
	}
	switch ec.Curve {
	case elliptic.P256():
		return ECDSAP256SHA256, nil
	case elliptic.P384():
		return ECDSAP384SHA384, nil
	case elliptic.P521():
		return ECDSAP521SHA512, nil
	}
	return "", ErrUnsupportedKey
}

// hash returns the hash an ECDSA algorithm signs the digest of.
func (a Algorithm) hash() crypto.Hash {
	switch a {
	case ECDSAP384SHA384:
		return crypto.SHA384
	case ECDSAP521SHA512:
		return crypto.SHA512
	}
	return crypto.SHA256
}

// pae is the DSSE pre-authentication encoding of a payload: the bytes
// every signature of a bundle is made over.
func pae(payloadType string, payload []byte) []byte {
	return dsse.PAE(payloadType, payload)
}

// signMessage signs msg (a PAE) with key, which must be of algorithm a, and
// returns an ASN.1 DER signature, the only encoding the reference verifier
// accepts.
func signMessage(a Algorithm, key crypto.Signer, msg []byte) ([]byte, error) {
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		h := a.hash().New()
		h.Write(msg)
		return ecdsa.SignASN1(rand.Reader, k, h.Sum(nil))
	}
	return nil, fmt.Errorf("%w (%T)", ErrUnsupportedKey, key)
}

// verifyMessage reports whether sig is a valid DER signature of msg by pub.
func verifyMessage(pub *ecdsa.PublicKey, msg, sig []byte) bool {
	a, err := AlgorithmOf(pub)
	if err != nil {
		return false
	}
	h := a.hash().New()
	h.Write(msg)
	return ecdsa.VerifyASN1(pub, h.Sum(nil), sig)
}
