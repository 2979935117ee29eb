package render

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// JSON and text stay byte for byte what /v1/ocr answered before formats
// were a registry: testdata/eurotext.json is the old server's JSON for
// eurotext.tif (its CLI output, compacted), testdata/golden/eurotext.txt
// its text answer.
func TestJSONAndTextAreUnchanged(t *testing.T) {
	res := fixture(t, "eurotext")
	for _, tc := range []struct{ format, golden string }{
		{"json", "eurotext.json"},
		{"text", filepath.Join("golden", "eurotext.txt")},
	} {
		want, err := os.ReadFile(filepath.Join("testdata", tc.golden))
		if err != nil {
			t.Fatal(err)
		}
		if got := render(t, tc.format, res, nil); !bytes.Equal(got, want) {
			t.Errorf("format=%s differs from %s:\n%s", tc.format, tc.golden, got)
		}
	}
}

func TestLookup(t *testing.T) {
	for _, name := range []string{"", "json", "text", "hocr", "alto", "page", "pdf", "pdfa"} {
		if _, err := Lookup(name); err != nil {
			t.Errorf("Lookup(%q): %v", name, err)
		}
	}
	if f, _ := Lookup(""); f.Name != "json" {
		t.Errorf(`Lookup("") = %s, want json`, f.Name)
	}
	for accept, want := range map[string]string{
		"text/plain":                   "text",
		"text/plain; charset=utf-8":    "text",
		"application/json, text/plain": "json",
		"text/html, text/plain;q=0.9":  "text",
		"application/xhtml+xml":        "hocr",
		"*/*":                          "",
		"application/xml":              "", // alto and page: ambiguous
		"application/pdf":              "pdf",
	} {
		f, ok := ForAccept(accept)
		if f.Name != want || ok != (want != "") {
			t.Errorf("ForAccept(%q) = %q %v, want %q", accept, f.Name, ok, want)
		}
	}
}
