package app_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/visionserve/visionserve/internal/app/apptest"
	"github.com/visionserve/visionserve/internal/config"
	"github.com/visionserve/visionserve/internal/engine/onnx/onnxtest"
	"github.com/visionserve/visionserve/internal/ocr"
	"github.com/visionserve/visionserve/internal/ocreval"
	"github.com/visionserve/visionserve/internal/oip"
	"github.com/visionserve/visionserve/internal/testenv"
)

// PP-OCR models configured in the models list are selectable per request
// with model=, and answer with the same result JSON as Tesseract: review
// tiers, word boxes, timings, model name and version.
func TestIntegrationPPOCRModels(t *testing.T) {
	onnxtest.Init(t)
	models := testenv.Shared(t, "models/ocr")
	page, err := os.ReadFile(testenv.Shared(t, "data/ocr/pages/phototest.tif"))
	if err != nil {
		t.Fatal(err)
	}
	truth, err := os.ReadFile(testenv.Shared(t, "data/ocr/pages/phototest.txt"))
	if err != nil {
		t.Fatal(err)
	}
	srv := apptest.Start(t, func(c *config.Config) {
		c.Server.Workers = 2
		c.Models = append(c.Models,
			config.Model{Name: "ocr-photo", Version: "1", Engine: "ppocr", Dir: models},
			config.Model{Name: "ocr-ppocr", Version: "2", Engine: "ppocr", Dir: models, Runtime: map[string]any{"recognizer": "ctc"}},
		)
	})
	for _, tc := range []struct {
		model  string
		maxCER float64 // docs/ocr-evaluation.md: hybrid 0.00%, PP-OCR 7.39% on this page
	}{
		{"ocr-photo", 0.02},
		{"ocr-ppocr", 0.10},
		{"ocr-eng", 0.02},
	} {
		t.Run(tc.model, func(t *testing.T) {
			resp, err := http.Post(srv.URL+"/v1/ocr?model="+tc.model, "image/tiff", bytes.NewReader(page))
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			var res ocr.Result
			if err := json.Unmarshal(body, &res); err != nil {
				t.Fatal(err)
			}
			var s ocreval.Score
			s.Add(res.Text, strings.TrimSpace(string(truth)))
			if s.CER() > tc.maxCER {
				t.Errorf("CER %.2f%% > %.0f%%: %q", 100*s.CER(), 100*tc.maxCER, res.Text)
			}
			if res.Model.Name != tc.model || resp.Header.Get("X-Model-Name") != tc.model || len(res.Pages) != 1 || res.Pages[0].Mode != "page" {
				t.Errorf("model %+v, header %q, pages %d", res.Model, resp.Header.Get("X-Model-Name"), len(res.Pages))
			}
			p := res.Pages[0]
			for _, l := range p.Lines {
				if l.Review == "" || l.Confidence < 0 || l.Confidence > 1 || len(l.Words) == 0 {
					t.Errorf("line %+v", l)
				}
				for _, w := range append([]ocr.Word{{Box: l.Box}}, l.Words...) {
					if b := w.Box.Bounds(); b.Min.X < -1 || b.Min.Y < -1 || b.Max.X > p.Width+1 || b.Max.Y > p.Height+1 {
						t.Errorf("box %v outside the %dx%d page", w.Box, p.Width, p.Height)
					}
				}
			}
			for _, k := range []string{"decode", "preprocess", "recognize", "total"} {
				if _, ok := res.TimingMS[k]; !ok {
					t.Errorf("timing_ms lacks %s", k)
				}
			}
			t.Logf("%s: CER %.2f%%, %d lines, confidence %.3f, %.0f ms", tc.model, 100*s.CER(), len(p.Lines), res.Confidence, res.TimingMS["total"])
		})
	}

	// The same model over the inference protocol reads the same text.
	body := `{"inputs":[{"name":"image","shape":[1],"datatype":"BYTES","parameters":{"content_type":"base64"},"data":["` +
		base64.StdEncoding.EncodeToString(page) + `"]}],"outputs":[{"name":"text"}]}`
	resp, err := http.Post(srv.URL+"/v2/models/ocr-photo/infer", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	out, err := oip.DecodeResponse(data, -1, oip.DefaultLimits())
	if err != nil {
		t.Fatalf("%v: %s", err, data)
	}
	r2, err := http.Post(srv.URL+"/v1/ocr?model=ocr-photo&format=text", "image/tiff", bytes.NewReader(page))
	if err != nil {
		t.Fatal(err)
	}
	v1, _ := io.ReadAll(r2.Body)
	r2.Body.Close()
	if got := string(out.Outputs[0].Data.([][]byte)[0]); got != strings.TrimSuffix(string(v1), "\n") {
		t.Errorf("inference protocol read %q, /v1/ocr %q", got, v1)
	}
}
