package jobs

import (
	"bytes"
	"testing"
)

// Idle PDFs are memory: beyond maxBytes in all the least recently used
// are freed, whatever their number; those in use never are.
func TestFileCacheBytesBound(t *testing.T) {
	c := newFileCache(10, 250)
	load := func() ([]byte, error) { return bytes.Repeat([]byte("x"), 100), nil }
	var releases []func()
	for _, job := range []string{"a", "b", "c"} {
		_, release, err := c.open(job, 0, load)
		if err != nil {
			t.Fatal(err)
		}
		releases = append(releases, release)
	}
	if len(c.files) != 3 {
		t.Fatalf("%d files in use, want 3", len(c.files))
	}
	for _, r := range releases {
		r()
	}
	if _, ok := c.files["a/0"]; ok || len(c.files) != 2 {
		t.Fatalf("idle files %v: want b and c (200 of 250 bytes), a freed first", names(c.files))
	}
}

func names(m map[string]*cachedFile) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
