package signing

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"fmt"

	"github.com/emmansun/gmsm/sm2"
	"github.com/emmansun/gmsm/sm3"
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
	// SM2SM3 is GM/T 0003 SM2 on its recommended curve with the SM3 hash
	// (GM/T 0004): the signed value is SM3(Z || message), where Z hashes
	// the GM/T default user id 1234567812345678 with the curve and the
	// public key (GB/T 32918.2, GM/T 0009). Statements it signs carry SM3
	// digests (HashSM3).
	SM2SM3 Algorithm = "sm2-sm3"
)

// SM2UserID is the signer's distinguishing identifier that SM2 signatures
// hash into Z: the GM/T 0009 default, which OpenSSL 3 also uses when none
// is set. It is fixed; bundles carry no user id.
const SM2UserID = "1234567812345678"

// Algorithms returns every Algorithm.
func Algorithms() []Algorithm {
	return []Algorithm{ECDSAP256SHA256, ECDSAP384SHA384, ECDSAP521SHA512, SM2SM3}
}

// ErrUnsupportedKey reports a key of no supported Algorithm.
var ErrUnsupportedKey = errors.New("unsupported key: want ECDSA P-256, P-384, P-521 or SM2")

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
	case sm2.P256():
		return SM2SM3, nil
	}
	return "", ErrUnsupportedKey
}

// statementHash returns the hash_type of the statements a key of this
// algorithm signs: SM3 for SM2, so that a package signed for a regulated
// deployment uses the national algorithms throughout, SHA-256 otherwise
// (what every OMS verifier understands).
func (a Algorithm) statementHash() string {
	if a == SM2SM3 {
		return HashSM3
	}
	return HashSHA256
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
	case *sm2.PrivateKey:
		// forceGMSign: msg is the message, not a digest; Z is computed.
		return k.Sign(rand.Reader, msg, sm2.NewSM2SignerOption(true, []byte(SM2UserID)))
	case *ecdsa.PrivateKey:
		h := a.hash().New()
		h.Write(msg)
		return ecdsa.SignASN1(rand.Reader, k, h.Sum(nil))
	}
	return nil, fmt.Errorf("%w (%T)", ErrUnsupportedKey, key)
}

// signedWithEmptySM2UserID reports whether sig is pub's SM2 signature of
// msg with an empty user id, which OpenSSL 3.0 uses unless told
// otherwise: such a signature is refused, and this explains why.
func signedWithEmptySM2UserID(pub *ecdsa.PublicKey, msg, sig []byte) bool {
	if a, err := AlgorithmOf(pub); err != nil || a != SM2SM3 {
		return false
	}
	z, err := sm2.CalculateZA(pub, nil)
	if err != nil {
		return false
	}
	h := sm3.New()
	h.Write(z)
	h.Write(msg)
	return sm2.VerifyASN1(pub, h.Sum(nil), sig)
}

// emptyUserIDHint is the advice given with such a refusal.
const emptyUserIDHint = "SM2 signatures must use the GM/T default user id " + SM2UserID +
	", and this one used an empty user id (OpenSSL 3.0's default): sign with openssl's -sigopt distid:" + SM2UserID +
	" (dgst, req, x509) or -pkeyopt distid:" + SM2UserID + " (pkeyutl)"

// verifyMessage reports whether sig is a valid DER signature of msg by pub.
func verifyMessage(pub *ecdsa.PublicKey, msg, sig []byte) bool {
	a, err := AlgorithmOf(pub)
	if err != nil {
		return false
	}
	if a == SM2SM3 {
		return sm2.VerifyASN1WithSM2(pub, []byte(SM2UserID), msg, sig)
	}
	h := a.hash().New()
	h.Write(msg)
	return ecdsa.VerifyASN1(pub, h.Sum(nil), sig)
}
