package app_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/visionserve/visionserve/internal/config"
	"github.com/visionserve/visionserve/internal/modelrepo"
	"github.com/visionserve/visionserve/internal/modelrepo/repotest"
)

// Every way a published version can be wrong is refused with its own
// reason, and version 1 keeps answering every request meanwhile.
func TestIntegrationRejectedVersionsKeepThePreviousOne(t *testing.T) {
	f := newFixture(t, nil)
	other := repotest.NewKey(t)

	// A client keeps asking throughout; every answer must come from
	// version 1 (the only version that may ever be ready here).
	stop := f.load(1)

	flip := func(rel string) func(*repotest.Spec) {
		return func(s *repotest.Spec) {
			s.Tamper = func(t testing.TB, dir string) { repotest.FlipByte(t, dir, rel, 100) }
		}
	}
	cases := []struct {
		name   string
		mod    func(*repotest.Spec)
		reason modelrepo.Reason
	}{
		{"one byte of eng.traineddata flipped", flip("eng.traineddata"), modelrepo.ReasonDigestMismatch},
		{"one byte of osd.traineddata flipped", flip("osd.traineddata"), modelrepo.ReasonDigestMismatch},
		{"one byte of manifest.json flipped", flip("manifest.json"), modelrepo.ReasonDigestMismatch},
		{"one byte of model.sig flipped", func(s *repotest.Spec) {
			s.Tamper = func(t testing.TB, dir string) { repotest.FlipSignatureByte(t, dir) }
		}, modelrepo.ReasonBadSignature},
		{"a file removed", func(s *repotest.Spec) {
			s.Tamper = func(t testing.TB, dir string) { os.Remove(filepath.Join(dir, "osd.traineddata")) }
		}, modelrepo.ReasonMissingFile},
		{"an unlisted file added", func(s *repotest.Spec) {
			s.Tamper = func(t testing.TB, dir string) {
				os.WriteFile(filepath.Join(dir, "extra.traineddata"), []byte("x"), 0o644)
			}
		}, modelrepo.ReasonUnlistedFile},
		{"signed with an untrusted key", func(s *repotest.Spec) { s.Signer = other.Signer }, modelrepo.ReasonUntrustedKey},
		{"signed with an expired certificate", func(s *repotest.Spec) { s.Signer = expiredSigner(t, f.ca) }, modelrepo.ReasonCertExpired},
		{"not signed", func(s *repotest.Spec) { s.Signer = nil }, modelrepo.ReasonUnsigned},
		{"manifest names another version", func(s *repotest.Spec) { s.PublishAs = s.Version; s.Version = 1 }, modelrepo.ReasonManifestInvalid},
	}
	for i, tc := range cases {
		v := i + 2
		t.Run(tc.name, func(t *testing.T) {
			f.publish(v, tc.mod)
			ev := f.rec.wait(t, v, modelrepo.StateFailed, modelrepo.StateReady)
			if ev.Type != modelrepo.EventType(modelrepo.StateFailed) || ev.Reason != tc.reason {
				t.Fatalf("version %d: event %s reason %q, want failed with %s (%s)", v, ev.Type, ev.Reason, tc.reason, ev.Detail)
			}
			if ev.Phase != modelrepo.PhaseVerify {
				t.Errorf("failed in phase %q, want verify", ev.Phase)
			}
			// Still version 1, pinned or not; the refused version is not
			// reachable even when pinned.
			if _, got, err := f.ocr("", ""); err != nil || got != "1" {
				t.Errorf("after the refusal: version %q, %v", got, err)
			}
			if status, _, _ := f.ocr(strconv.Itoa(v), ""); status != http.StatusNotFound {
				t.Errorf("pinned to the refused version: status %d, want 404", status)
			}
			var st modelrepo.ModelStatus
			f.getJSON("/v1/models/ocr-eng", &st)
			for _, vs := range st.Versions {
				if vs.Version == strconv.Itoa(v) && (vs.State != modelrepo.StateFailed || vs.Reason != tc.reason) {
					t.Errorf("status of version %d: %+v", v, vs)
				}
			}
			if n := f.metric("visionserve_model_load_failures_total", map[string]string{"model": "ocr-eng", "reason": string(tc.reason)}); n < 1 {
				t.Errorf("failure metric for %s: %v", tc.reason, n)
			}
		})
	}
	served, failed := stop()
	if served["1"] == 0 || len(served) != 1 || len(failed) != 0 {
		t.Fatalf("background client: answers by version %v, failures %v", served, failed)
	}
	t.Logf("%d requests answered by version 1 while %d bad versions were refused", served["1"], len(cases))
	// Every reason is exported, at zero when it never happened.
	if n := f.metric("visionserve_model_load_failures_total", map[string]string{"model": "ocr-eng", "reason": "warmup_error"}); n != 0 {
		t.Errorf("warmup_error series: %v", n)
	}
	if f.metric("visionserve_model_last_load_success", map[string]string{"model": "ocr-eng"}) != 0 {
		t.Error("last load success is not 0 after failures")
	}
}

// The admin API over HTTP: list, status, traffic split, sticky keys,
// load and unload, the event stream, and the errors.
func TestIntegrationModelAdminAPI(t *testing.T) {
	f := newFixture(t, func(c *config.Config) { c.Repository.Policy = modelrepo.Policy{Latest: 2} })
	events := sse(t, f.request("GET", "/v1/models/events?model=ocr-eng", nil))
	f.publish(2, nil)
	f.rec.wait(t, 2, modelrepo.StateReady)

	var list struct {
		DefaultModel string                  `json:"default_model"`
		Source       string                  `json:"source"`
		Models       []modelrepo.ModelStatus `json:"models"`
	}
	if f.getJSON("/v1/models", &list) != 200 || list.Source != "repository" || list.DefaultModel != "ocr-eng" || len(list.Models) != 1 {
		t.Fatalf("list %+v", list)
	}
	m := list.Models[0]
	if m.Kind != "ocr-tesseract" || m.Traffic.Mode != "latest" || m.Traffic.Shares["2"] != 1 || len(m.Versions) != 2 {
		t.Errorf("model %+v", m)
	}
	for _, vs := range m.Versions {
		if vs.State != modelrepo.StateReady || vs.Signer == nil || vs.Signer.Method != "key" || vs.LoadMS["warmup"] <= 0 {
			t.Errorf("version %+v", vs)
		}
	}

	// A 50/50 split: both versions answer; a sticky key always gets the
	// same one.
	var st modelrepo.ModelStatus
	if code := f.send("PUT", "/v1/models/ocr-eng/traffic", `{"weights": {"1": 50, "2": 50}}`, &st); code != 200 || st.Traffic.Shares["1"] != 0.5 {
		t.Fatalf("traffic: %d %+v", code, st.Traffic)
	}
	seen := map[string]int{}
	for range 16 {
		_, v, err := f.ocr("", "")
		if err != nil {
			t.Fatal(err)
		}
		seen[v]++
	}
	if seen["1"] == 0 || seen["2"] == 0 {
		t.Errorf("50/50 split answered by %v", seen)
	}
	for _, key := range []string{"alice", "bob", "carol"} {
		_, first, _ := f.ocr("", key)
		for range 3 {
			if _, v, _ := f.ocr("", key); v != first {
				t.Errorf("key %s: version %s then %s", key, first, v)
			}
		}
	}
	if _, v, _ := f.ocr("1", "alice"); v != "1" {
		t.Errorf("a pin beats the sticky key: %s", v)
	}
	for body, want := range map[string]int{
		`{"weights": {"x": 1}}`:   400,
		`{"weights": {"1": -1}}`:  400,
		`{"weights": {"1": 0}}`:   400,
		`{"weight": {"1": 1}}`:    400,
		`{}`:                      400,
		`not json`:                400,
		`{"weights": {}}`:         200,
		`{"weights": {"7": 100}}`: 200,
	} {
		if code := f.send("PUT", "/v1/models/ocr-eng/traffic", body, nil); code != want {
			t.Errorf("traffic %s: %d, want %d", body, code, want)
		}
	}
	if code := f.send("PUT", "/v1/models/nope/traffic", `{"weights": {"1": 1}}`, nil); code != 404 {
		t.Errorf("traffic of an unknown model: %d", code)
	}
	// The model routes exist on the admin listener only, and need a
	// credential there even with authentication off.
	for url, want := range map[string]int{f.srv.URL + "/v1/models": http.StatusNotFound, f.srv.AdminURL + "/v1/models": http.StatusUnauthorized} {
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s without a key: %d, want %d", url, resp.StatusCode, want)
		}
	}

	// Unload version 2: version 1 is ready, so 2 leaves at once.
	var vs modelrepo.VersionStatus
	if code := f.send("POST", "/v1/models/ocr-eng/versions/2/unload", "", &vs); code != 200 || vs.Pinned != "unload" {
		t.Fatalf("unload: %d %+v", code, vs)
	}
	if _, v, _ := f.ocr("", ""); v != "1" {
		t.Errorf("after unloading 2: version %s", v)
	}
	if code := f.send("POST", "/v1/models/ocr-eng/versions/2/load", "", &vs); code != 200 || vs.State != modelrepo.StateReady {
		t.Fatalf("load: %d %+v", code, vs)
	}
	// A broken version: load answers 422 with the reason.
	f.publish(3, func(s *repotest.Spec) {
		s.Tamper = func(t testing.TB, dir string) { repotest.FlipByte(t, dir, "eng.traineddata", 7) }
	})
	f.rec.wait(t, 3, modelrepo.StateFailed)
	var problem struct {
		Type, Reason string
		Status       int
	}
	if code := f.send("POST", "/v1/models/ocr-eng/versions/3/load", "", &problem); code != 422 || problem.Reason != "digest_mismatch" {
		t.Errorf("load of a tampered version: %d %+v", code, problem)
	}
	for path, want := range map[string]int{
		"/v1/models/ocr-eng/versions/9/load":  404,
		"/v1/models/ocr-eng/versions/x/load":  400,
		"/v1/models/ocr-eng/versions/01/load": 400,
		"/v1/models/nope/versions/1/unload":   404,
	} {
		if code := f.send("POST", path, "", nil); code != want {
			t.Errorf("POST %s: %d, want %d", path, code, want)
		}
	}
	if code := f.getJSON("/v1/models/nope", nil); code != 404 {
		t.Errorf("status of an unknown model: %d", code)
	}

	// The stream saw the lifecycle of version 2, in order, with timings.
	var got []string
	deadline := time.After(30 * time.Second)
	for len(got) < 5 {
		select {
		case e := <-events:
			if e.Version == "2" && e.Type != modelrepo.EventTraffic {
				got = append(got, string(e.Type))
				if e.Type == modelrepo.EventType(modelrepo.StateReady) && (e.PhasesMS["verify"] <= 0 || e.PhasesMS["load"] <= 0 || e.DurationMS <= 0) {
					t.Errorf("ready event without timings: %+v", e)
				}
			}
		case <-deadline:
			t.Fatalf("events of version 2 so far: %v", got)
		}
	}
	if strings.Join(got, ",") != "discovered,verifying,loading,warming,ready" {
		t.Errorf("event stream: %v", got)
	}
}

// sse reads a server-sent event stream into a channel until the test ends.
func sse(t *testing.T, req *http.Request) <-chan modelrepo.Event {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	resp, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("events: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	out := make(chan modelrepo.Event, 1024)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			data, ok := strings.CutPrefix(sc.Text(), "data: ")
			if !ok {
				continue
			}
			var e modelrepo.Event
			if err := json.Unmarshal([]byte(data), &e); err != nil {
				t.Errorf("event %q: %v", data, err)
				return
			}
			out <- e
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return out
}

// A server without a repository lists its built-in models and refuses
// changes with 409.
func TestIntegrationStaticModelsAPI(t *testing.T) {
	f := &fixture{t: t}
	f.srv = startStatic(t)
	var list struct {
		Source string
		Models []modelrepo.ModelStatus
	}
	if f.getJSON("/v1/models", &list) != 200 || list.Source != "static" || len(list.Models) != 1 || list.Models[0].Versions[0].State != "ready" {
		t.Errorf("static list %+v", list)
	}
	if code := f.getJSON("/v1/models/ocr-eng", nil); code != 200 {
		t.Errorf("static model status: %d", code)
	}
	for _, c := range []struct{ method, path, body string }{
		{"POST", "/v1/models/ocr-eng/versions/1/load", ""},
		{"POST", "/v1/models/ocr-eng/versions/1/unload", ""},
		{"PUT", "/v1/models/ocr-eng/traffic", `{"weights": {"1": 1}}`},
		{"GET", "/v1/models/events", ""},
	} {
		if code := f.send(c.method, c.path, c.body, nil); code != http.StatusConflict {
			t.Errorf("%s %s: %d, want 409", c.method, c.path, code)
		}
	}
}
