// Package calib turns an engine's raw confidence scores into calibrated
// probabilities: a score of 0.9 should mean "right nine times out of ten".
//
// A Curve is a monotone piecewise-linear map fitted by isotonic regression
// (pool adjacent violators) on (score, correct) pairs from labelled data,
// with each pooled block shrunk toward the overall accuracy so that a few
// samples cannot pin a probability to 0 or 1. ECE and Brier measure how
// well probabilities match outcomes. Nothing here knows about OCR.
package calib

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"
)

// Knot is one (score, probability) point of a Curve.
type Knot struct{ X, Y float64 }

// Curve maps a raw score to a probability by linear interpolation between
// knots sorted by X, flat beyond the ends. The zero Curve is the identity.
type Curve []Knot

// Apply maps score through the curve.
func (c Curve) Apply(score float64) float64 {
	if len(c) == 0 {
		return score
	}
	if score <= c[0].X {
		return c[0].Y
	}
	last := c[len(c)-1]
	if score >= last.X {
		return last.Y
	}
	i := sort.Search(len(c), func(i int) bool { return c[i].X >= score })
	a, b := c[i-1], c[i]
	if b.X == a.X {
		return b.Y
	}
	return a.Y + (b.Y-a.Y)*(score-a.X)/(b.X-a.X)
}

// Validate checks that knots are in [0,1], sorted and monotone.
func (c Curve) Validate() error {
	for i, k := range c {
		if k.X < 0 || k.X > 1 || k.Y < 0 || k.Y > 1 || math.IsNaN(k.X) || math.IsNaN(k.Y) {
			return fmt.Errorf("calibration knot %d (%g, %g) outside [0,1]", i, k.X, k.Y)
		}
		if i > 0 && (k.X < c[i-1].X || k.Y < c[i-1].Y) {
			return fmt.Errorf("calibration knots must increase: knot %d (%g, %g) after (%g, %g)", i, k.X, k.Y, c[i-1].X, c[i-1].Y)
		}
	}
	return nil
}

// MarshalYAML writes knots as [x, y] pairs.
func (k Knot) MarshalYAML() (any, error) { return []float64{k.X, k.Y}, nil }

// UnmarshalYAML reads a knot written as [x, y].
func (k *Knot) UnmarshalYAML(unmarshal func(any) error) error {
	var xy []float64
	if err := unmarshal(&xy); err != nil {
		return err
	}
	if len(xy) != 2 {
		return fmt.Errorf("calibration knot %v: want [score, probability]", xy)
	}
	k.X, k.Y = xy[0], xy[1]
	return nil
}

// MarshalJSON writes a knot as [x, y], as in YAML (model package
// manifests carry curves in their runtime object).
func (k Knot) MarshalJSON() ([]byte, error) { return json.Marshal([]float64{k.X, k.Y}) }

// UnmarshalJSON reads a knot written as [x, y].
func (k *Knot) UnmarshalJSON(data []byte) error {
	var xy []float64
	if err := json.Unmarshal(data, &xy); err != nil {
		return err
	}
	if len(xy) != 2 {
		return fmt.Errorf("calibration knot %v: want [score, probability]", xy)
	}
	k.X, k.Y = xy[0], xy[1]
	return nil
}

// Sample is one scored prediction and whether it was right.
type Sample struct {
	Score   float64
	Correct bool
}

// Prior is the pseudo-count each pooled block is shrunk with toward the
// overall accuracy.
const Prior = 2

// Fit fits a Curve to samples. It needs both outcomes among the samples.
func Fit(samples []Sample) (Curve, error) {
	if len(samples) == 0 {
		return nil, errors.New("calib: no samples")
	}
	s := append([]Sample(nil), samples...)
	sort.Slice(s, func(i, j int) bool { return s[i].Score < s[j].Score })
	var right float64
	for _, x := range s {
		if x.Correct {
			right++
		}
	}
	if right == 0 || right == float64(len(s)) {
		return nil, errors.New("calib: samples are all right or all wrong; nothing to fit")
	}
	mean := right / float64(len(s))

	// Pool adjacent violators: blocks of equal score are pooled first, then
	// any block less accurate than its left neighbour merges into it.
	type block struct{ lo, hi, sum, n float64 }
	var blocks []block
	for _, x := range s {
		y := 0.0
		if x.Correct {
			y = 1
		}
		if n := len(blocks); n > 0 && blocks[n-1].hi == x.Score {
			blocks[n-1].sum += y
			blocks[n-1].n++
		} else {
			blocks = append(blocks, block{x.Score, x.Score, y, 1})
		}
		for len(blocks) > 1 {
			a, b := blocks[len(blocks)-2], blocks[len(blocks)-1]
			if a.sum/a.n <= b.sum/b.n {
				break
			}
			blocks = append(blocks[:len(blocks)-2], block{a.lo, b.hi, a.sum + b.sum, a.n + b.n})
		}
	}
	var c Curve
	for _, b := range blocks {
		y := (b.sum + Prior*mean) / (b.n + Prior)
		x := (b.lo + b.hi) / 2
		if n := len(c); n > 0 && y < c[n-1].Y {
			y = c[n-1].Y // shrinking can undo monotonicity; restore it
		}
		if n := len(c); n > 0 && y == c[n-1].Y {
			continue // a flat run needs only its first knot
		}
		c = append(c, Knot{round(x), round(y)})
	}
	if last := blocks[len(blocks)-1]; c[len(c)-1].X < round((last.lo+last.hi)/2) {
		c = append(c, Knot{round((last.lo + last.hi) / 2), c[len(c)-1].Y})
	}
	return c, nil
}

func round(v float64) float64 { return math.Round(v*1e4) / 1e4 }

// ECE is the expected calibration error over bins of equal sample count:
// the sample-weighted mean of |mean score - accuracy| per bin.
func ECE(samples []Sample, bins int) float64 {
	if len(samples) == 0 || bins < 1 {
		return 0
	}
	s := append([]Sample(nil), samples...)
	sort.Slice(s, func(i, j int) bool { return s[i].Score < s[j].Score })
	var e float64
	for b := 0; b < bins; b++ {
		chunk := s[b*len(s)/bins : (b+1)*len(s)/bins]
		if len(chunk) == 0 {
			continue
		}
		var score, right float64
		for _, x := range chunk {
			score += x.Score
			if x.Correct {
				right++
			}
		}
		n := float64(len(chunk))
		e += n / float64(len(s)) * math.Abs(score/n-right/n)
	}
	return e
}

// Brier is the mean squared difference between score and outcome.
func Brier(samples []Sample) float64 {
	if len(samples) == 0 {
		return 0
	}
	var sum float64
	for _, x := range samples {
		y := 0.0
		if x.Correct {
			y = 1
		}
		sum += (x.Score - y) * (x.Score - y)
	}
	return sum / float64(len(samples))
}

// String writes the knots as YAML flow sequences: [x, y], [x, y], ...
func (c Curve) String() string {
	parts := make([]string, len(c))
	for i, k := range c {
		parts[i] = fmt.Sprintf("[%g, %g]", k.X, k.Y)
	}
	return strings.Join(parts, ", ")
}
