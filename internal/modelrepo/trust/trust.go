// Package trust decides which model packages a server accepts: the public
// keys and CA certificates it trusts, and whether unsigned packages are
// allowed. Its Policy is the modelrepo.Verifier of a serving process: it
// verifies a version directory with package signing and describes the
// result as a modelrepo.Package.
//
// A package with a model.sig is always verified, whatever the switches
// say; allow-unsigned only admits packages that have no signature at all,
// after checking their files against manifest.json, and logs a warning
// each time.
package trust

import (
	"context"
	"crypto/ecdsa"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/visionserve/visionserve/internal/modelrepo"
	"github.com/visionserve/visionserve/internal/modelrepo/manifest"
	"github.com/visionserve/visionserve/internal/modelrepo/signing"
)

// Config names the trusted keys and CA certificates (PEM files): ECDSA
// (P-256, P-384, P-521) or SM2, as signing reads them.
type Config struct {
	Keys           []string
	CACertificates []string
	AllowUnsigned  bool
	// Now is the time certificates must be valid at; nil means time.Now.
	Now func() time.Time
	Log *slog.Logger
}

// Policy verifies packages against the configured trust.
type Policy struct {
	verifier      *signing.Verifier // nil when nothing is trusted
	allowUnsigned bool
	keyIDs        []string
	caSubjects    []string
	log           *slog.Logger
}

var _ modelrepo.Verifier = (*Policy)(nil)

// New loads the trusted keys and certificates. An unreadable or invalid
// file is an error naming it: a server must not start with less trust
// than its operator configured.
func New(cfg Config) (*Policy, error) {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	p := &Policy{allowUnsigned: cfg.AllowUnsigned, log: cfg.Log.With("component", "trust")}
	var keys []*ecdsa.PublicKey
	for _, path := range cfg.Keys {
		k, err := signing.LoadPublicKey(path)
		if err != nil {
			return nil, fmt.Errorf("trusted key %s: %w", path, err)
		}
		id, err := signing.KeyID(k)
		if err != nil {
			return nil, fmt.Errorf("trusted key %s: %w", path, err)
		}
		keys = append(keys, k)
		p.keyIDs = append(p.keyIDs, id)
	}
	var roots []*x509.Certificate
	for _, path := range cfg.CACertificates {
		certs, err := signing.LoadCertificates(path)
		if err != nil {
			return nil, fmt.Errorf("trusted CA certificates %s: %w", path, err)
		}
		for _, c := range certs {
			roots = append(roots, c)
			p.caSubjects = append(p.caSubjects, c.Subject.String())
		}
	}
	if len(keys) > 0 || len(roots) > 0 {
		v, err := signing.NewVerifier(signing.Trust{Keys: keys, Roots: roots, Now: cfg.Now})
		if err != nil {
			return nil, err
		}
		p.verifier = v
	}
	return p, nil
}

// LogSummary logs what is trusted, once, at start; with allow-unsigned it
// warns.
func (p *Policy) LogSummary() {
	p.log.Info("model trust", "keys", p.keyIDs, "ca_certificates", p.caSubjects, "allow_unsigned", p.allowUnsigned)
	if p.allowUnsigned {
		p.log.Warn("allow_unsigned is on: packages without model.sig are loaded after a manifest check only; use it for local experiments")
	}
	if p.verifier == nil {
		p.log.Warn("no public keys or CA certificates are trusted: every signed package will be refused")
	}
}

// Verify implements modelrepo.Verifier.
func (p *Policy) Verify(ctx context.Context, dir string) (*modelrepo.Package, error) {
	if p.verifier == nil {
		if err := p.nothingTrusted(dir); !errors.Is(err, modelrepo.ReasonUnsigned) || !p.allowUnsigned {
			return nil, err
		}
		return p.unsigned(ctx, dir)
	}
	v, err := p.verifier.VerifyPackage(ctx, dir)
	if errors.Is(err, modelrepo.ReasonUnsigned) && p.allowUnsigned {
		return p.unsigned(ctx, dir)
	}
	if err != nil {
		return nil, err
	}
	pkg := fromManifest(dir, v.Manifest)
	res := v.Signature
	pkg.Signer = modelrepo.Signer{Method: string(res.Method), Algorithm: string(res.Algorithm), KeyID: res.KeyID, NotAfter: res.NotAfter()}
	if len(res.Chain) > 0 {
		pkg.Signer.Subject = res.Chain[0].Subject.String()
	}
	return pkg, nil
}

// nothingTrusted explains why a package cannot verify when no key and no
// CA is trusted, with the reason a verifier would give.
func (p *Policy) nothingTrusted(dir string) error {
	data, err := os.ReadFile(filepath.Join(dir, manifest.SignatureFileName))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return modelrepo.NewError(modelrepo.ReasonUnsigned, manifest.SignatureFileName, "the package has no signature")
	case err != nil:
		return &modelrepo.Error{Reason: modelrepo.ReasonIOError, Path: manifest.SignatureFileName, Err: err}
	}
	info, err := signing.Inspect(data)
	if err != nil {
		return err
	}
	if info.Method == signing.MethodCertificate {
		return modelrepo.NewError(modelrepo.ReasonCertInvalid, "", "signed with a certificate, and no CA certificates are trusted")
	}
	return modelrepo.NewError(modelrepo.ReasonUntrustedKey, "", "signed with a key, and no public keys are trusted")
}

// unsigned admits a package without model.sig after checking its files
// against its manifest.
func (p *Policy) unsigned(ctx context.Context, dir string) (*modelrepo.Package, error) {
	m, err := manifest.VerifyFiles(ctx, dir)
	if err != nil {
		return nil, err
	}
	p.log.Warn("loading an UNSIGNED package (allow_unsigned is on)", "dir", dir, "model", m.Name, "version", m.Version)
	pkg := fromManifest(dir, m)
	pkg.Signer = modelrepo.Signer{Method: "unsigned"}
	return pkg, nil
}

func fromManifest(dir string, m *manifest.Manifest) *modelrepo.Package {
	pkg := &modelrepo.Package{
		Dir: dir, Name: m.Name, Version: m.Version, Kind: string(m.Kind), Runtime: m.Runtime,
		Files: make(map[string]modelrepo.File, len(m.Files)),
	}
	for _, f := range m.Files {
		pkg.Files[f.Path] = modelrepo.File{SHA256: f.SHA256, Size: f.Size}
	}
	return pkg
}
