package modelrepo

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// diskModel is one model directory as listed. versions is nil when the
// directory could not be read this time (nothing about it changes then).
type diskModel struct {
	dir      string
	versions map[int]string
}

// scanRoot lists <root>/<model>/<version>/. Only directories count; model
// directories must have a valid model name and version directories a
// canonical version number, so temporary names (".incoming-3", "3.tmp")
// are never loaded. An unreadable root is an error: the caller then
// changes nothing rather than unloading every model.
func scanRoot(root string) (map[string]diskModel, error) {
	entries, err := os.ReadDir(root)
	if err != nil {
		return nil, fmt.Errorf("model repository: %w", err)
	}
	out := map[string]diskModel{}
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") || !ValidName(name) {
			continue
		}
		dir := filepath.Join(root, name)
		if !isDir(dir, e) {
			continue
		}
		dm := diskModel{dir: dir}
		if vents, err := os.ReadDir(dir); err == nil {
			dm.versions = map[int]string{}
			for _, ve := range vents {
				n, ok := ParseVersion(ve.Name())
				vdir := filepath.Join(dir, ve.Name())
				if ok && isDir(vdir, ve) {
					dm.versions[n] = vdir
				}
			}
		}
		out[name] = dm
	}
	return out, nil
}

// isDir reports whether the entry is a directory, following a symlink.
func isDir(path string, e fs.DirEntry) bool {
	if e.IsDir() {
		return true
	}
	if e.Type()&fs.ModeSymlink == 0 {
		return false
	}
	st, err := os.Stat(path)
	return err == nil && st.IsDir()
}

// maxFingerprintFiles bounds the work of fingerprinting one directory.
const maxFingerprintFiles = 100_000

// fingerprint summarises a directory's listing (paths, sizes, modification
// times, types). It decides whether a failed version changed enough to be
// tried again; it is no integrity check (verification is).
func fingerprint(dir string) string {
	h := sha256.New()
	n := 0
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			fmt.Fprintf(h, "%s\x00error\x00", p)
			return nil
		}
		if n++; n > maxFingerprintFiles {
			return filepath.SkipAll
		}
		info, err := d.Info()
		if err != nil {
			fmt.Fprintf(h, "%s\x00gone\x00", p)
			return nil
		}
		fmt.Fprintf(h, "%s\x00%d\x00%d\x00%d\x00", p, info.Size(), info.ModTime().UnixNano(), info.Mode())
		return nil
	})
	return hex.EncodeToString(h.Sum(nil))
}
