package ppocr

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"image"
	"math"
	"slices"
	"strings"

	"github.com/visionserve/visionserve/internal/engine"
	"github.com/visionserve/visionserve/internal/ocr"
)

// Models are the networks and dictionary a Pipeline runs. Each runner takes
// one FP32 NCHW image batch and returns one FP32 tensor, in the layout of
// the PaddleOCR models listed in shared/models/SOURCES.md. A Pipeline used
// by several goroutines needs runners that are safe for concurrent use,
// such as onnx.Pool.
type Models struct {
	Det engine.TensorRunner // DB detector: [N,3,H,W] -> [N,1,H,W] probabilities
	Cls engine.TensorRunner // optional 0/180° classifier: [N,3,48,W] -> [N,2]
	Rec engine.TensorRunner // CTC recogniser: [N,3,32,W] -> [N,W/4,classes]; optional for hybrid-only use
	// Dict is the recogniser's character list (LoadDict).
	Dict []string
}

// Pipeline is PP-OCR: DB text detection, optional 0/180° line orientation,
// and CTC recognition (or, in hybrid mode, a TextRecognizer per line).
// Its methods are safe for concurrent use when its runners are.
type Pipeline struct {
	det, cls, rec engine.TensorRunner
	classes       []string
	p             Params
}

// New checks params and models and returns a pipeline.
func New(m Models, p Params) (*Pipeline, error) {
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("ppocr: %w", err)
	}
	if m.Det == nil {
		return nil, errors.New("ppocr: a detector is required")
	}
	if m.Rec != nil && len(m.Dict) == 0 {
		return nil, errors.New("ppocr: the recogniser needs a character dictionary")
	}
	pl := &Pipeline{det: m.Det, rec: m.Rec, p: p}
	if p.Cls.Enabled {
		pl.cls = m.Cls
	}
	if m.Rec != nil {
		pl.classes = ctcClasses(m.Dict, p.Rec.UseSpaceChar)
	}
	return pl, nil
}

// Detection is one detected text box.
type Detection struct {
	// Box corners are in the input image's coordinates, top-left,
	// top-right, bottom-right, bottom-left of the box as detected (before
	// any orientation decision).
	Box   ocr.Quad
	Score float64 // mean text probability inside the box, in [0,1]
}

// Detect finds text boxes in img, in reading order.
func (pl *Pipeline) Detect(ctx context.Context, img image.Image) ([]Detection, error) {
	src := toRGB(img)
	boxes, err := pl.detect(ctx, src)
	if err != nil {
		return nil, err
	}
	off := origin(img)
	out := make([]Detection, len(boxes))
	for i, b := range boxes {
		out[i] = Detection{Box: toQuad(b.q, off), Score: b.score}
	}
	return out, nil
}

// Recognize reads every text line of img: detection, orientation, CTC
// recognition. Lines come in reading order with boxes in img's coordinates,
// the first corner where the text starts; lines below Params.DropScore and
// empty ones are left out. Review tiers are left for the caller to set.
func (pl *Pipeline) Recognize(ctx context.Context, img image.Image) ([]ocr.Line, error) {
	if pl.rec == nil {
		return nil, errors.New("ppocr: pipeline has no recogniser; use RecognizeHybrid")
	}
	return pl.run(ctx, img, nil)
}

// RecognizeHybrid detects and orients lines like Recognize, then has tr read
// each upright grayscale line crop in engine.SegLine mode. tr is used only
// for the duration of the call, by this goroutine.
func (pl *Pipeline) RecognizeHybrid(ctx context.Context, img image.Image, tr engine.TextRecognizer) ([]ocr.Line, error) {
	if tr == nil {
		return nil, errors.New("ppocr: RecognizeHybrid needs a TextRecognizer")
	}
	return pl.run(ctx, img, tr)
}

// RecognizeLine reads img as one upright text line (or word) with the CTC
// recogniser alone: no detection, no orientation, no DropScore. The line
// box is the whole image.
func (pl *Pipeline) RecognizeLine(ctx context.Context, img image.Image) (ocr.Line, error) {
	if pl.rec == nil {
		return ocr.Line{}, errors.New("ppocr: pipeline has no recogniser")
	}
	src := toRGB(img)
	if src.w == 0 || src.h == 0 {
		return ocr.Line{}, nil
	}
	c, ok := wholeCrop(src)
	if !ok {
		return ocr.Line{}, nil
	}
	res, err := pl.recognize(ctx, []crop{c})
	if err != nil {
		return ocr.Line{}, err
	}
	line, _ := ctcLine(c, res[0], origin(img))
	return line, nil
}

// run reads every detected line. Each box may be read more than one way
// (readings): as cropped and oriented, unturned when the classifier turned
// it over, and as a column of vertical text when it is tall. Every reading
// is recognised and the most confident one is the line; a new way of
// reading a box is one more reading.
func (pl *Pipeline) run(ctx context.Context, img image.Image, tr engine.TextRecognizer) ([]ocr.Line, error) {
	src := toRGB(img)
	boxes, err := pl.detect(ctx, src)
	if err != nil {
		return nil, err
	}
	readings, err := pl.readings(ctx, src, boxes)
	if err != nil {
		return nil, err
	}
	var flat []crop
	for _, rs := range readings {
		flat = append(flat, rs...)
	}
	off := origin(img)
	read := make([]ocr.Line, len(flat))
	ok := make([]bool, len(flat))
	if tr != nil {
		for i, c := range flat {
			// Read a padded copy; report the detected box.
			r := c
			if pl.p.HybridPad > 0 && c.stack == nil {
				if pc, ok := cropQuad(src, c.q.grow(pl.p.HybridPad*c.q.height())); ok {
					r = pc
				}
			}
			if read[i], ok[i], err = hybridLine(ctx, tr, r, c, off); err != nil {
				return nil, err
			}
		}
	} else {
		res, err := pl.recognize(ctx, flat)
		if err != nil {
			return nil, err
		}
		for i, c := range flat {
			read[i], ok[i] = ctcLine(c, res[i], off)
		}
	}
	var lines []ocr.Line
	k := 0
	for _, rs := range readings {
		best := -1
		for i := k; i < k+len(rs); i++ {
			if ok[i] && read[i].Text != "" && (best < 0 || read[i].Confidence > read[best].Confidence) {
				best = i
			}
		}
		k += len(rs)
		if best >= 0 && read[best].Confidence >= pl.p.DropScore {
			lines = append(lines, read[best])
		}
	}
	if cjkColumns(lines) {
		columnOrder(lines, pl.p.SameLine)
	}
	return lines, nil
}

// readings crops each detected box and orients the crops, returning per box
// the crops to read, the classifier's choice first: a crop the classifier
// turned over is also read as it was, since the classifier misjudges some
// upright lines (PaddleOCR trusts it); a tall box is also read as vertical
// text (stackColumn).
func (pl *Pipeline) readings(ctx context.Context, src *rgbImage, boxes []detBox) ([][]crop, error) {
	crops := make([]crop, 0, len(boxes))
	tall := make([]bool, 0, len(boxes))
	cols := make([]quad, 0, len(boxes))
	for _, b := range boxes {
		if c, isTall, ok := pl.makeCrop(src, b.q); ok {
			crops, tall, cols = append(crops, c), append(tall, isTall), append(cols, b.q)
		}
	}
	flipped := make([]bool, len(crops))
	if pl.cls != nil {
		var err error
		if flipped, err = pl.classify(ctx, crops); err != nil {
			return nil, err
		}
	}
	out := make([][]crop, len(crops))
	for i, c := range crops {
		out[i] = []crop{c}
		if flipped[i] {
			out[i] = append(out[i], c.turned())
		}
		if tall[i] {
			if v, ok := stackColumn(src, cols[i]); ok {
				out[i] = append(out[i], v)
			}
		}
	}
	return out, nil
}

// detSize is the detector input size for a w×h image (PaddleOCR's
// DetResizeForTest, resize_image_type0).
func detSize(w, h int, p DetParams) (int, int) {
	ratio := 1.0
	limit := float64(p.LimitSideLen)
	switch p.LimitType {
	case "min":
		if s := float64(min(w, h)); s < limit {
			ratio = limit / s
		}
	default:
		if s := float64(max(w, h)); s > limit {
			ratio = limit / s
		}
	}
	if long := float64(max(w, h)) * ratio; long > float64(p.MaxSideLen) {
		ratio *= float64(p.MaxSideLen) / long
	}
	round32 := func(n float64) int {
		// Python's round() rounds half to even.
		return max(int(math.RoundToEven(float64(int(n))/32))*32, 32)
	}
	return round32(float64(w) * ratio), round32(float64(h) * ratio)
}

func (pl *Pipeline) detect(ctx context.Context, src *rgbImage) ([]detBox, error) {
	if src.w == 0 || src.h == 0 {
		return nil, nil
	}
	rw, rh := detSize(src.w, src.h, pl.p.Det)
	data := make([]float32, 3*rw*rh)
	src.resizeInto(data, rw, rw, rh, norm{bgr: pl.p.BGR, mean: pl.p.Det.Mean, std: pl.p.Det.Std})
	out, err := pl.det.Run(ctx, []engine.Tensor{engine.NewTensor([]int64{1, 3, int64(rh), int64(rw)}, data)})
	if err != nil {
		return nil, fmt.Errorf("ppocr: detector: %w", err)
	}
	pred, err := single(out, []int64{1, 1, int64(rh), int64(rw)})
	if err != nil {
		return nil, fmt.Errorf("ppocr: detector: %w", err)
	}
	boxes := dbBoxes(pred, rw, rh, src.w, src.h, pl.p.Det)
	readingOrder(boxes, func(b detBox) quad { return b.q }, pl.p.SameLine)
	return boxes, nil
}

// single checks that a model returned one FP32 tensor of the given shape
// (-1 matches any size) and returns its data.
func single(out []engine.Tensor, shape []int64) ([]float32, error) {
	if len(out) != 1 {
		return nil, fmt.Errorf("model returned %d outputs, want 1", len(out))
	}
	t := out[0]
	ok := len(t.Shape) == len(shape)
	for i := 0; ok && i < len(shape); i++ {
		ok = shape[i] < 0 || t.Shape[i] == shape[i]
	}
	if !ok {
		return nil, fmt.Errorf("model returned shape %v, want %v", t.Shape, shape)
	}
	data, err := engine.TensorData[float32](t)
	if err != nil {
		return nil, err
	}
	if int64(len(data)) != t.Elements() {
		return nil, fmt.Errorf("model returned %d values for shape %v", len(data), t.Shape)
	}
	return data, nil
}

// crop is a text box cut out of the input and made upright.
type crop struct {
	q     quad       // the box in input coordinates, first corner where the crop's top-left is
	img   *rgbImage  // the upright crop
	toSrc homography // crop pixel -> input pixel
	// vertical: the box runs down (or up) the input, TallRatio times
	// taller than wide.
	vertical bool
	// stack is set for a column of vertical text laid out as a row
	// (stackColumn): toSrc then maps the column's pixels, and stack maps
	// the row's x to the column's y.
	stack *column
}

// makeCrop warps the box to an upright rectangle sized by its longer
// opposite sides (PaddleOCR's get_rotate_crop_image), turned 90°
// counter-clockwise when it is TallRatio times taller than wide (tall).
func (pl *Pipeline) makeCrop(src *rgbImage, q quad) (c crop, tall, ok bool) {
	tall = float64(int(q.height())) >= pl.p.TallRatio*float64(int(q.width())) && int(q.width()) > 0
	if tall {
		q = q.rotateCCW()
	}
	c, ok = cropQuad(src, q)
	c.vertical = tall
	return c, tall, ok
}

func cropQuad(src *rgbImage, q quad) (crop, bool) {
	w, h := int(q.width()), int(q.height())
	if w < 1 || h < 1 {
		return crop{}, false
	}
	toSrc, ok := perspective(cropFrame(float64(w), float64(h)), q)
	if !ok {
		return crop{}, false
	}
	return crop{q: q, img: src.warp(toSrc, w, h), toSrc: toSrc}, true
}

func wholeCrop(src *rgbImage) (crop, bool) {
	w, h := float64(src.w), float64(src.h)
	q := quad(cropFrame(w, h))
	toSrc, ok := perspective(cropFrame(w, h), q)
	return crop{q: q, img: src, toSrc: toSrc}, ok
}

// turned returns a copy of the crop turned upside down.
func (c crop) turned() crop {
	t := c
	t.img = &rgbImage{w: c.img.w, h: c.img.h, pix: slices.Clone(c.img.pix)}
	t.flip()
	return t
}

// flip turns the crop upside down, keeping q and toSrc in step.
func (c *crop) flip() {
	c.q = c.q.rotate180()
	c.img.rotate180()
	if h, ok := perspective(cropFrame(float64(c.img.w), float64(c.img.h)), c.q); ok {
		c.toSrc = h
	}
}

// byAspect returns crop indices sorted by width/height, so each batch pads
// its crops to similar widths (PaddleOCR batches the same way).
func byAspect(crops []crop) []int {
	idx := make([]int, len(crops))
	for i := range idx {
		idx[i] = i
	}
	ratio := func(c crop) float64 { return float64(c.img.w) / float64(c.img.h) }
	slices.SortStableFunc(idx, func(a, b int) int { return cmp.Compare(ratio(crops[a]), ratio(crops[b])) })
	return idx
}

// halfNorm is the classifier's and recogniser's normalisation:
// (value/255 - 0.5) / 0.5 on every channel.
func (pl *Pipeline) halfNorm() norm {
	half := [3]float64{0.5, 0.5, 0.5}
	return norm{bgr: pl.p.BGR, mean: half, std: half}
}

// classify turns over the crops the classifier reads as upside down and
// reports which.
func (pl *Pipeline) classify(ctx context.Context, crops []crop) ([]bool, error) {
	cp := pl.p.Cls
	flipped := make([]bool, len(crops))
	idx := byAspect(crops)
	for len(idx) > 0 {
		batch := idx[:min(cp.Batch, len(idx))]
		idx = idx[len(batch):]
		plane := 3 * cp.Height * cp.Width
		data := make([]float32, len(batch)*plane)
		for i, ci := range batch {
			c := crops[ci]
			rw := min(cp.Width, int(math.Ceil(float64(cp.Height)*float64(c.img.w)/float64(c.img.h))))
			c.img.resizeInto(data[i*plane:], cp.Width, rw, cp.Height, pl.halfNorm())
		}
		out, err := pl.cls.Run(ctx, []engine.Tensor{engine.NewTensor([]int64{int64(len(batch)), 3, int64(cp.Height), int64(cp.Width)}, data)})
		if err != nil {
			return nil, fmt.Errorf("ppocr: classifier: %w", err)
		}
		probs, err := single(out, []int64{int64(len(batch)), 2})
		if err != nil {
			return nil, fmt.Errorf("ppocr: classifier: %w", err)
		}
		for i, ci := range batch {
			if p180 := probs[2*i+1]; p180 > probs[2*i] && float64(p180) > cp.Thresh {
				crops[ci].flip()
				flipped[ci] = true
			}
		}
	}
	return flipped, nil
}

// recResult is the decoded recogniser output for one crop.
type recResult struct {
	chars []ctcChar
	valid float64 // time steps covering the crop rather than padding
}

// recognize runs CTC recognition on crops in batches of similar aspect.
// A batch is as wide as Height times its widest aspect (at least Width);
// each crop is scaled to Height and padded with zeros on the right.
func (pl *Pipeline) recognize(ctx context.Context, crops []crop) ([]recResult, error) {
	rp := pl.p.Rec
	res := make([]recResult, len(crops))
	idx := byAspect(crops)
	for len(idx) > 0 {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		batch := idx[:min(rp.Batch, len(idx))]
		idx = idx[len(batch):]
		maxRatio := float64(rp.Width) / float64(rp.Height)
		for _, ci := range batch {
			maxRatio = math.Max(maxRatio, float64(crops[ci].img.w)/float64(crops[ci].img.h))
		}
		imgW := min(int(float64(rp.Height)*maxRatio), rp.MaxWidth)
		plane := 3 * rp.Height * imgW
		data := make([]float32, len(batch)*plane)
		widths := make([]int, len(batch))
		for i, ci := range batch {
			c := crops[ci]
			widths[i] = max(1, min(imgW, int(math.Ceil(float64(rp.Height)*float64(c.img.w)/float64(c.img.h)))))
			c.img.resizeInto(data[i*plane:], imgW, widths[i], rp.Height, pl.halfNorm())
		}
		out, err := pl.rec.Run(ctx, []engine.Tensor{engine.NewTensor([]int64{int64(len(batch)), 3, int64(rp.Height), int64(imgW)}, data)})
		if err != nil {
			return nil, fmt.Errorf("ppocr: recogniser: %w", err)
		}
		probs, err := single(out, []int64{int64(len(batch)), -1, int64(len(pl.classes))})
		if err != nil {
			return nil, fmt.Errorf("ppocr: recogniser (dictionary of %d classes): %w", len(pl.classes), err)
		}
		steps := int(out[0].Shape[1])
		per := steps * len(pl.classes)
		for i, ci := range batch {
			res[ci] = recResult{
				chars: ctcGreedy(probs[i*per:(i+1)*per], steps, len(pl.classes), pl.classes),
				valid: float64(steps) * float64(widths[i]) / float64(imgW),
			}
		}
	}
	return res, nil
}

// ctcLine turns a decoded crop into a line with word boxes. Word extents
// are measured along the crop and mapped back through the crop's
// perspective transform, so they follow rotated and slanted lines.
func ctcLine(c crop, r recResult, off vec) (ocr.Line, bool) {
	words, conf := ctcWords(r.chars, r.valid)
	if len(words) == 0 {
		return ocr.Line{Box: toQuad(c.q, off)}, false
	}
	line := ocr.Line{Confidence: conf, Box: toQuad(c.q, off), Vertical: c.vertical, Words: make([]ocr.Word, len(words))}
	texts := make([]string, len(words))
	scale := float64(c.img.w) / r.valid
	for i, w := range words {
		texts[i] = w.text
		line.Words[i] = ocr.Word{
			Text:       w.text,
			Confidence: w.conf,
			Box:        cropRectQuad(c, w.x0*scale, 0, w.x1*scale, float64(c.img.h), off),
		}
	}
	line.Text = strings.Join(texts, " ")
	return line, true
}

// hybridLine has tr read crop c (line, or a padded copy of it) and maps
// its word boxes back; the line's box is line's.
func hybridLine(ctx context.Context, tr engine.TextRecognizer, c, line crop, off vec) (ocr.Line, bool, error) {
	tls, err := tr.RecognizeText(ctx, c.img.gray(), engine.SegLine)
	if err != nil {
		return ocr.Line{}, false, fmt.Errorf("ppocr: line recogniser: %w", err)
	}
	out := ocr.Line{Box: toQuad(line.q, off), Vertical: line.vertical}
	var texts []string
	var confSum, confN float64
	for _, tl := range tls {
		text := strings.TrimSpace(tl.Text)
		if text == "" {
			continue
		}
		texts = append(texts, text)
		n := float64(len([]rune(text)))
		confSum += n * tl.Confidence
		confN += n
		for _, w := range tl.Words {
			r := w.Box
			out.Words = append(out.Words, ocr.Word{
				Text:       w.Text,
				Confidence: w.Confidence,
				Box:        cropRectQuad(c, float64(r.Min.X), float64(r.Min.Y), float64(r.Max.X), float64(r.Max.Y), off),
			})
		}
	}
	if confN == 0 {
		return out, false, nil
	}
	out.Text = strings.Join(texts, " ")
	out.Confidence = clampf(confSum/confN, 0, 1)
	return out, true, nil
}

// cropRectQuad maps the crop rectangle [x0,x1]×[y0,y1] to input
// coordinates. In a stacked column the span [x0,x1] of the row becomes the
// span of the column it came from, across the column's width.
func cropRectQuad(c crop, x0, y0, x1, y1 float64, off vec) ocr.Quad {
	if c.stack != nil {
		x0, y0, x1, y1 = c.stack.rect(x0, x1)
	}
	var q quad
	for i, p := range [4]vec{{x0, y0}, {x1, y0}, {x1, y1}, {x0, y1}} {
		q[i] = c.toSrc.apply(p)
	}
	return toQuad(q, off)
}

func origin(img image.Image) vec {
	m := img.Bounds().Min
	return vec{float64(m.X), float64(m.Y)}
}

func toQuad(q quad, off vec) ocr.Quad {
	var out ocr.Quad
	for i, p := range q {
		out[i] = ocr.Point{p.X + off.X, p.Y + off.Y}
	}
	return out
}
