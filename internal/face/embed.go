package face

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/visionserve/visionserve/internal/engine"
)

// AlignSize is the side of the aligned face crop the embedder reads.
const AlignSize = 112

// arcFaceTemplate is where the 5 landmarks (in Detection order) sit in a
// 112x112 crop of the ArcFace / InsightFace training data (faces_emore),
// which MobileFaceNet was trained on.
var arcFaceTemplate = [5]Point{
	{38.2946, 51.6963}, {73.5318, 51.5014}, {56.0252, 71.7366}, {41.5493, 92.3655}, {70.7299, 92.2041},
}

// similarity is the map p -> a*p + b on the complex plane: a rotation
// with uniform scale (a) and a translation (b). No reflection.
type similarity struct{ a, b complex128 }

// estimateSimilarity returns the similarity that carries src onto dst with
// the least squared error (Umeyama's estimate without reflection; in 2-D it
// has this closed form over complex numbers).
func estimateSimilarity(src, dst [5]Point) (similarity, error) {
	var ms, md complex128
	for i := range src {
		ms += complex(src[i][0], src[i][1])
		md += complex(dst[i][0], dst[i][1])
	}
	n := complex(float64(len(src)), 0)
	ms, md = ms/n, md/n
	var num complex128
	var den float64
	for i := range src {
		p := complex(src[i][0], src[i][1]) - ms
		q := complex(dst[i][0], dst[i][1]) - md
		num += complex(real(p), -imag(p)) * q
		den += real(p)*real(p) + imag(p)*imag(p)
	}
	if den < 1e-9 || !isFinite(real(num)) || !isFinite(imag(num)) || num == 0 {
		return similarity{}, errors.New("face: degenerate landmarks")
	}
	a := num / complex(den, 0)
	return similarity{a: a, b: md - a*ms}, nil
}

func isFinite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

func (s similarity) apply(p Point) Point {
	q := s.a*complex(p[0], p[1]) + s.b
	return Point{real(q), imag(q)}
}

func (s similarity) inverse() similarity {
	ai := 1 / s.a
	return similarity{a: ai, b: -s.b * ai}
}

// align warps the face with the given landmarks onto the 112x112 ArcFace
// template, as InsightFace's norm_crop does (estimate image -> template,
// warpAffine with bilinear sampling and a black border).
func align(img *bgrImage, lm [5]Point) (*bgrImage, error) {
	fwd, err := estimateSimilarity(lm, arcFaceTemplate)
	if err != nil {
		return nil, err
	}
	inv := fwd.inverse()
	out := newBGR(AlignSize, AlignSize)
	for v := range AlignSize {
		for u := range AlignSize {
			p := inv.apply(Point{float64(u), float64(v)})
			i := 3 * (v*AlignSize + u)
			for c := range 3 {
				out.pix[i+c] = clampByte(img.bilinear(p[0], p[1], c, false))
			}
		}
	}
	return out, nil
}

// EmbedParams configure the embedder.
type EmbedParams struct {
	// Mean and Std normalise value/255 per R, G, B channel (the
	// embedder's torchvision transform).
	Mean [3]float64 `json:"mean"`
	Std  [3]float64 `json:"std"`
	// Flip adds the embedding of the mirrored crop before normalising
	// (the model repository's own evaluation does); it doubles the cost.
	Flip bool `json:"flip"`
}

// DefaultEmbedParams are MobileFaceNet's (foamliu) ImageNet statistics.
func DefaultEmbedParams() EmbedParams {
	return EmbedParams{Mean: [3]float64{0.485, 0.456, 0.406}, Std: [3]float64{0.229, 0.224, 0.225}}
}

// Validate reports parameters the embedder cannot use.
func (p EmbedParams) Validate() error {
	for i, s := range p.Std {
		if s <= 0 {
			return fmt.Errorf("std[%d] must be positive, got %g", i, s)
		}
	}
	return nil
}

// Embedder turns an aligned face into an L2-normalised vector. It is safe
// for concurrent use when its model is.
type Embedder struct {
	m   Model
	p   EmbedParams
	dim int
}

// NewEmbedder checks that m takes one [1,3,112,112] FP32 image and returns
// one [1,D] FP32 vector.
func NewEmbedder(m Model, p EmbedParams) (*Embedder, error) {
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("face embedder: %w", err)
	}
	in, out := m.Inputs(), m.Outputs()
	if len(in) != 1 || in[0].DType != engine.FP32 || len(in[0].Shape) != 4 ||
		in[0].Shape[1] != 3 || in[0].Shape[2] != AlignSize || in[0].Shape[3] != AlignSize {
		return nil, fmt.Errorf("face embedder: want one FP32 input [1,3,%d,%d], model has %v", AlignSize, AlignSize, in)
	}
	if len(out) != 1 || out[0].DType != engine.FP32 || len(out[0].Shape) != 2 || out[0].Shape[1] < 1 {
		return nil, fmt.Errorf("face embedder: want one FP32 output [1,D], model has %v", out)
	}
	return &Embedder{m: m, p: p, dim: int(out[0].Shape[1])}, nil
}

// Dim is the embedding's length.
func (e *Embedder) Dim() int { return e.dim }

// Embed aligns the face with landmarks lm in img and returns its unit
// embedding.
func (e *Embedder) Embed(ctx context.Context, img *bgrImage, lm [5]Point) ([]float32, error) {
	crop, err := align(img, lm)
	if err != nil {
		return nil, err
	}
	v, err := e.run(ctx, crop, false)
	if err != nil {
		return nil, err
	}
	if e.p.Flip {
		f, err := e.run(ctx, crop, true)
		if err != nil {
			return nil, err
		}
		for i := range v {
			v[i] += f[i]
		}
	}
	if !Normalize(v) {
		return nil, errors.New("face embedder: model returned a zero or non-finite embedding")
	}
	return v, nil
}

func (e *Embedder) run(ctx context.Context, crop *bgrImage, mirror bool) ([]float32, error) {
	const plane = AlignSize * AlignSize
	data := make([]float32, 3*plane)
	var scale, shift [3]float32
	for c := range 3 {
		scale[c] = float32(1 / (255 * e.p.Std[c]))
		shift[c] = float32(e.p.Mean[c] / e.p.Std[c])
	}
	for y := range AlignSize {
		for x := range AlignSize {
			sx := x
			if mirror {
				sx = AlignSize - 1 - x
			}
			px := crop.pix[3*(y*AlignSize+sx):]
			o := y*AlignSize + x
			// BGR crop -> RGB planes.
			for c := range 3 {
				data[c*plane+o] = float32(px[2-c])*scale[c] - shift[c]
			}
		}
	}
	outs, err := e.m.Run(ctx, []engine.Tensor{engine.NewTensor([]int64{1, 3, AlignSize, AlignSize}, data)})
	if err != nil {
		return nil, err
	}
	if len(outs) != 1 {
		return nil, fmt.Errorf("face embedder: model returned %d outputs", len(outs))
	}
	v, err := engine.TensorData[float32](outs[0])
	if err != nil {
		return nil, fmt.Errorf("face embedder: %w", err)
	}
	if len(v) != e.dim {
		return nil, fmt.Errorf("face embedder: output has %d values, want %d", len(v), e.dim)
	}
	return v, nil
}

// Normalize scales v to unit length in place; it reports false for a zero
// or non-finite vector, which it leaves alone.
func Normalize(v []float32) bool {
	var s float64
	for _, x := range v {
		s += float64(x) * float64(x)
	}
	if s == 0 || !isFinite(s) {
		return false
	}
	inv := float32(1 / math.Sqrt(s))
	for i := range v {
		v[i] *= inv
	}
	return true
}

// Cosine is the cosine similarity of two unit vectors (their dot product),
// clamped to [-1, 1].
func Cosine(a, b []float32) float64 {
	var s float64
	for i := range a {
		s += float64(a[i]) * float64(b[i])
	}
	return min(max(s, -1), 1)
}
