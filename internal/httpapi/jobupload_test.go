package httpapi_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/visionserve/visionserve/internal/app/apptest"
	"github.com/visionserve/visionserve/internal/auth"
	"github.com/visionserve/visionserve/internal/config"
)

// trickleJob starts a job submission whose body sends its first bytes and
// then nothing; the response arrives on the returned channel.
func trickleJob(t *testing.T, url, key string, data []byte) (chan *http.Response, func()) {
	t.Helper()
	pr, pw := io.Pipe()
	req, _ := http.NewRequest(http.MethodPost, url+"/v1/jobs", pr)
	req.Header.Set("Content-Type", "image/png")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	req.ContentLength = int64(len(data))
	go pw.Write(data[:100]) // and never the rest
	out := make(chan *http.Response, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			out <- nil
			return
		}
		out <- resp
	}()
	return out, func() { pw.CloseWithError(io.ErrUnexpectedEOF) }
}

// Issue 11 item 4: an upload that trickles is cut once it falls below
// jobs.min_upload_rate (408), instead of holding its slot until
// jobs.submit_timeout.
func TestIntegrationJobUploadTooSlow(t *testing.T) {
	srv := apptest.Start(t, func(c *config.Config) {
		c.Jobs.Dir = t.TempDir()
		c.Jobs.SubmitTimeout = 5 * time.Second
		c.Jobs.MinUploadRate, c.Jobs.UploadGrace = 1024, 200*time.Millisecond
		c.Jobs.MaxConcurrentUploads, c.Jobs.Tenant.MaxConcurrentUploads = 1, 1
	})
	good := lineImage(t)
	got, stop := trickleJob(t, srv.URL, "", good)
	defer stop()
	resp := <-got
	if resp == nil {
		t.Fatal("no answer")
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestTimeout || !strings.Contains(string(body), "upload-too-slow") {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	if resp, body := post(t, srv.URL+"/v1/jobs", "image/png", good); resp.StatusCode != 202 {
		t.Fatalf("the slot was not freed: %d %s", resp.StatusCode, body)
	}
}

// Issue 11 item 4: one tenant's slow uploads hold at most its share of
// the upload slots; another tenant still gets one.
func TestIntegrationJobUploadSlotsPerTenant(t *testing.T) {
	keyA, hashA, _ := auth.GenerateKey()
	keyB, hashB, _ := auth.GenerateKey()
	srv := apptest.Start(t, func(c *config.Config) {
		c.Jobs.Dir = t.TempDir()
		c.Jobs.MaxConcurrentUploads, c.Jobs.Tenant.MaxConcurrentUploads = 4, 2
		c.Auth.APIKeys = append(c.Auth.APIKeys,
			auth.APIKey{Name: "a", Hash: hashA, Tenant: "A", Scopes: []string{string(auth.ScopeInfer)}},
			auth.APIKey{Name: "b", Hash: hashB, Tenant: "B", Scopes: []string{string(auth.ScopeInfer)}})
	})
	good := lineImage(t)
	for i := 0; i < 2; i++ {
		_, stop := trickleJob(t, srv.URL, keyA, good)
		defer stop()
	}
	waitFor(t, "two uploads in progress", func() bool {
		return gaugeValue(t, srv.Registry, "visionserve_job_uploads_in_progress") == 2
	})
	if resp, body := post(t, srv.URL+"/v1/jobs", "image/png", good, "Authorization", "Bearer "+keyA); resp.StatusCode != http.StatusTooManyRequests ||
		!strings.Contains(string(body), "too-many-uploads") {
		t.Fatalf("tenant A's third upload: %d %s", resp.StatusCode, body)
	}
	if resp, body := post(t, srv.URL+"/v1/jobs", "image/png", good, "Authorization", "Bearer "+keyB); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("tenant B: %d %s", resp.StatusCode, body)
	}
}

// gaugeValue reads a registered gauge by name.
func gaugeValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.Metric) == 1 {
			return mf.Metric[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no gauge %s", name)
	return 0
}
