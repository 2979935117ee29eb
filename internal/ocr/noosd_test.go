package ocr_test

import (
	"context"
	"testing"

	"github.com/visionserve/visionserve/internal/modelrepo/manifest"
	"github.com/visionserve/visionserve/internal/modelrepo/repotest"
	"github.com/visionserve/visionserve/internal/modelrepo/trust"
	"github.com/visionserve/visionserve/internal/ocr"
	"github.com/visionserve/visionserve/internal/ocr/ocrrepo"
	"github.com/visionserve/visionserve/internal/sched"
	"github.com/visionserve/visionserve/internal/testenv"
)

// A package made by the documented recipe with eng.traineddata alone (no
// osd.traineddata) reads doubtful pages, those whose first reading calls
// for an orientation check, instead of failing them: without a detector
// the half turn is tried, and with Tesseract's own reading of quarter
// turns every orientation still reads.
func TestIntegrationPackageWithoutOSD(t *testing.T) {
	testenv.Shared(t, "data/ocr/pages")
	key := repotest.NewKey(t)
	files := map[string][]byte{"eng.traineddata": repotest.Tessdata(t)["eng.traineddata"]}
	published := repotest.Publish(t, t.TempDir(), repotest.Spec{Name: "ocr-eng", Version: 1, Kind: manifest.KindOCRTesseract,
		Runtime: map[string]any{"lang": "eng"}, Files: files, Signer: key.Signer})
	verifier, err := trust.New(trust.Config{Keys: []string{key.PublicPath}})
	if err != nil {
		t.Fatal(err)
	}
	pkg, err := verifier.Verify(context.Background(), published)
	if err != nil {
		t.Fatal(err)
	}
	s := sched.New(1, 4, nil)
	inst, err := (&ocrrepo.TesseractLoader{Workers: 1, Run: s.Run}).Load(context.Background(), pkg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { inst.Close() })
	models, err := ocr.NewStaticModels(inst.(*ocrrepo.Instance).OCRModel())
	if err != nil {
		t.Fatal(err)
	}
	checkPhototests(t, ocr.NewService(ocr.DefaultConfig(), models, s, nil, nil))
}
