package jobstest_test

import (
	"bytes"
	"image"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/visionserve/visionserve/internal/imageio/imagetest"
	"github.com/visionserve/visionserve/internal/jobs/jobstest"
	"github.com/visionserve/visionserve/internal/testenv"
)

// Poppler reads every page at the size of its image, and an image drawn
// on many pages is stored once.
func TestPDF(t *testing.T) {
	for _, c := range []string{"pdfinfo", "qpdf"} {
		if _, err := exec.LookPath(c); err != nil {
			testenv.Missing(t, c+" not found: install poppler-utils and qpdf (hack/setup.sh does)")
		}
	}
	a, b := imagetest.Marked(144, 72), imagetest.Marked(72, 216)
	one := jobstest.PDF([]image.Image{a}, 144)
	many := jobstest.PDF([]image.Image{a, b, a, a, b}, 144)
	if len(many) > 2*len(one)+2000 {
		t.Errorf("five pages of two images take %d bytes, one page %d: repeated images are stored again", len(many), len(one))
	}
	path := filepath.Join(t.TempDir(), "doc.pdf")
	if err := os.WriteFile(path, many, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("qpdf", "--check", path).CombinedOutput(); err != nil || !bytes.Contains(out, []byte("No syntax or stream encoding errors")) {
		t.Fatalf("qpdf --check: %v\n%s", err, out)
	}
	out, err := exec.Command("pdfinfo", "-f", "1", "-l", "5", path).Output()
	if err != nil {
		t.Fatal(err)
	}
	info := strings.Join(strings.Fields(string(out)), " ")
	for _, want := range []string{"Pages: 5", "Page 1 size: 72 x 36 pts", "Page 2 size: 36 x 108 pts", "Page 4 size: 72 x 36 pts", "Page 5 size: 36 x 108 pts"} {
		if !strings.Contains(info, want) {
			t.Errorf("no %q in %s", want, info)
		}
	}
}
