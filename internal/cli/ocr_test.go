package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/visionserve/visionserve/internal/ocr"
	"github.com/visionserve/visionserve/internal/render"
)

// `visionserve ocr` keeps its JSON and text output byte for byte now that
// formats come from the render registry: the golden files in testdata/ocr
// are what the command printed before, for eurotext.tif alone and for
// phototest.tif with eurotext.tif.
func TestOCROutputUnchanged(t *testing.T) {
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join("testdata", "ocr", name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	type fileResult struct {
		File string `json:"file"`
		*ocr.Result
	}
	var single ocr.Result
	if err := json.Unmarshal(read("single.json"), &single); err != nil {
		t.Fatal(err)
	}
	var several []fileResult
	sc := bufio.NewScanner(bytes.NewReader(read("several.ndjson")))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		r := fileResult{Result: new(ocr.Result)}
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatal(err)
		}
		several = append(several, r)
	}
	for _, tc := range []struct{ format, golden string }{
		{"json", "single.json"}, {"text", "single.txt"}, {"json", "several.ndjson"}, {"text", "several.txt"},
	} {
		f, err := render.Lookup(tc.format)
		if err != nil {
			t.Fatal(err)
		}
		var got bytes.Buffer
		if filepath.Ext(tc.golden) == ".ndjson" || tc.golden == "several.txt" {
			for _, r := range several {
				if err := writeOCR(context.Background(), &got, f, r.File, true, r.Result, nil); err != nil {
					t.Fatal(err)
				}
			}
		} else if err := writeOCR(context.Background(), &got, f, "eurotext.tif", false, &single, nil); err != nil {
			t.Fatal(err)
		}
		if want := read(tc.golden); !bytes.Equal(got.Bytes(), want) {
			t.Errorf("--format %s differs from %s:\n%s", tc.format, tc.golden, got.Bytes())
		}
	}
}
