package httpapi_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"image"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/visionserve/visionserve/internal/app"
	"github.com/visionserve/visionserve/internal/app/apptest"
	"github.com/visionserve/visionserve/internal/auth"
	"github.com/visionserve/visionserve/internal/config"
	"github.com/visionserve/visionserve/internal/jobs"
	"github.com/visionserve/visionserve/internal/jobs/jobstest"
	"github.com/visionserve/visionserve/internal/ocr"
	"github.com/visionserve/visionserve/internal/testenv"
	"github.com/visionserve/visionserve/internal/tlsconf/tlstest"
	"github.com/visionserve/visionserve/internal/tracing"
)

func ocrText(t *testing.T, c *http.Client, url string, img []byte, header ...string) string {
	t.Helper()
	req, _ := http.NewRequest("POST", url+"/v1/ocr", bytes.NewReader(img))
	req.Header.Set("Content-Type", "image/png")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("OCR: %d %s", resp.StatusCode, body)
	}
	var res ocr.Result
	if err := json.Unmarshal(body, &res); err != nil {
		t.Fatal(err)
	}
	return res.Text
}

// Must show: TLS and mTLS with certificates the test generates, on the
// real server: TLS 1.3 and HTTP/2, certificate rotation without a restart,
// client certificates required on both listeners.
func TestIntegrationTLS(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "test CA")
	certFile, keyFile := ca.Server(t, "first").Write(t, dir, "server")
	srv := apptest.Start(t, func(c *config.Config) {
		c.TLS = config.TLS{CertFile: certFile, KeyFile: keyFile}
	})
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}, ForceAttemptHTTP2: true, DisableKeepAlives: true}}
	img := lineImage(t)
	if !strings.HasPrefix(srv.URL, "https://") {
		t.Fatalf("URL %s", srv.URL)
	}
	resp, err := client.Get(srv.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.ProtoMajor != 2 || resp.TLS.Version != tls.VersionTLS13 || resp.TLS.PeerCertificates[0].Subject.CommonName != "first" {
		t.Fatalf("proto %s, TLS %x, cert %s", resp.Proto, resp.TLS.Version, resp.TLS.PeerCertificates[0].Subject)
	}
	if text := ocrText(t, client, srv.URL, img); text == "" {
		t.Fatal("no text over TLS")
	}
	// Plain HTTP to the TLS port is refused.
	if resp, err := http.Get("http" + strings.TrimPrefix(srv.URL, "https") + "/healthz"); err == nil && resp.StatusCode == 200 {
		t.Fatal("plain HTTP served on the TLS listener")
	}
	// The admin listener speaks TLS too.
	if resp, err := client.Get(srv.AdminURL + "/healthz"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("admin over TLS: %v", err)
	}
	// Rotation: new files are served without a restart.
	ca.Server(t, "second").Write(t, dir, "server")
	if ok, err := srv.TLS().Reload(); !ok || err != nil {
		t.Fatalf("reload: %v %v", ok, err)
	}
	resp, err = client.Get(srv.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if cn := resp.TLS.PeerCertificates[0].Subject.CommonName; cn != "second" {
		t.Fatalf("after rotation the server presents %q", cn)
	}
}

func TestIntegrationMutualTLS(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "server CA")
	clientCA := tlstest.NewCA(t, "client CA")
	certFile, keyFile := ca.Server(t, "server").Write(t, dir, "server")
	caFile := filepath.Join(dir, "clients.pem")
	tlstest.WriteFile(t, caFile, clientCA.PEM)
	srv := apptest.Start(t, func(c *config.Config) {
		c.TLS = config.TLS{CertFile: certFile, KeyFile: keyFile, ClientCAFile: caFile}
	})
	with := func(certs ...tls.Certificate) *http.Client {
		c := &tls.Config{RootCAs: ca.Pool()}
		if len(certs) > 0 {
			c.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &certs[0], nil }
		}
		return &http.Client{Transport: &http.Transport{TLSClientConfig: c, DisableKeepAlives: true}, Timeout: 30 * time.Second}
	}
	stranger := tlstest.NewCA(t, "stranger").Client(t, "mallory").TLS
	for _, u := range []string{srv.URL, srv.AdminURL} {
		if _, err := with().Get(u + "/healthz"); err == nil {
			t.Errorf("%s: served without a client certificate", u)
		}
		if _, err := with(stranger).Get(u + "/healthz"); err == nil {
			t.Errorf("%s: served a certificate from another CA", u)
		}
	}
	good := with(clientCA.Client(t, "alice").TLS)
	if text := ocrText(t, good, srv.URL, lineImage(t)); text == "" {
		t.Fatal("no text over mTLS")
	}
}

type jobClient struct {
	t    *testing.T
	base string
	key  string
}

func (c jobClient) do(method, path, contentType string, body []byte, header ...string) (*http.Response, []byte) {
	c.t.Helper()
	req, _ := http.NewRequest(method, c.base+path, bytes.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if c.key != "" {
		req.Header.Set("X-API-Key", c.key)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func multipartFiles(t *testing.T, files [][]byte, types []string) (string, []byte) {
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	for i, f := range files {
		h := textproto.MIMEHeader{}
		h.Set("Content-Disposition", fmt.Sprintf(`form-data; name="file"; filename="f%d"`, i))
		h.Set("Content-Type", types[i])
		w, _ := mw.CreatePart(h)
		w.Write(f)
	}
	mw.Close()
	return mw.FormDataContentType(), b.Bytes()
}

// Jobs over HTTP with the real engine: images and a PDF in, the same text
// out as /v1/ocr gives, visible only to the principal that submitted
// them; every answer matches the OpenAPI document.
func TestIntegrationJobs(t *testing.T) {
	appKey, appHash, _ := auth.GenerateKey()
	otherKey, otherHash, _ := auth.GenerateKey()
	srv := apptest.Start(t, func(c *config.Config) {
		c.Auth = auth.Config{APIKeys: []auth.APIKey{
			{Name: "app", Hash: appHash, Scopes: []string{"infer"}},
			{Name: "other", Hash: otherHash, Scopes: []string{"infer"}},
		}}
		c.Jobs.Dir = t.TempDir()
		c.Jobs.PDF.DPI = 150
	})
	validate := specValidator(t)
	app := jobClient{t, srv.URL, appKey}
	lines := testenv.Shared(t, "data/ocr/lines")
	var imgs [][]byte
	for _, n := range []string{"book/0005/010001.bin.png", "book/0011/010111.bin.png", "book/0012/010036.bin.png"} {
		imgs = append(imgs, readFile(t, filepath.Join(lines, n)))
	}
	pageImg, err := decodeGray(imgs[0])
	if err != nil {
		t.Fatal(err)
	}
	pdf := jobstest.PDF([]image.Image{pageImg}, 150)
	ct, body := multipartFiles(t, append(imgs, pdf), []string{"image/png", "image/png", "image/png", "application/pdf"})

	resp, b := app.do("POST", "/v1/jobs?mode=line", ct, body, "Idempotency-Key", "batch-1")
	if resp.StatusCode != 202 {
		t.Fatalf("submit: %d %s", resp.StatusCode, b)
	}
	validate(resp, b)
	var st jobs.Status
	json.Unmarshal(b, &st)
	if resp.Header.Get("Location") != "/v1/jobs/"+st.ID || st.Progress.PagesTotal != 4 {
		t.Fatalf("Location %q, status %+v", resp.Header.Get("Location"), st)
	}
	if !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(resp.Header.Get(tracing.HeaderTraceID)) {
		t.Errorf("X-Trace-Id %q", resp.Header.Get(tracing.HeaderTraceID))
	}
	// The same submission again is the same job.
	resp, b = app.do("POST", "/v1/jobs?mode=line", ct, body, "Idempotency-Key", "batch-1")
	var replay jobs.Status
	json.Unmarshal(b, &replay)
	if resp.StatusCode != 200 || replay.ID != st.ID {
		t.Fatalf("replay: %d %s", resp.StatusCode, b)
	}
	validate(resp, b)
	// Another principal sees nothing.
	other := jobClient{t, srv.URL, otherKey}
	for _, p := range []string{"/v1/jobs/" + st.ID, "/v1/jobs/" + st.ID + "/result"} {
		if resp, b := other.do("GET", p, "", nil); resp.StatusCode != 404 {
			t.Fatalf("%s as another principal: %d %s", p, resp.StatusCode, b)
		}
	}
	for st.State != jobs.StateSucceeded {
		resp, b = app.do("GET", "/v1/jobs/"+st.ID, "", nil)
		if resp.StatusCode != 200 {
			t.Fatalf("status: %d %s", resp.StatusCode, b)
		}
		json.Unmarshal(b, &st)
		if st.State.Terminal() && st.State != jobs.StateSucceeded {
			t.Fatalf("job %+v", st)
		}
		if !st.State.Terminal() {
			// The job may finish between the two requests: then its
			// result is there, and says so.
			r, rb := app.do("GET", "/v1/jobs/"+st.ID+"/result", "", nil)
			var res struct{ State jobs.State }
			if finished := r.StatusCode == 200 && json.Unmarshal(rb, &res) == nil && res.State == jobs.StateSucceeded; r.StatusCode != 409 && !finished {
				t.Fatalf("result of an unfinished job: %d %s", r.StatusCode, rb)
			}
			validate(r, rb)
			time.Sleep(20 * time.Millisecond)
		}
	}
	validate(resp, b)
	resp, b = app.do("GET", "/v1/jobs/"+st.ID+"/result", "", nil)
	if resp.StatusCode != 200 {
		t.Fatalf("result: %d %s", resp.StatusCode, b)
	}
	validate(resp, b)
	var res jobs.Result
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatal(err)
	}
	if len(res.Pages) != 4 {
		t.Fatalf("%d pages", len(res.Pages))
	}
	for i, img := range imgs {
		want := ocrText(t, http.DefaultClient, srv.URL, img, "X-API-Key", appKey)
		if got := ocr.PlainText([]ocr.Page{*res.Pages[i].Page}); got != want {
			t.Errorf("page %d: job read %q, /v1/ocr %q", i, got, want)
		}
	}
	if p := res.Pages[3]; p.Error != nil || p.Source.Item != 3 || p.Width != pageImg.Bounds().Dx() || len(p.Lines) == 0 {
		t.Errorf("PDF page: %+v", p)
	}
	// Cancel (finished: unchanged), then delete.
	if resp, b := app.do("POST", "/v1/jobs/"+st.ID+"/cancel", "", nil); resp.StatusCode != 200 || !strings.Contains(string(b), `"succeeded"`) {
		t.Fatalf("cancel of a finished job: %d %s", resp.StatusCode, b)
	}
	if resp, _ := app.do("DELETE", "/v1/jobs/"+st.ID, "", nil); resp.StatusCode != 204 {
		t.Fatalf("delete: %d", resp.StatusCode)
	}
	resp, b = app.do("GET", "/v1/jobs/"+st.ID, "", nil)
	if resp.StatusCode != 404 {
		t.Fatalf("after delete: %d", resp.StatusCode)
	}
	validate(resp, b)
	// Errors are problems, with the synchronous path's statuses.
	for _, tc := range []struct {
		ct    string
		body  []byte
		query string
		want  int
	}{
		{"image/png", []byte("garbage"), "", 400},
		{"application/pdf", []byte("%PDF-1.4 garbage"), "", 400},
		{"image/svg+xml", []byte("<svg/>"), "", 415},
		{"image/png", imgs[0], "?webhook_url=https%3A%2F%2Fexample.com%2F", 400}, // no secret configured
		{"image/png", imgs[0], "?mode=sideways", 400},
	} {
		resp, b := app.do("POST", "/v1/jobs"+tc.query, tc.ct, tc.body)
		if resp.StatusCode != tc.want || resp.Header.Get("Content-Type") != "application/problem+json" {
			t.Errorf("%s %q: %d %s", tc.ct, tc.query, resp.StatusCode, b)
		}
		validate(resp, b)
	}
	if resp, b := (jobClient{t, srv.URL, ""}).do("GET", "/v1/jobs/"+st.ID, "", nil); resp.StatusCode != 401 {
		t.Fatalf("without a key: %d", resp.StatusCode)
	} else {
		validate(resp, b)
	}
}

// The trace id is in the response header and in every log line of the
// request, with JSON logs.
func TestIntegrationTraceIDInLogs(t *testing.T) {
	testenv.Shared(t, "data/ocr/lines")
	var buf syncBuffer
	cfg := config.Default()
	// Every listener on a free port or off: the defaults are the quick
	// start's ports, which a running server may hold.
	cfg.Server.Addr, cfg.Server.GRPCAddr, cfg.Server.AdminAddr = "127.0.0.1:0", "", ""
	cfg.Auth.Disabled = true
	log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	a, err := app.New(app.Options{Config: cfg, Logger: log, Registry: prometheus.NewRegistry()})
	if err != nil {
		testenv.Missing(t, "cannot start visionserve: "+err.Error())
	}
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	defer a.Shutdown(context.Background())
	resp, body := post(t, "http://"+a.Addr()+"/v1/ocr?model=nope", "image/png", lineImage(t))
	id := resp.Header.Get(tracing.HeaderTraceID)
	if resp.StatusCode != 404 || len(id) != 32 {
		t.Fatalf("%d %s, X-Trace-Id %q", resp.StatusCode, body, id)
	}
	found := false
	for _, line := range strings.Split(buf.String(), "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) != nil || rec["msg"] != "request" {
			continue
		}
		if rec["trace_id"] == id && rec["route"] == "POST /v1/ocr" {
			found = true
		}
	}
	if !found {
		t.Fatalf("no request log line with trace_id %s in:\n%s", id, buf.String())
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// A job submission that never finishes uploading is answered 504 once
// jobs.submit_timeout passes, and frees its upload slot.
func TestIntegrationJobSubmitDeadline(t *testing.T) {
	srv := apptest.Start(t, func(c *config.Config) {
		c.Jobs.Dir = t.TempDir()
		c.Jobs.SubmitTimeout = 300 * time.Millisecond
		c.Jobs.MaxConcurrentUploads = 1
	})
	good := lineImage(t)
	pr, pw := io.Pipe()
	defer pw.Close()
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/jobs", pr)
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
	if resp, body := post(t, srv.URL+"/v1/jobs", "image/png", good); resp.StatusCode != 202 {
		t.Fatalf("after the deadline: %d %s", resp.StatusCode, body)
	}
}

// The admin listener of a real server: pprof behind a models:admin
// credential even with authentication off, absent from the public
// listener; health and metrics open.
func TestIntegrationAdminListener(t *testing.T) {
	srv := apptest.Start(t, nil)
	get := func(url, key string) int {
		t.Helper()
		req, _ := http.NewRequest("GET", url, nil)
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	if srv.AdminKey == "" {
		t.Fatal("no admin key")
	}
	for _, tc := range []struct {
		url, key string
		want     int
	}{
		{srv.AdminURL + "/debug/pprof/cmdline", "", 401},
		{srv.AdminURL + "/debug/pprof/cmdline", srv.AdminKey, 200},
		{srv.AdminURL + "/debug/pprof/goroutine?debug=1", srv.AdminKey, 200},
		{srv.URL + "/debug/pprof/cmdline", srv.AdminKey, 404},
		{srv.AdminURL + "/metrics", "", 200},
		{srv.AdminURL + "/healthz", "", 200},
		{srv.AdminURL + "/v1/ocr", "", 404},
	} {
		if got := get(tc.url, tc.key); got != tc.want {
			t.Errorf("GET %s (key %v): %d, want %d", tc.url, tc.key != "", got, tc.want)
		}
	}
}
