package signing

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/emmansun/gmsm/sm3"
	"golang.org/x/crypto/blake2b"

	"github.com/visionserve/visionserve/internal/ctxio"
	"github.com/visionserve/visionserve/internal/modelrepo"
)

// DefaultIgnorePaths returns the top-level paths every model excludes, as
// the reference CLI does by default.
func DefaultIgnorePaths() []string {
	return []string{".git", ".gitattributes", ".github", ".gitignore"}
}

// item is one file of a model as found on disk.
type item struct {
	name    string // resource name: slash path, or "." for a single-file model
	open    string // file to read
	size    int64
	symlink bool
}

// exclusions are model-relative slash paths; a path is excluded when it
// equals one or lies below it.
type exclusions []string

func (e exclusions) match(rel string) bool {
	for _, p := range e {
		if rel == p || strings.HasPrefix(rel, p+"/") {
			return true
		}
	}
	return false
}

// buildExclusions gathers the default, recorded and caller exclusions plus
// the signature file when it lies inside the model directory.
func buildExclusions(modelRoot string, sigPath string, lists ...[]string) exclusions {
	var ex exclusions
	add := func(p string) {
		if c, ok := cleanRel(p); ok && !slices.Contains(ex, c) {
			ex = append(ex, c)
		}
	}
	for _, p := range DefaultIgnorePaths() {
		add(p)
	}
	for _, l := range lists {
		for _, p := range l {
			add(filepath.ToSlash(p))
		}
	}
	if sigPath != "" {
		if rel, ok := relInside(modelRoot, sigPath); ok {
			add(rel)
		}
	}
	return ex
}

// relInside returns p relative to root (slash-separated) when p lies
// strictly inside root.
func relInside(root, p string) (string, bool) {
	absRoot, err1 := filepath.Abs(root)
	absP, err2 := filepath.Abs(p)
	if err1 != nil || err2 != nil {
		return "", false
	}
	if r, err := filepath.EvalSymlinks(absRoot); err == nil {
		absRoot = r
	}
	if d, err := filepath.EvalSymlinks(filepath.Dir(absP)); err == nil {
		absP = filepath.Join(d, filepath.Base(absP))
	}
	rel, err := filepath.Rel(absRoot, absP)
	if err != nil || rel == "." || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return "", false
	}
	return filepath.ToSlash(rel), true
}

func unlisted(rel, detail string) error {
	return modelrepo.NewError(modelrepo.ReasonUnlistedFile, rel, detail)
}

// collect enumerates a model the way the reference serializer does: the
// model path itself if it is a file (one item named "."), otherwise every
// regular file below it, hidden ones included, minus exclusions. A symlink
// fails unless allowSymlinks; allowed symlinks must point at a regular file
// inside the model (stricter than the reference, which follows links
// anywhere). Links to directories are not descended, like the reference.
func collect(ctx context.Context, modelPath string, ex exclusions, allowSymlinks bool) ([]item, error) {
	info, err := os.Lstat(modelPath)
	if err != nil {
		return nil, fileErr(".", err)
	}
	if info.Mode()&fs.ModeSymlink != 0 {
		if modelPath, err = filepath.EvalSymlinks(modelPath); err != nil {
			return nil, fileErr(".", err)
		}
		if info, err = os.Stat(modelPath); err != nil {
			return nil, fileErr(".", err)
		}
	}
	if info.Mode().IsRegular() {
		return []item{{name: ".", open: modelPath, size: info.Size()}}, nil
	}
	if !info.IsDir() {
		return nil, unlisted(".", "the model is neither a file nor a directory")
	}
	root, err := filepath.Abs(modelPath)
	if err != nil {
		return nil, fileErr(".", err)
	}
	var items []item
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
			return fileErr(rel, walkErr)
		}
		if rel == "." {
			return nil
		}
		if ex.match(rel) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			return nil
		}
		if !utf8.ValidString(rel) || strings.ContainsFunc(rel, unicode.IsControl) {
			return unlisted(strconv.Quote(rel), "file name is not valid UTF-8 text")
		}
		switch {
		case d.Type().IsRegular():
			fi, err := d.Info()
			if err != nil {
				return fileErr(rel, err)
			}
			items = append(items, item{name: rel, open: p, size: fi.Size()})
			return nil
		case d.Type()&fs.ModeSymlink != 0:
			if !allowSymlinks {
				return unlisted(rel, "symlink, and the signature does not allow symlinks")
			}
			target, err := filepath.EvalSymlinks(p)
			if err != nil {
				return unlisted(rel, "broken symlink")
			}
			if _, ok := relInside(root, target); !ok {
				return unlisted(rel, "symlink points outside the model directory")
			}
			fi, err := os.Stat(target)
			if err != nil {
				return fileErr(rel, err)
			}
			if fi.IsDir() {
				return nil
			}
			if !fi.Mode().IsRegular() {
				return unlisted(rel, "symlink to something other than a regular file")
			}
			items = append(items, item{name: rel, open: target, size: fi.Size(), symlink: true})
			return nil
		default:
			return unlisted(rel, "not a regular file")
		}
	})
	if err != nil {
		return nil, err
	}
	return items, nil
}

// fileErr classifies an error met while listing or reading a model file.
func fileErr(rel string, err error) error {
	var re *modelrepo.Error
	switch {
	case errors.As(err, &re), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	case errors.Is(err, fs.ErrNotExist):
		return &modelrepo.Error{Reason: modelrepo.ReasonMissingFile, Path: rel, Err: err}
	}
	return &modelrepo.Error{Reason: modelrepo.ReasonIOError, Path: rel, Err: err}
}

// newHash returns the hash named by an OMS hash_type.
func newHash(hashType string) (hash.Hash, error) {
	switch hashType {
	case HashSHA256:
		return sha256.New(), nil
	case HashBLAKE2b:
		return blake2b.New512(nil)
	case HashSM3:
		return sm3.New(), nil
	}
	return nil, invalidStatement("unsupported hash_type %q", truncate(hashType, 50))
}

// hashBufSize bounds the memory one hash uses, whatever the file size.
const hashBufSize = 1 << 20

// hashRange streams length bytes of the file at name, from offset, through
// a new hash of type hashType; length < 0 means to the end of the file. It
// returns the hex digest and the number of bytes hashed.
func hashRange(ctx context.Context, name, hashType string, offset, length int64, buf []byte) (string, int64, error) {
	h, err := newHash(hashType)
	if err != nil {
		return "", 0, err
	}
	f, err := os.Open(name)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	var r io.Reader = f
	if offset > 0 || length >= 0 {
		if length < 0 {
			length = 1<<63 - 1 - offset
		}
		r = io.NewSectionReader(f, offset, length)
	}
	n, err := io.CopyBuffer(h, ctxio.NewReader(ctx, r), buf)
	if err != nil {
		return "", n, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// expectedName maps a resource name of the statement to the name collect
// gives the same file. For a single-file model the reference writes "."
// and the draft spec the file's base name; both are accepted.
func expectedName(name string, single bool, base string) string {
	if single && name == base {
		return "."
	}
	return name
}

// compare checks the model on disk against the statement and returns the
// verified digests keyed by resource name as the statement spells it.
// Missing files are reported before unlisted ones, and both before any
// byte is hashed; digests are then compared in the statement's order.
func compare(ctx context.Context, st *Statement, items []item, ignoreUnsigned bool, single bool, base string) (map[string]string, error) {
	onDisk := make(map[string]item, len(items))
	for _, it := range items {
		onDisk[it.name] = it
	}
	type want struct {
		res        Resource
		file       string // collect's name of the file holding it
		start, end int64  // byte range for shards
	}
	wants := make([]want, 0, len(st.Resources))
	listedFiles := map[string]bool{}
	for _, r := range st.Resources {
		w := want{res: r, file: r.Name, end: -1}
		if st.Method == SerializeShards {
			w.file, w.start, w.end, _ = splitShard(r.Name)
		}
		w.file = expectedName(w.file, single, base)
		listedFiles[w.file] = true
		wants = append(wants, w)
	}
	for _, w := range wants {
		if _, ok := onDisk[w.file]; !ok {
			return nil, modelrepo.NewError(modelrepo.ReasonMissingFile, w.file, "signed but absent")
		}
	}
	if !ignoreUnsigned {
		var extra []string
		for _, it := range items {
			if !listedFiles[it.name] && !(st.Method == SerializeShards && it.size == 0) {
				extra = append(extra, it.name)
			}
		}
		if len(extra) > 0 {
			slices.Sort(extra)
			e := modelrepo.NewError(modelrepo.ReasonUnlistedFile, extra[0], "present but not signed")
			if len(extra) > 1 {
				e.Detail += fmt.Sprintf("; and %d more", len(extra)-1)
			}
			return nil, e
		}
	}
	if st.Method == SerializeShards {
		shards := make([]shardRef, 0, len(wants))
		for _, w := range wants {
			shards = append(shards, shardRef{w.file, w.start, w.end})
		}
		if err := checkShardCover(st.ShardSize, shards, onDisk); err != nil {
			return nil, err
		}
	}
	digests := make(map[string]string, len(wants))
	buf := make([]byte, hashBufSize)
	for _, w := range wants {
		it := onDisk[w.file]
		offset, length := int64(0), int64(-1)
		if st.Method == SerializeShards {
			offset, length = w.start, w.end-w.start
		}
		got, n, err := hashRange(ctx, it.open, st.HashType, offset, length, buf)
		if err != nil {
			return nil, fileErr(w.file, err)
		}
		if length >= 0 && n != length {
			return nil, modelrepo.NewError(modelrepo.ReasonDigestMismatch, w.res.Name, "file is shorter than the signed byte range")
		}
		if got != w.res.Digest {
			return nil, modelrepo.NewDigestMismatch(displayName(w.res.Name, base), st.HashType+":"+w.res.Digest, st.HashType+":"+got)
		}
		digests[w.res.Name] = got
	}
	return digests, nil
}

// displayName prefers the statement's name, except "." (a single-file
// model), which is shown as the file's base name.
func displayName(resName, base string) string {
	if resName == "." {
		return base
	}
	return resName
}

type shardRef struct {
	file       string
	start, end int64
}

// checkShardCover requires the signed shards of each file to be exactly
// the cut points [0,N), [N,2N), ... of its current size; a file whose size
// changed fails with ReasonDigestMismatch before any hashing.
func checkShardCover(shardSize int64, shards []shardRef, onDisk map[string]item) error {
	byFile := map[string][]shardRef{}
	for _, s := range shards {
		byFile[s.file] = append(byFile[s.file], s)
	}
	for _, file := range slices.Sorted(maps.Keys(byFile)) {
		list := byFile[file]
		slices.SortFunc(list, func(a, b shardRef) int { return cmp.Compare(a.start, b.start) })
		size := onDisk[file].size
		var next int64
		for _, s := range list {
			if s.start != next || s.end != min(s.start+shardSize, size) {
				return modelrepo.NewError(modelrepo.ReasonDigestMismatch, file, fmt.Sprintf("signed shards do not match the file's %d bytes", size))
			}
			next = s.end
		}
		if next != size {
			return modelrepo.NewError(modelrepo.ReasonDigestMismatch, file, fmt.Sprintf("signed shards cover %d bytes, the file has %d", next, size))
		}
	}
	return nil
}

// componentCompare orders resource names as the reference serializer
// does: by path, component by component, each compared as a string; shards
// of one file then by numeric start offset.
func componentCompare(a, b string, shards bool) int {
	var as, bs int64
	if shards {
		a, as, _, _ = splitShard(a)
		b, bs, _, _ = splitShard(b)
	}
	if c := slices.Compare(strings.Split(a, "/"), strings.Split(b, "/")); c != 0 {
		return c
	}
	switch {
	case as < bs:
		return -1
	case as > bs:
		return 1
	}
	return 0
}
