package e2e

import (
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/visionserve/visionserve/internal/jobs"
	"github.com/visionserve/visionserve/internal/jobs/webhook"
	"github.com/visionserve/visionserve/internal/ocreval"
	"github.com/visionserve/visionserve/internal/testenv"
	"github.com/visionserve/visionserve/internal/tlsconf/tlstest"
)

// hook is a webhook receiver: it keeps every delivery.
type hook struct {
	mu         sync.Mutex
	deliveries []delivery
	got        chan struct{}
}

type delivery struct {
	header http.Header
	body   []byte
}

func (h *hook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	h.mu.Lock()
	h.deliveries = append(h.deliveries, delivery{r.Header.Clone(), body})
	h.mu.Unlock()
	select {
	case h.got <- struct{}{}:
	default:
	}
}

func (h *hook) all() []delivery {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]delivery(nil), h.deliveries...)
}

func getJSON(t testing.TB, url string, v any) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == 200 {
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatalf("%s: %v: %s", url, err, b)
		}
	}
	return resp.StatusCode
}

// Must show: a job of 50 images survives kill -9 of the server mid-run
// and completes after a restart with every page exactly once in the
// result; the webhook arrives at a receiver the test runs, with a valid
// signature.
func TestE2EJobSurvivesKill9(t *testing.T) {
	samples, err := ocreval.LoadLines(testenv.Shared(t, "data/ocr/lines"))
	if err != nil {
		t.Fatal(err)
	}
	if len(samples) < 50 {
		t.Fatalf("%d samples, need 50", len(samples))
	}
	samples = samples[:50]

	var raw [32]byte
	rand.Read(raw[:])
	secret := "whsec_" + base64.StdEncoding.EncodeToString(raw[:])
	t.Setenv("VISIONSERVE_WEBHOOK_SECRET", secret)
	rcv := &hook{got: make(chan struct{}, 1)}
	hookSrv := httptest.NewServer(rcv)
	defer hookSrv.Close()

	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "visionserve.yaml")
	// The receiver is on 127.0.0.1, which webhooks may not reach by default.
	os.WriteFile(cfgFile, []byte("jobs:\n  webhook:\n    allow_private_networks: true\n    initial_backoff: 200ms\n"), 0o600)
	args := []string{"--config", cfgFile, "--jobs-dir", filepath.Join(dir, "jobs"), "--workers", "1"}

	// Submit the 50 lines as one multipart job.
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	for i, s := range samples {
		data, err := os.ReadFile(s.Image)
		if err != nil {
			t.Fatal(err)
		}
		h := textproto.MIMEHeader{}
		h.Set("Content-Disposition", fmt.Sprintf(`form-data; name="file"; filename="%03d.png"`, i))
		h.Set("Content-Type", "image/png")
		w, _ := mw.CreatePart(h)
		w.Write(data)
	}
	mw.Close()

	first := startServer(t, args...)
	resp, err := http.Post(first.url+"/v1/jobs?webhook_url="+hookSrv.URL+"/hook", mw.FormDataContentType(), &body)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 202 {
		t.Fatalf("submit: %d %s", resp.StatusCode, b)
	}
	var st jobs.Status
	json.Unmarshal(b, &st)

	// Kill -9 once some pages are done, well before the end.
	for {
		if code := getJSON(t, first.url+"/v1/jobs/"+st.ID, &st); code != 200 {
			t.Fatalf("status: %d", code)
		}
		if st.State.Terminal() {
			t.Fatalf("the job finished before it could be killed (%+v): the test proves nothing", st.Progress)
		}
		if st.Progress.PagesDone >= 5 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := first.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-first.done
	doneAtKill := st.Progress.PagesDone
	t.Logf("killed with %d of 50 pages reported done", doneAtKill)
	if n := len(rcv.all()); n != 0 {
		t.Fatalf("%d webhooks before the job finished", n)
	}

	second := startServer(t, args...)
	deadline := time.Now().Add(5 * time.Minute)
	for !st.State.Terminal() {
		if time.Now().After(deadline) {
			t.Fatalf("the resumed job did not finish: %+v\n%s", st, second.logs.String())
		}
		time.Sleep(50 * time.Millisecond)
		if code := getJSON(t, second.url+"/v1/jobs/"+st.ID, &st); code != 200 {
			t.Fatalf("status after restart: %d", code)
		}
	}
	if st.State != jobs.StateSucceeded || st.Progress.PagesDone != 50 || st.Progress.PagesFailed != 0 {
		t.Fatalf("final status %+v", st)
	}
	if !strings.Contains(second.logs.String(), "resuming unfinished jobs") {
		t.Errorf("the second server did not say it resumed the job:\n%s", second.logs.String())
	}

	// Every page exactly once, in order, each the text of its own image.
	var res jobs.Result
	if code := getJSON(t, second.url+"/v1/jobs/"+st.ID+"/result", &res); code != 200 {
		t.Fatalf("result: %d", code)
	}
	if len(res.Pages) != 50 {
		t.Fatalf("%d pages in the result, want 50", len(res.Pages))
	}
	var score ocreval.Score
	for i, p := range res.Pages {
		if p.Index != i || p.Source.Item != i || p.Source.Page != 0 || p.Error != nil || p.Page == nil {
			t.Fatalf("page %d: index %d source %+v error %+v", i, p.Index, p.Source, p.Error)
		}
		var text []string
		for _, l := range p.Lines {
			text = append(text, l.Text)
		}
		score.Add(strings.Join(text, "\n"), samples[i].Truth)
	}
	t.Logf("50 pages through a killed and restarted server: %v", score)
	if score.CER() > 0.02 {
		t.Errorf("CER %.2f%%: pages and images do not match", 100*score.CER())
	}

	// The webhook: signed, for this job, its id stable for de-duplication.
	select {
	case <-rcv.got:
	case <-time.After(2 * time.Minute):
		t.Fatalf("no webhook\n%s", second.logs.String())
	}
	key, err := webhook.ParseSecret(secret)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range rcv.all() {
		if err := webhook.Verify(key, d.header, d.body, time.Now(), 5*time.Minute); err != nil {
			t.Errorf("webhook signature: %v (headers %v)", err, d.header)
		}
		var ev jobs.Event
		if err := json.Unmarshal(d.body, &ev); err != nil || ev.Type != "job.succeeded" || ev.Data.ID != st.ID || ev.Data.Progress.PagesDone != 50 {
			t.Errorf("webhook body %s: %v", d.body, err)
		}
		if !strings.HasPrefix(d.header.Get(webhook.HeaderID), "msg_") {
			t.Errorf("webhook id %q", d.header.Get(webhook.HeaderID))
		}
		// A tampered copy must not verify: the check above can fail.
		if webhook.Verify(key, d.header, append(d.body, ' '), time.Now(), 5*time.Minute) == nil {
			t.Error("a tampered webhook verified")
		}
	}
}

// The real binary with credentials and TLS from a config file and flags:
// keys made by `visionserve auth hash-key`, HTTPS with a generated
// certificate, 401 without the key, 200 with it, pprof only on the admin
// listener and only for an admin key.
func TestE2EAuthAndTLS(t *testing.T) {
	out, errOut, code := runCLI(t, "auth", "hash-key")
	var key, hash string
	for _, line := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(line, "key:  "); ok {
			key = v
		}
		if v, ok := strings.CutPrefix(line, "hash: "); ok {
			hash = v
		}
	}
	if code != 0 || key == "" || hash == "" {
		t.Fatalf("hash-key: exit %d %q %q", code, out, errOut)
	}
	adminKey, _, _ := runCLI(t, "auth", "hash-key")
	adminKey, adminHash := strings.TrimPrefix(strings.Split(adminKey, "\n")[0], "key:  "), strings.TrimPrefix(strings.Split(adminKey, "\n")[1], "hash: ")

	dir := t.TempDir()
	ca := tlstest.NewCA(t, "e2e CA")
	certFile, keyFile := ca.Server(t, "visionserve").Write(t, dir, "server")
	cfgFile := filepath.Join(dir, "visionserve.yaml")
	os.WriteFile(cfgFile, []byte(fmt.Sprintf(`auth:
  api_keys:
    - {name: app, hash: %q, scopes: [infer]}
    - {name: ops, hash: %q, scopes: ["models:admin"]}
`, hash, adminHash)), 0o600)
	s := startServer(t, "--config", cfgFile, "--no-auth=false", "--tls-cert", certFile, "--tls-key", keyFile)
	base := "https://" + strings.TrimPrefix(s.url, "http://")
	m := regexp.MustCompile(`msg="admin listener" .*addr=(127\.0\.0\.1:\d+)`).FindStringSubmatch(s.logs.String())
	if m == nil {
		t.Fatalf("no admin listener in the log:\n%s", s.logs.String())
	}
	admin := "https://" + m[1]
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}, ForceAttemptHTTP2: true}}
	img, _ := os.ReadFile(filepath.Join(testenv.Shared(t, "data/ocr/lines"), "book/0005/010001.bin.png"))
	do := func(method, url, key string, body []byte) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(method, url, bytes.NewReader(body))
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	if r := do("POST", base+"/v1/ocr", "", img); r.StatusCode != 401 {
		t.Fatalf("no key: %d", r.StatusCode)
	}
	if r := do("POST", base+"/v1/ocr", "vsk_"+strings.Repeat("x", 43), img); r.StatusCode != 401 {
		t.Fatalf("wrong key: %d", r.StatusCode)
	}
	r := do("POST", base+"/v1/ocr", key, img)
	if r.StatusCode != 200 || r.ProtoMajor != 2 || r.TLS.Version != tls.VersionTLS13 {
		t.Fatalf("with the key: %d %s %x", r.StatusCode, r.Proto, r.TLS.Version)
	}
	if r := do("GET", base+"/debug/pprof/cmdline", adminKey, nil); r.StatusCode != 404 {
		t.Fatalf("pprof on the public listener: %d", r.StatusCode)
	}
	if r := do("GET", admin+"/debug/pprof/cmdline", key, nil); r.StatusCode != 403 {
		t.Fatalf("pprof with an infer key: %d", r.StatusCode)
	}
	if r := do("GET", admin+"/debug/pprof/cmdline", adminKey, nil); r.StatusCode != 200 {
		t.Fatalf("pprof with the admin key: %d", r.StatusCode)
	}
}
