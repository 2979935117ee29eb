package render

import (
	"bytes"
	"context"
	"html"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/visionserve/visionserve/internal/imageio"
	"github.com/visionserve/visionserve/internal/imageio/imagetest"
	"github.com/visionserve/visionserve/internal/ocr"
	"github.com/visionserve/visionserve/internal/ocr/ocrtest"
	"github.com/visionserve/visionserve/internal/ocreval"
	"github.com/visionserve/visionserve/internal/testenv"
)

// sharedPages are the shared page images with their ground truth.
var sharedPages = []struct{ image, truth string }{
	{"phototest.tif", "phototest.txt"},
	{"eurotext.tif", "eurotext.txt"},
	{"phototest-rotated-L.png", "phototest.txt"},
	{"phototest-rotated-180.png", "phototest.txt"},
	{"phototest-rotated-R.png", "phototest.txt"},
	{"phototestrot.tif", "phototest.txt"},
}

func readShared(t testing.TB, dir, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// searchablePDF reads data with svc and renders it as a PDF.
func searchablePDF(t testing.TB, svc *ocr.Service, data []byte) (*ocr.Result, []byte) {
	t.Helper()
	in := ocr.Input{Data: data}
	res, err := svc.Recognize(context.Background(), in, ocr.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return res, render(t, "pdf", res, InputPages(in, svc.Limits()))
}

func writeTemp(t testing.TB, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// qpdfCheck runs qpdf --check, which parses every object and stream.
func qpdfCheck(t testing.TB, path string) {
	t.Helper()
	out, err := exec.Command(tool(t, "qpdf", "qpdf"), "--check", path).CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("No syntax or stream encoding errors found")) {
		t.Errorf("qpdf --check: %v\n%s", err, out)
	}
}

func pdftotext(t testing.TB, path string, args ...string) string {
	t.Helper()
	out, err := exec.Command(tool(t, "pdftotext", "poppler-utils"), append(append(args, "-enc", "UTF-8"), path, "-")...).Output()
	if err != nil {
		t.Fatalf("pdftotext %v: %v", args, err)
	}
	return string(out)
}

// pdfWord is a word as pdftotext -bbox reports it, in points from the
// page's top-left corner.
type pdfWord struct {
	page           int
	text           string
	x0, y0, x1, y1 float64
}

var (
	bboxPage = regexp.MustCompile(`<page width="[0-9.]+" height="[0-9.]+">`)
	bboxWord = regexp.MustCompile(`<word xMin="([0-9.]+)" yMin="([0-9.]+)" xMax="([0-9.]+)" yMax="([0-9.]+)">([^<]*)</word>`)
)

func pdftotextBBox(t testing.TB, path string) []pdfWord {
	t.Helper()
	out := pdftotext(t, path, "-bbox")
	var words []pdfWord
	for pi, page := range bboxPage.Split(out, -1)[1:] {
		for _, m := range bboxWord.FindAllStringSubmatch(page, -1) {
			w := pdfWord{page: pi, text: html.UnescapeString(m[5])}
			for i, p := range []*float64{&w.x0, &w.y0, &w.x1, &w.y1} {
				*p, _ = strconv.ParseFloat(m[i+1], 64)
			}
			words = append(words, w)
		}
	}
	return words
}

// Must show: the searchable PDF of each shared page passes qpdf --check;
// pdftotext reads its text within 0.5 CER points of the JSON's; and
// every word pdftotext -bbox finds lies within 2 pixels at 300 dpi of the
// JSON box of that word.
func TestIntegrationSearchablePDF(t *testing.T) {
	dir := testenv.Shared(t, "data/ocr/pages")
	svc := ocrtest.TesseractService(t, runtime.NumCPU())
	for _, sp := range sharedPages {
		t.Run(sp.image, func(t *testing.T) {
			truth := string(readShared(t, dir, sp.truth))
			data := readShared(t, dir, sp.image)
			res, doc := searchablePDF(t, svc, data)
			path := writeTemp(t, "out.pdf", doc)
			qpdfCheck(t, path)

			var js, ps ocreval.Score
			js.Add(res.Text, truth)
			ps.Add(pdftotext(t, path), truth)
			t.Logf("JSON %v; pdftotext %v; %d bytes", js, ps, len(doc))
			if d := ps.CER() - js.CER(); math.Abs(d) > 0.005 {
				t.Errorf("pdftotext CER %.2f%% is %.2f points from the JSON's %.2f%%", 100*ps.CER(), 100*d, 100*js.CER())
			}
			dpi := resolutions(data, imageio.Sniff(data), 1)[0]
			if dpi == 0 {
				dpi = DefaultDPI
			}
			checkPDFBoxes(t, res, pdftotextBBox(t, path), dpi)
		})
	}
}

// checkPDFBoxes matches every word of res to a word pdftotext found with
// the same text on the same page (the nearest one) and checks each edge
// within 2 px at 300 dpi, that is 0.48 pt.
func checkPDFBoxes(t *testing.T, res *ocr.Result, found []pdfWord, dpi float64) {
	t.Helper()
	const tol = 2 * 72.0 / 300
	used := make([]bool, len(found))
	matched, total := 0, 0
	for pi, p := range res.Pages {
		for _, l := range p.Lines {
			for _, w := range l.Words {
				total++
				r := w.Box.Bounds()
				want := [4]float64{float64(r.Min.X) * 72 / dpi, float64(r.Min.Y) * 72 / dpi, float64(r.Max.X) * 72 / dpi, float64(r.Max.Y) * 72 / dpi}
				best, bestD := -1, math.Inf(1)
				for i, f := range found {
					if used[i] || f.page != pi || f.text != w.Text {
						continue
					}
					d := math.Max(math.Max(math.Abs(f.x0-want[0]), math.Abs(f.y0-want[1])), math.Max(math.Abs(f.x1-want[2]), math.Abs(f.y1-want[3])))
					if d < bestD {
						best, bestD = i, d
					}
				}
				if best < 0 {
					t.Errorf("page %d: pdftotext found no word %q", pi, w.Text)
					continue
				}
				used[best] = true
				matched++
				if bestD > tol {
					f := found[best]
					t.Errorf("page %d word %q: pdftotext box [%.2f %.2f %.2f %.2f] pt is %.2f pt (%.1f px at 300 dpi) from the JSON's [%.2f %.2f %.2f %.2f]",
						pi, w.Text, f.x0, f.y0, f.x1, f.y1, bestD, bestD*300/72, want[0], want[1], want[2], want[3])
				}
			}
		}
	}
	if extra := len(found) - matched; extra != 0 {
		t.Errorf("pdftotext found %d words the JSON does not have", extra)
	}
	t.Logf("%d of %d words matched within %.2f pt", matched, total, tol)
}

// multiPageTIFF builds one grey multi-page TIFF (uncompressed, no
// resolution: 300 dpi) from the shared pages as they display, and returns
// it with the ground truth of each page.
func multiPageTIFF(t testing.TB, dir string) ([]byte, []string) {
	t.Helper()
	var pages []imagetest.TIFFPage
	var truths []string
	for _, sp := range sharedPages {
		doc, err := imageio.Open(readShared(t, dir, sp.image), "", imageio.DefaultLimits())
		if err != nil {
			t.Fatal(err)
		}
		img, err := doc.Decode(context.Background(), 0)
		if err != nil {
			t.Fatal(err)
		}
		pages = append(pages, imagetest.TIFFPage{Img: imageio.ToGray(img)})
		truths = append(truths, string(readShared(t, dir, sp.truth)))
	}
	return imagetest.TIFF(pages, false), truths
}

// Must show: a multi-page TIFF makes one PDF with a page per frame, each
// page's text readable by pdftotext.
func TestIntegrationSearchablePDFMultiPage(t *testing.T) {
	dir := testenv.Shared(t, "data/ocr/pages")
	svc := ocrtest.TesseractService(t, runtime.NumCPU())
	tif, truths := multiPageTIFF(t, dir)
	res, doc := searchablePDF(t, svc, tif)
	path := writeTemp(t, "multi.pdf", doc)
	qpdfCheck(t, path)
	out, err := exec.Command(tool(t, "qpdf", "qpdf"), "--show-npages", path).Output()
	if err != nil || strings.TrimSpace(string(out)) != strconv.Itoa(len(truths)) {
		t.Fatalf("qpdf --show-npages: %q %v, want %d", out, err, len(truths))
	}
	for i, truth := range truths {
		var js, ps ocreval.Score
		js.Add(ocr.PlainText(res.Pages[i:i+1]), truth)
		ps.Add(pdftotext(t, path, "-f", strconv.Itoa(i+1), "-l", strconv.Itoa(i+1)), truth)
		if d := ps.CER() - js.CER(); math.Abs(d) > 0.005 {
			t.Errorf("page %d: pdftotext CER %.2f%%, JSON %.2f%%", i+1, 100*ps.CER(), 100*js.CER())
		}
	}
	checkPDFBoxes(t, res, pdftotextBBox(t, path), DefaultDPI)
}
