package render

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/visionserve/visionserve/internal/ocr"
	"github.com/visionserve/visionserve/internal/ocr/ocrtest"
	"github.com/visionserve/visionserve/internal/ocreval"
	"github.com/visionserve/visionserve/internal/testenv"
)

// Must show: side by side with OCRmyPDF (which runs the same Tesseract)
// on one multi-page input built from the shared pages — every page of
// data/ocr/pages as one grey TIFF at 300 dpi — visionserve's searchable
// PDF reads at least as accurately through pdftotext. Speed (seconds per
// page, both on this machine's cores, OCRmyPDF with --jobs 2) and output
// sizes are logged with -v, not asserted.
func TestIntegrationOCRmyPDFSideBySide(t *testing.T) {
	if testing.Short() {
		t.Skip("a minute or two of OCRmyPDF; the full run has it")
	}
	dir := testenv.Shared(t, "data/ocr/pages")
	ocrmypdf := tool(t, "ocrmypdf", "ocrmypdf")
	tif, truths := multiPageTIFF(t, dir)
	tmp := t.TempDir()
	if d := os.Getenv("VISIONSERVE_COMPARE_DIR"); d != "" {
		tmp = d // keep the PDFs to look at
	}
	in := filepath.Join(tmp, "pages.tif")
	if err := os.WriteFile(in, tif, 0o600); err != nil {
		t.Fatal(err)
	}

	// visionserve: the request as the server serves it (the model already
	// loaded), OCR and PDF rendering timed together.
	svc := ocrtest.TesseractService(t, 2)
	start := time.Now()
	input := ocr.Input{Data: tif}
	res, err := svc.Recognize(context.Background(), input, ocr.Options{})
	if err != nil {
		t.Fatal(err)
	}
	doc := render(t, "pdf", res, InputPages(input, svc.Limits()))
	vsTime := time.Since(start)
	vsPath := filepath.Join(tmp, "visionserve.pdf")
	if err := os.WriteFile(vsPath, doc, 0o600); err != nil {
		t.Fatal(err)
	}

	// OCRmyPDF: its own defaults but a plain PDF out (no PDF/A conversion,
	// which only adds to its time), pages turned as visionserve turns them
	// (its orientation check trusted at any confidence: these pages are
	// small, and at its default threshold it turns none of them).
	omPath := filepath.Join(tmp, "ocrmypdf.pdf")
	cmd := exec.Command(ocrmypdf, "--jobs", "2", "--image-dpi", "300", "--rotate-pages", "--rotate-pages-threshold", "1", "--output-type", "pdf", "--quiet", in, omPath)
	start = time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ocrmypdf: %v\n%s", err, out)
	}
	omTime := time.Since(start)

	score := func(path string) ocreval.Score {
		qpdfCheck(t, path)
		var s ocreval.Score
		for i, truth := range truths {
			edits := s.Add(pdftotext(t, path, "-f", strconv.Itoa(i+1), "-l", strconv.Itoa(i+1)), truth)
			t.Logf("%s page %d (%s): %d edits", filepath.Base(path), i+1, sharedPages[i].image, edits)
		}
		return s
	}
	vs, om := score(vsPath), score(omPath)
	size := func(p string) int64 {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		return st.Size()
	}
	n := float64(len(truths))
	t.Logf("%d pages, %d-byte TIFF", len(truths), len(tif))
	t.Logf("visionserve: pdftotext %v; %.3f s/page; %d bytes", vs, vsTime.Seconds()/n, size(vsPath))
	t.Logf("OCRmyPDF:    pdftotext %v; %.3f s/page; %d bytes", om, omTime.Seconds()/n, size(omPath))
	t.Logf("OCRmyPDF takes %.1fx visionserve's time per page", omTime.Seconds()/vsTime.Seconds())
	if vs.CER() > om.CER() {
		t.Errorf("visionserve's PDF reads with CER %.2f%%, OCRmyPDF's %.2f%%", 100*vs.CER(), 100*om.CER())
	}
}
