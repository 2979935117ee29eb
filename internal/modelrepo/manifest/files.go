package manifest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/visionserve/visionserve/internal/ctxio"
	"github.com/visionserve/visionserve/internal/modelrepo"
)

// entry is one file found in a package directory.
type entry struct {
	rel  string // slash-separated path relative to the package directory
	open string // what to open: the path itself, or a symlink's target
	size int64
}

// scan lists the files of the package directory dir: every regular file,
// and every symlink to a regular file inside dir, except the excluded
// names. Anything else (a symlink leaving dir or naming a directory, a
// FIFO, a socket, a device, a name that is not valid UTF-8) makes the
// package unacceptable and fails with ReasonUnlistedFile.
func scan(ctx context.Context, dir string) ([]entry, error) {
	root, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return nil, &modelrepo.Error{Reason: modelrepo.ReasonIOError, Err: err}
	}
	root, err = filepath.Abs(root)
	if err != nil {
		return nil, &modelrepo.Error{Reason: modelrepo.ReasonIOError, Err: err}
	}
	var out []entry
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, walkErr error) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if walkErr != nil {
			return &modelrepo.Error{Reason: modelrepo.ReasonIOError, Path: rel, Err: walkErr}
		}
		if rel == "." {
			return nil
		}
		if excluded(rel) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			return nil
		}
		if err := CheckPath(rel); err != nil {
			return &modelrepo.Error{Reason: modelrepo.ReasonUnlistedFile, Err: err}
		}
		e, err := classify(root, p, rel, d)
		if err != nil {
			return err
		}
		out = append(out, e)
		if len(out) > MaxFiles {
			return modelrepo.NewError(modelrepo.ReasonUnlistedFile, "", fmt.Sprintf("more than %d files", MaxFiles))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b entry) int { return strings.Compare(a.rel, b.rel) })
	return out, nil
}

// classify turns one non-directory walk entry into a package entry.
func classify(root, p, rel string, d fs.DirEntry) (entry, error) {
	unlisted := func(detail string) (entry, error) {
		return entry{}, modelrepo.NewError(modelrepo.ReasonUnlistedFile, rel, detail)
	}
	switch {
	case d.Type().IsRegular():
		info, err := d.Info()
		if err != nil {
			return entry{}, &modelrepo.Error{Reason: modelrepo.ReasonIOError, Path: rel, Err: err}
		}
		return entry{rel: rel, open: p, size: info.Size()}, nil
	case d.Type()&fs.ModeSymlink != 0:
		target, err := filepath.EvalSymlinks(p)
		if err != nil {
			return unlisted("broken symlink")
		}
		inside, err := filepath.Rel(root, target)
		if err != nil || inside == ".." || strings.HasPrefix(inside, ".."+string(filepath.Separator)) || filepath.IsAbs(inside) {
			return unlisted("symlink points outside the package directory")
		}
		info, err := os.Stat(target)
		if err != nil {
			return entry{}, &modelrepo.Error{Reason: modelrepo.ReasonIOError, Path: rel, Err: err}
		}
		if !info.Mode().IsRegular() {
			return unlisted("symlink to something other than a regular file")
		}
		return entry{rel: rel, open: target, size: info.Size()}, nil
	default:
		return unlisted("not a regular file")
	}
}

// hashBufSize is the read size used when hashing; memory per hash is
// bounded by it whatever the file size.
const hashBufSize = 1 << 20

// hashFile streams the file at name through SHA-256 and returns the hex
// digest and the number of bytes read. It stops early when ctx is done.
func hashFile(ctx context.Context, name string, buf []byte) (string, int64, error) {
	f, err := os.Open(name)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.CopyBuffer(h, ctxio.NewReader(ctx, f), buf)
	if err != nil {
		return "", n, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// fileError classifies an error met while reading a listed file.
func fileError(rel string, err error) error {
	var re *modelrepo.Error
	switch {
	case errors.As(err, &re):
		return err
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	case errors.Is(err, fs.ErrNotExist):
		return &modelrepo.Error{Reason: modelrepo.ReasonMissingFile, Path: rel, Err: err}
	default:
		return &modelrepo.Error{Reason: modelrepo.ReasonIOError, Path: rel, Err: err}
	}
}

// Build scans dir and returns the manifest describing it, without writing
// anything. Every regular file is listed except manifest.json, model.sig and
// the top-level git entries; a symlink is listed (with its target's content)
// only if it points at a regular file inside dir.
func Build(ctx context.Context, dir, name string, version int, kind Kind, runtime json.RawMessage) (*Manifest, error) {
	m := &Manifest{
		SchemaVersion: SchemaVersion,
		Name:          name,
		Version:       version,
		Kind:          kind,
		Runtime:       runtime,
		Created:       time.Now().UTC().Truncate(time.Second),
	}
	// Check the caller's fields before hashing gigabytes.
	if err := m.validateHeader(); err != nil {
		return nil, err
	}
	entries, err := scan(ctx, dir)
	if err != nil {
		return nil, err
	}
	if len(entries) == 0 {
		return nil, modelrepo.NewError(modelrepo.ReasonManifestInvalid, "", "no model files in "+dir)
	}
	buf := make([]byte, hashBufSize)
	for _, e := range entries {
		sum, n, err := hashFile(ctx, e.open, buf)
		if err != nil {
			return nil, fileError(e.rel, err)
		}
		m.Files = append(m.Files, File{Path: e.rel, SHA256: sum, Size: n})
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return m, nil
}

// Pack builds the manifest for dir and writes it to dir/manifest.json. A
// model.sig already in dir is left alone; it no longer matches and the
// package must be signed again.
func Pack(ctx context.Context, dir, name string, version int, kind Kind, runtime json.RawMessage) (*Manifest, error) {
	m, err := Build(ctx, dir, name, version, kind, runtime)
	if err != nil {
		return nil, err
	}
	if err := Write(dir, m); err != nil {
		return nil, err
	}
	return m, nil
}

// VerifyFiles loads dir/manifest.json and checks dir against it (see
// Manifest.Verify). It returns the manifest when it has one, even on a
// verification failure, so callers can report which version failed.
func VerifyFiles(ctx context.Context, dir string) (*Manifest, error) {
	m, err := Load(dir)
	if err != nil {
		return nil, err
	}
	return m, m.Verify(ctx, dir)
}

// Verify checks that dir holds exactly the files m lists, with the listed
// sizes and SHA-256 digests. Cheap checks (names, sizes) run before any
// byte is hashed. The first failure found, in path order, is returned.
func (m *Manifest) Verify(ctx context.Context, dir string) error {
	entries, err := m.checkTree(ctx, dir)
	if err != nil {
		return err
	}
	buf := make([]byte, hashBufSize)
	for _, f := range m.Files {
		e := entries[f.Path]
		sum, n, err := hashFile(ctx, e.open, buf)
		if err != nil {
			return fileError(f.Path, err)
		}
		if n != f.Size {
			return sizeMismatch(f.Path, f.Size, n)
		}
		if sum != f.SHA256 {
			return modelrepo.NewDigestMismatch(f.Path, "sha256:"+f.SHA256, "sha256:"+sum)
		}
	}
	return nil
}

// VerifyDigests is Verify for a caller that has already hashed the files,
// typically while checking a signature over them: digests maps each path
// to the lowercase hex SHA-256 the caller observed. The directory is still
// listed and sizes compared; no byte is hashed again. A listed file absent
// from digests fails with ReasonManifestInvalid.
func (m *Manifest) VerifyDigests(ctx context.Context, dir string, digests map[string]string) error {
	if _, err := m.checkTree(ctx, dir); err != nil {
		return err
	}
	for _, f := range m.Files {
		got, ok := digests[f.Path]
		if !ok {
			return modelrepo.NewError(modelrepo.ReasonManifestInvalid, f.Path, "listed in the manifest but not covered by the signature")
		}
		if got != f.SHA256 {
			return modelrepo.NewDigestMismatch(f.Path, "sha256:"+f.SHA256, "sha256:"+got)
		}
	}
	return nil
}

// checkTree lists dir and compares names and sizes with m.Files. It returns
// the entries by path for hashing.
func (m *Manifest) checkTree(ctx context.Context, dir string) (map[string]entry, error) {
	list, err := scan(ctx, dir)
	if err != nil {
		return nil, err
	}
	onDisk := make(map[string]entry, len(list))
	for _, e := range list {
		onDisk[e.rel] = e
	}
	listed := make(map[string]bool, len(m.Files))
	var missing []string
	for _, f := range m.Files {
		listed[f.Path] = true
		if _, ok := onDisk[f.Path]; !ok {
			missing = append(missing, f.Path)
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		return nil, withMore(modelrepo.NewError(modelrepo.ReasonMissingFile, missing[0], "listed in the manifest but absent"), len(missing)-1)
	}
	var unlisted []string
	for _, e := range list {
		if !listed[e.rel] {
			unlisted = append(unlisted, e.rel)
		}
	}
	if len(unlisted) > 0 {
		return nil, withMore(modelrepo.NewError(modelrepo.ReasonUnlistedFile, unlisted[0], "not in the manifest"), len(unlisted)-1)
	}
	for _, f := range m.Files {
		if got := onDisk[f.Path].size; got != f.Size {
			return nil, sizeMismatch(f.Path, f.Size, got)
		}
	}
	return onDisk, nil
}

func sizeMismatch(rel string, want, got int64) error {
	return &modelrepo.Error{
		Reason:   modelrepo.ReasonDigestMismatch,
		Path:     rel,
		Expected: fmt.Sprintf("%d bytes", want),
		Actual:   fmt.Sprintf("%d bytes", got),
	}
}

// withMore notes how many further files failed the same way.
func withMore(e *modelrepo.Error, more int) error {
	if more > 0 {
		if e.Detail != "" {
			e.Detail += "; "
		}
		e.Detail += fmt.Sprintf("and %d more", more)
	}
	return e
}
