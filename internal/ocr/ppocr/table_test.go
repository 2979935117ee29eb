package ppocr_test

import (
	"context"
	"fmt"
	"image"
	"strings"
	"testing"

	"github.com/visionserve/visionserve/internal/engine"
	"github.com/visionserve/visionserve/internal/engine/tesseract"
	"github.com/visionserve/visionserve/internal/ocr/ppocr"
	"github.com/visionserve/visionserve/internal/testenv"
)

// tesseractAlone evaluates Tesseract without DB detection: SegLine on line
// and word images, SegPage on pages.
func tesseractAlone(tr engine.TextRecognizer) ppocr.EvalTarget {
	read := func(mode engine.SegMode) func(context.Context, image.Image) (string, error) {
		return func(ctx context.Context, img image.Image) (string, error) {
			g := image.NewGray(img.Bounds())
			for y := g.Rect.Min.Y; y < g.Rect.Max.Y; y++ {
				for x := g.Rect.Min.X; x < g.Rect.Max.X; x++ {
					g.Set(x, y, img.At(x, y))
				}
			}
			tls, err := tr.RecognizeText(ctx, g, mode)
			var texts []string
			for _, tl := range tls {
				texts = append(texts, tl.Text)
			}
			return strings.Join(texts, "\n"), err
		}
	}
	return ppocr.EvalTarget{Line: read(engine.SegLine), Page: read(engine.SegPage)}
}

// TestIntegrationEvaluationTable runs the three methods of issue 4's table
// (Tesseract alone, PP-OCR, hybrid) over the shared data and logs the
// rows; run with -v. It checks only that hybrid pages are not worse than
// PP-OCR's, the reason the hybrid exists.
func TestIntegrationEvaluationTable(t *testing.T) {
	if testing.Short() {
		t.Skip("full evaluation of three methods; skipped with -short")
	}
	pl := realPipeline(t, 1, ppocr.DefaultParams())
	tess, err := tesseract.New(tesseract.Config{})
	if err != nil {
		testenv.Missing(t, "libtesseract models unavailable: "+err.Error())
	}
	defer tess.Close()
	dir := testenv.Shared(t, "data/ocr")
	rows := []struct {
		name   string
		target ppocr.EvalTarget
	}{
		{"Tesseract alone", tesseractAlone(tess)},
		{"PP-OCR (DB + cls + CTC)", pl.EvalTarget()},
		{"hybrid (DB + cls + Tesseract line)", pl.HybridEvalTarget(tess)},
	}
	var b strings.Builder
	b.WriteString("| method | lines CER | lines word acc. | scene words acc. | scene words CER | pages CER | pages word acc. |\n|---|---|---|---|---|---|---|\n")
	reports := make([]ppocr.EvalReport, len(rows))
	for i, r := range rows {
		rep, err := ppocr.Evaluate(context.Background(), dir, r.target)
		if err != nil {
			t.Fatalf("%s: %v", r.name, err)
		}
		reports[i] = rep
		fmt.Fprintf(&b, "| %s | %.2f%% | %.1f%% | %d/%d | %.1f%% | %.2f%% | %.1f%% |\n", r.name,
			100*rep.Lines.CER(), 100*rep.LineWords.Accuracy(), rep.Words.Exact, rep.Words.Samples, 100*rep.Words.CER(),
			100*rep.Pages.CER(), 100*rep.PageWords.Accuracy())
		t.Logf("%s:\n%s", r.name, rep)
	}
	t.Logf("\n%s", b.String())
	if hybrid, ctc := reports[2].Pages.CER(), reports[1].Pages.CER(); hybrid > ctc {
		t.Errorf("hybrid page CER %.2f%% is worse than PP-OCR's %.2f%%", 100*hybrid, 100*ctc)
	}
}
