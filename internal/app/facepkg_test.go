package app_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/visionserve/visionserve/internal/config"
	"github.com/visionserve/visionserve/internal/engine/onnx/onnxtest"
	"github.com/visionserve/visionserve/internal/modelrepo"
	"github.com/visionserve/visionserve/internal/modelrepo/manifest"
	"github.com/visionserve/visionserve/internal/modelrepo/repotest"
	"github.com/visionserve/visionserve/internal/testenv"
)

// mobileFaceNetID is the embedder id of shared/models/face/MobileFaceNet.onnx
// with the default normalisation: "sha256:" and the file's digest.
const mobileFaceNetID = "sha256:b7120c095d60094f28a4a54ba6a8bf51b297a6273fb40ef6350dfec1f63d9507"

// faceFixture is a server over a repository that serves face models as
// signed packages (face.detector_model, face.embedder_model).
type faceFixture struct {
	*fixture
	models string // shared/models/face
	images string // the face_recognition knn examples
}

func newFaceFixture(t *testing.T) *faceFixture {
	t.Helper()
	onnxtest.Init(t)
	ff := &faceFixture{
		models: testenv.Shared(t, "models/face"),
		images: testenv.Shared(t, "data/face/face_recognition-examples/knn_examples"),
	}
	galleries := filepath.Join(t.TempDir(), "galleries.db")
	ff.fixture = newFixture(t, func(c *config.Config) {
		c.Face.DetectorModel, c.Face.EmbedderModel = "face-detect", "face-embed"
		c.Face.Gallery.Path = galleries
		// The previous embedder stays loaded, for galleries enrolled
		// with it.
		c.Repository.Policies = map[string]modelrepo.Policy{"face-embed": {Latest: 2}}
	})
	return ff
}

func (ff *faceFixture) file(name string) []byte {
	ff.t.Helper()
	b, err := os.ReadFile(filepath.Join(ff.models, name))
	if err != nil {
		ff.t.Fatal(err)
	}
	return b
}

func (ff *faceFixture) image(rel string) []byte {
	ff.t.Helper()
	b, err := os.ReadFile(filepath.Join(ff.images, rel))
	if err != nil {
		ff.t.Fatal(err)
	}
	return b
}

// detectorSpec is face-detect version v: the dynamic YuNet and its licence.
func (ff *faceFixture) detectorSpec(v int) repotest.Spec {
	return repotest.Spec{
		Name: "face-detect", Version: v, Kind: manifest.KindFaceDetect,
		Runtime: map[string]any{"detect": map[string]any{"score_threshold": 0.75}},
		Files: map[string][]byte{
			"yunet_s_dynamic.onnx":                   ff.file("yunet_s_dynamic.onnx"),
			"LICENSE.ShiqiYu-libfacedetection.train": ff.file("LICENSE.ShiqiYu-libfacedetection.train"),
		},
		Signer: ff.key.Signer,
	}
}

// embedderSpec is face-embed version v: MobileFaceNet and its licence,
// with runtime options rt.
func (ff *faceFixture) embedderSpec(v int, rt map[string]any) repotest.Spec {
	return repotest.Spec{
		Name: "face-embed", Version: v, Kind: manifest.KindFaceEmbed, Runtime: rt,
		Files: map[string][]byte{
			"MobileFaceNet.onnx":            ff.file("MobileFaceNet.onnx"),
			"LICENSE.foamliu-MobileFaceNet": ff.file("LICENSE.foamliu-MobileFaceNet"),
		},
		Signer: ff.key.Signer,
	}
}

// publishReady publishes spec and waits until its version is ready.
func (ff *faceFixture) publishReady(spec repotest.Spec) {
	ff.t.Helper()
	repotest.Publish(ff.t, ff.root, spec)
	if ev := ff.rec.waitModel(ff.t, spec.Name, spec.Version, modelrepo.StateReady, modelrepo.StateFailed); ev.Type != modelrepo.EventType(modelrepo.StateReady) {
		ff.t.Fatalf("%s %d: %s %s", spec.Name, spec.Version, ev.Reason, ev.Detail)
	}
}

// faceAnswer is what a face response says, decoded loosely.
type faceAnswer struct {
	status   int
	detector string // X-Face-Detector
	embedder string // X-Face-Embedder
	body     []byte
	problem  struct{ Type, Detail string }
	res      struct {
		Models struct {
			Detector struct{ Name, Version string }
			Embedder *struct{ Name, Version, ID string }
		}
		FaceID string `json:"face_id"`
		Faces  []struct {
			Matches []struct {
				Subject    string
				Similarity float64
			}
		}
		Similarity float64
		Match      bool
	}
}

// post sends an image (or a multipart body) to a face route.
func (ff *faceFixture) post(path, ct string, body []byte) faceAnswer {
	ff.t.Helper()
	resp, err := http.Post(ff.srv.URL+path, ct, bytes.NewReader(body))
	if err != nil {
		ff.t.Fatal(err)
	}
	defer resp.Body.Close()
	a := faceAnswer{status: resp.StatusCode, detector: resp.Header.Get("X-Face-Detector"), embedder: resp.Header.Get("X-Face-Embedder")}
	a.body, _ = io.ReadAll(resp.Body)
	target := any(&a.res)
	if a.status >= 300 {
		target = &a.problem
	}
	if err := json.Unmarshal(a.body, target); err != nil {
		ff.t.Fatalf("POST %s: %d %v: %s", path, a.status, err, a.body)
	}
	return a
}

// faceModels checks that the headers and the models field agree, and
// returns them as "detector/version embedder/version id".
func (a faceAnswer) faceModels(t *testing.T) string {
	t.Helper()
	m := a.res.Models
	det := m.Detector.Name + "/" + m.Detector.Version
	if a.detector != det {
		t.Fatalf("X-Face-Detector %q, body %q", a.detector, det)
	}
	if m.Embedder == nil {
		if a.embedder != "" {
			t.Fatalf("X-Face-Embedder %q without an embedder in the body", a.embedder)
		}
		return det
	}
	emb := m.Embedder.Name + "/" + m.Embedder.Version
	if a.embedder != emb {
		t.Fatalf("X-Face-Embedder %q, body %q", a.embedder, emb)
	}
	return det + " " + emb + " " + m.Embedder.ID
}

// best returns the best match of each identified face, sorted.
func (a faceAnswer) best() string {
	var out []string
	for _, f := range a.res.Faces {
		if len(f.Matches) > 0 {
			out = append(out, f.Matches[0].Subject)
		}
	}
	sort.Strings(out)
	return strings.Join(out, ",")
}

// Face models served as signed packages: the face routes wait for them
// (503), then enroll and identify with them over HTTP, naming the versions
// in every answer; the repository's metrics and events cover the face
// kinds; a tampered detector is refused with its reason while the
// previous version keeps answering; a new detector swaps in under load
// without a failed request.
func TestIntegrationFacePackages(t *testing.T) {
	ff := newFaceFixture(t)
	both := ff.image("test/obama_and_biden.jpg")

	// No face model yet: not ready, retry later.
	if a := ff.post("/v1/faces/detect", "image/jpeg", both); a.status != http.StatusServiceUnavailable || !strings.HasSuffix(a.problem.Type, "/model-not-ready") {
		t.Fatalf("detect before the models: %d %s", a.status, a.body)
	}

	ff.publishReady(ff.detectorSpec(1))
	ff.publishReady(ff.embedderSpec(1, nil))

	if code := ff.send("PUT", "/v1/galleries/staff", "", nil); code != http.StatusCreated {
		t.Fatalf("create gallery: %d", code)
	}
	for subject, file := range map[string]string{"obama": "train/obama/obama.jpg", "biden": "train/biden/biden.jpg"} {
		a := ff.post("/v1/galleries/staff/subjects/"+subject+"/faces", "image/jpeg", ff.image(file))
		if a.status != http.StatusCreated || len(a.res.FaceID) != 32 {
			t.Fatalf("enroll %s: %d %s", subject, a.status, a.body)
		}
		if got := a.faceModels(t); got != "face-detect/1 face-embed/1 "+mobileFaceNetID {
			t.Errorf("enroll %s answered by %s", subject, got)
		}
	}
	a := ff.post("/v1/galleries/staff/identify?top_k=2", "image/jpeg", both)
	if a.status != 200 || a.best() != "biden,obama" {
		t.Fatalf("identify: %d %s", a.status, a.body)
	}
	if got := a.faceModels(t); got != "face-detect/1 face-embed/1 "+mobileFaceNetID {
		t.Errorf("identify answered by %s", got)
	}
	if a := ff.post("/v1/faces/detect", "image/jpeg", both); a.status != 200 || a.faceModels(t) != "face-detect/1" || len(a.res.Faces) != 3 {
		t.Errorf("detect: %d %s", a.status, a.body)
	}

	// The repository's metrics and events know the face kinds.
	for _, m := range []string{"face-detect", "face-embed"} {
		if v := ff.metric("visionserve_model_version_info", map[string]string{"model": m, "version": "1", "kind": m, "state": "ready"}); v != 1 {
			t.Errorf("%s version_info = %v", m, v)
		}
		if v := ff.metric("visionserve_model_load_duration_seconds", map[string]string{"model": m, "phase": "warmup"}); v < 1 {
			t.Errorf("%s warm-up durations observed: %v", m, v)
		}
		if v := ff.metric("visionserve_model_last_load_success", map[string]string{"model": m}); v != 1 {
			t.Errorf("%s last_load_success = %v", m, v)
		}
		ev, _ := ff.rec.findModel(m, 1, modelrepo.StateReady)
		if ev.Kind != m || ev.PhasesMS["warmup"] <= 0 || ev.Signer == nil || ev.Signer.Method != "key" {
			t.Errorf("%s ready event %+v", m, ev)
		}
	}

	// A detector changed after signing is refused; version 1 answers on.
	tampered := ff.detectorSpec(2)
	tampered.Tamper = func(t testing.TB, dir string) { repotest.FlipByte(t, dir, "yunet_s_dynamic.onnx", -100) }
	repotest.Publish(t, ff.root, tampered)
	if ev := ff.rec.waitModel(t, "face-detect", 2, modelrepo.StateReady, modelrepo.StateFailed); ev.Reason != modelrepo.ReasonDigestMismatch || ev.Phase != modelrepo.PhaseVerify {
		t.Fatalf("tampered detector: %s in %s (%s)", ev.Reason, ev.Phase, ev.Detail)
	}
	if v := ff.metric("visionserve_model_load_failures_total", map[string]string{"model": "face-detect", "reason": "digest_mismatch"}); v != 1 {
		t.Errorf("load failures digest_mismatch = %v", v)
	}
	if a := ff.post("/v1/galleries/staff/identify", "image/jpeg", both); a.status != 200 || a.best() != "biden,obama" || a.detector != "face-detect/1" {
		t.Errorf("identify after the refused version: %d %s %s", a.status, a.detector, a.body)
	}

	// Version 3 swaps in under load from two clients: no request fails.
	var stop atomic.Bool
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failures []string
	var firstV3 time.Time
	obama := ff.image("test/obama1.jpg")
	for range 2 {
		wg.Go(func() {
			for !stop.Load() {
				resp, err := http.Post(ff.srv.URL+"/v1/faces/detect", "image/jpeg", bytes.NewReader(obama))
				if err != nil {
					mu.Lock()
					failures = append(failures, err.Error())
					mu.Unlock()
					return
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				at := time.Now()
				mu.Lock()
				if resp.StatusCode != 200 {
					failures = append(failures, fmt.Sprintf("%d %s", resp.StatusCode, body))
				} else if resp.Header.Get("X-Face-Detector") == "face-detect/3" && firstV3.IsZero() {
					firstV3 = at
				}
				mu.Unlock()
			}
		})
	}
	time.Sleep(300 * time.Millisecond)
	published := time.Now()
	ff.publishReady(ff.detectorSpec(3))
	deadline := time.Now().Add(time.Minute)
	for {
		mu.Lock()
		seen := !firstV3.IsZero()
		mu.Unlock()
		if seen || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	stop.Store(true)
	wg.Wait()
	if len(failures) > 0 || firstV3.IsZero() {
		t.Fatalf("swap under load: %d failed requests (%v), version 3 answered: %v", len(failures), failures, !firstV3.IsZero())
	}
	ev, _ := ff.rec.findModel("face-detect", 3, modelrepo.StateReady)
	t.Logf("face-detect swap under load: rename -> first response from version 3 in %v (load %.0f ms, warm-up %.0f ms)",
		firstV3.Sub(published).Round(time.Millisecond), ev.PhasesMS["load"], ev.PhasesMS["warmup"])
	ff.rec.waitModel(t, "face-detect", 1, modelrepo.StateUnloaded)
}

// An embedder swap follows the gallery rule: a gallery is searched and
// grown with the embedder its faces carry while a version computing that
// space is loaded (latest: 2 keeps the previous one), never with another;
// detect and verify and new galleries use the newest; once the gallery's
// embedder is unloaded, enroll and identify answer 409 until it is loaded
// again.
func TestIntegrationFaceEmbedderSwap(t *testing.T) {
	ff := newFaceFixture(t)
	ff.publishReady(ff.detectorSpec(1))
	ff.publishReady(ff.embedderSpec(1, nil))
	both := ff.image("test/obama_and_biden.jpg")
	enroll := func(gallery, subject, file string) faceAnswer {
		t.Helper()
		return ff.post("/v1/galleries/"+gallery+"/subjects/"+subject+"/faces", "image/jpeg", ff.image(file))
	}
	for _, g := range []string{"staff", "night"} {
		if code := ff.send("PUT", "/v1/galleries/"+g, "", nil); code != http.StatusCreated {
			t.Fatalf("create %s: %d", g, code)
		}
	}
	for _, s := range []string{"obama", "biden"} {
		if a := enroll("staff", s, "train/"+s+"/"+s+".jpg"); a.status != 201 {
			t.Fatalf("enroll %s: %d %s", s, a.status, a.body)
		}
	}

	// Version 2: the same weights with (x-127.5)/128 normalisation, which
	// is another embedding space (another id).
	ff.publishReady(ff.embedderSpec(2, map[string]any{"embed": map[string]any{"mean": []float64{0.5, 0.5, 0.5}, "std": []float64{0.5, 0.5, 0.5}}}))
	v1 := "face-embed/1 " + mobileFaceNetID
	a := ff.post("/v1/galleries/staff/identify", "image/jpeg", both)
	if a.status != 200 || a.best() != "biden,obama" || !strings.HasSuffix(a.faceModels(t), v1) {
		t.Fatalf("identify staff after the swap: %d %s", a.status, a.body)
	}
	if a := enroll("staff", "kit", "train/kit_harington/john1.jpeg"); a.status != 201 || !strings.HasSuffix(a.faceModels(t), v1) {
		t.Fatalf("enroll into staff after the swap: %d %s", a.status, a.body)
	}
	ct, body := multipartImages(t, "a", ff.image("train/obama/obama.jpg"), "b", ff.image("train/obama/obama2.jpg"))
	a = ff.post("/v1/faces/verify", ct, body)
	v2 := a.faceModels(t)
	if a.status != 200 || !a.res.Match || !strings.HasPrefix(v2, "face-detect/1 face-embed/2 "+mobileFaceNetID+";mean=0.5,0.5,0.5;std=0.5,0.5,0.5") {
		t.Fatalf("verify after the swap: %d %s (%s)", a.status, a.body, v2)
	}
	// A new gallery takes the newest embedder, and keeps it.
	if a := enroll("night", "obama", "train/obama/obama.jpg"); a.status != 201 || a.faceModels(t) != v2 {
		t.Fatalf("enroll into night: %d %s", a.status, a.body)
	}
	if a := ff.post("/v1/galleries/night/identify", "image/jpeg", both); a.status != 200 || a.best() != "obama" || a.faceModels(t) != v2 {
		t.Fatalf("identify night: %d %s", a.status, a.body)
	}

	// Version 1 unloaded: staff's embedder is gone. Its requests fail
	// with a clear conflict instead of comparing across spaces.
	if code := ff.send("POST", "/v1/models/face-embed/versions/1/unload", "", nil); code != 200 {
		t.Fatalf("unload face-embed 1: %d", code)
	}
	for _, a := range []faceAnswer{
		ff.post("/v1/galleries/staff/identify", "image/jpeg", both),
		enroll("staff", "rose", "train/rose_leslie/img1.jpg"),
	} {
		if a.status != http.StatusConflict || !strings.HasSuffix(a.problem.Type, "/embedder-not-loaded") ||
			!strings.Contains(a.problem.Detail, "gallery staff holds faces embedded by "+mobileFaceNetID+", which is not loaded; load it or re-enroll") {
			t.Errorf("staff without its embedder: %d %s", a.status, a.body)
		}
	}
	if a := ff.post("/v1/galleries/night/identify", "image/jpeg", both); a.status != 200 || a.best() != "obama" {
		t.Errorf("night without version 1: %d %s", a.status, a.body)
	}
	// Loaded again, it serves staff again.
	if code := ff.send("POST", "/v1/models/face-embed/versions/1/load", "", nil); code != 200 {
		t.Fatalf("load face-embed 1: %d", code)
	}
	if a := ff.post("/v1/galleries/staff/identify", "image/jpeg", both); a.status != 200 || a.best() != "biden,obama" || !strings.HasSuffix(a.faceModels(t), v1) {
		t.Errorf("staff with version 1 back: %d %s", a.status, a.body)
	}

	// An embedder signed by an unknown key is refused; 1 and 2 serve on.
	untrusted := ff.embedderSpec(3, nil)
	untrusted.Signer = repotest.NewKey(t).Signer
	repotest.Publish(t, ff.root, untrusted)
	if ev := ff.rec.waitModel(t, "face-embed", 3, modelrepo.StateReady, modelrepo.StateFailed); ev.Reason != modelrepo.ReasonUntrustedKey {
		t.Fatalf("untrusted embedder: %s (%s)", ev.Reason, ev.Detail)
	}
	if a := ff.post("/v1/faces/verify", ct, body); a.status != 200 || a.faceModels(t) != v2 {
		t.Errorf("verify after the refused version: %d %s", a.status, a.body)
	}
}
