package app

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A traffic file that cannot be read as weights stops the start with the
// file and the reason; a missing one means no weights.
func TestTrafficFileRefusals(t *testing.T) {
	dir := t.TempDir()
	if err := applyTrafficFile(nil, filepath.Join(dir, "absent.json"), slog.New(slog.DiscardHandler)); err != nil {
		t.Errorf("missing file: %v", err)
	}
	for _, tc := range []struct{ name, content, want string }{
		{"not JSON", `ocr-eng: 2`, "want {"},
		{"weights not an object", `{"ocr-eng": {"weights": [100]}}`, "want {"},
		{"unknown field", `{"ocr-eng": {"weight": {"2": 100}}}`, "unknown field"},
		{"bad version", `{"ocr-eng": {"weights": {"v2": 100}}}`, `"v2" is not a version number`},
		{"too large", `{"ocr-eng": {"weights": {}}}` + strings.Repeat(" ", maxTrafficFile), "larger than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".json")
			if err := os.WriteFile(path, []byte(tc.content), 0o644); err != nil {
				t.Fatal(err)
			}
			err := applyTrafficFile(nil, path, slog.New(slog.DiscardHandler))
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), path) {
				t.Errorf("error %v, want one naming %s and %q", err, path, tc.want)
			}
		})
	}
}
