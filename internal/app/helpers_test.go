package app_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/visionserve/visionserve/internal/app/apptest"
	"github.com/visionserve/visionserve/internal/config"
	"github.com/visionserve/visionserve/internal/modelrepo"
	"github.com/visionserve/visionserve/internal/modelrepo/manifest"
	"github.com/visionserve/visionserve/internal/modelrepo/repotest"
	"github.com/visionserve/visionserve/internal/modelrepo/signing"
	"github.com/visionserve/visionserve/internal/testenv"
)

// fixture is a repository with its trust, and a server over it.
type fixture struct {
	t    testing.TB
	root string
	key  *repotest.Key
	ca   *repotest.CA
	data map[string][]byte
	srv  *apptest.Server
	rec  *recorder
	line []byte
}

// newFixture publishes ocr-eng version 1 (the system's eng and osd
// traineddata, signed with a trusted key) and starts a server over it.
func newFixture(t testing.TB, mutate func(*config.Config)) *fixture {
	t.Helper()
	f := &fixture{t: t, root: t.TempDir(), key: repotest.NewKey(t), ca: repotest.NewCA(t), data: repotest.Tessdata(t), line: lineOf(t)}
	f.publish(1, nil)
	f.srv = apptest.Start(t, func(c *config.Config) {
		c.Server.Workers = 2
		c.Repository.Dir = f.root
		c.Repository.Trust.Keys = []string{f.key.PublicPath}
		c.Repository.Trust.CACertificates = []string{f.ca.CertPath}
		if mutate != nil {
			mutate(c)
		}
	})
	f.rec = record(t, f.srv.Repository())
	return f
}

// lineOf reads the shared text line the fixtures send.
func lineOf(t testing.TB) []byte {
	t.Helper()
	line, err := os.ReadFile(filepath.Join(testenv.Shared(t, "data/ocr/lines"), "book/0005/010001.bin.png"))
	if err != nil {
		t.Fatal(err)
	}
	return line
}

// spec is ocr-eng version v, signed with the trusted key.
func (f *fixture) spec(v int) repotest.Spec {
	return repotest.Spec{
		Name: "ocr-eng", Version: v, Kind: manifest.KindOCRTesseract, Runtime: map[string]any{"lang": "eng"},
		Files: f.data, Signer: f.key.Signer,
	}
}

// publish publishes ocr-eng version v (changed by mod) and returns the
// moment its directory appeared.
func (f *fixture) publish(v int, mod func(*repotest.Spec)) time.Time {
	f.t.Helper()
	s := f.spec(v)
	if mod != nil {
		mod(&s)
	}
	repotest.Publish(f.t, f.root, s)
	return time.Now()
}

// ocr posts the line image; pin and key may be empty.
func (f *fixture) ocr(pin, key string) (status int, version string, err error) {
	req, _ := http.NewRequest("POST", f.srv.URL+"/v1/ocr", bytes.NewReader(f.line))
	req.Header.Set("Content-Type", "image/png")
	if pin != "" {
		req.Header.Set("X-Model-Version", pin)
	}
	if key != "" {
		req.Header.Set("X-Routing-Key", key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, "", err
	}
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, "", fmt.Errorf("status %d: %s", resp.StatusCode, body)
	}
	var res struct {
		Model struct{ Name, Version string } `json:"model"`
		Text  string
	}
	if err := json.Unmarshal(body, &res); err != nil {
		return resp.StatusCode, "", err
	}
	if h := resp.Header.Get("X-Model-Version"); h != res.Model.Version || res.Model.Name != "ocr-eng" || strings.TrimSpace(res.Text) == "" {
		return resp.StatusCode, "", fmt.Errorf("header version %q, body model %+v, text %q", h, res.Model, res.Text)
	}
	return resp.StatusCode, res.Model.Version, nil
}

// load keeps n clients reading the line, unpinned, without pause, until
// the returned stop is called; stop returns how many answers each version
// gave and every failed request.
func (f *fixture) load(n int) (stop func() (map[string]int, []error)) {
	var mu sync.Mutex
	served := map[string]int{}
	var failed []error
	done := make(chan struct{})
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-done:
					return
				default:
				}
				_, version, err := f.ocr("", "")
				mu.Lock()
				if err != nil {
					failed = append(failed, err)
				} else {
					served[version]++
				}
				mu.Unlock()
			}
		}()
	}
	return func() (map[string]int, []error) {
		close(done)
		wg.Wait()
		return served, failed
	}
}

// request builds a request for path: the model routes go to the admin
// listener, with the admin key; everything else to the public one.
func (f *fixture) request(method, path string, body io.Reader) *http.Request {
	f.t.Helper()
	base, admin := f.srv.URL, strings.HasPrefix(path, "/v1/models")
	if admin {
		base = f.srv.AdminURL
	}
	req, err := http.NewRequest(method, base+path, body)
	if err != nil {
		f.t.Fatal(err)
	}
	if admin {
		req.Header.Set("Authorization", "Bearer "+f.srv.AdminKey)
	}
	return req
}

// getJSON GETs path into v and returns the status.
func (f *fixture) getJSON(path string, v any) int {
	f.t.Helper()
	resp, err := http.DefaultClient.Do(f.request("GET", path, nil))
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	if v != nil {
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			f.t.Fatalf("GET %s: %v", path, err)
		}
	}
	return resp.StatusCode
}

// send makes a request with a JSON body and decodes the answer into v.
func (f *fixture) send(method, path, body string, v any) int {
	f.t.Helper()
	req := f.request(method, path, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	if v != nil {
		_ = json.NewDecoder(resp.Body).Decode(v)
	}
	return resp.StatusCode
}

// metric returns the value of the sample of the named metric whose label
// set contains every want label.
func (f *fixture) metric(name string, want map[string]string) float64 {
	f.t.Helper()
	mfs, err := f.srv.Registry.Gather()
	if err != nil {
		f.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.Metric {
			labels := map[string]string{}
			for _, l := range m.Label {
				labels[l.GetName()] = l.GetValue()
			}
			for k, v := range want {
				if labels[k] != v {
					continue next
				}
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			case m.Histogram != nil:
				return float64(m.Histogram.GetSampleCount())
			}
		}
	}
	return -1
}

// recorder keeps every repository event, with the monotonic clock reading
// of its time, so request timelines can be checked against it.
type recorder struct {
	repo   *modelrepo.Repository
	mu     sync.Mutex
	events []modelrepo.Event
	notify chan struct{}
}

func record(t testing.TB, repo *modelrepo.Repository) *recorder {
	r := &recorder{repo: repo, notify: make(chan struct{}, 1)}
	past := repo.Events()
	var since uint64
	if len(past) > 0 {
		since = past[len(past)-1].Seq
	}
	sub, replay := repo.Subscribe(since)
	r.events = append(past, replay...)
	go func() {
		for e := range sub.C {
			r.mu.Lock()
			r.events = append(r.events, e)
			r.mu.Unlock()
			select {
			case r.notify <- struct{}{}:
			default:
			}
		}
	}()
	t.Cleanup(sub.Close)
	return r
}

// wait returns the first event of ocr-eng version v of type one of types.
func (r *recorder) wait(t testing.TB, v int, types ...modelrepo.State) modelrepo.Event {
	t.Helper()
	return r.waitModel(t, "ocr-eng", v, types...)
}

// waitModel is wait for another model than ocr-eng. A ready event is
// sent just before the routing table that routes to the version is
// published; when it returns one, the table is published too (reading the
// repository's status waits for the publisher), so a request sent next
// reaches the version.
func (r *recorder) waitModel(t testing.TB, model string, v int, types ...modelrepo.State) modelrepo.Event {
	t.Helper()
	deadline := time.After(2 * time.Minute)
	for {
		if e, ok := r.findModel(model, v, types...); ok {
			_, _ = r.repo.Model(model)
			return e
		}
		select {
		case <-r.notify:
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			t.Fatalf("%s version %d: no %v event", model, v, types)
		}
	}
}

func (r *recorder) find(v int, types ...modelrepo.State) (modelrepo.Event, bool) {
	return r.findModel("ocr-eng", v, types...)
}

func (r *recorder) findModel(model string, v int, types ...modelrepo.State) (modelrepo.Event, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.events {
		if e.Version != strconv.Itoa(v) || e.Model != model {
			continue
		}
		for _, typ := range types {
			if e.Type == modelrepo.EventType(typ) {
				return e, true
			}
		}
	}
	return modelrepo.Event{}, false
}

func (r *recorder) all() []modelrepo.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]modelrepo.Event(nil), r.events...)
}

// signer helpers for the failure cases.
func expiredSigner(t *testing.T, ca *repotest.CA) *signing.Signer {
	return ca.Signer(t, time.Now().Add(-60*24*time.Hour), time.Now().Add(-24*time.Hour))
}

func startStatic(t *testing.T) *apptest.Server { return apptest.Start(t, nil) }
