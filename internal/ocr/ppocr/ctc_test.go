package ppocr

import (
	"math"
	"slices"
	"strings"
	"testing"
)

// steps builds a steps×len(classes) probability matrix whose argmax at
// step t is seq[t] with probability p[t] (the rest spread evenly).
func steps(seq []int, p []float32, nclass int) []float32 {
	out := make([]float32, len(seq)*nclass)
	for t, c := range seq {
		rest := (1 - p[t]) / float32(nclass-1)
		for k := range nclass {
			out[t*nclass+k] = rest
		}
		out[t*nclass+c] = p[t]
	}
	return out
}

func TestCTCGreedy(t *testing.T) {
	classes := ctcClasses([]string{"a", "b", "c"}, true) // blank a b c " "
	const blank, a, b, c, sp = 0, 1, 2, 3, 4
	for _, tc := range []struct {
		name string
		seq  []int
		p    []float32
		want []ctcChar
	}{
		{"empty", nil, nil, nil},
		{"all blank", []int{blank, blank, blank}, []float32{.9, .9, .9}, nil},
		{"runs merge", []int{a, a, a, b}, []float32{.6, .9, .9, .8},
			[]ctcChar{{"a", .6, 0, 2}, {"b", .8, 3, 3}}},
		{"blank separates repeats", []int{a, blank, a, a, blank}, []float32{.7, .9, .8, .5, .9},
			[]ctcChar{{"a", .7, 0, 0}, {"a", .8, 2, 3}}},
		{"space is a character", []int{blank, a, sp, sp, c, blank}, []float32{.9, .9, .6, .9, .95, .9},
			[]ctcChar{{"a", .9, 1, 1}, {" ", .6, 2, 3}, {"c", .95, 4, 4}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := ctcGreedy(steps(tc.seq, tc.p, len(classes)), len(tc.seq), len(classes), classes)
			if !slices.EqualFunc(got, tc.want, func(x, y ctcChar) bool {
				return x.text == y.text && math.Abs(x.prob-y.prob) < 1e-6 && x.t0 == y.t0 && x.t1 == y.t1
			}) {
				t.Errorf("decoded %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestCTCWords(t *testing.T) {
	ch := func(s string, p float64, t0, t1 int) ctcChar { return ctcChar{s, p, t0, t1} }
	for _, tc := range []struct {
		name     string
		chars    []ctcChar
		valid    float64
		words    []ctcWord
		lineConf float64
	}{
		{name: "nothing", valid: 10},
		{
			name:  "one word spans the line",
			chars: []ctcChar{ch("h", 1, 2, 2), ch("i", .5, 5, 5)},
			valid: 20, lineConf: .75,
			words: []ctcWord{{"hi", .75, 0, 20}},
		},
		{
			// Centres 2.5, 5.5, 8.5 | space | 14.5, 17.5: pitch 3.
			name:  "two words with their own confidences and extents",
			chars: []ctcChar{ch("a", 1, 2, 2), ch("b", 1, 5, 5), ch("c", .7, 8, 8), ch(" ", .4, 11, 11), ch("d", .9, 14, 14), ch("e", .5, 17, 17)},
			valid: 30, lineConf: (1 + 1 + .7 + .4 + .9 + .5) / 6,
			words: []ctcWord{{"abc", .9, 1, 10}, {"de", .7, 13, 19}},
		},
		{
			name:  "leading, trailing and double spaces make no empty words",
			chars: []ctcChar{ch(" ", 1, 0, 0), ch("x", 1, 3, 3), ch(" ", 1, 5, 5), ch(" ", 1, 6, 6), ch("y", 1, 9, 9), ch(" ", 1, 12, 12)},
			valid: 14, lineConf: 1,
			// No two adjacent letters: the fallback pitch of 3 steps.
			words: []ctcWord{{"x", 1, 2, 5}, {"y", 1, 8, 11}},
		},
		{
			name:  "extents stay inside the valid steps",
			chars: []ctcChar{ch("a", 1, 0, 0), ch("b", 1, 1, 1), ch(" ", 1, 2, 2), ch("c", 1, 3, 3), ch("d", 1, 4, 4)},
			valid: 5, lineConf: 1,
			words: []ctcWord{{"ab", 1, 0, 2}, {"cd", 1, 3, 5}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			words, conf := ctcWords(tc.chars, tc.valid)
			if math.Abs(conf-tc.lineConf) > 1e-9 {
				t.Errorf("line confidence %v, want %v", conf, tc.lineConf)
			}
			if !slices.EqualFunc(words, tc.words, func(x, y ctcWord) bool {
				return x.text == y.text && math.Abs(x.conf-y.conf) < 1e-9 && math.Abs(x.x0-y.x0) < 1e-9 && math.Abs(x.x1-y.x1) < 1e-9
			}) {
				t.Errorf("words %+v, want %+v", words, tc.words)
			}
			for _, w := range words {
				if w.conf < 0 || w.conf > 1 || w.x0 > w.x1 {
					t.Errorf("word %+v out of range", w)
				}
			}
		})
	}
}

func TestLoadDict(t *testing.T) {
	dict, err := LoadDict(strings.NewReader("a\r\nb\n\n \n"))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"a", "b", " "}; !slices.Equal(dict, want) {
		t.Errorf("dict = %q, want %q", dict, want)
	}
	if got := ctcClasses(dict, true); len(got) != 5 || got[0] != "" || got[4] != " " {
		t.Errorf("classes = %q", got)
	}
	if _, err := LoadDict(strings.NewReader("\n\n")); err == nil {
		t.Error("LoadDict accepted an empty dictionary")
	}
}
