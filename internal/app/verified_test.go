package app_test

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/visionserve/visionserve/internal/engine"
	"github.com/visionserve/visionserve/internal/engine/onnx/onnxtest"
	"github.com/visionserve/visionserve/internal/modelrepo"
	"github.com/visionserve/visionserve/internal/modelrepo/manifest"
	"github.com/visionserve/visionserve/internal/modelrepo/repotest"
	"github.com/visionserve/visionserve/internal/oip"
)

// Issue 16, end to end: the model file of a signed ONNX version is
// replaced in the repository as soon as the version has verified, while
// the isolated check (a real child process) and the load are still to
// come. The version is refused with digest_mismatch (by the check or by
// the load, whichever reads the file first), the version before keeps
// answering, and no request is ever answered by the replaced model.
func TestIntegrationFileSwappedAfterVerificationIsNeverServed(t *testing.T) {
	onnxtest.Init(t)
	f := newFixture(t, nil)
	publish := func(v int, op string) string {
		return repotest.Publish(t, f.root, repotest.Spec{Name: "unary", Version: v, Kind: manifest.KindONNX,
			Runtime: map[string]any{"file": "model.onnx"}, Files: map[string][]byte{"model.onnx": unaryModel(t, op)}, Signer: f.key.Signer})
	}
	x := engine.NewTensor([]int64{1, 3}, []float32{-1.5, 0, 2})
	body, hl := restRequest(t, []oip.Input{{Name: "x", Tensor: x}}, false)
	infer := func() (string, []float32) {
		t.Helper()
		resp, data := postInfer(t, f.srv.URL+"/v2/models/unary/infer", body, hl)
		if resp.StatusCode != 200 {
			t.Fatalf("infer: %d %s", resp.StatusCode, data)
		}
		out, err := oip.DecodeResponse(data, -1, oip.Limits{})
		if err != nil {
			t.Fatal(err)
		}
		return out.ModelVersion, out.Outputs[0].Data.([]float32)
	}
	neg := []float32{1.5, 0, -2}

	publish(1, "Neg")
	if ev := f.rec.waitModel(t, "unary", 1, modelrepo.StateReady, modelrepo.StateFailed); ev.Type != modelrepo.EventType(modelrepo.StateReady) {
		t.Fatalf("version 1: %s %s", ev.Reason, ev.Detail)
	}
	// Version 2 (Abs) is signed and published; once it has verified, its
	// model.onnx becomes Relu, by the rename a sync tool makes.
	dir := publish(2, "Abs")
	f.rec.waitModel(t, "unary", 2, modelrepo.StateLoading, modelrepo.StateFailed)
	tmp := filepath.Join(dir, ".swap")
	if err := os.WriteFile(tmp, unaryModel(t, "Relu"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, "model.onnx")); err != nil {
		t.Fatal(err)
	}
	ev := f.rec.waitModel(t, "unary", 2, modelrepo.StateReady, modelrepo.StateFailed)
	if ev.Type != modelrepo.EventType(modelrepo.StateFailed) || ev.Reason != modelrepo.ReasonDigestMismatch {
		v, out := infer()
		t.Fatalf("version 2 after its file was replaced: %s %s %s; version %s answers %v", ev.Type, ev.Reason, ev.Detail, v, out)
	}
	t.Logf("refused in the %s phase: %s", ev.Phase, ev.Detail)
	if v, out := infer(); v != "1" || !reflect.DeepEqual(out, neg) {
		t.Errorf("answered by version %s with %v; want version 1 with %v", v, out, neg)
	}
}
