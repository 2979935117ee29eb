package app

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/visionserve/visionserve/internal/modelrepo"
)

// A hybrid PP-OCR package reads its lines with the traineddata it carries.
func TestPPOCRRuntimeStaysInThePackage(t *testing.T) {
	withEng := map[string]modelrepo.File{"eng.traineddata": {}, "det.onnx": {}}
	withBoth := map[string]modelrepo.File{"eng.traineddata": {}, "deu.traineddata": {}, "det.onnx": {}}
	for _, tc := range []struct {
		runtime string
		files   map[string]modelrepo.File
		want    any // the tessdata option passed to the loader
	}{
		{"", withEng, "."},
		{`{"recognizer": "tesseract"}`, withEng, "."},
		{`{"lang": "deu"}`, withEng, nil},
		{`{"lang": "eng+deu"}`, withEng, nil},
		{`{"lang": "eng+deu"}`, withBoth, "."},
		{`{"tessdata": "td"}`, withEng, "td"},
		{`{"tessdata": "/usr/share/tessdata"}`, withEng, "/usr/share/tessdata"},
		{"", map[string]modelrepo.File{"det.onnx": {}}, nil},
	} {
		raw, err := ppocrRuntime(&modelrepo.Package{Dir: "/pkg", Runtime: json.RawMessage(tc.runtime), Files: tc.files})
		if err != nil {
			t.Fatal(err)
		}
		var got map[string]any
		if err := json.Unmarshal(raw, &got); err != nil {
			t.Fatal(err)
		}
		if got["tessdata"] != tc.want {
			t.Errorf("runtime %s: tessdata %v, want %v", tc.runtime, got["tessdata"], tc.want)
		}
	}
	_, err := ppocrRuntime(&modelrepo.Package{Runtime: json.RawMessage("[1]")})
	if !errors.Is(err, modelrepo.ReasonManifestInvalid) {
		t.Errorf("a runtime that is not an object: %v", err)
	}
}
