package ocreval

import (
	"slices"
	"strings"
	"testing"
)

func TestAlignWords(t *testing.T) {
	for _, tc := range []struct {
		hyp, ref string
		want     []bool
	}{
		{"the quick brown fox", "the quick brown fox", []bool{true, true, true, true}},
		{"the quikc brown fox", "the quick brown fox", []bool{true, false, true, true}},
		{"the brown fox", "the quick brown fox", []bool{true, true, true}},       // deletion
		{"the very quick fox", "the quick fox", []bool{true, false, true, true}}, // insertion
		{"fox the", "the fox", []bool{false, false}},                             // swapped: one right at most
		{"", "the fox", []bool{}},
	} {
		got := AlignWords(strings.Fields(tc.hyp), strings.Fields(tc.ref))
		if tc.hyp == "fox the" {
			// Either alignment is minimal; exactly one word can match.
			if n := count(got); n > 1 {
				t.Errorf("%q vs %q: %v", tc.hyp, tc.ref, got)
			}
			continue
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("AlignWords(%q, %q) = %v, want %v", tc.hyp, tc.ref, got, tc.want)
		}
	}
}

func count(b []bool) int {
	n := 0
	for _, v := range b {
		if v {
			n++
		}
	}
	return n
}
