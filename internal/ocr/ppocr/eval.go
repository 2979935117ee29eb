package ppocr

import (
	"context"
	"encoding/json"
	"fmt"
	"image"
	_ "image/jpeg" // decoders for the evaluation data
	_ "image/png"
	"io"
	"os"
	"path/filepath"
	"strings"

	_ "golang.org/x/image/tiff"

	"github.com/visionserve/visionserve/internal/engine"
	"github.com/visionserve/visionserve/internal/ocr"
	"github.com/visionserve/visionserve/internal/ocreval"
)

// EvalTarget is an OCR method under evaluation. Line reads one upright line
// or word image; Page reads a whole page and returns its text in reading
// order. Any engine can be wrapped as one, so one harness produces every
// row of the evaluation table.
type EvalTarget struct {
	Line func(ctx context.Context, img image.Image) (string, error)
	Page func(ctx context.Context, img image.Image) (string, error)
}

// EvalTarget evaluates the pipeline with CTC recognition: lines and words
// with RecognizeLine, pages with Recognize.
func (pl *Pipeline) EvalTarget() EvalTarget {
	return EvalTarget{
		Line: func(ctx context.Context, img image.Image) (string, error) {
			l, err := pl.RecognizeLine(ctx, img)
			return l.Text, err
		},
		Page: func(ctx context.Context, img image.Image) (string, error) {
			lines, err := pl.Recognize(ctx, img)
			return pageText(lines), err
		},
	}
}

// HybridEvalTarget evaluates hybrid mode: tr reads line and word images
// directly (SegLine) and each detected line of a page.
func (pl *Pipeline) HybridEvalTarget(tr engine.TextRecognizer) EvalTarget {
	return EvalTarget{
		Line: func(ctx context.Context, img image.Image) (string, error) {
			tls, err := tr.RecognizeText(ctx, toRGB(img).gray(), engine.SegLine)
			var texts []string
			for _, tl := range tls {
				texts = append(texts, tl.Text)
			}
			return strings.Join(texts, " "), err
		},
		Page: func(ctx context.Context, img image.Image) (string, error) {
			lines, err := pl.RecognizeHybrid(ctx, img, tr)
			return pageText(lines), err
		},
	}
}

func pageText(lines []ocr.Line) string {
	return ocr.PlainText([]ocr.Page{{Lines: lines}})
}

// EvalReport holds the scores of one method on the shared OCR data.
type EvalReport struct {
	Lines     ocreval.Score     // line images: CER and exact-line accuracy
	LineWords ocreval.WordScore // line images: word accuracy
	Words     ocreval.Score     // scene word crops: CER and word accuracy (exact match)
	Pages     ocreval.Score     // whole pages through detection: CER
	PageWords ocreval.WordScore // whole pages: word accuracy
	PerPage   []PageScore
}

// PageScore is one page's result.
type PageScore struct {
	Image string
	CER   float64
	Words float64 // word accuracy
}

func (r EvalReport) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "lines: %s, %s\n", r.Lines, r.LineWords)
	fmt.Fprintf(&b, "words: %s, accuracy %.1f%%\n", r.Words, 100*r.Words.Accuracy())
	fmt.Fprintf(&b, "pages: %s, %s", r.Pages, r.PageWords)
	for _, p := range r.PerPage {
		fmt.Fprintf(&b, "\n  %s: CER %.2f%%, word accuracy %.1f%%", filepath.Base(p.Image), 100*p.CER, 100*p.Words)
	}
	return b.String()
}

// Evaluate runs target over the OCR data under dir (the layout of
// shared/data/ocr: lines/ with .gt.txt, words/labels.txt, pages/ with a .txt
// per image) and scores it with ocreval.
func Evaluate(ctx context.Context, dir string, target EvalTarget) (EvalReport, error) {
	var r EvalReport
	var err error
	if r.Lines, r.LineWords, err = EvaluateLines(ctx, filepath.Join(dir, "lines"), target); err != nil {
		return r, err
	}
	if r.Words, err = EvaluateWords(ctx, filepath.Join(dir, "words"), target); err != nil {
		return r, err
	}
	r.Pages, r.PageWords, r.PerPage, err = EvaluatePages(ctx, filepath.Join(dir, "pages"), target)
	return r, err
}

// EvaluateLines reads every line image under dir with target.Line.
func EvaluateLines(ctx context.Context, dir string, target EvalTarget) (ocreval.Score, ocreval.WordScore, error) {
	var s ocreval.Score
	var ws ocreval.WordScore
	samples, err := ocreval.LoadLines(dir)
	if err != nil {
		return s, ws, err
	}
	for _, smp := range samples {
		hyp, err := readWith(ctx, smp.Image, target.Line)
		if err != nil {
			return s, ws, err
		}
		s.Add(hyp, smp.Truth)
		ws.Add(hyp, smp.Truth)
	}
	return s, ws, nil
}

// EvaluateWords reads every word crop listed in dir/labels.txt with
// target.Line; the score's Accuracy is the word accuracy.
func EvaluateWords(ctx context.Context, dir string, target EvalTarget) (ocreval.Score, error) {
	var s ocreval.Score
	samples, err := ocreval.LoadWords(dir)
	if err != nil {
		return s, err
	}
	if len(samples) == 0 {
		return s, fmt.Errorf("no word samples in %s/labels.txt", dir)
	}
	for _, smp := range samples {
		hyp, err := readWith(ctx, smp.Image, target.Line)
		if err != nil {
			return s, err
		}
		s.Add(hyp, smp.Truth)
	}
	return s, nil
}

// EvaluatePages reads every page image in dir that has a <stem>.txt beside
// it with target.Page.
func EvaluatePages(ctx context.Context, dir string, target EvalTarget) (ocreval.Score, ocreval.WordScore, []PageScore, error) {
	var s ocreval.Score
	var ws ocreval.WordScore
	samples, err := LoadPages(dir)
	if err != nil {
		return s, ws, nil, err
	}
	var per []PageScore
	for _, smp := range samples {
		hyp, err := readWith(ctx, smp.Image, target.Page)
		if err != nil {
			return s, ws, nil, err
		}
		var one ocreval.Score
		var oneW ocreval.WordScore
		one.Add(hyp, smp.Truth)
		oneW.Add(hyp, smp.Truth)
		s.Add(hyp, smp.Truth)
		ws.Add(hyp, smp.Truth)
		per = append(per, PageScore{Image: smp.Image, CER: one.CER(), Words: oneW.Accuracy()})
	}
	return s, ws, per, nil
}

// LoadPages lists the page images in dir that have ground truth in a .txt
// of the same stem.
func LoadPages(dir string) ([]ocreval.Sample, error) {
	txts, err := filepath.Glob(filepath.Join(dir, "*.txt"))
	if err != nil {
		return nil, err
	}
	var out []ocreval.Sample
	for _, txt := range txts {
		stem := strings.TrimSuffix(txt, ".txt")
		for _, ext := range []string{".tif", ".tiff", ".png", ".jpg", ".jpeg"} {
			if _, err := os.Stat(stem + ext); err != nil {
				continue
			}
			truth, err := os.ReadFile(txt)
			if err != nil {
				return nil, err
			}
			out = append(out, ocreval.Sample{Image: stem + ext, Truth: strings.TrimSpace(string(truth))})
			break
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no page images with ground truth in %s", dir)
	}
	return out, nil
}

func readWith(ctx context.Context, path string, read func(context.Context, image.Image) (string, error)) (string, error) {
	img, err := decodeFile(path)
	if err != nil {
		return "", err
	}
	text, err := read(ctx, img)
	if err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	return text, nil
}

func decodeFile(path string) (image.Image, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	img, _, err := image.Decode(f)
	if err != nil {
		return nil, fmt.Errorf("decode %s: %w", path, err)
	}
	return img, nil
}

// ZHReport holds the scores of one method on the Chinese sets
// (shared/data/ocr/zh-lines and zh-pages). CER is measured with every
// whitespace character removed from both sides, as the sets' READMEs
// define it; punctuation is not folded (full-width against ASCII is an
// error).
type ZHReport struct {
	Lines   ocreval.Score // every line image
	Text    ocreval.Score // lines of prose (kind "text" in meta.jsonl)
	Digits  ocreval.Score // dates, amounts and numbers (kind "digits")
	Pages   ocreval.Score // whole pages through detection
	PerPage []PageScore
}

func (r ZHReport) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "zh lines: %s\n  text: %s\n  digits: %s\n", r.Lines, r.Text, r.Digits)
	fmt.Fprintf(&b, "zh pages: %s", r.Pages)
	for _, p := range r.PerPage {
		fmt.Fprintf(&b, "\n  %s: CER %.2f%%", filepath.Base(p.Image), 100*p.CER)
	}
	return b.String()
}

// EvaluateZH runs target over the Chinese data under dir (zh-lines/ with
// .gt.txt and meta.jsonl, zh-pages/ with a .txt per page) and scores it.
func EvaluateZH(ctx context.Context, dir string, target EvalTarget) (ZHReport, error) {
	r := ZHReport{
		Lines: ocreval.Score{Norm: ocreval.NormalizeNoSpace}, Text: ocreval.Score{Norm: ocreval.NormalizeNoSpace},
		Digits: ocreval.Score{Norm: ocreval.NormalizeNoSpace}, Pages: ocreval.Score{Norm: ocreval.NormalizeNoSpace},
	}
	lineDir := filepath.Join(dir, "zh-lines")
	samples, err := ocreval.LoadLines(lineDir)
	if err != nil {
		return r, err
	}
	kinds, err := lineKinds(filepath.Join(lineDir, "meta.jsonl"))
	if err != nil {
		return r, err
	}
	for _, smp := range samples {
		hyp, err := readWith(ctx, smp.Image, target.Line)
		if err != nil {
			return r, err
		}
		r.Lines.Add(hyp, smp.Truth)
		switch kinds[strings.TrimSuffix(filepath.Base(smp.Image), ".png")] {
		case "digits":
			r.Digits.Add(hyp, smp.Truth)
		default:
			r.Text.Add(hyp, smp.Truth)
		}
	}
	pages, err := LoadPages(filepath.Join(dir, "zh-pages"))
	if err != nil {
		return r, err
	}
	for _, smp := range pages {
		hyp, err := readWith(ctx, smp.Image, target.Page)
		if err != nil {
			return r, err
		}
		one := ocreval.Score{Norm: ocreval.NormalizeNoSpace}
		one.Add(hyp, smp.Truth)
		r.Pages.Add(hyp, smp.Truth)
		r.PerPage = append(r.PerPage, PageScore{Image: smp.Image, CER: one.CER()})
	}
	return r, nil
}

// lineKinds reads the kind ("text" or "digits") of each line of a
// meta.jsonl, by file stem.
func lineKinds(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	kinds := map[string]string{}
	dec := json.NewDecoder(f)
	for {
		var m struct{ File, Kind string }
		if err := dec.Decode(&m); err == io.EOF {
			return kinds, nil
		} else if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		kinds[m.File] = m.Kind
	}
}
