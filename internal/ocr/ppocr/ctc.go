package ppocr

import (
	"bufio"
	"fmt"
	"io"
	"slices"
	"strings"
)

// LoadDict reads a PaddleOCR character dictionary: one entry per line, line
// ends stripped and nothing else (a line holding one space is the space).
func LoadDict(r io.Reader) ([]string, error) {
	var dict []string
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := strings.TrimSuffix(sc.Text(), "\r")
		if line == "" {
			continue
		}
		dict = append(dict, line)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(dict) == 0 {
		return nil, fmt.Errorf("ppocr: empty character dictionary")
	}
	return dict, nil
}

// ctcClasses is the recogniser's class list: index 0 is the CTC blank,
// then the dictionary, then (with useSpace) a space, as in PaddleOCR's
// CTCLabelDecode.
func ctcClasses(dict []string, useSpace bool) []string {
	classes := append([]string{""}, dict...)
	if useSpace {
		classes = append(classes, " ")
	}
	return classes
}

// ctcChar is one decoded character and where the recogniser saw it.
type ctcChar struct {
	text   string
	prob   float64 // probability at the first step of its run
	t0, t1 int     // first and last time step of its run
}

// ctcGreedy decodes one sample's steps×nclass matrix of per-step class
// probabilities: take the most likely class per step, merge runs of the
// same class, drop blanks (class 0). Each character keeps the probability
// of the first step of its run, as PaddleOCR does.
func ctcGreedy(probs []float32, steps, nclass int, classes []string) []ctcChar {
	var out []ctcChar
	prev := -1
	for t := range steps {
		row := probs[t*nclass : (t+1)*nclass]
		best := 0
		for c := 1; c < nclass; c++ {
			if row[c] > row[best] {
				best = c
			}
		}
		switch {
		case best == prev && best != 0:
			out[len(out)-1].t1 = t
		case best != 0 && best < len(classes):
			out = append(out, ctcChar{text: classes[best], prob: float64(row[best]), t0: t, t1: t})
		}
		prev = best
	}
	return out
}

// ctcWord is a word of a decoded line; x0 and x1 bound it in time steps.
type ctcWord struct {
	text   string
	conf   float64
	x0, x1 float64
}

// fallbackPitch is the character pitch, in time steps, assumed when a line
// has no two adjacent characters to measure it (a v2.0 CRNN step is 4 input
// pixels at height 32, a character about 3 steps).
const fallbackPitch = 3

// ctcWords splits decoded characters into words at spaces and returns them
// with the line confidence, the mean character probability (spaces
// included, as PaddleOCR scores a line). valid is the number of time steps
// that cover the image rather than its padding. A word spans its first and
// last character centres widened by half the line's median character
// pitch; a lone word spans the whole line, whose box the detector already
// fitted.
func ctcWords(chars []ctcChar, valid float64) ([]ctcWord, float64) {
	if len(chars) == 0 {
		return nil, 0
	}
	var sum float64
	for _, c := range chars {
		sum += c.prob
	}
	lineConf := sum / float64(len(chars))

	center := func(c ctcChar) float64 { return float64(c.t0+c.t1+1) / 2 }
	var gaps []float64
	for i := 1; i < len(chars); i++ {
		if chars[i].text != " " && chars[i-1].text != " " {
			gaps = append(gaps, center(chars[i])-center(chars[i-1]))
		}
	}
	pitch := float64(fallbackPitch)
	if len(gaps) > 0 {
		slices.Sort(gaps)
		pitch = gaps[len(gaps)/2]
	}

	var words []ctcWord
	for i := 0; i < len(chars); {
		if chars[i].text == " " {
			i++
			continue
		}
		j := i
		var b strings.Builder
		var s float64
		for j < len(chars) && chars[j].text != " " {
			b.WriteString(chars[j].text)
			s += chars[j].prob
			j++
		}
		words = append(words, ctcWord{
			text: b.String(),
			conf: s / float64(j-i),
			x0:   clampf(center(chars[i])-pitch/2, 0, valid),
			x1:   clampf(center(chars[j-1])+pitch/2, 0, valid),
		})
		i = j
	}
	if len(words) == 1 {
		words[0].x0, words[0].x1 = 0, valid
	}
	return words, lineConf
}
