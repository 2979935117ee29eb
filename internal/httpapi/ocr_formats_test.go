package httpapi_test

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/visionserve/visionserve/internal/app/apptest"
	"github.com/visionserve/visionserve/internal/imageio/imagetest"
	"github.com/visionserve/visionserve/internal/testenv"
)

// Every registered document format is served by /v1/ocr?format= with its
// own Content-Type, and application/pdf in Accept picks the PDF.
func TestIntegrationOCRDocumentFormats(t *testing.T) {
	page, err := os.ReadFile(filepath.Join(testenv.Shared(t, "data/ocr/pages"), "phototest.tif"))
	if err != nil {
		t.Fatal(err)
	}
	srv := apptest.Start(t, nil)
	for _, tc := range []struct {
		query, accept, contentType, prefix string
	}{
		{"?format=hocr", "", "application/xhtml+xml; charset=utf-8", "<?xml"},
		{"?format=alto", "", "application/xml; charset=utf-8", "<?xml"},
		{"?format=page", "", "application/xml; charset=utf-8", "<?xml"},
		{"?format=pdf", "", "application/pdf", "%PDF-"},
		{"?format=pdfa", "", "application/pdf", "%PDF-"},
		{"", "application/pdf", "application/pdf", "%PDF-"},
	} {
		t.Run(tc.query+tc.accept, func(t *testing.T) {
			var hdr []string
			if tc.accept != "" {
				hdr = []string{"Accept", tc.accept}
			}
			resp, body := post(t, srv.URL+"/v1/ocr"+tc.query, "image/tiff", page, hdr...)
			if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != tc.contentType || !bytes.HasPrefix(body, []byte(tc.prefix)) {
				t.Fatalf("%d %q %.80q", resp.StatusCode, resp.Header.Get("Content-Type"), body)
			}
			if resp.Header.Get("X-Model-Name") == "" {
				t.Error("no X-Model-Name")
			}
			if !bytes.Contains(body, []byte("quick")) && tc.prefix == "<?xml" {
				t.Errorf("no text in %.200s", body)
			}
			if tc.prefix == "%PDF-" {
				if _, err := exec.LookPath("pdftotext"); err != nil {
					testenv.Missing(t, "pdftotext not found: install poppler-utils (hack/setup.sh does)")
				}
				cmd := exec.Command("pdftotext", "-", "-")
				cmd.Stdin = bytes.NewReader(body)
				out, err := cmd.Output()
				if err != nil || !strings.Contains(string(out), "quick brown dog") {
					t.Errorf("pdftotext: %v %q", err, out)
				}
			}
		})
	}
}

// A PAGE XML document holds one page: a multi-page input asked for as
// PAGE is a 400 problem that says so, not a document with pages missing.
func TestIntegrationOCRPageFormatRefusesSeveralPages(t *testing.T) {
	srv := apptest.Start(t, nil)
	p := imagetest.Marked(64, 64)
	two := imagetest.TIFF([]imagetest.TIFFPage{{Img: p}, {Img: p}}, false)
	resp, body := post(t, srv.URL+"/v1/ocr?format=page", "image/tiff", two)
	var prob struct {
		Type, Detail string
	}
	_ = json.Unmarshal(body, &prob)
	if resp.StatusCode != 400 || !strings.HasSuffix(prob.Type, "bad-request") || !strings.Contains(prob.Detail, "one page") {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
}
