package ppocr_test

import (
	"context"
	"fmt"
	"image"
	"math"
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
// (Tesseract alone, PP-OCR, hybrid) over the shared data through Evaluate
// and logs the rows; run with -v. Besides sanity checks on the report it
// checks that hybrid pages are not worse than PP-OCR's, the reason the
// hybrid exists. Without libtesseract (outside CI) only PP-OCR runs.
func TestIntegrationEvaluationTable(t *testing.T) {
	if testing.Short() {
		t.Skip("full evaluation of three methods; skipped with -short")
	}
	pl := realPipeline(t, 1, ppocr.DefaultParams())
	dir := testenv.Shared(t, "data/ocr")
	type row struct {
		name   string
		target ppocr.EvalTarget
	}
	rows := []row{{"PP-OCR (DB + cls + CTC)", pl.EvalTarget()}}
	tess, err := tesseract.New(tesseract.Config{})
	switch {
	case err != nil && testenv.InCI():
		t.Fatalf("CI=true and libtesseract is unavailable: %v", err)
	case err != nil:
		t.Logf("libtesseract unavailable, evaluating PP-OCR only: %v", err)
	default:
		defer tess.Close()
		rows = []row{
			{"Tesseract alone", tesseractAlone(tess)},
			rows[0],
			{"hybrid (DB + cls + Tesseract line)", pl.HybridEvalTarget(tess)},
		}
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
		if rep.Lines.Samples != 250 || rep.Words.Samples != 10 || len(rep.PerPage) != 2 {
			t.Errorf("%s: evaluated %d lines, %d words, %d pages; want 250, 10, 2", r.name, rep.Lines.Samples, rep.Words.Samples, len(rep.PerPage))
		}
		for _, v := range []float64{rep.Lines.CER(), rep.LineWords.Accuracy(), rep.Words.CER(), rep.Pages.CER(), rep.PageWords.Accuracy()} {
			if math.IsNaN(v) || v < 0 || v > 1.5 {
				t.Errorf("%s: score %v out of range in\n%s", r.name, v, rep)
			}
		}
		fmt.Fprintf(&b, "| %s | %.2f%% | %.1f%% | %d/%d | %.1f%% | %.2f%% | %.1f%% |\n", r.name,
			100*rep.Lines.CER(), 100*rep.LineWords.Accuracy(), rep.Words.Exact, rep.Words.Samples, 100*rep.Words.CER(),
			100*rep.Pages.CER(), 100*rep.PageWords.Accuracy())
		t.Logf("%s:\n%s", r.name, rep)
	}
	t.Logf("\n%s", b.String())
	if len(reports) < 3 {
		return
	}
	if hybrid, ctc := reports[2].Pages.CER(), reports[1].Pages.CER(); hybrid > ctc {
		t.Errorf("hybrid page CER %.2f%% is worse than PP-OCR's %.2f%%", 100*hybrid, 100*ctc)
	}
}
