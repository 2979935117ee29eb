package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"image"
	"image/png"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/visionserve/visionserve/internal/httpapi"
	"github.com/visionserve/visionserve/internal/imageio"
	"github.com/visionserve/visionserve/internal/imageio/imagetest"
	"github.com/visionserve/visionserve/internal/jobs"
	"github.com/visionserve/visionserve/internal/jobs/jobstest"
	"github.com/visionserve/visionserve/internal/ocr"
	"github.com/visionserve/visionserve/internal/sched"
	"github.com/visionserve/visionserve/internal/testenv"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// sizeOCR "reads" every page as two words naming its size, placed in the
// page's top half, so results are deterministic and have boxes; a page
// smaller than 3x3 fails as /v1/ocr would refuse it.
type sizeOCR struct{}

func (sizeOCR) Recognize(_ context.Context, in ocr.Input, _ ocr.Options) (*ocr.Result, error) {
	doc, err := imageio.Open(in.Data, in.Declared, imageio.Limits{})
	if err != nil {
		return nil, err
	}
	res := &ocr.Result{Model: ocr.ModelRef{Name: "sizes", Version: "3"}}
	for i, p := range doc.Pages {
		if p.Width < 3 || p.Height < 3 {
			return nil, &imageio.Error{Kind: imageio.ErrUnusable, Detail: fmt.Sprintf("page %d is %dx%d pixels; text needs at least 3x3", i, p.Width, p.Height)}
		}
		w, h := float64(p.Width), float64(p.Height)
		a := ocr.Word{Text: "size", Confidence: 0.9, Box: ocr.Quad{{w * 0.1, h * 0.1}, {w * 0.4, h * 0.1}, {w * 0.4, h * 0.3}, {w * 0.1, h * 0.3}}}
		b := ocr.Word{Text: fmt.Sprintf("%dx%d", p.Width, p.Height), Confidence: 0.7, Box: ocr.Quad{{w * 0.5, h * 0.1}, {w * 0.9, h * 0.1}, {w * 0.9, h * 0.3}, {w * 0.5, h * 0.3}}}
		line := ocr.Line{Text: a.Text + " " + b.Text, Confidence: 0.8, Box: ocr.Quad{a.Box[0], b.Box[1], b.Box[2], a.Box[3]}, Review: ocr.TierVerify, Words: []ocr.Word{a, b}}
		res.Pages = append(res.Pages, ocr.Page{Index: i, Width: p.Width, Height: p.Height, Mode: "page", Confidence: 0.8, Lines: []ocr.Line{line}})
	}
	return res, nil
}

// jobServer is the HTTP handler over a jobs.Manager whose OCR is sizeOCR.
func jobServer(t *testing.T, change func(*jobs.Options)) (*httptest.Server, *jobs.Manager) {
	t.Helper()
	opts := jobs.Options{Config: jobs.DefaultConfig(), OCR: sizeOCR{}}
	opts.Config.Dir = t.TempDir()
	opts.Config.PollInterval = 10 * time.Millisecond
	opts.Config.Webhook.SecretEnv = ""
	opts.Config.PDF.DPI = 100
	if change != nil {
		change(&opts)
	}
	m, err := jobs.Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	m.Start()
	t.Cleanup(func() { m.Close() })
	srv := httptest.NewServer(httpapi.New(httpapi.Config{Jobs: m, Scheduler: sched.New(1, 1, nil), Gatherer: prometheus.NewRegistry()}))
	t.Cleanup(srv.Close)
	return srv, m
}

func needPoppler(t *testing.T) {
	t.Helper()
	for _, c := range []string{"pdftoppm", "pdfinfo"} {
		if _, err := exec.LookPath(c); err != nil {
			testenv.Missing(t, c+" not found: install poppler-utils (hack/setup.sh does)")
		}
	}
}

func pngOf(t *testing.T, img image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// mixedJob submits, and waits for, a job of every kind of input: a PNG, a
// two-page TIFF, a 2x2 PNG (its page fails) and a two-page PDF.
func mixedJob(t *testing.T, url string) jobs.Status {
	t.Helper()
	needPoppler(t)
	pdf := jobstest.PDF([]image.Image{imagetest.Marked(150, 120), imagetest.Marked(130, 170)}, 100)
	tiff := imagetest.TIFF([]imagetest.TIFFPage{{Img: imagetest.Marked(64, 48)}, {Img: imagetest.Marked(40, 90)}}, false)
	files := [][]byte{pngOf(t, imagetest.Marked(200, 100)), tiff, pngOf(t, imagetest.Marked(2, 2)), pdf}
	ct, body := multipartFiles(t, files, []string{"image/png", "image/tiff", "image/png", "application/pdf"})
	st := waitJob(t, url, submitJob(t, url+"/v1/jobs", ct, body))
	if st.State != jobs.StateSucceeded || st.Progress.PagesTotal != 6 || st.Progress.PagesFailed != 1 {
		t.Fatalf("job %+v", st)
	}
	return st
}

// waitJob polls job st until it is final.
func waitJob(t *testing.T, url string, st jobs.Status) jobs.Status {
	t.Helper()
	for i := 0; !st.State.Terminal(); i++ {
		if i > 3000 {
			t.Fatalf("job did not finish: %+v", st)
		}
		time.Sleep(10 * time.Millisecond)
		if code := getJSON(t, url+"/v1/jobs/"+st.ID, &st); code != 200 {
			t.Fatalf("status: %d", code)
		}
	}
	return st
}

var jobIDs = regexp.MustCompile(`job_[0-9a-f]{32}`)

// The default result (no format, format=json, Accept: application/json)
// is byte for byte what it was before formats: testdata/job-result.json
// was written by the handler that only knew JSON.
func TestJobResultJSONUnchanged(t *testing.T) {
	srv, _ := jobServer(t, nil)
	st := mixedJob(t, srv.URL)
	golden := filepath.Join("testdata", "job-result.json")
	for _, tc := range []struct{ query, accept string }{{"", ""}, {"?format=json", ""}, {"", "application/json"}, {"", "*/*"}} {
		resp, body := send(t, "GET", srv.URL+"/v1/jobs/"+st.ID+"/result"+tc.query, "", nil, "Accept", tc.accept)
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
			t.Fatalf("%q %q: %d %s %s", tc.query, tc.accept, resp.StatusCode, resp.Header.Get("Content-Type"), body)
		}
		body = jobIDs.ReplaceAll(body, []byte("job_ID"))
		if *update {
			if err := os.WriteFile(golden, body, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		want, err := os.ReadFile(golden)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(body, want) {
			t.Errorf("%q %q: the JSON result changed:\n got %s\nwant %s", tc.query, tc.accept, body, want)
		}
	}
}

func submitJob(t *testing.T, url, contentType string, body []byte) jobs.Status {
	t.Helper()
	resp, b := post(t, url, contentType, body)
	if resp.StatusCode != 202 {
		t.Fatalf("submit: %d %s", resp.StatusCode, b)
	}
	var st jobs.Status
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	return st
}

func getJSON(t *testing.T, url string, v any) int {
	t.Helper()
	resp, b := send(t, "GET", url, "", nil)
	if resp.StatusCode == 200 {
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatalf("%s: %v: %s", url, err, b)
		}
	}
	return resp.StatusCode
}

// xmllint validates doc: against a schema of internal/render/testdata/schema,
// or with schema "" as XHTML against its DTD.
func xmllint(t *testing.T, doc []byte, schema string) {
	t.Helper()
	bin, err := exec.LookPath("xmllint")
	if err != nil {
		testenv.Missing(t, "xmllint not found: install libxml2-utils (hack/setup.sh does)")
	}
	path := filepath.Join(t.TempDir(), "doc.xml")
	if err := os.WriteFile(path, doc, 0o600); err != nil {
		t.Fatal(err)
	}
	abs, _ := filepath.Abs(filepath.Join("..", "render", "testdata", "schema"))
	args, catalog := []string{"--noout", "--nonet", "--schema", filepath.Join(abs, schema), path}, filepath.Join(abs, "catalog.xml")
	if schema == "" {
		args, catalog = []string{"--noout", "--nonet", "--valid", path}, "/usr/share/xml/w3c-sgml-lib/schema/dtd/catalog.xml"
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "XML_CATALOG_FILES="+catalog)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("xmllint %s: %v\n%s", schema, err, out)
	}
}

// pdfTool runs a qpdf or poppler command on a PDF and returns its output.
func pdfTool(t *testing.T, pdf []byte, name string, args ...string) string {
	t.Helper()
	bin, err := exec.LookPath(name)
	if err != nil {
		testenv.Missing(t, name+" not found: install qpdf and poppler-utils (hack/setup.sh does)")
	}
	path := filepath.Join(t.TempDir(), "doc.pdf")
	if err := os.WriteFile(path, pdf, 0o600); err != nil {
		t.Fatal(err)
	}
	args = append(args, path)
	if name == "pdftotext" {
		args = append(args, "-")
	}
	out, err := exec.Command(bin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return string(out)
}

func problemOf(t *testing.T, body []byte) (typ, detail string) {
	t.Helper()
	var p struct{ Type, Detail string }
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatalf("not a problem: %s", body)
	}
	return p.Type[strings.LastIndexByte(p.Type, '/')+1:], p.Detail
}

// Every registered format of a finished job's result, from a job of every
// kind of input (a PNG, a two-page TIFF, a page that failed, a two-page
// PDF): each with its media type, valid for its consumer, holding the
// JSON result's pages and words; the PDF over the page images at their
// own size; PAGE XML one page at a time.
func TestJobResultFormats(t *testing.T) {
	srv, _ := jobServer(t, nil)
	st := mixedJob(t, srv.URL)
	base := srv.URL + "/v1/jobs/" + st.ID + "/result"
	var res jobs.Result
	if code := getJSON(t, base, &res); code != 200 {
		t.Fatalf("json: %d", code)
	}
	validate := specValidator(t)
	send := func(t *testing.T, method, url, contentType string, body []byte, header ...string) (*http.Response, []byte) {
		t.Helper()
		resp, b := send(t, method, url, contentType, body, header...)
		validate(resp, b)
		return resp, b
	}
	get := func(query string, header ...string) []byte {
		t.Helper()
		resp, body := send(t, "GET", base+query, "", nil, header...)
		if resp.StatusCode != 200 {
			t.Fatalf("%s %v: %d %s", query, header, resp.StatusCode, body)
		}
		return body
	}
	for _, tc := range []struct{ query, accept, contentType, ext string }{
		{"?format=text", "", "text/plain; charset=utf-8", "txt"},
		{"", "text/plain", "text/plain; charset=utf-8", "txt"},
		{"?format=hocr", "", "application/xhtml+xml; charset=utf-8", "hocr"},
		{"?format=alto", "", "application/xml; charset=utf-8", "xml"},
		{"?format=pdf", "", "application/pdf", "pdf"},
		{"", "application/pdf", "application/pdf", "pdf"},
		{"?format=pdfa", "", "application/pdf", "pdf"},
		{"?format=page&page=4", "", "application/xml; charset=utf-8", "xml"},
	} {
		resp, body := send(t, "GET", base+tc.query, "", nil, "Accept", tc.accept)
		want := fmt.Sprintf("inline; filename=%q", st.ID+strings.ReplaceAll(strings.TrimPrefix(tc.query, "?format=page&page="), "4", "-page-4")+"."+tc.ext)
		if tc.query != "?format=page&page=4" {
			want = fmt.Sprintf("inline; filename=%q", st.ID+"."+tc.ext)
		}
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != tc.contentType || resp.Header.Get("Content-Disposition") != want || len(body) == 0 {
			t.Errorf("%s %s: %d %q %q %.100s", tc.query, tc.accept, resp.StatusCode, resp.Header.Get("Content-Type"), resp.Header.Get("Content-Disposition"), body)
		}
	}

	if text := get("?format=text"); string(text) != res.Text+"\n" {
		t.Errorf("text %q, want the JSON's %q", text, res.Text)
	}
	// hOCR and ALTO: the pages that were read, numbered as in the JSON
	// (page 3 failed), word for word.
	var words []string
	var read []string
	for _, p := range res.Pages {
		if p.Page == nil {
			continue
		}
		read = append(read, strconv.Itoa(p.Index+1))
		for _, l := range p.Lines {
			for _, w := range l.Words {
				words = append(words, w.Text)
			}
		}
	}
	hocr := get("?format=hocr")
	xmllint(t, hocr, "")
	if got := regexp.MustCompile(`class="ocr_page" id="page_(\d+)"`).FindAllSubmatch(hocr, -1); len(got) != len(read) || string(got[3][1]) != read[3] {
		t.Errorf("hOCR pages %q, want %v", got, read)
	}
	if !bytes.Contains(hocr, []byte(`<meta name="ocr-number-of-pages" content="5"/>`)) || !bytes.Contains(hocr, []byte(`content="sizes 3"`)) {
		t.Errorf("hOCR head:\n%.1200s", hocr)
	}
	if got := allText(regexp.MustCompile(`class="ocrx_word"[^>]*>([^<]*)<`), hocr); strings.Join(got, " ") != strings.Join(words, " ") {
		t.Errorf("hOCR words %q, want %q", got, words)
	}
	alto := get("?format=alto")
	xmllint(t, alto, "alto-4-4.xsd")
	if got := allText(regexp.MustCompile(`PHYSICAL_IMG_NR="(\d+)"`), alto); strings.Join(got, " ") != strings.Join(read, " ") {
		t.Errorf("ALTO pages %q, want %v", got, read)
	}
	if got := allText(regexp.MustCompile(`CONTENT="([^"]*)"`), alto); strings.Join(got, " ") != strings.Join(words, " ") {
		t.Errorf("ALTO words %q, want %q", got, words)
	}

	// The PDFs: every page (the failed one as its image alone) at the
	// size of its image at its resolution: the PDF's own pages at their
	// original size (150x120 pixels read at 100 dpi: 108 x 86.4 pt).
	for _, format := range []string{"pdf", "pdfa"} {
		pdf := get("?format=" + format)
		if out := pdfTool(t, pdf, "qpdf", "--check"); !strings.Contains(out, "No syntax or stream encoding errors found") {
			t.Errorf("%s: qpdf --check:\n%s", format, out)
		}
		pages := strings.Split(strings.TrimSuffix(pdfTool(t, pdf, "pdftotext", "-enc", "UTF-8", "-layout"), "\f"), "\f")
		if len(pages) != len(res.Pages) {
			t.Fatalf("%s: %d pages, want %d", format, len(pages), len(res.Pages))
		}
		for i, p := range res.Pages {
			if got, want := strings.Join(strings.Fields(pages[i]), " "), strings.Join(strings.Fields(pageTextOf(p)), " "); got != want {
				t.Errorf("%s page %d: pdftotext %q, JSON %q", format, i, got, want)
			}
		}
		info := strings.Join(strings.Fields(pdfTool(t, pdf, "pdfinfo", "-f", "1", "-l", "6")), " ")
		if !strings.Contains(info, "Page 5 size: 108 x 86.4 pts") || !strings.Contains(info, "Page 6 size: 93.6 x 122.4 pts") {
			t.Errorf("%s: page sizes:\n%s", format, info)
		}
	}

	// PAGE XML holds one page: the whole job is refused with a hint, a
	// page is valid against PRImA's schema.
	resp, body := send(t, "GET", base+"?format=page", "", nil)
	if typ, detail := problemOf(t, body); resp.StatusCode != 400 || typ != "bad-request" || !strings.Contains(detail, "page=N (0 to 5)") {
		t.Errorf("format=page of 6 pages: %d %s", resp.StatusCode, body)
	}
	page := get("?format=page&page=4")
	xmllint(t, page, "pagecontent-2019-07-15.xsd")
	if !bytes.Contains(page, []byte(`imageWidth="150" imageHeight="120"`)) || !bytes.Contains(page, []byte(`<Unicode>150x120</Unicode>`)) {
		t.Errorf("page=4:\n%s", page)
	}
	// page= narrows every format; the JSON keeps its shape.
	var one jobs.Result
	if code := getJSON(t, base+"?page=2", &one); code != 200 || len(one.Pages) != 1 || one.Pages[0].Index != 2 || one.Text != "size 40x90" || one.ID != st.ID {
		t.Errorf("json page=2: %d %+v", code, one)
	}
	if text := get("?format=text&page=5"); string(text) != "size 130x170\n" {
		t.Errorf("text page=5: %q", text)
	}
	if pdf := get("?format=pdf&page=1"); !strings.Contains(strings.Join(strings.Fields(pdfTool(t, pdf, "pdfinfo")), " "), "Pages: 1 ") {
		t.Error("pdf page=1 is not one page")
	}
	// Refusals: problems, never part of a document.
	for _, tc := range []struct{ query, status, typ, detail string }{
		{"?format=docx", "400", "bad-request", `format="docx"`},
		{"?formats=pdf", "400", "bad-request", `unknown query parameter "formats"`},
		{"?format=pdf&format=text", "400", "bad-request", "given 2 times"},
		{"?page=first", "400", "bad-request", `page="first"`},
		{"?page=-1", "400", "bad-request", `page="-1"`},
		{"?format=pdf&page=6", "400", "bad-request", "pages 0 to 5"},
		{"?format=hocr&page=3", "422", "job-page-not-read", "page 3 of job " + st.ID + " could not be read (unusable-image: page 0 is 2x2 pixels"},
		{"?format=pdf&page=3", "422", "job-page-not-read", "could not be read"},
	} {
		resp, body := send(t, "GET", base+tc.query, "", nil)
		typ, detail := problemOf(t, body)
		if strconv.Itoa(resp.StatusCode) != tc.status || typ != tc.typ || !strings.Contains(detail, tc.detail) ||
			resp.Header.Get("Content-Type") != "application/problem+json" {
			t.Errorf("%s: %d %s", tc.query, resp.StatusCode, body)
		}
	}
}

func pageTextOf(p jobs.PageResult) string {
	if p.Page == nil {
		return ""
	}
	return ocr.PlainText([]ocr.Page{*p.Page})
}

func allText(re *regexp.Regexp, doc []byte) []string {
	var out []string
	for _, m := range re.FindAllSubmatch(doc, -1) {
		out = append(out, string(m[1]))
	}
	return out
}

// With jobs.keep_inputs off (or jobs.max_kept_bytes 0), a finished
// job's files are gone: the PDF of its result is a 409 problem saying so
// (not an empty or partial document), and the formats without images
// still answer.
func TestJobResultInputsDeleted(t *testing.T) {
	for name, change := range map[string]func(*jobs.Options){
		"keep_inputs false": func(o *jobs.Options) { o.Config.KeepInputs = false },
		"max_kept_bytes 0":  func(o *jobs.Options) { o.Config.MaxKeptBytes = 0 },
	} {
		t.Run(name, func(t *testing.T) {
			srv, _ := jobServer(t, change)
			st := mixedJob(t, srv.URL)
			resp, body := send(t, "GET", srv.URL+"/v1/jobs/"+st.ID+"/result?format=pdf", "", nil)
			if typ, detail := problemOf(t, body); resp.StatusCode != 409 || typ != "job-inputs-deleted" || !strings.Contains(detail, "jobs.keep_inputs") {
				t.Fatalf("pdf without inputs: %d %s", resp.StatusCode, body)
			}
			if resp, body := send(t, "GET", srv.URL+"/v1/jobs/"+st.ID+"/result?format=alto", "", nil); resp.StatusCode != 200 || !bytes.Contains(body, []byte("150x120")) {
				t.Fatalf("alto without inputs: %d %.200s", resp.StatusCode, body)
			}
		})
	}
}

// The inputs kept for finished jobs are bounded by jobs.max_kept_bytes:
// room for one job's file, so the second job's end evicts the first's.
// The first job's PDF is then a 409 naming the bound; its text, and the
// second job's PDF, still answer.
func TestJobResultInputsEvicted(t *testing.T) {
	png := pngOf(t, imagetest.Marked(200, 100))
	srv, _ := jobServer(t, func(o *jobs.Options) { o.Config.MaxKeptBytes = int64(len(png)) * 3 / 2 })
	var done []jobs.Status
	for range 2 {
		ct, body := multipartFiles(t, [][]byte{png}, []string{"image/png"})
		done = append(done, waitJob(t, srv.URL, submitJob(t, srv.URL+"/v1/jobs", ct, body)))
	}
	first, second := srv.URL+"/v1/jobs/"+done[0].ID+"/result?format=", srv.URL+"/v1/jobs/"+done[1].ID+"/result?format="
	resp, body := send(t, "GET", first+"pdf", "", nil)
	if typ, detail := problemOf(t, body); resp.StatusCode != 409 || typ != "job-inputs-deleted" || !strings.Contains(detail, "jobs.max_kept_bytes") {
		t.Fatalf("pdf of the evicted job: %d %s", resp.StatusCode, body)
	}
	if resp, body := send(t, "GET", first+"text", "", nil); resp.StatusCode != 200 || len(body) == 0 {
		t.Fatalf("text of the evicted job: %d %s", resp.StatusCode, body)
	}
	if resp, body := send(t, "GET", second+"pdf", "", nil); resp.StatusCode != 200 || !bytes.HasPrefix(body, []byte("%PDF-")) {
		t.Fatalf("pdf of the kept job: %d %.200s", resp.StatusCode, body)
	}
}

// flakyRaster fails the rasterisation of page 2 once fail is set.
type flakyRaster struct {
	jobs.Rasterizer
	fail atomic.Bool
}

func (f *flakyRaster) Render(ctx context.Context, doc *jobs.PDFFile, page, dpi int) ([]byte, error) {
	if page == 2 && f.fail.Load() {
		return nil, errors.New("the rasteriser broke")
	}
	return f.Rasterizer.Render(ctx, doc, page, dpi)
}

// A document that fails after it has started to go out is cut off: the
// client's read fails, instead of a well-formed end to a body that lacks
// pages.
func TestJobResultCutShort(t *testing.T) {
	needPoppler(t)
	raster := &flakyRaster{Rasterizer: &jobs.Poppler{Pdfinfo: "pdfinfo", Pdftoppm: "pdftoppm", MemoryLimit: 1 << 30, MaxOutput: 64 << 20, TempDir: t.TempDir()}}
	srv, _ := jobServer(t, func(o *jobs.Options) { o.Rasterizer = raster })
	// Noise compresses badly: the first page alone is more than the
	// buffers between the renderer and the connection.
	noise := image.NewGray(image.Rect(0, 0, 600, 600))
	for i := range noise.Pix {
		noise.Pix[i] = byte(i*7919 ^ i>>3)
	}
	pdf := jobstest.PDF([]image.Image{noise, noise}, 100)
	st := waitJob(t, srv.URL, submitJob(t, srv.URL+"/v1/jobs", "application/pdf", pdf))
	if st.State != jobs.StateSucceeded {
		t.Fatalf("job %+v", st)
	}
	raster.fail.Store(true)
	resp, err := http.Get(srv.URL + "/v1/jobs/" + st.ID + "/result?format=pdf")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	n, err := io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != 200 || err == nil {
		t.Fatalf("%d, read %d bytes, error %v: the client could not tell the document is incomplete", resp.StatusCode, n, err)
	}
	t.Logf("read %d bytes, then: %v", n, err)
	// Before anything is sent, the same failure is a problem.
	resp2, body := send(t, "GET", srv.URL+"/v1/jobs/"+st.ID+"/result?format=pdf&page=1", "", nil)
	if resp2.StatusCode != 500 || resp2.Header.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("page=1: %d %.200s", resp2.StatusCode, body)
	}
}

// The validator reads the XML documents as the strings the document
// declares them to be.
func init() {
	openapi3filter.RegisterBodyDecoder("application/xml", openapi3filter.FileBodyDecoder)
	openapi3filter.RegisterBodyDecoder("application/xhtml+xml", openapi3filter.FileBodyDecoder)
}

// specValidator checks answers against openapi.json.
func specValidator(t *testing.T) func(resp *http.Response, body []byte) {
	doc := loadSpec(t)
	doc.Servers = nil
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	return func(resp *http.Response, body []byte) {
		t.Helper()
		req := withoutBody(resp.Request)
		route, params, err := router.FindRoute(req)
		if err != nil {
			t.Fatalf("%s %s not in the document: %v", req.Method, req.URL.Path, err)
		}
		in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route,
			Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, ExcludeRequestBody: true}}
		out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: resp.StatusCode, Header: resp.Header,
			Options: &openapi3filter.Options{IncludeResponseStatus: true}}
		out.SetBodyBytes(body)
		if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
			t.Errorf("%s %s %d does not match the document: %v", req.Method, req.URL, resp.StatusCode, err)
		}
	}
}
