package ocreval

import (
	"math"
	"testing"
)

func TestWordDistance(t *testing.T) {
	for _, tc := range []struct {
		hyp, ref string
		want     int
	}{
		{"", "", 0},
		{"the quick fox", "the quick fox", 0},
		{"the  quick\nfox", "the quick fox", 0},
		{"the quack fox", "the quick fox", 1},
		{"thequick fox", "the quick fox", 2},
		{"the quick brown fox", "the quick fox", 1},
		{"", "a b c", 3},
		{"a b c", "", 3},
		{"The", "the", 1},
		{"fox the quick", "the quick fox", 2},
	} {
		if got := WordDistance(tc.hyp, tc.ref); got != tc.want {
			t.Errorf("WordDistance(%q, %q) = %d, want %d", tc.hyp, tc.ref, got, tc.want)
		}
	}
}

func TestWordScore(t *testing.T) {
	var s WordScore
	s.Add("the quick fox", "the quick fox")
	s.Add("thequick fox", "the quick fox")
	if s.Edits != 2 || s.RefLen != 6 || s.Samples != 2 {
		t.Fatalf("score = %+v", s)
	}
	if got, want := s.Accuracy(), 4.0/6; math.Abs(got-want) > 1e-12 {
		t.Errorf("Accuracy = %v, want %v", got, want)
	}
	var bad WordScore
	bad.Add("a b c d e f", "x")
	if bad.Accuracy() != 0 {
		t.Errorf("Accuracy with more edits than words = %v, want 0", bad.Accuracy())
	}
	var empty WordScore
	if empty.Accuracy() != 0 || empty.WER() != 0 {
		t.Errorf("empty score = %v / %v", empty.Accuracy(), empty.WER())
	}
}
