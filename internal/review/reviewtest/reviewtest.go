// Package reviewtest unpacks review exports for tests.
package reviewtest

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Unpack writes the files of a review export (format "tar" or "zip") into
// dir, failing the test on an entry that is not a plain file name.
func Unpack(t testing.TB, format string, archive []byte, dir string) {
	t.Helper()
	write := func(name string, r io.Reader) {
		if name == "" || strings.ContainsAny(name, `/\`) {
			t.Fatalf("export entry %q is not a plain file name", name)
		}
		b, err := io.ReadAll(r)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if format == "zip" {
		zr, err := zip.NewReader(bytes.NewReader(archive), int64(len(archive)))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range zr.File {
			rc, err := f.Open()
			if err != nil {
				t.Fatal(err)
			}
			write(f.Name, rc)
			rc.Close()
		}
		return
	}
	tr := tar.NewReader(bytes.NewReader(archive))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		write(h.Name, tr)
	}
}
