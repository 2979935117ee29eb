package face

import (
	"cmp"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/visionserve/visionserve/internal/imageio"
)

// This file is the evaluation harness behind the calibrated default
// threshold and the accuracy figures in docs/faces.md. It reads a labelled
// directory (labels.csv: image path, identities separated by ";"), embeds
// every image's faces with a Pipeline and scores verification (every pair
// of single-face images) and closed-set identification (one enrolled image
// per identity, every other image identified against them).

// Sample is one labelled image.
type Sample struct {
	Path       string   // relative to the set's directory
	Identities []string // one per face the image shows
}

// LoadLabels reads dir/labels.csv. Its first row is a header; the first
// column is the image path, the second the identities (";"-separated);
// further columns are notes.
func LoadLabels(dir string) ([]Sample, error) {
	f, err := os.Open(filepath.Join(dir, "labels.csv"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r := csv.NewReader(f)
	r.FieldsPerRecord = -1
	var out []Sample
	for first := true; ; first = false {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s/labels.csv: %w", dir, err)
		}
		if first {
			continue
		}
		if len(rec) < 2 || rec[0] == "" || rec[1] == "" {
			return nil, fmt.Errorf("%s/labels.csv: row %v needs an image and identities", dir, rec)
		}
		out = append(out, Sample{Path: rec[0], Identities: strings.Split(rec[1], ";")})
	}
	return out, nil
}

// Pair is one verification comparison.
type Pair struct {
	Same       bool
	Similarity float64
}

// AUC is the area under the ROC curve of pairs: the probability that a
// random genuine pair scores above a random impostor pair (ties count
// half). It is NaN without both kinds of pair.
func AUC(pairs []Pair) float64 {
	s := slices.Clone(pairs)
	slices.SortFunc(s, func(a, b Pair) int { return cmp.Compare(a.Similarity, b.Similarity) })
	var pos, neg float64
	var rankSum float64
	for i := 0; i < len(s); {
		j := i
		for j < len(s) && s[j].Similarity == s[i].Similarity {
			j++
		}
		rank := float64(i+j+1) / 2 // mean 1-based rank of the tie group
		for k := i; k < j; k++ {
			if s[k].Same {
				rankSum += rank
				pos++
			} else {
				neg++
			}
		}
		i = j
	}
	if pos == 0 || neg == 0 {
		return math.NaN()
	}
	return (rankSum - pos*(pos+1)/2) / (pos * neg)
}

// Rates are the verification error rates at a threshold: a pair matches
// when its similarity is at least Threshold.
type Rates struct {
	Threshold float64
	FAR       float64 // impostor pairs accepted / impostor pairs
	FRR       float64 // genuine pairs rejected / genuine pairs
	Accuracy  float64 // pairs decided right / pairs
	Genuine   int
	Impostor  int
}

// RatesAt computes the rates of pairs at threshold t.
func RatesAt(pairs []Pair, t float64) Rates {
	r := Rates{Threshold: t}
	var fa, fr int
	for _, p := range pairs {
		match := p.Similarity >= t
		if p.Same {
			r.Genuine++
			if !match {
				fr++
			}
		} else {
			r.Impostor++
			if match {
				fa++
			}
		}
	}
	if r.Impostor > 0 {
		r.FAR = float64(fa) / float64(r.Impostor)
	}
	if r.Genuine > 0 {
		r.FRR = float64(fr) / float64(r.Genuine)
	}
	if n := r.Genuine + r.Impostor; n > 0 {
		r.Accuracy = float64(n-fa-fr) / float64(n)
	}
	return r
}

// EqualError returns the rates at the threshold (one of the pairs'
// similarities) where FAR and FRR are closest, preferring the lower FAR.
func EqualError(pairs []Pair) Rates {
	s := slices.Clone(pairs)
	slices.SortFunc(s, func(a, b Pair) int { return cmp.Compare(a.Similarity, b.Similarity) })
	var ng, ni int
	for _, p := range s {
		if p.Same {
			ng++
		} else {
			ni++
		}
	}
	best, gap := Rates{FAR: 1, FRR: 1}, math.Inf(1)
	// Sweep the threshold up through the distinct similarities: below
	// s[i] lie fr genuine and ta impostor pairs.
	var fr, ta int
	for i := 0; i < len(s); {
		t := s[i].Similarity
		r := Rates{Threshold: t, Genuine: ng, Impostor: ni}
		if ni > 0 {
			r.FAR = float64(ni-ta) / float64(ni)
		}
		if ng > 0 {
			r.FRR = float64(fr) / float64(ng)
		}
		r.Accuracy = float64(ta+ng-fr) / float64(ng+ni)
		if g := math.Abs(r.FAR - r.FRR); g < gap || (g == gap && r.FAR < best.FAR) {
			best, gap = r, g
		}
		for ; i < len(s) && s[i].Similarity == t; i++ {
			if s[i].Same {
				fr++
			} else {
				ta++
			}
		}
	}
	return best
}

// CalibrateThreshold returns the smallest threshold on a grid of step
// (from -1 to 1) at which pairs' false-accept rate is at most maxFAR: the
// rule behind DefaultThreshold (maxFAR 0.001, step 0.05).
func CalibrateThreshold(pairs []Pair, maxFAR, step float64) float64 {
	n := int(math.Round(2 / step))
	for i := 0; i <= n; i++ {
		t := math.Round((-1+float64(i)*step)*1e6) / 1e6
		if RatesAt(pairs, t).FAR <= maxFAR {
			return t
		}
	}
	return 1
}

// EvalResult summarises one labelled set.
type EvalResult struct {
	Name string
	// Images is the number of labelled images; Faces the labelled faces
	// and Detected those the pipeline found (at most one per label).
	Images, Faces, Detected int
	Pairs                   []Pair
	AUC                     float64
	// Identification: one image per identity enrolled, the labelled
	// faces of every other image identified against the gallery.
	Enrolled, Probes, Top1Correct int
}

// Top1 is the identification accuracy: probes whose best match is right.
func (r EvalResult) Top1() float64 {
	if r.Probes == 0 {
		return math.NaN()
	}
	return float64(r.Top1Correct) / float64(r.Probes)
}

// Evaluate runs the pipeline over the labelled set in dir.
//
// Each image's labelled faces are its k largest detected faces (k = number
// of identities on its label). Verification pairs every two single-face
// images. Identification enrolls the first single-face image of each
// identity and identifies each labelled face of the other images by its
// most similar enrolled identity; for an image with several faces the
// predictions and labels are matched as multisets, since labels do not say
// which face is whose. Identities never shown alone are not enrolled and
// their faces not scored.
func Evaluate(ctx context.Context, p *Pipeline, name, dir string) (EvalResult, error) {
	samples, err := LoadLabels(dir)
	if err != nil {
		return EvalResult{}, err
	}
	res := EvalResult{Name: name, Images: len(samples)}
	embs := make([][][]float32, len(samples)) // per sample, its labelled faces' embeddings
	for i, s := range samples {
		res.Faces += len(s.Identities)
		a, err := analyzeFile(ctx, p, filepath.Join(dir, s.Path))
		if err != nil {
			return res, fmt.Errorf("%s: %w", s.Path, err)
		}
		order := a.Largest()
		k := min(len(order), len(s.Identities))
		if err := p.Embed(ctx, a, order[:k]...); err != nil {
			return res, fmt.Errorf("%s: %w", s.Path, err)
		}
		for _, j := range order[:k] {
			embs[i] = append(embs[i], a.Faces[j].Embedding)
		}
		res.Detected += k
	}

	// Verification over single-face images with a face found.
	var single []int
	for i, s := range samples {
		if len(s.Identities) == 1 && len(embs[i]) == 1 {
			single = append(single, i)
		}
	}
	for x := 0; x < len(single); x++ {
		for y := x + 1; y < len(single); y++ {
			i, j := single[x], single[y]
			res.Pairs = append(res.Pairs, Pair{
				Same:       samples[i].Identities[0] == samples[j].Identities[0],
				Similarity: Cosine(embs[i][0], embs[j][0]),
			})
		}
	}
	res.AUC = AUC(res.Pairs)

	// Identification.
	enrolled := map[string][]float32{}
	isEnroll := map[int]bool{}
	for _, i := range single {
		id := samples[i].Identities[0]
		if _, ok := enrolled[id]; !ok {
			enrolled[id] = embs[i][0]
			isEnroll[i] = true
		}
	}
	res.Enrolled = len(enrolled)
	for i, s := range samples {
		if isEnroll[i] {
			continue
		}
		want := map[string]int{}
		for _, id := range s.Identities {
			if _, ok := enrolled[id]; ok {
				want[id]++
				res.Probes++
			}
		}
		for _, e := range embs[i] {
			best, bestSim := "", math.Inf(-1)
			for id, g := range enrolled {
				if sim := Cosine(e, g); sim > bestSim {
					best, bestSim = id, sim
				}
			}
			if want[best] > 0 {
				want[best]--
				res.Top1Correct++
			}
		}
	}
	return res, nil
}

func analyzeFile(ctx context.Context, p *Pipeline, path string) (*Analysis, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	doc, err := imageio.Open(data, "", imageio.DefaultLimits())
	if err != nil {
		return nil, err
	}
	img, err := doc.Decode(ctx, 0)
	if err != nil {
		return nil, err
	}
	return p.Detect(ctx, img, 0)
}
