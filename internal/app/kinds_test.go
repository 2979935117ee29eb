package app_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/visionserve/visionserve/internal/engine"
	"github.com/visionserve/visionserve/internal/engine/onnx/onnxtest"
	"github.com/visionserve/visionserve/internal/modelrepo"
	"github.com/visionserve/visionserve/internal/modelrepo/manifest"
	"github.com/visionserve/visionserve/internal/modelrepo/repotest"
	"github.com/visionserve/visionserve/internal/oip"
	"github.com/visionserve/visionserve/internal/testenv"
)

// unaryModel is a generated ONNX model z = op(x) on FP32 rows of 3.
func unaryModel(t *testing.T, op string) []byte {
	t.Helper()
	m, err := onnxtest.Model([]onnxtest.Node{{Op: op, Inputs: []string{"x"}, Outputs: []string{"z"}}},
		[]onnxtest.Value{{Name: "x", DType: engine.FP32, Shape: []int64{-1, 3}}},
		[]onnxtest.Value{{Name: "z", DType: engine.FP32, Shape: []int64{-1, 3}}})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// An ONNX package served from the repository answers the inference
// protocol, and a new version swaps in: same name, new behaviour, the
// response naming the version. OCR packages answer it too.
func TestIntegrationONNXPackageOverOIP(t *testing.T) {
	onnxtest.Init(t)
	f := newFixture(t, nil)
	publish := func(v int, op string) {
		repotest.Publish(t, f.root, repotest.Spec{Name: "unary", Version: v, Kind: manifest.KindONNX,
			Runtime: map[string]any{"file": "model.onnx"}, Files: map[string][]byte{"model.onnx": unaryModel(t, op)}, Signer: f.key.Signer})
		if ev := f.rec.waitModel(t, "unary", v, modelrepo.StateReady, modelrepo.StateFailed); ev.Type != modelrepo.EventType(modelrepo.StateReady) {
			t.Fatalf("unary %d: %s %s", v, ev.Reason, ev.Detail)
		}
	}
	x := engine.NewTensor([]int64{1, 3}, []float32{-1.5, 0, 2})
	body, hl := restRequest(t, []oip.Input{{Name: "x", Tensor: x}}, false)
	infer := func(path string) (int, *oip.InferResponse) {
		resp, data := postInfer(t, f.srv.URL+path, body, hl)
		if resp.StatusCode != 200 {
			return resp.StatusCode, nil
		}
		out, err := oip.DecodeResponse(data, -1, oip.Limits{})
		if err != nil {
			t.Fatal(err)
		}
		return 200, out
	}

	publish(1, "Neg")
	code, out := infer("/v2/models/unary/infer")
	if code != 200 || out.ModelVersion != "1" || !reflect.DeepEqual(out.Outputs[0].Data, []float32{1.5, 0, -2}) {
		t.Fatalf("version 1: %d %+v", code, out)
	}
	publish(2, "Abs")
	code, out = infer("/v2/models/unary/infer")
	if code != 200 || out.ModelVersion != "2" || !reflect.DeepEqual(out.Outputs[0].Data, []float32{1.5, 0, 2}) {
		t.Fatalf("version 2: %d %+v", code, out)
	}
	if code, _ := infer("/v2/models/unary/versions/1/infer"); code != http.StatusNotFound {
		t.Errorf("pinned to the replaced version: %d", code)
	}
	if code, out := infer("/v2/models/unary/versions/2/infer"); code != 200 || out.ModelVersion != "2" {
		t.Errorf("pinned to version 2: %d", code)
	}
	var meta struct{ Versions []string }
	if f.getJSON("/v2/models/unary", &meta) != 200 || fmt.Sprint(meta.Versions) != "[2]" {
		t.Errorf("metadata versions %v", meta.Versions)
	}

	// The OCR package over the protocol, read by the version it pinned.
	ocrBody := []byte(`{"inputs":[{"name":"image","shape":[1],"datatype":"BYTES","parameters":{"content_type":"base64"},"data":["` +
		base64.StdEncoding.EncodeToString(f.line) + `"]}],"outputs":[{"name":"text"}]}`)
	resp, data := postInfer(t, f.srv.URL+"/v2/models/ocr-eng/infer", ocrBody, -1)
	var ocrOut struct {
		ModelVersion string `json:"model_version"`
		Outputs      []struct{ Data []string }
	}
	if resp.StatusCode != 200 || json.Unmarshal(data, &ocrOut) != nil || ocrOut.ModelVersion != "1" || len(ocrOut.Outputs) != 1 ||
		len(strings.TrimSpace(ocrOut.Outputs[0].Data[0])) < 10 {
		t.Errorf("OCR over the protocol: %d %s", resp.StatusCode, data)
	}
}

// A PP-OCR package (the hybrid: DB detection, Tesseract lines) reads its
// lines with the traineddata it carries, and serves /v1/ocr.
func TestIntegrationPPOCRPackage(t *testing.T) {
	onnxtest.Init(t)
	models := testenv.Shared(t, "models/ocr")
	page, err := os.ReadFile(testenv.Shared(t, "data/ocr/pages/phototest.tif"))
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, nil)
	files := map[string][]byte{"eng.traineddata": f.data["eng.traineddata"]}
	for _, name := range []string{"en_PP-OCRv3_det_infer.onnx", "ch_ppocr_mobile_v2.0_cls_infer.onnx"} {
		b, err := os.ReadFile(filepath.Join(models, name))
		if err != nil {
			t.Fatal(err)
		}
		files[name] = b
	}
	// Its cheaper quality tier comes with the package.
	repotest.Publish(t, f.root, repotest.Spec{Name: "ocr-photo", Version: 1, Kind: manifest.KindOCRPPOCR, Files: files, Signer: f.key.Signer,
		Runtime: map[string]any{"cheap_tier": map[string]any{"max_side": 800}}})
	if ev := f.rec.waitModel(t, "ocr-photo", 1, modelrepo.StateReady, modelrepo.StateFailed); ev.Type != modelrepo.EventType(modelrepo.StateReady) {
		t.Fatalf("ocr-photo: %s %s", ev.Reason, ev.Detail)
	}
	resp, err := http.Post(f.srv.URL+"/v1/ocr?model=ocr-photo&format=text", "image/tiff", bytes.NewReader(page))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var text bytes.Buffer
	text.ReadFrom(resp.Body)
	if resp.StatusCode != 200 || resp.Header.Get("X-Model-Version") != "1" || !strings.Contains(text.String(), "quick brown") {
		t.Errorf("ocr-photo: %d %q", resp.StatusCode, text.String())
	}
	// Unloaded, the server reads in the full tier, and says so because
	// the model has a cheaper one.
	resp, err = http.Post(f.srv.URL+"/v1/ocr?model=ocr-photo", "image/tiff", bytes.NewReader(page))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var res struct{ Tier string }
	if err := json.NewDecoder(resp.Body).Decode(&res); err != nil || resp.StatusCode != 200 || res.Tier != "full" {
		t.Errorf("ocr-photo JSON: %d %v, tier %q, want full", resp.StatusCode, err, res.Tier)
	}
}
