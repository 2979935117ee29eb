package face

import (
	"cmp"
	"context"
	"errors"
	"image"
	"slices"
)

// Pipeline detects faces and embeds them. It is safe for concurrent use
// when its models are.
type Pipeline struct {
	det *Detector
	emb *Embedder
}

// NewPipeline joins a detector and an embedder.
func NewPipeline(det *Detector, emb *Embedder) (*Pipeline, error) {
	if det == nil || emb == nil {
		return nil, errors.New("face: a pipeline needs a detector and an embedder")
	}
	return &Pipeline{det: det, emb: emb}, nil
}

// Dim is the embedding length.
func (p *Pipeline) Dim() int { return p.emb.Dim() }

// Face is a detected face and, when it was asked for, its unit embedding.
type Face struct {
	Detection
	Embedding []float32 `json:"-"`
}

// Analysis is what the pipeline found in one image. Faces are in detector
// order (best score first); at most the detector's faces are kept.
type Analysis struct {
	Width, Height int
	Faces         []Face
	img           *bgrImage // kept only while embeddings may still be asked for
}

// Detect finds the faces of img, at most maxFaces (0: no cap), best first,
// in coordinates relative to img's bounds. The returned Analysis can embed
// them later with Embed.
func (p *Pipeline) Detect(ctx context.Context, img image.Image, maxFaces int) (*Analysis, error) {
	src := toBGR(img)
	dets, err := p.det.Detect(ctx, src)
	if err != nil {
		return nil, err
	}
	if maxFaces > 0 && len(dets) > maxFaces {
		dets = dets[:maxFaces]
	}
	a := &Analysis{Width: src.w, Height: src.h, Faces: make([]Face, len(dets)), img: src}
	for i, d := range dets {
		a.Faces[i] = Face{Detection: clipDetection(d, src.w, src.h)}
	}
	return a, nil
}

// Embed computes the embeddings of faces idx of a (those not yet done).
func (p *Pipeline) Embed(ctx context.Context, a *Analysis, idx ...int) error {
	for _, i := range idx {
		f := &a.Faces[i]
		if f.Embedding != nil {
			continue
		}
		if a.img == nil {
			return errors.New("face: analysis no longer holds its image")
		}
		v, err := p.emb.Embed(ctx, a.img, f.Landmarks)
		if err != nil {
			return err
		}
		f.Embedding = v
	}
	return nil
}

// Largest returns the indexes of a's faces by box area, largest first.
func (a *Analysis) Largest() []int {
	idx := make([]int, len(a.Faces))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(x, y int) int { return cmp.Compare(a.Faces[y].Box.area(), a.Faces[x].Box.area()) })
	return idx
}

// clipDetection clips the box to the image; landmarks stay where the
// detector put them (they may lie just outside a face cut by the border).
func clipDetection(d Detection, w, h int) Detection {
	x0, y0 := max(d.Box.X, 0), max(d.Box.Y, 0)
	x1, y1 := min(d.Box.X+d.Box.Width, float64(w)), min(d.Box.Y+d.Box.Height, float64(h))
	d.Box = Box{X: x0, Y: y0, Width: max(x1-x0, 0), Height: max(y1-y0, 0)}
	return d
}
