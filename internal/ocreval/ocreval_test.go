package ocreval

import "testing"

func TestDistance(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"", "", 0},
		{"abc", "", 3},
		{"", "abc", 3},
		{"kitten", "sitting", 3},
		{"flaw", "lawn", 2},
		{"naïve", "naive", 1},
		{"same", "same", 0},
	} {
		if got := Distance(tc.a, tc.b); got != tc.want {
			t.Errorf("Distance(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}

func TestScore(t *testing.T) {
	var s Score
	s.Add("The quick\n\nbrown  fox", "The quick brown fox")
	s.Add("lazy dag", "lazy dog")
	if s.Edits != 1 || s.RefLen != 27 || s.Exact != 1 || s.Samples != 2 {
		t.Fatalf("score = %+v", s)
	}
	if got, want := s.CER(), 1.0/27; got != want {
		t.Errorf("CER = %v, want %v", got, want)
	}
}

// Chinese is scored with whitespace removed: a space the recogniser puts
// between two characters (or leaves out before a Latin word) is layout.
func TestScoreNoSpace(t *testing.T) {
	s := Score{Norm: NormalizeNoSpace}
	s.Add("RocketMQ 集群中\n至少有两个 Broker", "RocketMQ集群中至少有两个Broker")
	s.Add("¥ 2,930.72", "¥2,930.72")
	if s.Edits != 0 || s.Exact != 2 || s.RefLen != 31 {
		t.Errorf("score = %+v, want no edits over 31 characters", s)
	}
	var spaced Score
	spaced.Add("集群 中", "集群中")
	if spaced.Edits != 1 {
		t.Errorf("the default normalisation counts the space: %+v", spaced)
	}
}
