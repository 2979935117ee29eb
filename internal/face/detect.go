package face

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/visionserve/visionserve/internal/engine"
)

// Model is a network with its input and output metadata, as onnx.Pool
// provides: the detector's outputs are found by name, and a fixed input
// size is read from the metadata.
type Model interface {
	engine.TensorRunner
	Inputs() []engine.TensorInfo
	Outputs() []engine.TensorInfo
}

// Point is an image position in pixels, [x, y].
type Point [2]float64

// Box is an axis-aligned rectangle in pixels of the image as displayed.
type Box struct {
	X      float64 `json:"x"`
	Y      float64 `json:"y"`
	Width  float64 `json:"width"`
	Height float64 `json:"height"`
}

func (b Box) area() float64 { return max(b.Width, 0) * max(b.Height, 0) }

func iou(a, b Box) float64 {
	w := min(a.X+a.Width, b.X+b.Width) - max(a.X, b.X)
	h := min(a.Y+a.Height, b.Y+b.Height) - max(a.Y, b.Y)
	if w <= 0 || h <= 0 {
		return 0
	}
	inter := w * h
	return inter / (a.area() + b.area() - inter)
}

// Detection is one face found by the detector. Landmarks are, in YuNet's
// order and in image terms: the eye on the image's left, the eye on its
// right, the nose tip, the mouth corner on the left, the mouth corner on
// the right (the subject's right eye comes first).
type Detection struct {
	Box       Box      `json:"box"`
	Landmarks [5]Point `json:"landmarks"`
	Score     float64  `json:"score"`
}

// DetectParams configure face detection. They are JSON-tagged so a model
// package manifest can carry them; decode over DefaultDetectParams.
type DetectParams struct {
	// ScoreThreshold drops candidates scoring below it (YuNet's score is
	// sqrt(cls*obj), in [0,1]).
	ScoreThreshold float64 `json:"score_threshold" yaml:"score_threshold"`
	// NMSThreshold: a candidate overlapping a better one by more than this
	// IoU is a duplicate.
	NMSThreshold float64 `json:"nms_threshold" yaml:"nms_threshold"`
	// TopK caps the candidates that enter NMS, best first.
	TopK int `json:"top_k" yaml:"top_k"`
	// MaxSide is the longer side of the detector input for a model with a
	// dynamic input size: larger images are scaled down to it. YuNet finds
	// faces of about 10 to 300 input pixels, so 640 finds faces down to
	// about 1/60 of the image's longer side.
	MaxSide int `json:"max_side" yaml:"max_side"`
	// MinSide: an image whose longer side is shorter is scaled up to it,
	// so a small crop's face is not below the detector's range.
	MinSide int `json:"min_side" yaml:"min_side"`
	// FillRatio and Pad handle faces that fill the frame (tight crops,
	// passport photos): YuNet, trained on scenes, misses or misplaces a
	// face that touches the image border. When no face is found, or the
	// best face's box covers more than FillRatio of the image or runs past
	// its border, the image is detected again inside a border of Pad times
	// its size on every side and the two passes' faces are merged.
	FillRatio float64 `json:"fill_ratio" yaml:"fill_ratio"`
	Pad       float64 `json:"pad" yaml:"pad"`
}

// DefaultDetectParams are OpenCV zoo's YuNet settings (NMS 0.3, top 5000)
// with this package's sizing and a score threshold of 0.75 instead of 0.6:
// on shared/data/face every real face scores above 0.8, and 0.6 lets
// through textures of a painting behind a portrait (0.63 and 0.69).
func DefaultDetectParams() DetectParams {
	return DetectParams{ScoreThreshold: 0.75, NMSThreshold: 0.3, TopK: 5000, MaxSide: 640, MinSide: 160, FillRatio: 0.25, Pad: 0.5}
}

// Validate reports parameters the detector cannot work with.
func (p DetectParams) Validate() error {
	var errs []error
	check := func(ok bool, format string, args ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf(format, args...))
		}
	}
	check(p.ScoreThreshold > 0 && p.ScoreThreshold < 1, "score_threshold must be in (0,1), got %g", p.ScoreThreshold)
	check(p.NMSThreshold > 0 && p.NMSThreshold <= 1, "nms_threshold must be in (0,1], got %g", p.NMSThreshold)
	check(p.TopK >= 1, "top_k must be at least 1, got %d", p.TopK)
	check(p.MaxSide >= 32 && p.MaxSide <= 4096, "max_side must be in [32,4096], got %d", p.MaxSide)
	check(p.MinSide >= 0 && p.MinSide <= p.MaxSide, "min_side must be in [0,max_side], got %d", p.MinSide)
	check(p.FillRatio > 0 && p.FillRatio <= 1, "fill_ratio must be in (0,1], got %g", p.FillRatio)
	check(p.Pad >= 0 && p.Pad <= 2, "pad must be in [0,2], got %g", p.Pad)
	return errors.Join(errs...)
}

var strides = [3]int{8, 16, 32}

// Detector is YuNet: an anchor-free detector with three output strides,
// each giving per-cell class and objectness scores, a box and 5 landmarks.
// It is safe for concurrent use when its model is.
type Detector struct {
	m Model
	p DetectParams
	// out[k][s] is the index of output k (cls, obj, bbox, kps) at stride s.
	out [4][3]int
	// fixedW, fixedH are the model's input size when it is static.
	fixedW, fixedH int
}

// NewDetector checks that m has YuNet's input and outputs.
func NewDetector(m Model, p DetectParams) (*Detector, error) {
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("face detector: %w", err)
	}
	in := m.Inputs()
	if len(in) != 1 || in[0].DType != engine.FP32 || len(in[0].Shape) != 4 || in[0].Shape[1] != 3 {
		return nil, fmt.Errorf("face detector: want one FP32 input [N,3,H,W], model has %v", in)
	}
	d := &Detector{m: m, p: p}
	if h, w := in[0].Shape[2], in[0].Shape[3]; h > 0 || w > 0 {
		if h%32 != 0 || w%32 != 0 || h <= 0 || w <= 0 {
			return nil, fmt.Errorf("face detector: fixed input %dx%d is not a multiple of 32", w, h)
		}
		d.fixedW, d.fixedH = int(w), int(h)
	}
	names := map[string]int{}
	for i, o := range m.Outputs() {
		names[o.Name] = i
	}
	for k, kind := range [4]string{"cls", "obj", "bbox", "kps"} {
		for s, stride := range strides {
			name := fmt.Sprintf("%s_%d", kind, stride)
			i, ok := names[name]
			if !ok {
				return nil, fmt.Errorf("face detector: model has no output %q (is it YuNet?)", name)
			}
			d.out[k][s] = i
		}
	}
	return d, nil
}

// Detect finds the faces in img, best score first, in img's coordinates.
func (d *Detector) Detect(ctx context.Context, img *bgrImage) ([]Detection, error) {
	if img.w < 1 || img.h < 1 {
		return nil, nil
	}
	faces, err := d.pass(ctx, img, 0)
	if err != nil {
		return nil, err
	}
	if d.p.Pad > 0 && d.fillsFrame(img, faces) {
		pad := int(math.Round(d.p.Pad * float64(max(img.w, img.h))))
		padded, err := d.pass(ctx, img, pad)
		if err != nil {
			return nil, err
		}
		faces = nms(append(padded, faces...), d.p.NMSThreshold)
	}
	return faces, nil
}

// fillsFrame reports whether a second, padded pass is needed.
func (d *Detector) fillsFrame(img *bgrImage, faces []Detection) bool {
	if len(faces) == 0 {
		return true
	}
	b := faces[0].Box
	frame := float64(img.w) * float64(img.h)
	outside := b.X < 0 || b.Y < 0 || b.X+b.Width > float64(img.w) || b.Y+b.Height > float64(img.h)
	return outside || b.area() > d.p.FillRatio*frame
}

// pass runs the detector once on img surrounded by pad black pixels on
// every side, scaled to the input size.
func (d *Detector) pass(ctx context.Context, img *bgrImage, pad int) ([]Detection, error) {
	cw, ch := img.w+2*pad, img.h+2*pad // the padded canvas
	var scale float64
	var inW, inH int
	if d.fixedW > 0 {
		// Letterbox into the fixed input, top-left aligned.
		inW, inH = d.fixedW, d.fixedH
		scale = min(float64(inW)/float64(cw), float64(inH)/float64(ch))
	} else {
		long := float64(max(cw, ch))
		scale = 1
		if long > float64(d.p.MaxSide) {
			scale = float64(d.p.MaxSide) / long
		} else if long < float64(d.p.MinSide) {
			scale = float64(d.p.MinSide) / long
		}
		inW = roundUp32(int(math.Round(float64(cw) * scale)))
		inH = roundUp32(int(math.Round(float64(ch) * scale)))
	}
	rw := max(1, int(math.Round(float64(img.w)*scale)))
	rh := max(1, int(math.Round(float64(img.h)*scale)))
	off := int(math.Round(float64(pad) * scale))
	rw, rh = min(rw, inW-off), min(rh, inH-off)
	small := img.resize(rw, rh)

	// Raw BGR 0-255, CHW, zeros around the image: cv::dnn::blobFromImage
	// with no scaling or mean, as YuNet was trained.
	plane := inW * inH
	data := make([]float32, 3*plane)
	for y := range rh {
		row := small.pix[3*y*rw:]
		base := (y+off)*inW + off
		for x := range rw {
			for c := range 3 {
				data[c*plane+base+x] = float32(row[3*x+c])
			}
		}
	}
	outs, err := d.m.Run(ctx, []engine.Tensor{engine.NewTensor([]int64{1, 3, int64(inH), int64(inW)}, data)})
	if err != nil {
		return nil, err
	}
	cands, err := d.decode(outs, inW, inH)
	if err != nil {
		return nil, err
	}
	// Back to img's coordinates: undo the scale, then the border.
	inv, shift := 1/scale, float64(pad)
	for i := range cands {
		c := &cands[i]
		c.Box = Box{X: c.Box.X*inv - shift, Y: c.Box.Y*inv - shift, Width: c.Box.Width * inv, Height: c.Box.Height * inv}
		for k := range c.Landmarks {
			c.Landmarks[k] = Point{c.Landmarks[k][0]*inv - shift, c.Landmarks[k][1]*inv - shift}
		}
	}
	return nms(cands, d.p.NMSThreshold), nil
}

func roundUp32(n int) int { return max(32, (n+31)/32*32) }

// decode turns YuNet's per-stride outputs into candidates above the score
// threshold, in input pixels, following OpenCV's
// FaceDetectorYNImpl::postProcess.
func (d *Detector) decode(outs []engine.Tensor, inW, inH int) ([]Detection, error) {
	var cands []Detection
	for s, stride := range strides {
		cols, rows := inW/stride, inH/stride
		n := cols * rows
		var t [4][]float32
		for k, width := range [4]int{1, 1, 4, 10} {
			idx := d.out[k][s]
			if idx >= len(outs) {
				return nil, fmt.Errorf("face detector: model returned %d outputs", len(outs))
			}
			v, err := engine.TensorData[float32](outs[idx])
			if err != nil {
				return nil, fmt.Errorf("face detector: output %d: %w", idx, err)
			}
			if len(v) != n*width {
				return nil, fmt.Errorf("face detector: stride %d output has %d values, want %d for a %dx%d input", stride, len(v), n*width, inW, inH)
			}
			t[k] = v
		}
		cls, obj, bbox, kps := t[0], t[1], t[2], t[3]
		st := float64(stride)
		for r := range rows {
			for c := range cols {
				i := r*cols + c
				score := math.Sqrt(clamp01(float64(cls[i])) * clamp01(float64(obj[i])))
				if score < d.p.ScoreThreshold {
					continue
				}
				b := bbox[4*i : 4*i+4]
				cx, cy := (float64(c)+float64(b[0]))*st, (float64(r)+float64(b[1]))*st
				w, h := math.Exp(float64(b[2]))*st, math.Exp(float64(b[3]))*st
				det := Detection{Box: Box{X: cx - w/2, Y: cy - h/2, Width: w, Height: h}, Score: score}
				k := kps[10*i : 10*i+10]
				for j := range 5 {
					det.Landmarks[j] = Point{(float64(k[2*j]) + float64(c)) * st, (float64(k[2*j+1]) + float64(r)) * st}
				}
				cands = append(cands, det)
			}
		}
	}
	slices.SortStableFunc(cands, func(a, b Detection) int { return cmp.Compare(b.Score, a.Score) })
	if len(cands) > d.p.TopK {
		cands = cands[:d.p.TopK]
	}
	return cands, nil
}

func clamp01(v float64) float64 { return min(max(v, 0), 1) }

// nms keeps the best of every group of candidates overlapping by more
// than thresh, best score first (cv::dnn::NMSBoxes).
func nms(cands []Detection, thresh float64) []Detection {
	slices.SortStableFunc(cands, func(a, b Detection) int { return cmp.Compare(b.Score, a.Score) })
	keep := cands[:0:0]
	for _, c := range cands {
		dup := false
		for _, k := range keep {
			if iou(c.Box, k.Box) > thresh {
				dup = true
				break
			}
		}
		if !dup {
			keep = append(keep, c)
		}
	}
	return keep
}
