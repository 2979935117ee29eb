package importer

import (
	"archive/zip"
	"bufio"
	"bytes"
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/visionserve/visionserve/internal/ctxio"
	"github.com/visionserve/visionserve/internal/modelrepo"
	"github.com/visionserve/visionserve/internal/modelrepo/manifest"
)

// The zip layout's file names.
const (
	zipChecksum  = "checksum.sha256"
	zipSignature = "signature.sig"
	zipConfig    = "config.json"
	zipONNX      = "model.onnx"
)

// Bounds of the layout's small files.
const (
	maxChecksumBytes  = 64 << 10
	maxSignatureBytes = 16 << 10
)

// Evidence files a zip import keeps in the package.
const (
	evidenceSignature = "provenance/signature.sig"
	evidenceChecksum  = "provenance/checksum.sha256"
)

// archive is a zip whose structure has been checked: every entry is a
// regular file with a safe name, within the limits, in the layout.
type archive struct {
	files map[string]*zip.File // by name, any single top-level directory removed
	model string               // model.onnx or <lang>.traineddata
}

// importZip verifies a zip package and publishes it. Nothing is written
// before the checksums and the signature are verified from the archive.
func (im *Importer) importZip(ctx context.Context, src Source) (*Result, error) {
	f, err := os.Open(src.Path)
	if err != nil {
		return nil, &Error{Reason: ReasonArchiveInvalid, Path: filepath.Base(src.Path), Err: err}
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, &Error{Reason: ReasonArchiveInvalid, Path: filepath.Base(src.Path), Err: err}
	}
	if !st.Mode().IsRegular() {
		return nil, refuse(ReasonArchiveInvalid, filepath.Base(src.Path), "not a regular file")
	}
	if st.Size() > im.opts.Limits.MaxArchiveBytes {
		return nil, refuse(ReasonTooLarge, filepath.Base(src.Path), fmt.Sprintf("%d bytes, more than the %d allowed", st.Size(), im.opts.Limits.MaxArchiveBytes))
	}
	zr, err := zip.NewReader(f, st.Size())
	if err != nil && !errors.Is(err, zip.ErrInsecurePath) {
		return nil, &Error{Reason: ReasonArchiveInvalid, Path: filepath.Base(src.Path), Detail: "not a zip archive", Err: err}
	}
	a, err := im.checkArchive(zr)
	if err != nil {
		return nil, err
	}

	// 1. checksum.sha256 lists the model (and may list config.json); each
	// listed entry is hashed from the archive and compared.
	sumData, err := readEntry(a.files[zipChecksum], maxChecksumBytes)
	if err != nil {
		return nil, err
	}
	sums, err := parseChecksums(sumData)
	if err != nil {
		return nil, err
	}
	if _, ok := sums[a.model]; !ok {
		return nil, refuse(ReasonLayout, zipChecksum, fmt.Sprintf("does not list %s", a.model))
	}
	digests := map[string]string{}
	for _, name := range slices.Sorted(maps.Keys(sums)) {
		zf, ok := a.files[name]
		if !ok {
			return nil, modelrepo.NewError(modelrepo.ReasonMissingFile, name, "listed in "+zipChecksum+" but not in the archive")
		}
		got, err := hashEntry(ctx, zf)
		if err != nil {
			return nil, err
		}
		if got != sums[name] {
			return nil, modelrepo.NewDigestMismatch(name, "sha256:"+sums[name], "sha256:"+got)
		}
		digests[name] = got
	}

	// 2. signature.sig is RSA-PSS/SHA-256 over the model file.
	sig, err := readEntry(a.files[zipSignature], maxSignatureBytes)
	if err != nil {
		return nil, err
	}
	modelDigest, _ := hex.DecodeString(digests[a.model])
	key, err := verifyPSS(im.opts.Trust.RSAKeys, modelDigest, sig)
	if err != nil {
		return nil, err
	}

	// 3. What it becomes.
	var cfg config
	if zf, ok := a.files[zipConfig]; ok {
		data, err := readEntry(zf, maxConfigBytes)
		if err != nil {
			return nil, err
		}
		if cfg, err = parseConfig(data); err != nil {
			return nil, err
		}
	}
	kind, runtime := manifest.KindONNX, map[string]any(nil)
	if strings.HasSuffix(a.model, ".traineddata") {
		kind, runtime = manifest.KindOCRTesseract, map[string]any{"lang": strings.TrimSuffix(a.model, ".traineddata")}
	}
	p, err := im.makePlan(src, cfg, filepath.Base(src.Path), kind, runtime)
	if err != nil {
		return nil, err
	}
	if !fits(a.model, p.kind) {
		return nil, refuse(ReasonConfigInvalid, "", fmt.Sprintf("kind %s does not fit the model file %s", p.kind, a.model))
	}

	// 4. Unpack the model and config.json, hashing again: the archive may
	// have changed since it was verified.
	s, err := im.newStaging(p)
	if err != nil {
		return nil, err
	}
	defer s.cleanup()
	for _, name := range []string{a.model, zipConfig} {
		zf, ok := a.files[name]
		if !ok {
			continue
		}
		rc, err := zf.Open()
		if err != nil {
			return nil, &Error{Reason: ReasonArchiveInvalid, Path: name, Err: err}
		}
		got, _, err := s.copyIn(ctx, name, rc, int64(zf.UncompressedSize64))
		rc.Close()
		if err != nil {
			return nil, fmt.Errorf("unpack %s: %w", name, err)
		}
		if want, ok := digests[name]; ok && got != want {
			return nil, modelrepo.NewDigestMismatch(name, "sha256:"+want, "sha256:"+got)
		}
	}
	if err := s.writeFile(evidenceSignature, sig); err != nil {
		return nil, err
	}
	if err := s.writeFile(evidenceChecksum, sumData); err != nil {
		return nil, err
	}
	archiveSum, err := hashFile(ctx, f)
	if err != nil {
		return nil, err
	}
	prov := &manifest.Provenance{
		Format: manifest.ProvenanceZip, Source: filepath.Base(src.Path), SourceSHA256: archiveSum,
		Imported: im.opts.Now().UTC().Truncate(1e9),
		Signer:   manifest.ProvenanceSigner{Method: "key", Algorithm: "rsa-pss-sha256", KeyID: rsaKeyID(key)},
		Evidence: []string{evidenceChecksum, evidenceSignature},
	}
	return im.finish(ctx, s, p, prov)
}

// fits reports whether a zip's model file can be a package of kind k.
func fits(model string, k manifest.Kind) bool {
	if strings.HasSuffix(model, ".traineddata") {
		return k == manifest.KindOCRTesseract
	}
	return k == manifest.KindONNX || k == manifest.KindFaceDetect || k == manifest.KindFaceEmbed
}

// checkArchive checks every entry before any is read: names (zip-slip),
// types, encryption, methods, counts and sizes (zip bombs), then the
// layout.
func (im *Importer) checkArchive(zr *zip.Reader) (*archive, error) {
	lim := im.opts.Limits
	if len(zr.File) > lim.MaxEntries {
		return nil, refuse(ReasonTooLarge, "", fmt.Sprintf("%d entries, more than the %d allowed", len(zr.File), lim.MaxEntries))
	}
	var total uint64
	type entry struct {
		name string
		f    *zip.File
	}
	var entries []entry
	for _, f := range zr.File {
		name, err := safeName(f.Name)
		if err != nil {
			return nil, err
		}
		mode := f.Mode()
		if mode.IsDir() {
			continue
		}
		if !mode.IsRegular() {
			return nil, refuse(ReasonUnsafePath, name, fmt.Sprintf("entry is a %s, not a regular file", fileType(mode)))
		}
		if f.Flags&0x1 != 0 {
			return nil, refuse(ReasonArchiveInvalid, name, "encrypted entries are not supported")
		}
		if f.Method != zip.Store && f.Method != zip.Deflate {
			return nil, refuse(ReasonArchiveInvalid, name, fmt.Sprintf("compression method %d is not supported (store or deflate)", f.Method))
		}
		if f.UncompressedSize64 > uint64(lim.MaxFileBytes) {
			return nil, refuse(ReasonTooLarge, name, fmt.Sprintf("%d bytes uncompressed, more than the %d allowed", f.UncompressedSize64, lim.MaxFileBytes))
		}
		if f.UncompressedSize64 > ratioFloor && f.UncompressedSize64 > uint64(lim.MaxRatio)*max(f.CompressedSize64, 1) {
			return nil, refuse(ReasonTooLarge, name, fmt.Sprintf("compression ratio over %d:1 (%d bytes from %d)", lim.MaxRatio, f.UncompressedSize64, f.CompressedSize64))
		}
		if total += f.UncompressedSize64; total > uint64(lim.MaxTotalBytes) {
			return nil, refuse(ReasonTooLarge, "", fmt.Sprintf("more than %d bytes uncompressed in all", lim.MaxTotalBytes))
		}
		entries = append(entries, entry{name, f})
	}
	// A zip of a folder ("zip -r model.zip model/") holds the layout one
	// directory down.
	if len(entries) > 0 {
		top, _, nested := strings.Cut(entries[0].name, "/")
		for _, e := range entries {
			if t, _, ok := strings.Cut(e.name, "/"); !ok || t != top {
				nested = false
			}
		}
		if nested {
			for i := range entries {
				entries[i].name = strings.TrimPrefix(entries[i].name, top+"/")
			}
		}
	}
	a := &archive{files: map[string]*zip.File{}}
	seen := map[string]bool{}
	for _, e := range entries {
		folded := strings.ToLower(e.name)
		if seen[folded] {
			return nil, refuse(ReasonLayout, e.name, "listed twice")
		}
		seen[folded] = true
		switch {
		case e.name == zipChecksum, e.name == zipSignature, e.name == zipConfig:
		case e.name == zipONNX, !strings.Contains(e.name, "/") && strings.HasSuffix(e.name, ".traineddata"):
			if a.model != "" {
				return nil, refuse(ReasonLayout, e.name, "a second model file (after "+a.model+"); the layout has exactly one")
			}
			a.model = e.name
		default:
			return nil, refuse(ReasonLayout, e.name, "unexpected entry; the layout is model.onnx or one *.traineddata, config.json, checksum.sha256 and signature.sig")
		}
		a.files[e.name] = e.f
	}
	if a.model == "" {
		return nil, refuse(ReasonLayout, "", "no model file (model.onnx or *.traineddata)")
	}
	for _, need := range []string{zipChecksum, zipSignature} {
		if _, ok := a.files[need]; !ok {
			return nil, modelrepo.NewError(modelrepo.ReasonMissingFile, need, "the zip layout needs it")
		}
	}
	return a, nil
}

// safeName checks a zip entry name and returns it without a directory's
// trailing slash. Names that could write outside the target (zip-slip)
// are refused, whatever the entry is.
func safeName(name string) (string, error) {
	bad := func(why string) error {
		return refuse(ReasonUnsafePath, fmt.Sprintf("%q", truncate(name, 200)), why)
	}
	switch {
	case name == "":
		return "", bad("empty entry name")
	case !utf8.ValidString(name) || strings.ContainsFunc(name, unicode.IsControl):
		return "", bad("entry name is not printable UTF-8")
	case strings.Contains(name, `\`):
		return "", bad("backslash in an entry name")
	case strings.HasPrefix(name, "/"), len(name) >= 2 && name[1] == ':':
		return "", bad("absolute entry name")
	}
	trimmed := strings.TrimSuffix(name, "/")
	for _, elem := range strings.Split(trimmed, "/") {
		if elem == ".." {
			return "", bad("entry name climbs out with ..")
		}
	}
	if trimmed == "" || path.Clean(trimmed) != trimmed {
		return "", bad("entry name is not a clean relative path")
	}
	return trimmed, nil
}

func fileType(m fs.FileMode) string {
	switch {
	case m&fs.ModeSymlink != 0:
		return "symlink"
	case m&fs.ModeDevice != 0:
		return "device"
	case m&fs.ModeNamedPipe != 0:
		return "named pipe"
	}
	return "special file"
}

// readEntry reads a small entry whole, refusing one over limit.
func readEntry(f *zip.File, limit int64) ([]byte, error) {
	if f.UncompressedSize64 > uint64(limit) {
		return nil, refuse(ReasonTooLarge, f.Name, fmt.Sprintf("more than %d bytes", limit))
	}
	rc, err := f.Open()
	if err != nil {
		return nil, &Error{Reason: ReasonArchiveInvalid, Path: f.Name, Err: err}
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if err != nil {
		return nil, &Error{Reason: ReasonArchiveInvalid, Path: f.Name, Err: err}
	}
	if int64(len(data)) > limit {
		return nil, refuse(ReasonTooLarge, f.Name, fmt.Sprintf("more than %d bytes", limit))
	}
	return data, nil
}

// hashEntry streams an entry through SHA-256. archive/zip fails an entry
// that inflates past its declared size; the limit is checked here too.
func hashEntry(ctx context.Context, f *zip.File) (string, error) {
	rc, err := f.Open()
	if err != nil {
		return "", &Error{Reason: ReasonArchiveInvalid, Path: f.Name, Err: err}
	}
	defer rc.Close()
	h := sha256.New()
	n, err := io.Copy(h, ctxio.NewReader(ctx, io.LimitReader(rc, int64(f.UncompressedSize64)+1)))
	if err != nil {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		return "", &Error{Reason: ReasonArchiveInvalid, Path: f.Name, Detail: "cannot decompress", Err: err}
	}
	if uint64(n) != f.UncompressedSize64 {
		return "", refuse(ReasonTooLarge, f.Name, "inflates past its declared size")
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// hashFile is the hex SHA-256 of a whole open file.
func hashFile(ctx context.Context, f *os.File) (string, error) {
	h := sha256.New()
	if _, err := io.Copy(h, ctxio.NewReader(ctx, io.NewSectionReader(f, 0, 1<<62))); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// parseChecksums reads sha256sum output: "<64 hex><space><space or
// *><name>" per line; names are the archive's (a leading "./" is
// dropped). Anything else is ReasonLayout.
func parseChecksums(data []byte) (map[string]string, error) {
	out := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimRight(sc.Text(), "\r")
		if strings.TrimSpace(text) == "" {
			continue
		}
		if len(text) < 67 || (text[64] != ' ') || (text[65] != ' ' && text[65] != '*') {
			return nil, refuse(ReasonLayout, zipChecksum, fmt.Sprintf("line %d is not sha256sum output (<digest>  <file>)", line))
		}
		sum, name := strings.ToLower(text[:64]), strings.TrimPrefix(text[66:], "./")
		if _, err := hex.DecodeString(sum); err != nil {
			return nil, refuse(ReasonLayout, zipChecksum, fmt.Sprintf("line %d: the digest is not 64 hex digits", line))
		}
		if _, dup := out[name]; dup {
			return nil, refuse(ReasonLayout, zipChecksum, fmt.Sprintf("line %d: %s listed twice", line, truncate(name, 200)))
		}
		out[name] = sum
	}
	if err := sc.Err(); err != nil {
		return nil, &Error{Reason: ReasonLayout, Path: zipChecksum, Err: err}
	}
	if len(out) == 0 {
		return nil, refuse(ReasonLayout, zipChecksum, "lists no file")
	}
	return out, nil
}

// verifyPSS checks sig, RSA-PSS with SHA-256 (MGF1-SHA-256, any salt
// length: OpenSSL signs with the longest by default) over a file whose
// SHA-256 is digest, against every trusted key, and returns the key that
// verified. A base64-encoded signature.sig is accepted too.
func verifyPSS(keys []*rsa.PublicKey, digest, sig []byte) (*rsa.PublicKey, error) {
	if len(keys) == 0 {
		return nil, modelrepo.NewError(modelrepo.ReasonUntrustedKey, zipSignature, "no RSA public key is trusted for zip packages")
	}
	candidates := [][]byte{sig}
	if dec, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(sig))); err == nil {
		candidates = append(candidates, dec)
	}
	sized := false
	for _, k := range keys {
		for _, c := range candidates {
			if len(c) != k.Size() {
				continue
			}
			sized = true
			if rsa.VerifyPSS(k, crypto.SHA256, digest, c, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthAuto, Hash: crypto.SHA256}) == nil {
				return k, nil
			}
		}
	}
	if !sized {
		return nil, modelrepo.NewError(modelrepo.ReasonSignatureInvalid, zipSignature, fmt.Sprintf("%d bytes, the size of no trusted RSA key's signature", len(sig)))
	}
	return nil, modelrepo.NewError(modelrepo.ReasonBadSignature, zipSignature, "not an RSA-PSS/SHA-256 signature of the model file by a trusted key")
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
