package httpapi_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"image"
	"image/png"
	"strconv"
	"testing"
	"time"

	"golang.org/x/image/tiff"

	"github.com/visionserve/visionserve/internal/config"
	"github.com/visionserve/visionserve/internal/imageio/imagetest"
	"github.com/visionserve/visionserve/internal/jobs"
	"github.com/visionserve/visionserve/internal/jobs/jobstest"
)

// A PDF's page is previewed, and its lines reviewed, as a job read it: the
// preview is the page in the coordinates of the job's result, and a line
// of the job's result is cut from that page. Without jobs, a PDF gets 415.
func TestIntegrationPDFPreviewAndReview(t *testing.T) {
	needPoppler(t)
	img, err := tiff.Decode(bytes.NewReader(phototest(t)))
	if err != nil {
		t.Fatal(err)
	}
	pdf := jobstest.PDF([]image.Image{img, imagetest.Marked(150, 120)}, 100)
	srv, keys := consoleServer(t, func(c *config.Config) { c.Jobs.Dir = t.TempDir() })

	code, _, body := call(t, "POST", srv.URL+"/v1/jobs", keys["reviewer"], "application/pdf", pdf)
	var st jobs.Status
	if code != 202 || json.Unmarshal(body, &st) != nil {
		t.Fatalf("submit: %d %s", code, body)
	}
	for i := 0; !st.State.Terminal(); i++ {
		if i > 3000 {
			t.Fatalf("job did not finish: %+v", st)
		}
		time.Sleep(10 * time.Millisecond)
		if code, _, body := call(t, "GET", srv.URL+"/v1/jobs/"+st.ID, keys["reviewer"], "", nil); code != 200 || json.Unmarshal(body, &st) != nil {
			t.Fatalf("status: %d %s", code, body)
		}
	}
	var res jobs.Result
	if code, _, body := call(t, "GET", srv.URL+"/v1/jobs/"+st.ID+"/result", keys["reviewer"], "", nil); code != 200 || json.Unmarshal(body, &res) != nil {
		t.Fatalf("result: %d %s", code, body)
	}
	if len(res.Pages) != 2 || len(res.Pages[0].Lines) == 0 {
		t.Fatalf("the job read %+v", res.Pages)
	}
	for i, p := range res.Pages {
		code, hdr, body := call(t, "POST", srv.URL+"/v1/ocr/preview?page="+strconv.Itoa(i), keys["reader"], "application/pdf", pdf)
		if code != 200 || hdr.Get("X-Page-Count") != "2" {
			t.Fatalf("preview of page %d: %d %v %s", i, code, hdr, body)
		}
		page, err := png.Decode(bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if page.Bounds().Dx() != p.Width || page.Bounds().Dy() != p.Height {
			t.Errorf("page %d: preview %v, the job's page %dx%d", i, page.Bounds(), p.Width, p.Height)
		}
	}
	for _, tc := range []struct {
		query string
		body  []byte
		want  int
	}{
		{"?page=2", pdf, 400},
		{"", []byte("%PDF-1.4 not a document"), 400}, // undecodable-image
		{"", []byte("GIF89a"), 400},
	} {
		if code, _, body := call(t, "POST", srv.URL+"/v1/ocr/preview"+tc.query, keys["reader"], "application/pdf", tc.body); code != tc.want {
			t.Errorf("preview %s of %.20q: %d, want %d: %s", tc.query, tc.body, code, tc.want, body)
		}
	}

	line := res.Pages[0].Lines[0]
	review := func(base string) (int, []byte) {
		req, _ := json.Marshal(map[string]any{"image": base64.StdEncoding.EncodeToString(pdf), "content_type": "application/pdf",
			"corrected": line.Text + "!", "text": line.Text, "source": map[string]any{"name": "doc.pdf", "page": 0, "box": line.Box}})
		code, _, body := call(t, "POST", base+"/v1/reviews", keys["reviewer"], "application/json", req)
		return code, body
	}
	code, body = review(srv.URL)
	var rv struct {
		Width, Height int
		Links         struct{ Image string }
	}
	if code != 201 || json.Unmarshal(body, &rv) != nil {
		t.Fatalf("review of a PDF's line: %d %s", code, body)
	}
	// The line cut from the page the job read, with its margin of a
	// quarter of the line's height on each side.
	h := line.Box[2][1] - line.Box[0][1]
	if float64(rv.Height) < h || float64(rv.Height) > 2*h {
		t.Errorf("the review's image is %dx%d for a line %.0f px tall", rv.Width, rv.Height, h)
	}

	plain, keys := consoleServer(t, nil)
	if code, _, body := call(t, "POST", plain.URL+"/v1/ocr/preview", keys["reader"], "application/pdf", pdf); code != 415 {
		t.Errorf("preview of a PDF without jobs: %d %s", code, body)
	}
	if code, body := review(plain.URL); code != 415 {
		t.Errorf("review of a PDF without jobs: %d %s", code, body)
	}
}
