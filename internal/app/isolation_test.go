package app_test

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/visionserve/visionserve/internal/app/apptest"
	"github.com/visionserve/visionserve/internal/config"
	"github.com/visionserve/visionserve/internal/engine"
	"github.com/visionserve/visionserve/internal/engine/onnx/onnxtest"
	"github.com/visionserve/visionserve/internal/engine/tesseract/tesstest"
	"github.com/visionserve/visionserve/internal/modelcheck"
	"github.com/visionserve/visionserve/internal/modelrepo"
	"github.com/visionserve/visionserve/internal/modelrepo/manifest"
	"github.com/visionserve/visionserve/internal/modelrepo/repotest"
	"github.com/visionserve/visionserve/internal/oip"
)

// corrupt returns the package files of ocr-eng with eng.traineddata broken
// in the way c says.
func (f *fixture) corrupt(c tesstest.Corruption) func(*repotest.Spec) {
	f.t.Helper()
	eng, err := tesstest.Corrupt(f.data["eng.traineddata"], c)
	if err != nil {
		f.t.Fatal(err)
	}
	return func(s *repotest.Spec) {
		s.Files = map[string][]byte{"eng.traineddata": eng, "osd.traineddata": f.data["osd.traineddata"]}
	}
}

// What each corruption of tesstest does in the isolated check. Each one,
// loaded in the server's process, would abort it (SIGABRT, SIGFPE), make
// it allocate gigabytes, or hang a worker for minutes.
var corruptions = []struct {
	kind   tesstest.Corruption
	reason modelrepo.Reason
	phase  string
	detail string
}{
	{tesstest.AbortOnLoad, modelrepo.ReasonLoadError, modelrepo.PhaseLoad, "died of SIGABRT"},
	{tesstest.TruncatedLSTM, modelrepo.ReasonLoadError, modelrepo.PhaseLoad, "died of SIGABRT"},
	{tesstest.ShiftedTable, modelrepo.ReasonLoadError, modelrepo.PhaseLoad, "died of SIGABRT"},
	{tesstest.HugeMatrix, modelrepo.ReasonLoadError, modelrepo.PhaseLoad, "out of memory"},
	{tesstest.DivideByZero, modelrepo.ReasonWarmupError, modelrepo.PhaseWarmup, "died of SIGFPE"},
	{tesstest.TallInput, modelrepo.ReasonWarmupError, modelrepo.PhaseWarmup, "did not finish the warmup within"},
}

// checkTimeout bounds each isolated check in these tests: long enough for
// a good version on a busy machine, short enough for TallInput's hang.
const checkTimeout = 45 * time.Second

// Issue 11, item 1: signed packages whose eng.traineddata is corrupt in
// each of tesstest's ways are published while clients read text without
// pause. Every one is refused by the isolated check with a reason in the
// phase its corruption strikes; the version before keeps answering every
// request (not one fails); the server's own memory does not take the
// corrupt loads; and a good version published after them all swaps in.
func TestIntegrationCorruptTraineddataNeverReachesTheServer(t *testing.T) {
	f := newFixture(t, func(c *config.Config) {
		c.Repository.Check.Timeout = checkTimeout
		c.Server.Queue = 64
	})
	stop := f.load(3)
	before := settledRSS(t)
	for i, c := range corruptions {
		v := i + 2
		f.publish(v, f.corrupt(c.kind))
		ev := f.rec.wait(t, v, modelrepo.StateReady, modelrepo.StateFailed)
		if ev.Type != modelrepo.EventType(modelrepo.StateFailed) || ev.Reason != c.reason || ev.Phase != c.phase ||
			!strings.Contains(ev.Detail, "isolated check") || !strings.Contains(ev.Detail, c.detail) {
			t.Errorf("%s (version %d): %s %s in %q: %s; want %s in %s, %q", c.kind, v, ev.Type, ev.Reason, ev.Phase, ev.Detail, c.reason, c.phase, c.detail)
		}
		t.Logf("%s: %s", c.kind, ev.Detail)
	}
	after := settledRSS(t)
	good := len(corruptions) + 2
	f.publish(good, nil)
	if ev := f.rec.wait(t, good, modelrepo.StateReady, modelrepo.StateFailed); ev.Type != modelrepo.EventType(modelrepo.StateReady) {
		t.Fatalf("the good version after the corrupt ones: %s %s", ev.Reason, ev.Detail)
	}
	served, failed := stop()
	if len(failed) > 0 {
		t.Fatalf("%d requests failed while corrupt versions were published, e.g. %v", len(failed), failed[0])
	}
	if served["1"] == 0 {
		t.Fatalf("no request answered by version 1: %v", served)
	}
	for v := range served {
		if v != "1" && v != "8" {
			t.Errorf("a refused version answered requests: %v", served)
		}
	}
	if n := f.metric("visionserve_model_checks_total", map[string]string{"result": string(modelcheck.Passed)}); n != 2 {
		t.Errorf("passed checks = %v, want 2 (versions 1 and %d)", n, good)
	}
	t.Logf("requests by version %v; server RSS %d MiB before the corrupt versions, %d MiB after", served, before>>20, after>>20)
}

// Issue 11, item 1: a restart with bad versions on disk, the newest among
// them, comes up serving the last good version; the bad ones are reported
// failed with their reasons, from the failure memory, and are not checked
// again.
func TestIntegrationRestartWithBadNewestVersions(t *testing.T) {
	f := newFixture(t, nil)
	f.publish(2, f.corrupt(tesstest.TruncatedLSTM))
	f.rec.wait(t, 2, modelrepo.StateFailed)
	f.publish(3, f.corrupt(tesstest.DivideByZero))
	f.rec.wait(t, 3, modelrepo.StateFailed)
	if _, err := os.Stat(filepath.Join(f.root, ".visionserve", modelrepo.FailuresFile)); err != nil {
		t.Fatalf("the failures were not saved: %v", err)
	}
	f.srv.Stop(t)

	// The restart: a new process over the same repository.
	srv := apptest.Start(t, func(c *config.Config) {
		c.Server.Workers = 2
		c.Repository.Dir = f.root
		c.Repository.Trust.Keys = []string{f.key.PublicPath}
	})
	f.srv = srv
	if status, version, err := f.ocr("", ""); err != nil || version != "1" {
		t.Fatalf("after the restart: %d %q %v", status, version, err)
	}
	var st modelrepo.ModelStatus
	if f.getJSON("/v1/models/ocr-eng", &st) != 200 {
		t.Fatal("model status")
	}
	want := map[string]modelrepo.Reason{"2": modelrepo.ReasonLoadError, "3": modelrepo.ReasonWarmupError}
	for _, vs := range st.Versions {
		if r, bad := want[vs.Version]; bad && (vs.State != modelrepo.StateFailed || vs.Reason != r || !strings.Contains(vs.Detail, "remembered")) {
			t.Errorf("version %s after the restart: %+v", vs.Version, vs)
		}
	}
	for _, result := range modelcheck.Outcomes() {
		want := 0.0
		if result == modelcheck.Passed {
			want = 1 // version 1
		}
		if n := f.metric("visionserve_model_checks_total", map[string]string{"result": string(result)}); n != want {
			t.Errorf("after the restart, %s checks = %v, want %v: a remembered version was checked again", result, n, want)
		}
	}
}

// Issue 11, item 1, ONNX: a model whose sparse initializer ONNX Runtime
// makes dense at load (40000 x 40000 FP32, 6.4 GB; at 20000 x 20000 the
// load took 84 s and 3.1 GB of resident memory in-process) is refused by
// the isolated check within its memory limit; the version before keeps
// answering.
func TestIntegrationCorruptONNXNeverReachesTheServer(t *testing.T) {
	onnxtest.Init(t)
	f := newFixture(t, nil)
	publish := func(v int, model []byte) modelrepo.Event {
		repotest.Publish(t, f.root, repotest.Spec{Name: "unary", Version: v, Kind: manifest.KindONNX,
			Files: map[string][]byte{"model.onnx": model}, Signer: f.key.Signer})
		return f.rec.waitModel(t, "unary", v, modelrepo.StateReady, modelrepo.StateFailed)
	}
	if ev := publish(1, unaryModel(t, "Neg")); ev.Type != modelrepo.EventType(modelrepo.StateReady) {
		t.Fatalf("version 1: %s", ev.Detail)
	}
	bomb, err := onnxtest.Graph{
		Nodes:   []onnxtest.Node{{Op: "Add", Inputs: []string{"x", "big"}, Outputs: []string{"z"}}},
		Inputs:  []onnxtest.Value{{Name: "x", DType: engine.FP32, Shape: []int64{-1, 3}}},
		Outputs: []onnxtest.Value{{Name: "z", DType: engine.FP32, Shape: []int64{-1, -1}}},
		Sparse:  []onnxtest.SparseConstant{{Name: "big", Dims: []int64{40000, 40000}, Indices: []int64{3}, Values: []float32{1}}},
	}.Encode()
	if err != nil {
		t.Fatal(err)
	}
	ev := publish(2, bomb)
	if ev.Type != modelrepo.EventType(modelrepo.StateFailed) || ev.Reason != modelrepo.ReasonLoadError || !strings.Contains(ev.Detail, "isolated check") ||
		!strings.Contains(ev.Detail, "bad_alloc") {
		t.Fatalf("the ONNX memory bomb: %s %s %s", ev.Type, ev.Reason, ev.Detail)
	}
	x := engine.NewTensor([]int64{1, 3}, []float32{-1.5, 0, 2})
	body, hl := restRequest(t, []oip.Input{{Name: "x", Tensor: x}}, false)
	resp, data := postInfer(t, f.srv.URL+"/v2/models/unary/infer", body, hl)
	if resp.StatusCode != 200 {
		t.Fatalf("version 1 after the bomb: %d %s", resp.StatusCode, data)
	}
	out, err := oip.DecodeResponse(data, -1, oip.Limits{})
	if err != nil || out.ModelVersion != "1" || !reflect.DeepEqual(out.Outputs[0].Data, []float32{1.5, 0, -2}) {
		t.Fatalf("version 1 after the bomb: %v %+v", err, out)
	}
}

// Issue 11, item 2: a package that sets a Tesseract display variable (the
// first page would start a shell running java and wait for it, for ever)
// fails verification, naming the variable; no engine ever sees it.
func TestIntegrationDebugVariableIsRefused(t *testing.T) {
	f := newFixture(t, nil)
	f.publish(2, func(s *repotest.Spec) {
		s.Runtime = map[string]any{"lang": "eng", "variables": map[string]string{"textord_tabfind_show_images": "1"}}
	})
	ev := f.rec.wait(t, 2, modelrepo.StateReady, modelrepo.StateFailed)
	if ev.Type != modelrepo.EventType(modelrepo.StateFailed) || ev.Reason != modelrepo.ReasonManifestInvalid || ev.Phase != modelrepo.PhaseVerify ||
		!strings.Contains(ev.Detail, "textord_tabfind_show_images") {
		t.Fatalf("version 2: %s %s %s %s", ev.Type, ev.Reason, ev.Phase, ev.Detail)
	}
	if _, version, err := f.ocr("", ""); err != nil || version != "1" {
		t.Fatalf("version 1 after the refusal: %q %v", version, err)
	}
	if n := f.metric("visionserve_model_checks_total", map[string]string{"result": string(modelcheck.Passed)}); n != 1 {
		t.Errorf("checks passed = %v: the refused version must not reach the check", n)
	}
}

// halfModel is an ONNX model whose FP16 output has a dynamic shape, which
// onnxruntime_go v1.27 cannot return.
func halfModel(t *testing.T) []byte {
	t.Helper()
	m, err := onnxtest.Identity(engine.FP16, []int64{-1, 3})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// Issue 11, item 11: a built-in ONNX model with a dynamic-shaped FP16
// output stopped the server from starting. It is refused with its reason,
// listed as failed, and every other model serves; from a repository, such
// a package is a failed version with the same reason.
func TestIntegrationFP16DynamicOutputIsRefusedNotFatal(t *testing.T) {
	onnxtest.Init(t)
	dir := t.TempDir()
	for name, model := range map[string][]byte{"half.onnx": halfModel(t), "neg.onnx": unaryModel(t, "Neg")} {
		if err := os.WriteFile(filepath.Join(dir, name), model, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	f := &fixture{t: t, line: lineOf(t)}
	srv, err := apptest.TryStart(t, func(c *config.Config) {
		c.Models = append(c.Models,
			config.Model{Name: "half", Version: "1", Engine: "onnx", Dir: dir, Runtime: map[string]any{"file": "half.onnx"}},
			config.Model{Name: "neg", Version: "1", Engine: "onnx", Dir: dir, Runtime: map[string]any{"file": "neg.onnx"}})
	})
	if err != nil {
		t.Fatalf("a model the server cannot serve kept it from starting: %v", err)
	}
	f.srv = srv
	var st modelrepo.ModelStatus
	if f.getJSON("/v1/models/half", &st) != 200 || len(st.Versions) != 1 || st.Versions[0].State != modelrepo.StateFailed ||
		st.Versions[0].Reason != modelrepo.ReasonLoadError || !strings.Contains(st.Versions[0].Detail, "FP16 with dynamic shape") {
		t.Fatalf("the FP16 model: %+v", st)
	}
	x := engine.NewTensor([]int64{1, 3}, []float32{-1.5, 0, 2})
	body, hl := restRequest(t, []oip.Input{{Name: "x", Tensor: x}}, false)
	if resp, data := postInfer(t, f.srv.URL+"/v2/models/neg/infer", body, hl); resp.StatusCode != 200 {
		t.Fatalf("the other ONNX model: %d %s", resp.StatusCode, data)
	}
	if resp, _ := postInfer(t, f.srv.URL+"/v2/models/half/infer", body, hl); resp.StatusCode != 404 {
		t.Errorf("the refused model answered %d", resp.StatusCode)
	}
	if _, _, err := f.ocr("", ""); err != nil {
		t.Errorf("OCR next to the refused model: %v", err)
	}

	// The same model as a repository package.
	rf := newFixture(t, nil)
	repotest.Publish(t, rf.root, repotest.Spec{Name: "half", Version: 1, Kind: manifest.KindONNX,
		Files: map[string][]byte{"model.onnx": halfModel(t)}, Signer: rf.key.Signer})
	ev := rf.rec.waitModel(t, "half", 1, modelrepo.StateReady, modelrepo.StateFailed)
	if ev.Type != modelrepo.EventType(modelrepo.StateFailed) || ev.Reason != modelrepo.ReasonLoadError || !strings.Contains(ev.Detail, "FP16 with dynamic shape") {
		t.Fatalf("the FP16 package: %s %s %s", ev.Type, ev.Reason, ev.Detail)
	}
	if _, version, err := rf.ocr("", ""); err != nil || version != "1" {
		t.Errorf("OCR next to the refused package: %v", err)
	}
}
