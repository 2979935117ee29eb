package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"image"
	"image/png"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
	"time"

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
func jobServer(t *testing.T, change func(*jobs.Config)) (*httptest.Server, *jobs.Manager) {
	t.Helper()
	cfg := jobs.DefaultConfig()
	cfg.Dir = t.TempDir()
	cfg.PollInterval = 10 * time.Millisecond
	cfg.Webhook.SecretEnv = ""
	cfg.PDF.DPI = 100
	if change != nil {
		change(&cfg)
	}
	m, err := jobs.Open(jobs.Options{Config: cfg, OCR: sizeOCR{}})
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
	st := submitJob(t, url+"/v1/jobs", ct, body)
	for i := 0; !st.State.Terminal(); i++ {
		if i > 3000 {
			t.Fatalf("job did not finish: %+v", st)
		}
		time.Sleep(10 * time.Millisecond)
		if code := getJSON(t, url+"/v1/jobs/"+st.ID, &st); code != 200 {
			t.Fatalf("status: %d", code)
		}
	}
	if st.State != jobs.StateSucceeded || st.Progress.PagesTotal != 6 || st.Progress.PagesFailed != 1 {
		t.Fatalf("job %+v", st)
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
