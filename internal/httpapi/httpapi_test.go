package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/color"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/visionserve/visionserve/internal/app/apptest"
	"github.com/visionserve/visionserve/internal/config"
	"github.com/visionserve/visionserve/internal/httpapi"
	"github.com/visionserve/visionserve/internal/imageio"
	"github.com/visionserve/visionserve/internal/imageio/imagetest"
	"github.com/visionserve/visionserve/internal/ocr"
	"github.com/visionserve/visionserve/internal/testenv"
)

func post(t testing.TB, url, contentType string, body []byte, header ...string) (*http.Response, []byte) {
	t.Helper()
	return send(t, http.MethodPost, url, contentType, body, header...)
}

func lineImage(t testing.TB) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(testenv.Shared(t, "data/ocr/lines"), "book/0005/010001.bin.png"))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func multipartBody(t testing.TB, field, contentType string, data []byte) (string, []byte) {
	t.Helper()
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	h := make(map[string][]string)
	h["Content-Disposition"] = []string{fmt.Sprintf(`form-data; name=%q; filename="x"`, field)}
	if contentType != "" {
		h["Content-Type"] = []string{contentType}
	}
	w, err := mw.CreatePart(h)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(data)
	mw.Close()
	return mw.FormDataContentType(), b.Bytes()
}

// Must show: garbage, truncated files and decompression bombs each get
// their 4xx as problem+json, and the server keeps serving.
func TestIntegrationErrorStatuses(t *testing.T) {
	srv := apptest.Start(t, func(c *config.Config) {
		c.Limits.MaxBytes = 2 << 20
		c.Limits.MaxPages = 3
	})
	good := lineImage(t)
	page := imagetest.Marked(20, 20)
	fourPages := imagetest.TIFF([]imagetest.TIFFPage{{Img: page}, {Img: page}, {Img: page}, {Img: page}}, false)
	mpCT, mpGood := multipartBody(t, "image", "image/png", good)
	mpCTOther, mpOther := multipartBody(t, "file", "image/png", good)
	for _, tc := range []struct {
		name        string
		query       string
		contentType string
		body        []byte
		header      []string
		want        int
		wantType    string
	}{
		{"ok raw", "", "image/png", good, nil, 200, ""},
		{"ok multipart", "", mpCT, mpGood, nil, 200, ""},
		{"ok curl default type", "", "application/x-www-form-urlencoded", good, nil, 200, ""},
		{"garbage", "", "", []byte("this is not an image, just words"), nil, 415, "unsupported-media-type"},
		{"garbage claiming png", "", "image/png", []byte("this is not an image, just words"), nil, 400, "undecodable-image"},
		{"truncated png", "", "image/png", good[:len(good)/2], nil, 400, "undecodable-image"},
		{"empty body", "", "image/png", nil, nil, 400, "undecodable-image"},
		{"pdf", "", "application/pdf", []byte("%PDF-1.7\n"), nil, 415, "unsupported-media-type"},
		{"svg type", "", "image/svg+xml", []byte("<svg/>"), nil, 415, "unsupported-media-type"},
		{"png bomb 30000x30000", "", "image/png", imagetest.PNGHeader(30000, 30000), nil, 413, "too-large"},
		{"tiff bomb", "", "image/tiff", imagetest.TIFF([]imagetest.TIFFPage{{Img: page, W: 30000, H: 30000}}, false), nil, 413, "too-large"},
		{"too many pages", "", "image/tiff", fourPages, nil, 413, "too-large"},
		{"tiff loop", "", "image/tiff", imagetest.TIFF([]imagetest.TIFFPage{{Img: page}, {Img: page}}, true), nil, 400, "undecodable-image"},
		{"body over limit", "", "image/png", make([]byte, 3<<20), nil, 413, "too-large"},
		{"tiny image", "", "image/png", imagetest.Encode(t, "png", image.NewGray(image.Rect(0, 0, 2, 2))), nil, 422, "unusable-image"},
		{"bad mode", "?mode=sideways", "image/png", good, nil, 400, "bad-request"},
		{"bad dewarp", "?dewarp=always", "image/png", good, nil, 400, "bad-request"},
		{"bad format", "?format=xml", "image/png", good, nil, 400, "bad-request"},
		{"unknown model", "?model=nope", "image/png", good, nil, 404, "model-not-found"},
		{"unknown version header", "", "image/png", good, []string{"X-Model-Version", "99"}, 404, "model-not-found"},
		{"multipart without image", "", mpCTOther, mpOther, nil, 400, "bad-request"},
		{"malformed multipart", "", "multipart/form-data; boundary=zzz", []byte("nonsense"), nil, 400, "bad-request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := post(t, srv.URL+"/v1/ocr"+tc.query, tc.contentType, tc.body, tc.header...)
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.want, body)
			}
			if tc.want == 200 {
				if resp.Header.Get(httpapi.HeaderModelVersion) != "1" || resp.Header.Get(httpapi.HeaderModelName) != "ocr-eng" {
					t.Errorf("model headers %v", resp.Header)
				}
				return
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
				t.Errorf("Content-Type %q", ct)
			}
			var p httpapi.Problem
			if err := json.Unmarshal(body, &p); err != nil {
				t.Fatalf("body is not a problem: %v: %s", err, body)
			}
			if p.Status != tc.want || !strings.HasSuffix(p.Type, "/"+tc.wantType) || p.Title == "" || p.Detail == "" {
				t.Errorf("problem %+v, want status %d type %s", p, tc.want, tc.wantType)
			}
		})
	}
	// Still serving after all of that.
	if resp, body := post(t, srv.URL+"/v1/ocr?format=text", "image/png", good); resp.StatusCode != 200 || !strings.Contains(string(body), "performance") {
		t.Fatalf("after bad inputs: %d %s", resp.StatusCode, body)
	}
}

func TestIntegrationTextFormatAndAccept(t *testing.T) {
	srv := apptest.Start(t, nil)
	good := lineImage(t)
	for _, hdr := range [][]string{nil, {"Accept", "text/plain"}} {
		q := "?format=text"
		if hdr != nil {
			q = ""
		}
		resp, body := post(t, srv.URL+"/v1/ocr"+q, "image/png", good, hdr...)
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") || string(body) != "performance analysis\n" {
			t.Errorf("%v: %d %q %q", hdr, resp.StatusCode, resp.Header.Get("Content-Type"), body)
		}
	}
	resp, body := post(t, srv.URL+"/v1/ocr", "image/png", good)
	var res ocr.Result
	if err := json.Unmarshal(body, &res); err != nil || resp.StatusCode != 200 {
		t.Fatalf("%d %v", resp.StatusCode, err)
	}
	if res.Pages[0].Mode != "line" || res.Pages[0].Lines[0].Review != ocr.TierAccept || len(res.Pages[0].Lines[0].Words) != 2 {
		t.Errorf("result %+v", res)
	}
	if !strings.Contains(resp.Header.Get("Server-Timing"), "recognize;dur=") {
		t.Errorf("Server-Timing %q", resp.Header.Get("Server-Timing"))
	}
}

// gauge reads a gauge from the server's registry.
func gauge(t testing.TB, reg prometheus.Gatherer, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return metricValue(mf.GetMetric()[0])
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

func metricValue(m *dto.Metric) float64 {
	switch {
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Counter != nil:
		return m.Counter.GetValue()
	}
	return 0
}

// counter sums a counter's series whose labels include want.
func counter(t testing.TB, reg prometheus.Gatherer, name string, want map[string]string) float64 {
	t.Helper()
	mfs, _ := reg.Gather()
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for k, v := range want {
				found := false
				for _, lp := range m.GetLabel() {
					if lp.GetName() == k && lp.GetValue() == v {
						found = true
					}
				}
				if !found {
					continue next
				}
			}
			sum += metricValue(m)
		}
	}
	return sum
}

// waitFor polls cond until it holds; the timeout only bounds a broken test.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// With one worker and no queue, a request while another runs is refused
// at once with 429 and Retry-After. (A request that merely uploads holds
// no place: its body is read before admission, body_test.go.)
func TestIntegrationQueueFull(t *testing.T) {
	srv := apptest.Start(t, func(c *config.Config) { c.Server.Workers, c.Server.Queue = 1, 0 })
	page, good := bigPage(t), lineImage(t)
	url := srv.URL + "/v1/ocr"
	first := make(chan int, 1)
	go func() {
		resp, _ := post(t, url+"?rotate=off", "image/png", page)
		first <- resp.StatusCode
	}()
	waitFor(t, "recognition to start", func() bool { return gauge(t, srv.Registry, "visionserve_workers_busy") == 1 })
	resp, body := post(t, url, "image/png", good)
	if resp.StatusCode != http.StatusTooManyRequests || !strings.Contains(string(body), "queue-full") {
		t.Fatalf("while the worker is busy: %d %s", resp.StatusCode, body)
	}
	ra, err := strconv.Atoi(resp.Header.Get("Retry-After"))
	if err != nil || ra < 1 {
		t.Errorf("Retry-After %q", resp.Header.Get("Retry-After"))
	}
	if code := <-first; code != 200 {
		t.Fatalf("the admitted request: %d", code)
	}
	if n := counter(t, srv.Registry, "visionserve_rejected_requests_total", map[string]string{"reason": "queue_full"}); n != 1 {
		t.Errorf("rejections counted: %v", n)
	}
}

// A request never outlives its deadline: a body that never completes is
// answered with 504 once the deadline passes (it was never admitted: its
// body is read first), and the worker serves the next request.
func TestIntegrationDeadline(t *testing.T) {
	srv := apptest.Start(t, func(c *config.Config) {
		c.Server.Workers, c.Server.Queue = 1, 0
		c.Server.RequestTimeout = 300 * time.Millisecond
	})
	good := lineImage(t)
	pr, pw := io.Pipe()
	defer pw.Close()
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/ocr", pr)
	req.Header.Set("Content-Type", "image/png")
	req.ContentLength = int64(len(good))
	go pw.Write(good[:100]) // and never the rest
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusGatewayTimeout || !strings.Contains(string(body), "deadline-exceeded") {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	// The single admission slot is free again: the next request is admitted
	// (with no queue, a held slot answers 503 at once). It may still run
	// past the short deadline on a loaded machine, hence 504 is fine too.
	resp, body = post(t, srv.URL+"/v1/ocr", "image/png", good)
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusGatewayTimeout {
		t.Fatalf("after the deadline: %d %s", resp.StatusCode, body)
	}
}

// bigPage tiles a text page so recognition takes many times longer than a
// line: long enough to disconnect or shut down in the middle of it.
func bigPage(t testing.TB) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(testenv.Shared(t, "data/ocr/pages"), "phototest.tif"))
	if err != nil {
		t.Fatal(err)
	}
	src, err := decodeGray(data)
	if err != nil {
		t.Fatal(err)
	}
	const n = 3
	w, h := src.Rect.Dx(), src.Rect.Dy()
	dst := image.NewGray(image.Rect(0, 0, n*w, n*h))
	for ty := 0; ty < n; ty++ {
		for tx := 0; tx < n; tx++ {
			for y := 0; y < h; y++ {
				for x := 0; x < w; x++ {
					dst.SetGray(tx*w+x, ty*h+y, color.Gray{src.GrayAt(x, y).Y})
				}
			}
		}
	}
	return imagetest.Encode(t, "png", dst)
}

func decodeGray(data []byte) (*image.Gray, error) {
	doc, err := imageio.Open(data, "", imageio.Limits{})
	if err != nil {
		return nil, err
	}
	img, err := doc.Decode(context.Background(), 0)
	if err != nil {
		return nil, err
	}
	return imageio.ToGray(img), nil
}

// A client that disconnects frees its worker: the request is counted as
// 499, the worker goes idle and the next request is served.
func TestIntegrationClientDisconnect(t *testing.T) {
	srv := apptest.Start(t, func(c *config.Config) { c.Server.Workers = 1 })
	page := bigPage(t)
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/v1/ocr?rotate=off", bytes.NewReader(page))
	req.Header.Set("Content-Type", "image/png")
	errc := make(chan error, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	waitFor(t, "recognition to start", func() bool { return gauge(t, srv.Registry, "visionserve_workers_busy") == 1 })
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("client err = %v", err)
	}
	waitFor(t, "the worker to be freed", func() bool { return gauge(t, srv.Registry, "visionserve_workers_busy") == 0 })
	waitFor(t, "the 499 to be counted", func() bool {
		return counter(t, srv.Registry, "visionserve_http_requests_total", map[string]string{"code": "499"}) == 1
	})
	if resp, body := post(t, srv.URL+"/v1/ocr", "image/png", lineImage(t)); resp.StatusCode != 200 {
		t.Fatalf("next request: %d %s", resp.StatusCode, body)
	}
}

// Graceful shutdown: readiness fails, the request in flight completes,
// Shutdown returns without error.
func TestIntegrationGracefulShutdown(t *testing.T) {
	srv := apptest.Start(t, func(c *config.Config) { c.Server.Workers = 1 })
	page := bigPage(t)
	type result struct {
		status int
		text   string
	}
	done := make(chan result, 1)
	go func() {
		resp, body := post(t, srv.URL+"/v1/ocr?format=text&rotate=off", "image/png", page)
		done <- result{resp.StatusCode, string(body)}
	}()
	waitFor(t, "recognition to start", func() bool { return gauge(t, srv.Registry, "visionserve_workers_busy") == 1 })
	stopped := make(chan struct{})
	go func() { srv.Stop(t); close(stopped) }()
	r := <-done
	if r.status != 200 || strings.Count(r.text, "quick brown dog") < 9 {
		t.Fatalf("in-flight request during shutdown: %d %q", r.status, r.text)
	}
	<-stopped
	if _, err := http.Get(srv.URL + "/healthz"); err == nil {
		t.Error("still accepting connections after shutdown")
	}
}

func TestIntegrationHealthAndNotFound(t *testing.T) {
	srv := apptest.Start(t, nil)
	for path, want := range map[string]int{"/healthz": 200, "/readyz": 200, "/metrics": 200, "/openapi.json": 200, "/nope": 404} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s: %d, want %d", path, resp.StatusCode, want)
		}
	}
	resp, err := http.Get(srv.URL + "/v1/ocr")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET /v1/ocr: %d", resp.StatusCode)
	}
}
