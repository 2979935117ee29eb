package e2e

import (
	"bufio"
	"encoding/xml"
	"fmt"
	"image"
	"image/draw"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/visionserve/visionserve/internal/jobs"
	"github.com/visionserve/visionserve/internal/jobs/jobstest"
	"github.com/visionserve/visionserve/internal/ocr"
	"github.com/visionserve/visionserve/internal/ocreval"
	"github.com/visionserve/visionserve/internal/render"
	"github.com/visionserve/visionserve/internal/testenv"
)

// resultPageDPI is the resolution the test's PDFs are drawn at and the
// server rasterises them at.
const resultPageDPI = 150

// letterPage is a US Letter page at resultPageDPI: phototest.tif near its
// top, and below it light grey noise (above any binarisation threshold,
// so OCR reads it as paper) that makes each page image about a megabyte
// compressed, so that holding the pages, or the document, would show.
func letterPage(t *testing.T) (image.Image, string) {
	t.Helper()
	dir := testenv.Shared(t, "data/ocr/pages")
	data, err := os.ReadFile(filepath.Join(dir, "phototest.tif"))
	if err != nil {
		t.Fatal(err)
	}
	truth, err := os.ReadFile(filepath.Join(dir, "phototest.txt"))
	if err != nil {
		t.Fatal(err)
	}
	text := decodeGray(t, data)
	page := image.NewGray(image.Rect(0, 0, 85*resultPageDPI/10, 11*resultPageDPI))
	for i := range page.Pix {
		page.Pix[i] = 255
	}
	draw.Draw(page, text.Bounds().Add(image.Pt(100, 100)), text, image.Point{}, draw.Src)
	rng := rand.New(rand.NewPCG(1, 2))
	for y := 700; y < page.Rect.Dy(); y++ {
		row := page.Pix[y*page.Stride : y*page.Stride+page.Rect.Dx()]
		for x := range row {
			row[x] = 200 + byte(rng.IntN(56))
		}
	}
	return page, string(truth)
}

// rssPeak measures the server's peak resident size over a span: the
// largest VmRSS sampled every 5 ms and, where the kernel lets it be reset
// to the current size (clear_refs 5), VmHWM, which sees what falls between
// samples.
type rssPeak struct {
	s      *server
	before int64
	hwm    bool
	peak   atomic.Int64
	stop   chan struct{}
	wg     sync.WaitGroup
}

func startRSSPeak(t *testing.T, s *server) *rssPeak {
	r := &rssPeak{s: s, stop: make(chan struct{})}
	r.hwm = os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", s.cmd.Process.Pid), []byte("5"), 0) == nil
	r.before = s.rssBytes(t) // after the reset: the peak is at least this
	r.peak.Store(r.before)
	r.wg.Go(func() {
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-r.stop:
				return
			case <-tick.C:
				// Not rssBytes: t.Fatal belongs to the test's goroutine.
				if v := vmRSS(s.cmd.Process.Pid); v > r.peak.Load() {
					r.peak.Store(v)
				}
			}
		}
	})
	return r
}

// vmRSS is a process's resident set size; 0 when it cannot be read.
func vmRSS(pid int) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

// done returns the peak since the start.
func (r *rssPeak) done(t *testing.T) int64 {
	close(r.stop)
	r.wg.Wait()
	if r.hwm {
		return max(r.peak.Load(), r.s.procStatus(t, "VmHWM"))
	}
	return r.peak.Load()
}

// download is one job result downloaded in a format, and the server's
// resident size before and at its peak while it was streamed.
type download struct {
	path               string
	size, before, peak int64
	took               time.Duration
}

func (d download) String() string {
	return fmt.Sprintf("%.1f MiB in %v; server RSS %.1f MiB before, peak %.1f MiB (%+.1f)",
		float64(d.size)/mib, d.took.Round(time.Second/10), float64(d.before)/mib, float64(d.peak)/mib, float64(d.peak-d.before)/mib)
}

// downloadResult fetches a job's result in a format into a file while
// measuring the server's peak RSS.
func downloadResult(t *testing.T, s *server, id, format string) download {
	t.Helper()
	f, err := render.Lookup(format)
	if err != nil {
		t.Fatal(err)
	}
	out, err := os.CreateTemp(t.TempDir(), "result-*."+f.Ext)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	url := s.url + "/v1/jobs/" + id + "/result?format=" + format
	rss := startRSSPeak(t, s)
	start := time.Now()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	size, err := io.Copy(out, resp.Body)
	d := download{path: out.Name(), size: size, before: rss.before, peak: rss.done(t), took: time.Since(start)}
	if err != nil || resp.StatusCode != 200 || resp.Header.Get("Content-Type") != f.ContentType() {
		t.Fatalf("%s: %d %s after %d bytes: %v", url, resp.StatusCode, resp.Header.Get("Content-Type"), size, err)
	}
	return d
}

// documentWords reads an hOCR or ALTO document and returns its words'
// text page by page.
func documentWords(t *testing.T, path, format string) [][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	attr := func(e xml.StartElement, name string) string {
		for _, a := range e.Attr {
			if a.Name.Local == name {
				return a.Value
			}
		}
		return ""
	}
	d := xml.NewDecoder(bufio.NewReader(f))
	var pages [][]string
	var word *strings.Builder // inside an hOCR word
	for {
		tok, err := d.Token()
		if err == io.EOF {
			return pages
		}
		if err != nil {
			t.Fatalf("%s: %v", format, err)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			switch {
			case format == "hocr" && attr(tok, "class") == "ocr_page", format == "alto" && tok.Name.Local == "Page":
				pages = append(pages, []string{})
			case format == "hocr" && attr(tok, "class") == "ocrx_word":
				word = &strings.Builder{}
			case format == "alto" && tok.Name.Local == "String":
				pages[len(pages)-1] = append(pages[len(pages)-1], attr(tok, "CONTENT"))
			}
		case xml.CharData:
			if word != nil {
				word.Write(tok)
			}
		case xml.EndElement:
			if word != nil {
				pages[len(pages)-1] = append(pages[len(pages)-1], word.String())
				word = nil
			}
		}
	}
}

func waitJobDone(t *testing.T, s *server, st jobs.Status, within time.Duration) jobs.Status {
	t.Helper()
	deadline := time.Now().Add(within)
	for !st.State.Terminal() {
		if time.Now().After(deadline) {
			t.Fatalf("job %s did not finish: %+v\n%s", st.ID, st.Progress, s.logs.String())
		}
		time.Sleep(200 * time.Millisecond)
		if code := getJSON(t, s.url+"/v1/jobs/"+st.ID, &st); code != 200 {
			t.Fatalf("status: %d", code)
		}
	}
	if st.State != jobs.StateSucceeded || st.Progress.PagesFailed != 0 {
		t.Fatalf("job %+v", st)
	}
	return st
}

const mib = 1 << 20

// Must show (issue 14): a 100-page PDF job's searchable PDF is streamed
// with flat memory, and its hOCR and ALTO hold the JSON's words. The real
// binary reads a 100-page PDF (one Letter page of phototest over grey
// noise, stored once and drawn 100 times) and a one-page PDF of the same
// page; the server's peak RSS is measured while each result is downloaded
// as a PDF. The 100-page document (about 120 MB) may grow the RSS by no
// more than four times what the one-page document did plus a quarter of
// the document: a server holding the pages or the document fails. The PDF passes qpdf --check and has 100 pages, pdftotext reads
// each page as the JSON result has it, and its CER against the ground
// truth is the JSON's; the hOCR and ALTO have, page by page, the JSON's
// words.
func TestE2EJobResultFormatsStreamFlat(t *testing.T) {
	if testing.Short() {
		t.Skip("101 pages read by the real binary; skipped with -short")
	}
	for _, tool := range []string{"qpdf", "pdftotext", "pdftoppm"} {
		if _, err := exec.LookPath(tool); err != nil {
			testenv.Missing(t, tool+" not found: install qpdf and poppler-utils (hack/setup.sh does)")
		}
	}
	page, truth := letterPage(t)
	const pages = 100
	many := make([]image.Image, pages)
	for i := range many {
		many[i] = page
	}
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "visionserve.yaml")
	if err := os.WriteFile(cfgFile, []byte(fmt.Sprintf("jobs:\n  concurrency: 2\n  pdf: {dpi: %d}\n", resultPageDPI)), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startServer(t, "--config", cfgFile, "--jobs-dir", filepath.Join(dir, "jobs"))

	input := jobstest.PDF(many, resultPageDPI)
	one := submitJob(t, s.url+"/v1/jobs", "application/pdf", "", jobstest.PDF([]image.Image{page}, resultPageDPI))
	big := submitJob(t, s.url+"/v1/jobs", "application/pdf", "", input)
	start := time.Now()
	one = waitJobDone(t, s, one, 5*time.Minute)
	big = waitJobDone(t, s, big, 60*time.Minute)
	t.Logf("%d pages (inputs of %.1f MiB for %d pages) read in %v", pages+1, float64(len(input))/mib, pages, time.Since(start).Round(time.Second))

	// The first download warms up what a first render starts; the second
	// is the baseline.
	downloadResult(t, s, one.ID, "pdf")
	pdf1 := downloadResult(t, s, one.ID, "pdf")
	pdf := downloadResult(t, s, big.ID, "pdf")
	hocr := downloadResult(t, s, big.ID, "hocr")
	alto := downloadResult(t, s, big.ID, "alto")
	t.Logf("searchable PDF of 1 page: %v", pdf1)
	t.Logf("searchable PDF of %d pages: %v", pages, pdf)
	t.Logf("hOCR of %d pages: %v", pages, hocr)
	t.Logf("ALTO of %d pages: %v", pages, alto)
	grow1, grow := pdf1.peak-pdf1.before, pdf.peak-pdf.before
	bound := 4*grow1 + pdf.size/4
	if bound >= pdf.size/2 {
		t.Fatalf("one page grew the server by %.1f MiB: a bound of %.1f MiB for the %.1f MiB document could not tell holding it from streaming it",
			float64(grow1)/mib, float64(bound)/mib, float64(pdf.size)/mib)
	}
	if grow > bound {
		t.Errorf("streaming %d pages grew the server by %.1f MiB, more than 4 x %.1f MiB (one page) + a quarter of the %.1f MiB document: memory is not flat",
			pages, float64(grow)/mib, float64(grow1)/mib, float64(pdf.size)/mib)
	}

	var res jobs.Result
	if code := getJSON(t, s.url+"/v1/jobs/"+big.ID+"/result", &res); code != 200 || len(res.Pages) != pages {
		t.Fatalf("json result: %d, %d pages", code, len(res.Pages))
	}

	// The PDF: valid, every page's text as the JSON has it, as accurate
	// as the JSON against the ground truth.
	if out, err := exec.Command("qpdf", "--check", pdf.path).CombinedOutput(); err != nil || !strings.Contains(string(out), "No syntax or stream encoding errors found") {
		t.Errorf("qpdf --check: %v\n%s", err, out)
	}
	if out, err := exec.Command("qpdf", "--show-npages", pdf.path).Output(); err != nil || strings.TrimSpace(string(out)) != strconv.Itoa(pages) {
		t.Errorf("qpdf --show-npages: %q %v, want %d", out, err, pages)
	}
	out, err := exec.Command("pdftotext", "-enc", "UTF-8", pdf.path, "-").Output()
	if err != nil {
		t.Fatal(err)
	}
	extracted := strings.Split(strings.TrimSuffix(string(out), "\f"), "\f")
	if len(extracted) != pages {
		t.Fatalf("pdftotext found %d pages, want %d", len(extracted), pages)
	}
	var fromPDF, fromJSON ocreval.Score
	words := make([][]string, pages)
	total := 0
	for i, p := range res.Pages {
		text := ocr.PlainText([]ocr.Page{*p.Page})
		if got, want := ocreval.Normalize(extracted[i]), ocreval.Normalize(text); got != want {
			t.Errorf("page %d: pdftotext %q, JSON %q", i, got, want)
		}
		fromPDF.Add(extracted[i], truth)
		fromJSON.Add(text, truth)
		for _, l := range p.Lines {
			for _, w := range l.Words {
				words[i] = append(words[i], w.Text)
			}
		}
		total += len(words[i])
	}
	t.Logf("against the ground truth: the PDF's text %v; the JSON's %v", fromPDF, fromJSON)
	if d := fromPDF.CER() - fromJSON.CER(); d > 0.005 {
		t.Errorf("the PDF's text is %.2f points less accurate than the JSON's", 100*d)
	}
	if fromJSON.CER() > 0.05 {
		t.Errorf("CER %.2f%%: the pages were not read as phototest", 100*fromJSON.CER())
	}

	// The hOCR and ALTO: every page, with the JSON's words in order.
	for _, d := range []struct {
		format string
		path   string
	}{{"hocr", hocr.path}, {"alto", alto.path}} {
		got := documentWords(t, d.path, d.format)
		n := 0
		for _, p := range got {
			n += len(p)
		}
		t.Logf("%s: %d pages, %d words (JSON: %d pages, %d words)", d.format, len(got), n, pages, total)
		if len(got) != pages {
			t.Errorf("%s: %d pages, want %d", d.format, len(got), pages)
			continue
		}
		for i := range got {
			if !slices.Equal(got[i], words[i]) {
				t.Errorf("%s page %d: %d words %q, JSON %d words %q", d.format, i, len(got[i]), got[i], len(words[i]), words[i])
			}
		}
	}
}
