package signing

import (
	"crypto/x509"
)

// Info describes a bundle without verifying it, for display.
type Info struct {
	Method Method
	// KeyID is the key the bundle names (its hint, or the ID of its legacy
	// rawBytes key); empty when it names none or for certificates.
	KeyID string
	// Certificates are the bundle's chain, leaf first (certificate method).
	Certificates []*x509.Certificate
	// Statement is the signed statement, unverified; nil if it does not
	// parse.
	Statement *Statement
}

// Inspect parses a bundle and reports what it claims. Nothing is verified:
// use Verifier for that.
func Inspect(bundleJSON []byte) (*Info, error) {
	pb, err := parseBundle(bundleJSON)
	if err != nil {
		return nil, err
	}
	info := &Info{Method: pb.method, KeyID: pb.hint, Certificates: pb.certs}
	if info.KeyID == "" && len(pb.rawKeyPEM) > 0 {
		if pub, err := ParsePublicKey(pb.rawKeyPEM); err == nil {
			info.KeyID, _ = KeyID(pub)
		}
	}
	info.Statement, _ = parseStatement(pb.payload)
	return info, nil
}
