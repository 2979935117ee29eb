package dewarp_test

import (
	"path/filepath"
	"testing"

	"github.com/visionserve/visionserve/internal/ocr/dewarp"
	"github.com/visionserve/visionserve/internal/ocr/dewarp/dewarptest"
	"github.com/visionserve/visionserve/internal/ocreval"
	"github.com/visionserve/visionserve/internal/testenv"
)

// Must show (issue 15): flat scans are not harmed. In auto mode Plan
// leaves phototest.tif, its turned copies and every shared text line (the
// UW3 book lines) alone, so the pipeline reads them exactly as it did
// without the stage.
func TestIntegrationScansLeftAlone(t *testing.T) {
	pages := testenv.Shared(t, "data/ocr/pages")
	files := []string{"phototest.tif", "phototest-rotated-L.png", "phototest-rotated-180.png", "phototest-rotated-R.png", "phototestrot.tif"}
	for _, f := range files {
		if c, ok := dewarp.Plan(dewarptest.ReadGray(t, filepath.Join(pages, f)), dewarp.Auto); ok {
			t.Errorf("%s: corrected: %s, skew %+v, page %+v", f, c.Kind, c.Skew, c.Page)
		}
	}
	lines, err := ocreval.LoadLines(testenv.Shared(t, "data/ocr/lines"))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range lines {
		if c, ok := dewarp.Plan(dewarptest.ReadGray(t, l.Image), dewarp.Auto); ok {
			t.Errorf("%s: corrected: %s, skew %+v", l.Image, c.Kind, c.Skew)
		}
	}
	t.Logf("%d pages and %d lines read as they are", len(files), len(lines))
}
