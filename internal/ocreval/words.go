package ocreval

import (
	"fmt"
	"strings"
	"unicode"
)

// WordDistance is the Levenshtein distance between hyp and ref counted in
// whole words (whitespace-separated, case-sensitive): the number of word
// substitutions, insertions and deletions.
func WordDistance(hyp, ref string) int {
	// Give every distinct word a rune of its own and reuse the rune
	// distance; the private-use planes hold far more words than a page has.
	ids := map[string]rune{}
	encode := func(s string) string {
		var b strings.Builder
		for _, w := range strings.FieldsFunc(s, unicode.IsSpace) {
			id, ok := ids[w]
			if !ok {
				id = rune(0xF0000 + len(ids))
				ids[w] = id
			}
			b.WriteRune(id)
		}
		return b.String()
	}
	h, r := encode(hyp), encode(ref)
	return Distance(h, r)
}

// WordScore accumulates word-level errors over many samples. Accuracy is
// 1 - WER (ISRI's word accuracy), floored at 0 since insertions can make
// the error count exceed the reference length.
type WordScore struct {
	Edits   int // summed word edit distance
	RefLen  int // summed reference length in words
	Samples int
}

// Add scores one hypothesis against its reference.
func (s *WordScore) Add(hyp, ref string) int {
	d := WordDistance(hyp, ref)
	s.Edits += d
	s.RefLen += len(strings.FieldsFunc(ref, unicode.IsSpace))
	s.Samples++
	return d
}

// WER is the word error rate, 0 when nothing was scored.
func (s WordScore) WER() float64 {
	if s.RefLen == 0 {
		return 0
	}
	return float64(s.Edits) / float64(s.RefLen)
}

// Accuracy is the word accuracy, max(0, 1 - WER).
func (s WordScore) Accuracy() float64 {
	if s.RefLen == 0 {
		return 0
	}
	return max(0, 1-s.WER())
}

func (s WordScore) String() string {
	return fmt.Sprintf("word accuracy %.2f%% (%d word edits / %d words)", 100*s.Accuracy(), s.Edits, s.RefLen)
}
