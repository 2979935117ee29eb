// Package ocreval measures OCR quality: character error rate against ground
// truth and the loaders for the ground-truth layouts used in this project
// (line images with .gt.txt beside them, pages with a .txt of the same stem,
// word crops listed in labels.txt). It is used by tests, benchmarks and the
// evaluation command, so every number in docs/ comes from one definition.
package ocreval

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"unicode"
)

// Normalize collapses every run of whitespace to one space and trims the
// ends, so layout differences (line breaks, blank lines) are not errors.
func Normalize(s string) string {
	return strings.Join(strings.FieldsFunc(s, unicode.IsSpace), " ")
}

// NormalizeNoSpace removes every whitespace character: the rule for
// Chinese text, where a space between characters is layout, not content
// (the zh-lines and zh-pages READMEs score CER this way).
func NormalizeNoSpace(s string) string {
	return strings.Join(strings.FieldsFunc(s, unicode.IsSpace), "")
}

// Distance is the Levenshtein edit distance between a and b in runes.
func Distance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	if len(ra) < len(rb) {
		ra, rb = rb, ra
	}
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}

// Score accumulates edit distance over many samples; CER is the total
// distance divided by the total reference length (the usual micro-average).
type Score struct {
	// Norm normalises hypothesis and reference before they are compared;
	// nil means Normalize.
	Norm    func(string) string
	Edits   int // summed edit distance
	RefLen  int // summed reference length in runes
	Samples int
	Exact   int // samples recognised without any error
}

// Add scores one hypothesis against its reference after s.Norm.
func (s *Score) Add(hyp, ref string) int {
	norm := s.Norm
	if norm == nil {
		norm = Normalize
	}
	h, r := norm(hyp), norm(ref)
	d := Distance(h, r)
	s.Edits += d
	s.RefLen += len([]rune(r))
	s.Samples++
	if d == 0 {
		s.Exact++
	}
	return d
}

// CER is the character error rate, 0 when nothing was scored.
func (s Score) CER() float64 {
	if s.RefLen == 0 {
		return 0
	}
	return float64(s.Edits) / float64(s.RefLen)
}

// Accuracy is the fraction of samples recognised exactly.
func (s Score) Accuracy() float64 {
	if s.Samples == 0 {
		return 0
	}
	return float64(s.Exact) / float64(s.Samples)
}

func (s Score) String() string {
	return fmt.Sprintf("CER %.2f%% (%d edits / %d chars), exact %d/%d", 100*s.CER(), s.Edits, s.RefLen, s.Exact, s.Samples)
}

// Sample is one image with its ground truth.
type Sample struct {
	Image string // path of the image
	Truth string // reference text
}

// LoadLines walks dir for line images named <stem>.bin.png or <stem>.png
// with the reference in <stem>.gt.txt, in a stable order.
func LoadLines(dir string) ([]Sample, error) {
	var out []Sample
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".gt.txt") {
			return err
		}
		stem := strings.TrimSuffix(p, ".gt.txt")
		for _, img := range []string{stem + ".bin.png", stem + ".png", stem + ".nrm.png"} {
			if _, err := os.Stat(img); err == nil {
				truth, err := os.ReadFile(p)
				if err != nil {
					return err
				}
				out = append(out, Sample{Image: img, Truth: strings.TrimSpace(string(truth))})
				return nil
			}
		}
		return fmt.Errorf("ground truth %s has no image beside it", p)
	})
	if err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no *.gt.txt line samples under %s", dir)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Image < out[j].Image })
	return out, nil
}

// LoadWords reads a labels.txt of "<file> <text>" lines from dir.
func LoadWords(dir string) ([]Sample, error) {
	f, err := os.Open(filepath.Join(dir, "labels.txt"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []Sample
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, text, ok := strings.Cut(strings.TrimSpace(sc.Text()), " ")
		if !ok {
			continue
		}
		out = append(out, Sample{Image: filepath.Join(dir, name), Truth: text})
	}
	return out, sc.Err()
}
