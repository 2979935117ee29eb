package atomicfile_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/visionserve/visionserve/internal/atomicfile"
)

func TestWrite(t *testing.T) {
	dir := t.TempDir()
	name := filepath.Join(dir, "f.json")
	for _, data := range []string{"first", "second, longer"} {
		if err := atomicfile.Write(name, []byte(data), 0o640); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(name)
		if err != nil || string(got) != data {
			t.Fatalf("%q, %v; want %q", got, err, data)
		}
	}
	if fi, err := os.Stat(name); err != nil || fi.Mode().Perm() != 0o640 {
		t.Errorf("mode %v, %v", fi.Mode(), err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("%d files left beside it, want only the file", len(ents))
	}
	// A directory that does not exist is an error, and leaves nothing.
	if err := atomicfile.Write(filepath.Join(dir, "no", "f"), nil, 0o644); err == nil {
		t.Error("wrote into a missing directory")
	}
}
