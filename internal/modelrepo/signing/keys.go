package signing

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/emmansun/gmsm/sm2"
	"github.com/emmansun/gmsm/smx509"
)

// Key file names written by GenerateKey.
const (
	PrivateKeyFile = "private.pem"
	PublicKeyFile  = "public.pem"
)

// maxPEMBytes bounds key and certificate files.
const maxPEMBytes = 1 << 20

// GenerateKey creates a key pair of algorithm alg and writes it into dir
// (created with mode 0700 if absent): the PKCS#8 private key to
// PrivateKeyFile with mode 0600 and the SubjectPublicKeyInfo public key to
// PublicKeyFile, in the encodings OpenSSL 3 reads and writes (an SM2 key is
// id-ecPublicKey on the SM2 curve, OID 1.2.156.10197.1.301). It never
// overwrites an existing file.
func GenerateKey(dir string, alg Algorithm) (privatePath, publicPath string, err error) {
	key, err := newPrivateKey(alg)
	if err != nil {
		return "", "", err
	}
	der, err := smx509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return "", "", err
	}
	pubPEM, err := PublicKeyPEM(key.Public().(*ecdsa.PublicKey))
	if err != nil {
		return "", "", err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", "", err
	}
	privatePath = filepath.Join(dir, PrivateKeyFile)
	publicPath = filepath.Join(dir, PublicKeyFile)
	for _, p := range []string{privatePath, publicPath} {
		if _, err := os.Lstat(p); err == nil {
			return "", "", fmt.Errorf("%s already exists; not overwriting a key", p)
		}
	}
	if err := writeNew(privatePath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return "", "", err
	}
	if err := writeNew(publicPath, pubPEM, 0o644); err != nil {
		os.Remove(privatePath)
		return "", "", err
	}
	return privatePath, publicPath, nil
}

// newPrivateKey generates a private key of algorithm alg.
func newPrivateKey(alg Algorithm) (crypto.Signer, error) {
	switch alg {
	case ECDSAP256SHA256:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case ECDSAP384SHA384:
		return ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case ECDSAP521SHA512:
		return ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	case SM2SM3:
		return sm2.GenerateKey(rand.Reader)
	}
	return nil, fmt.Errorf("unknown algorithm %q", alg)
}

// writeNew creates name exclusively with mode perm (not subject to a
// permissive umask for the private key) and writes data.
func writeNew(name string, data []byte, perm os.FileMode) error {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if err := f.Chmod(perm); err != nil {
		f.Close()
		os.Remove(name)
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(name)
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(name)
		return err
	}
	return f.Close()
}

// PublicKeyPEM encodes pub as a "PUBLIC KEY" PEM block (SubjectPublicKeyInfo).
func PublicKeyPEM(pub *ecdsa.PublicKey) ([]byte, error) {
	der, err := smx509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}

// KeyID returns the identifier OpenSSF model signing records as the bundle's
// publicKey.hint: the hex SHA-256 of the key's PEM text (PublicKeyPEM).
func KeyID(pub *ecdsa.PublicKey) (string, error) {
	p, err := PublicKeyPEM(pub)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(p)
	return hex.EncodeToString(sum[:]), nil
}

func readPEMFile(path string) ([]byte, error) {
	return readLimited(path, maxPEMBytes)
}

// readLimited reads a whole file that must not exceed limit bytes.
func readLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, limit)
	}
	return data, nil
}

// ParsePrivateKey decodes the first private key PEM block in data, PKCS#8
// ("PRIVATE KEY") or SEC 1 ("EC PRIVATE KEY"), ECDSA or SM2 (as
// `openssl genpkey -algorithm SM2` writes it). Text before and between
// blocks is skipped; encrypted keys are not supported. The key is an
// *ecdsa.PrivateKey or an *sm2.PrivateKey.
func ParsePrivateKey(data []byte) (crypto.Signer, error) {
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return nil, errors.New("no PEM private key found")
		}
		var (
			key any
			err error
		)
		switch block.Type {
		case "PRIVATE KEY":
			key, err = smx509.ParsePKCS8PrivateKey(block.Bytes)
		case "EC PRIVATE KEY":
			key, err = smx509.ParseTypedECPrivateKey(block.Bytes)
		case "ENCRYPTED PRIVATE KEY":
			return nil, errors.New("encrypted private keys are not supported")
		default:
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("parse private key: %w", err)
		}
		signer, ok := key.(crypto.Signer)
		if !ok {
			return nil, ErrUnsupportedKey
		}
		if _, err := AlgorithmOf(signer.Public()); err != nil {
			return nil, err
		}
		return signer, nil
	}
}

// LoadPrivateKey reads a private key file (see ParsePrivateKey).
func LoadPrivateKey(path string) (crypto.Signer, error) {
	data, err := readPEMFile(path)
	if err != nil {
		return nil, err
	}
	k, err := ParsePrivateKey(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

// ParsePublicKey decodes the first "PUBLIC KEY" PEM block in data, skipping
// any text around it (GnuTLS certtool writes a text preamble).
func ParsePublicKey(data []byte) (*ecdsa.PublicKey, error) {
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return nil, errors.New("no PEM public key found")
		}
		if block.Type != "PUBLIC KEY" {
			continue
		}
		key, err := smx509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse public key: %w", err)
		}
		ec, ok := key.(*ecdsa.PublicKey)
		if !ok {
			return nil, ErrUnsupportedKey
		}
		if _, err := AlgorithmOf(ec); err != nil {
			return nil, err
		}
		return ec, nil
	}
}

// LoadPublicKey reads a public key file (see ParsePublicKey).
func LoadPublicKey(path string) (*ecdsa.PublicKey, error) {
	data, err := readPEMFile(path)
	if err != nil {
		return nil, err
	}
	k, err := ParsePublicKey(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

// ParseCertificates decodes every "CERTIFICATE" PEM block in data, in order.
// Certificates with SM2 keys or SM2-with-SM3 signatures are parsed too
// (crypto/x509 refuses the SM2 curve); they are returned as
// *x509.Certificate all the same, since smx509.Certificate is that type.
func ParseCertificates(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := smx509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse certificate: %w", err)
		}
		certs = append(certs, c.ToX509())
	}
	if len(certs) == 0 {
		return nil, errors.New("no PEM certificate found")
	}
	return certs, nil
}

// LoadCertificates reads every certificate in a PEM file.
func LoadCertificates(path string) ([]*x509.Certificate, error) {
	data, err := readPEMFile(path)
	if err != nil {
		return nil, err
	}
	c, err := ParseCertificates(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}
