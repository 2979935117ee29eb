package ocreval

import (
	"fmt"
	"io"
	"strings"
	"unicode"

	"github.com/visionserve/visionserve/internal/calib"
)

// Reading is one labelled sample as an engine read it, with raw
// (uncalibrated) confidences.
type Reading struct {
	Truth     string
	Text      string
	LineScore float64 // the engine's own confidence for the sample's text
	Words     []ScoredWord
}

// ScoredWord is a recognised word and its raw confidence.
type ScoredWord struct {
	Text  string
	Score float64
}

// Calibration is fitted word calibration and how well it does: Words
// scores each word's confidence against "the word is right"; Lines scores
// the sample's confidence against "the whole text is exactly right",
// before (the engine's line score) and after (the product of calibrated
// word confidences).
type Calibration struct {
	Curve        calib.Curve // fitted on every reading
	Folds        int
	WordSamples  int
	WordAccuracy float64
	LineSamples  int
	LineAccuracy float64
	Words, Lines Quality
}

// Quality compares calibration error before and after, measured on
// readings the curve was not fitted on (k-fold cross-validation).
type Quality struct {
	ECEBefore, ECEAfter     float64
	BrierBefore, BrierAfter float64
}

// Calibrate fits a word-confidence curve to readings and measures it by
// folds-fold cross-validation (samples assigned to folds round-robin).
func Calibrate(readings []Reading, folds int) (*Calibration, error) {
	if folds < 2 {
		return nil, fmt.Errorf("calibration needs at least 2 folds, got %d", folds)
	}
	wordSamples := func(r Reading) []calib.Sample {
		hyp := make([]string, len(r.Words))
		for i, w := range r.Words {
			hyp[i] = w.Text
		}
		ok := AlignWords(hyp, strings.FieldsFunc(Normalize(r.Truth), unicode.IsSpace))
		out := make([]calib.Sample, len(r.Words))
		for i, w := range r.Words {
			out[i] = calib.Sample{Score: w.Score, Correct: ok[i]}
		}
		return out
	}
	var all []calib.Sample
	for _, r := range readings {
		all = append(all, wordSamples(r)...)
	}
	curve, err := calib.Fit(all)
	if err != nil {
		return nil, err
	}
	c := &Calibration{Curve: curve, Folds: folds, LineSamples: len(readings), WordSamples: len(all)}
	for _, s := range all {
		if s.Correct {
			c.WordAccuracy++
		}
	}
	c.WordAccuracy /= float64(len(all))

	var wb, wa, lb, la []calib.Sample
	for f := 0; f < folds; f++ {
		var train []calib.Sample
		for i, r := range readings {
			if i%folds != f {
				train = append(train, wordSamples(r)...)
			}
		}
		fc, err := calib.Fit(train)
		if err != nil {
			return nil, fmt.Errorf("fold %d: %w", f, err)
		}
		for i, r := range readings {
			if i%folds != f {
				continue
			}
			exact := Normalize(r.Text) == Normalize(r.Truth)
			p := 1.0
			for _, s := range wordSamples(r) {
				wb = append(wb, s)
				cs := calib.Sample{Score: fc.Apply(s.Score), Correct: s.Correct}
				wa = append(wa, cs)
				p *= cs.Score
			}
			if len(r.Words) == 0 {
				p = r.LineScore
			}
			lb = append(lb, calib.Sample{Score: r.LineScore, Correct: exact})
			la = append(la, calib.Sample{Score: p, Correct: exact})
			if exact {
				c.LineAccuracy++
			}
		}
	}
	c.LineAccuracy /= float64(len(readings))
	const bins = 10
	c.Words = Quality{calib.ECE(wb, bins), calib.ECE(wa, bins), calib.Brier(wb), calib.Brier(wa)}
	c.Lines = Quality{calib.ECE(lb, bins), calib.ECE(la, bins), calib.Brier(lb), calib.Brier(la)}
	return c, nil
}

// WriteReport prints the measurements and the curve as configuration.
func (c *Calibration) WriteReport(w io.Writer) {
	fmt.Fprintf(w, "%d words (%.1f%% right), %d samples (%.1f%% exactly right); %d-fold cross-validation, 10 equal-count bins\n",
		c.WordSamples, 100*c.WordAccuracy, c.LineSamples, 100*c.LineAccuracy, c.Folds)
	fmt.Fprintf(w, "  word confidence:  ECE %.4f -> %.4f   Brier %.4f -> %.4f\n", c.Words.ECEBefore, c.Words.ECEAfter, c.Words.BrierBefore, c.Words.BrierAfter)
	fmt.Fprintf(w, "  line confidence:  ECE %.4f -> %.4f   Brier %.4f -> %.4f   (engine line score -> product of calibrated words)\n",
		c.Lines.ECEBefore, c.Lines.ECEAfter, c.Lines.BrierBefore, c.Lines.BrierAfter)
	fmt.Fprintln(w, "\n# the model's calibration, fitted on every sample:")
	fmt.Fprintln(w, "calibration: ["+c.Curve.String()+"]")
}
