package importer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/visionserve/visionserve/internal/modelrepo"
	"github.com/visionserve/visionserve/internal/modelrepo/manifest"
	"github.com/visionserve/visionserve/internal/modelrepo/signing"
)

// evidenceBundle is where an OpenSSF import keeps the source's bundle.
const evidenceBundle = "provenance/model.sig"

// VerifyOpenSSF checks a model directory or file signed with OpenSSF model
// signing and no visionserve manifest (what `model verify` does for such a
// source): src.Signature (default <dir>/model.sig) against trust, with
// src's ignore options. It returns the verification and the bundle.
func VerifyOpenSSF(ctx context.Context, trust *signing.Verifier, src Source) (*signing.Result, []byte, error) {
	if trust == nil {
		return nil, nil, modelrepo.NewError(modelrepo.ReasonUntrustedKey, "", "no ECDSA or SM2 public key and no CA certificate is trusted")
	}
	info, err := os.Stat(src.Path)
	if err != nil {
		return nil, nil, &modelrepo.Error{Reason: modelrepo.ReasonMissingFile, Path: filepath.Base(src.Path), Err: err}
	}
	sigPath := src.Signature
	if sigPath == "" {
		if !info.IsDir() {
			return nil, nil, refuse(ReasonLayout, filepath.Base(src.Path), "a single-file model needs the path of its signature")
		}
		sigPath = filepath.Join(src.Path, manifest.SignatureFileName)
	}
	f, err := os.Open(sigPath)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, modelrepo.NewError(modelrepo.ReasonUnsigned, filepath.Base(sigPath), "no signature")
	}
	if err != nil {
		return nil, nil, &modelrepo.Error{Reason: modelrepo.ReasonSignatureInvalid, Path: filepath.Base(sigPath), Err: err}
	}
	bundle, err := io.ReadAll(io.LimitReader(f, signing.MaxBundleBytes+1))
	f.Close()
	if err != nil {
		return nil, nil, &modelrepo.Error{Reason: modelrepo.ReasonSignatureInvalid, Path: filepath.Base(sigPath), Err: err}
	}
	res, err := trust.Verify(ctx, src.Path, bundle, signing.VerifyOptions{
		SignaturePath: sigPath, IgnorePaths: src.IgnorePaths, IgnoreUnsignedFiles: src.IgnoreUnsignedFiles,
	})
	if err != nil {
		return nil, nil, err
	}
	return res, bundle, nil
}

// importOpenSSF verifies an OpenSSF-signed model, copies exactly its
// signed files into staging, verifies the copy against the same bundle
// (so what is packaged is what was signed, whatever happened to the source
// meanwhile) and publishes it.
func (im *Importer) importOpenSSF(ctx context.Context, src Source) (*Result, error) {
	info, err := os.Stat(src.Path)
	if err != nil {
		return nil, &modelrepo.Error{Reason: modelrepo.ReasonMissingFile, Path: filepath.Base(src.Path), Err: err}
	}
	if info.IsDir() {
		if _, err := os.Lstat(filepath.Join(src.Path, manifest.FileName)); err == nil {
			return nil, refuse(ReasonLayout, manifest.FileName, "the directory is already a visionserve package; verify it with 'model verify' and copy it into the repository")
		}
	}
	res, bundle, err := VerifyOpenSSF(ctx, im.opts.Trust.OpenSSF, src)
	if err != nil {
		return nil, err
	}
	files, err := signedFiles(res.Statement, filepath.Base(src.Path), !info.IsDir())
	if err != nil {
		return nil, err
	}
	kind, runtime := inferKind(files)
	p, err := im.makePlan(src, config{}, filepath.Base(src.Path), kind, runtime)
	if err != nil {
		return nil, err
	}
	s, err := im.newStaging(p)
	if err != nil {
		return nil, err
	}
	defer s.cleanup()
	var total int64
	for _, f := range files {
		from := filepath.Join(src.Path, filepath.FromSlash(f.name))
		if f.single {
			from = src.Path
		}
		n, err := s.copyFile(ctx, f.rel, from, im.opts.Limits.MaxTotalBytes-total)
		if err != nil {
			return nil, err
		}
		total += n
	}
	// The copy holds the signed files only; it verifies against the bundle
	// as the source did, every byte hashed again.
	staged := s.dir
	if len(files) == 1 && files[0].single {
		staged = filepath.Join(s.dir, files[0].rel)
	}
	if _, err := im.opts.Trust.OpenSSF.Verify(ctx, staged, bundle, signing.VerifyOptions{IgnorePaths: src.IgnorePaths}); err != nil {
		return nil, fmt.Errorf("the copied files no longer match the signature: %w", err)
	}
	if err := s.writeFile(evidenceBundle, bundle); err != nil {
		return nil, err
	}
	signer := manifest.ProvenanceSigner{Method: string(res.Method), Algorithm: string(res.Algorithm), KeyID: res.KeyID}
	if len(res.Chain) > 0 {
		signer.Subject, signer.Issuer = res.Chain[0].Subject.String(), res.Chain[len(res.Chain)-1].Subject.String()
	}
	prov := &manifest.Provenance{
		Format: manifest.ProvenanceOpenSSF, Source: filepath.Base(src.Path),
		Imported: im.opts.Now().UTC().Truncate(1e9), Signer: signer, Evidence: []string{evidenceBundle},
	}
	return im.finish(ctx, s, p, prov)
}

// signedFile is one file an OpenSSF statement covers.
type signedFile struct {
	name   string // as in the statement ("." for a single-file model)
	rel    string // its path in the package
	single bool   // the model is this one file
}

// signedFiles lists the files a verified statement covers (each once, for
// shards), refusing names the package reserves. A single-file model (the
// source is a file) becomes a package holding that file under its name.
func signedFiles(st *signing.Statement, base string, single bool) ([]signedFile, error) {
	seen := map[string]bool{}
	var out []signedFile
	for _, r := range st.Resources {
		name := r.Name
		if st.Method == signing.SerializeShards {
			name = name[:strings.LastIndexByte(name[:strings.LastIndexByte(name, ':')], ':')]
		}
		if seen[name] {
			continue
		}
		seen[name] = true
		f := signedFile{name: name, rel: name}
		if single {
			f.rel, f.single = base, true
		}
		if err := manifest.CheckPath(f.rel); err != nil {
			return nil, refuse(ReasonLayout, f.rel, "a signed file has a name the package reserves: "+err.Error())
		}
		if f.rel == "provenance" || strings.HasPrefix(f.rel, "provenance/") {
			return nil, refuse(ReasonLayout, f.rel, "provenance/ is reserved for the import's evidence")
		}
		out = append(out, f)
	}
	if len(out) == 0 {
		return nil, refuse(ReasonLayout, "", "the signature covers no file")
	}
	return out, nil
}

// inferKind guesses the package kind from its files: traineddata is
// ocr-tesseract (the language of the one that is not osd), exactly one
// .onnx file is onnx (that file); anything else needs an explicit kind.
func inferKind(files []signedFile) (manifest.Kind, map[string]any) {
	var onnx, langs []string
	for _, f := range files {
		switch {
		case strings.HasSuffix(f.rel, ".onnx"):
			onnx = append(onnx, f.rel)
		case strings.HasSuffix(f.rel, ".traineddata") && !strings.Contains(f.rel, "/"):
			if l := strings.TrimSuffix(f.rel, ".traineddata"); l != "osd" {
				langs = append(langs, l)
			}
		}
	}
	switch {
	case len(langs) == 1 && len(onnx) == 0:
		return manifest.KindOCRTesseract, map[string]any{"lang": langs[0]}
	case len(onnx) == 1 && len(langs) == 0:
		return manifest.KindONNX, map[string]any{"file": onnx[0]}
	}
	return "", nil
}

// copyFile copies the regular file from (symlinks followed) into rel,
// at most limit bytes, and returns its size.
func (s *staging) copyFile(ctx context.Context, rel, from string, limit int64) (int64, error) {
	f, err := os.Open(from)
	if err != nil {
		return 0, &modelrepo.Error{Reason: modelrepo.ReasonMissingFile, Path: rel, Err: err}
	}
	defer f.Close()
	_, n, err := s.copyIn(ctx, rel, f, limit)
	if err != nil {
		return n, fmt.Errorf("copy %s: %w", rel, err)
	}
	return n, nil
}
