package dewarp_test

import (
	"context"
	"image"
	"os"
	"path/filepath"
	"testing"

	"github.com/visionserve/visionserve/internal/imageio"
	"github.com/visionserve/visionserve/internal/ocr/dewarp"
	"github.com/visionserve/visionserve/internal/ocreval"
	"github.com/visionserve/visionserve/internal/testenv"
)

// decodeGray reads the first page of an image file as grey.
func decodeGray(t testing.TB, path string) *image.Gray {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return decodeGrayBytes(t, data)
}

// decodeGrayBytes decodes the first page of an image as grey, as the
// pipeline does.
func decodeGrayBytes(t testing.TB, data []byte) *image.Gray {
	t.Helper()
	doc, err := imageio.Open(data, "", imageio.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	img, err := doc.Decode(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	return imageio.ToGray(img)
}

// Must show (issue 15): flat scans are not harmed. In auto mode Plan
// leaves phototest.tif, its turned copies and every shared text line (the
// UW3 book lines) alone, so the pipeline reads them exactly as it did
// without the stage.
func TestIntegrationScansLeftAlone(t *testing.T) {
	pages := testenv.Shared(t, "data/ocr/pages")
	files := []string{"phototest.tif", "phototest-rotated-L.png", "phototest-rotated-180.png", "phototest-rotated-R.png", "phototestrot.tif"}
	for _, f := range files {
		if c, ok := dewarp.Plan(decodeGray(t, filepath.Join(pages, f)), dewarp.Auto); ok {
			t.Errorf("%s: corrected: %s, skew %+v, page %+v", f, c.Kind, c.Skew, c.Page)
		}
	}
	lines, err := ocreval.LoadLines(testenv.Shared(t, "data/ocr/lines"))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range lines {
		if c, ok := dewarp.Plan(decodeGray(t, l.Image), dewarp.Auto); ok {
			t.Errorf("%s: corrected: %s, skew %+v", l.Image, c.Kind, c.Skew)
		}
	}
	t.Logf("%d pages and %d lines read as they are", len(files), len(lines))
}
