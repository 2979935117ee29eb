package modelrepo_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/visionserve/visionserve/internal/modelrepo"
)

// ReadFile returns exactly the verified bytes, or a reasoned error when
// the file changed after verification.
func TestPackageReadFile(t *testing.T) {
	dir := t.TempDir()
	content := []byte("model weights")
	sum := sha256.Sum256(content)
	write := func(b []byte) {
		if err := os.WriteFile(filepath.Join(dir, "w.bin"), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	pkg := &modelrepo.Package{Dir: dir, Files: map[string]modelrepo.File{"w.bin": {SHA256: hex.EncodeToString(sum[:]), Size: int64(len(content))}}}
	ctx := context.Background()

	write(content)
	got, err := pkg.ReadFile(ctx, "w.bin")
	if err != nil || string(got) != string(content) {
		t.Fatalf("intact: %q %v", got, err)
	}
	flipped := append([]byte(nil), content...)
	flipped[3] ^= 1
	for name, tc := range map[string]struct {
		data   []byte
		rel    string
		reason modelrepo.Reason
	}{
		"one byte flipped": {flipped, "w.bin", modelrepo.ReasonDigestMismatch},
		"longer":           {append(append([]byte(nil), content...), 'x'), "w.bin", modelrepo.ReasonDigestMismatch},
		"shorter":          {content[:4], "w.bin", modelrepo.ReasonDigestMismatch},
		"not listed":       {content, "other.bin", modelrepo.ReasonMissingFile},
		"removed":          {nil, "w.bin", modelrepo.ReasonMissingFile},
	} {
		t.Run(name, func(t *testing.T) {
			if tc.data == nil {
				os.Remove(filepath.Join(dir, "w.bin"))
			} else {
				write(tc.data)
			}
			_, err := pkg.ReadFile(ctx, tc.rel)
			if !errors.Is(err, tc.reason) {
				t.Errorf("err = %v, want reason %s", err, tc.reason)
			}
		})
	}
	huge := &modelrepo.Package{Dir: dir, Files: map[string]modelrepo.File{"w.bin": {SHA256: hex.EncodeToString(sum[:]), Size: 1 << 40}}}
	if _, err := huge.ReadFile(ctx, "w.bin"); !errors.Is(err, modelrepo.ReasonLoadError) {
		t.Errorf("a file over MaxReadBytes: %v", err)
	}
}

func TestParseVersion(t *testing.T) {
	for s, want := range map[string]int{"1": 1, "42": 42, "2147483647": 2147483647, "0": 0, "01": 0, "+1": 0, "-1": 0, "1.0": 0, "2147483648": 0, "": 0, "a": 0} {
		got, ok := modelrepo.ParseVersion(s)
		if got != want || ok != (want != 0) {
			t.Errorf("ParseVersion(%q) = %d, %v", s, got, ok)
		}
	}
}
