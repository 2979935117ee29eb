package ppocr

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/color"
	"math"
	"strings"
	"sync"
	"testing"

	"github.com/visionserve/visionserve/internal/engine"
)

// runnerFunc adapts a function to engine.TensorRunner.
type runnerFunc func(ctx context.Context, in []engine.Tensor) ([]engine.Tensor, error)

func (f runnerFunc) Run(ctx context.Context, in []engine.Tensor) ([]engine.Tensor, error) {
	return f(ctx, in)
}

// fakeDet paints kernels (given in image pixels of an imgW×imgH input) into
// a probability map of whatever size the pipeline asks for.
func fakeDet(imgW, imgH int, kernels ...image.Rectangle) runnerFunc {
	return func(ctx context.Context, in []engine.Tensor) ([]engine.Tensor, error) {
		rh, rw := int(in[0].Shape[2]), int(in[0].Shape[3])
		sx, sy := float64(rw)/float64(imgW), float64(rh)/float64(imgH)
		m := make([]float32, rw*rh)
		for _, k := range kernels {
			for y := int(float64(k.Min.Y) * sy); y < int(float64(k.Max.Y)*sy); y++ {
				for x := int(float64(k.Min.X) * sx); x < int(float64(k.Max.X)*sx); x++ {
					m[y*rw+x] = 0.9
				}
			}
		}
		return []engine.Tensor{engine.NewTensor([]int64{1, 1, int64(rh), int64(rw)}, m)}, nil
	}
}

// fakeCls answers "180°" with probability p180 for every crop.
func fakeCls(p180 float32) runnerFunc {
	return func(ctx context.Context, in []engine.Tensor) ([]engine.Tensor, error) {
		n := in[0].Shape[0]
		out := make([]float32, 2*n)
		for i := range n {
			out[2*i], out[2*i+1] = 1-p180, p180
		}
		return []engine.Tensor{engine.NewTensor([]int64{n, 2}, out)}, nil
	}
}

// fakeRec spells text for every crop of the batch, one character per two
// time steps (then a blank), confidence p, over nclass classes.
func fakeRec(text string, classes []string, p float32) runnerFunc {
	return func(ctx context.Context, in []engine.Tensor) ([]engine.Tensor, error) {
		n, w := in[0].Shape[0], in[0].Shape[3]
		T := w / 4
		nc := len(classes)
		out := make([]float32, int(n*T)*nc)
		for b := range int(n) {
			for t := range int(T) {
				cls := 0
				if k := t / 2; t%2 == 0 && k < len(text) {
					for c, s := range classes {
						if c > 0 && s == string(text[k]) {
							cls = c
						}
					}
				}
				row := out[(b*int(T)+t)*nc:]
				for c := range nc {
					row[c] = (1 - p) / float32(nc-1)
				}
				row[cls] = p
			}
		}
		return []engine.Tensor{engine.NewTensor([]int64{n, T, int64(nc)}, out)}, nil
	}
}

type recCall struct {
	w, h   int
	mode   engine.SegMode
	corner uint8 // the crop's top-left pixel
}

var _ engine.TextRecognizer = (*fakeTess)(nil)

// fakeTess stands in for the Tesseract adapter: it reads every crop as
// "hello world", a word on each side of the middle, with confidence 0.9,
// or conf(the crop's top-left luma) when set.
type fakeTess struct {
	mu    sync.Mutex
	calls []recCall
	err   error
	conf  func(corner uint8) float64
}

func (f *fakeTess) RecognizeText(ctx context.Context, img *image.Gray, mode engine.SegMode) ([]engine.TextLine, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b := img.Bounds()
	f.calls = append(f.calls, recCall{b.Dx(), b.Dy(), mode, img.GrayAt(0, 0).Y})
	if f.err != nil {
		return nil, f.err
	}
	// Words in the middle of the crop, clear of the padding.
	w, h := b.Dx(), b.Dy()
	conf := 0.9
	if f.conf != nil {
		conf = f.conf(img.GrayAt(0, 0).Y)
	}
	return []engine.TextLine{{
		Text: "hello world", Confidence: conf, Box: b,
		Words: []engine.TextWord{
			{Text: "hello", Confidence: 0.95, Box: image.Rect(w/4, h/4, w/2, 3*h/4)},
			{Text: "world", Confidence: 0.85, Box: image.Rect(w/2, h/4, 3*w/4, 3*h/4)},
		},
	}}, nil
}

// page is a 400×200 white image whose text lines are dark on their left
// half, so a crop's top-left pixel tells whether it was turned over.
func page() (*image.RGBA, []image.Rectangle) {
	img := image.NewRGBA(image.Rect(0, 0, 400, 200))
	lines := []image.Rectangle{image.Rect(30, 120, 330, 140), image.Rect(50, 40, 350, 60)} // second line first
	for y := range 200 {
		for x := range 400 {
			img.Set(x, y, color.White)
		}
	}
	for _, l := range lines {
		// Pad beyond the unclip margin (14 px here) and the hybrid pad
		// (12 px) so crops start inside.
		for y := l.Min.Y - 40; y < l.Max.Y+40; y++ {
			for x := l.Min.X - 40; x < (l.Min.X+l.Max.X)/2; x++ {
				img.Set(x, y, color.Black)
			}
		}
	}
	return img, lines
}

func newTestPipeline(t *testing.T, m Models, mod func(*Params)) *Pipeline {
	t.Helper()
	p := DefaultParams()
	if mod != nil {
		mod(&p)
	}
	pl, err := New(m, p)
	if err != nil {
		t.Fatal(err)
	}
	return pl
}

func absDiff(a, b image.Point) int {
	return max(a.X-b.X, b.X-a.X, a.Y-b.Y, b.Y-a.Y)
}

func inside(p [2]float64, r image.Rectangle, slack float64) bool {
	return p[0] >= float64(r.Min.X)-slack && p[0] <= float64(r.Max.X)+slack && p[1] >= float64(r.Min.Y)-slack && p[1] <= float64(r.Max.Y)+slack
}

func TestHybridRecognisesEachDetectedLine(t *testing.T) {
	img, kernels := page()
	// Upright crops start on the dark half of their line.
	readsUpright := func(corner uint8) float64 {
		if corner < 128 {
			return 0.95
		}
		return 0.9
	}
	for _, tc := range []struct {
		name    string
		p180    float32
		conf    func(uint8) float64
		flipped bool
		calls   int // a crop the classifier turns over is also read as it was
	}{
		{"upright", 0.02, nil, false, 2},
		{"classifier unsure keeps the crop", 0.8, nil, false, 2},
		{"upside down", 0.97, nil, true, 4},
		// The classifier turned upright lines over, but they read
		// better as they were: the more confident reading wins.
		{"classifier wrong", 0.97, readsUpright, false, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tess := &fakeTess{conf: tc.conf}
			pl := newTestPipeline(t, Models{Det: fakeDet(400, 200, kernels...), Cls: fakeCls(tc.p180)}, nil)
			lines, err := pl.RecognizeHybrid(context.Background(), img, tess)
			if err != nil {
				t.Fatal(err)
			}
			if len(lines) != 2 || len(tess.calls) != tc.calls {
				t.Fatalf("got %d lines from %d recogniser calls, want 2 and %d", len(lines), len(tess.calls), tc.calls)
			}
			// Reading order: the line at y=40 first although detected second.
			wantConf := 0.9
			if tc.conf != nil {
				wantConf = 0.95
			}
			for i, want := range []image.Rectangle{kernels[1], kernels[0]} {
				l := lines[i]
				if l.Text != "hello world" || math.Abs(l.Confidence-wantConf) > 1e-9 {
					t.Errorf("line %d = %q @ %v, want confidence %v", i, l.Text, l.Confidence, wantConf)
				}
				// DB grows the 300x20 kernel by 300·20·1.5/640 ≈ 14 px a side;
				// the 0.96 detector scale and pixel-centre spans cost a
				// few pixels.
				lb := l.Box.Bounds()
				if grown := want.Inset(-14); absDiff(lb.Min, grown.Min) > 4 || absDiff(lb.Max, grown.Max) > 4 {
					t.Errorf("line %d box %v, want about %v", i, l.Box, grown)
				}
				if len(l.Words) != 2 {
					t.Fatalf("line %d has %d words", i, len(l.Words))
				}
				for _, w := range l.Words {
					for _, c := range w.Box {
						if !inside(c, lb, 1e-6) {
							t.Errorf("word %q corner %v outside line box %v", w.Text, c, lb)
						}
					}
				}
				hello, world := l.Words[0].Box.Bounds(), l.Words[1].Box.Bounds()
				// The box's first corner is where the text starts.
				startsRight := l.Box[0][0] > l.Box[1][0]
				if startsRight != tc.flipped {
					t.Errorf("line %d box %v: starts on the right = %v, want %v", i, l.Box, startsRight, tc.flipped)
				}
				if helloRight := hello.Min.X >= world.Min.X; helloRight != tc.flipped {
					t.Errorf("line %d: first word %v, second %v; first on the right = %v, want %v", i, hello, world, helloRight, tc.flipped)
				}
			}
			for _, c := range tess.calls {
				if c.mode != engine.SegLine {
					t.Errorf("recogniser called in mode %v, want line", c.mode)
				}
				// 328x48 box grown by hybrid_pad 0.25 x 48 = 12 px a side.
				if c.w < 340 || c.w > 356 || c.h < 62 || c.h > 76 {
					t.Errorf("crop %dx%d, want about 352x72 (the 300x20 line, the unclip margin and the hybrid pad)", c.w, c.h)
				}
			}
			// Upright crops start on the dark half, turned-over ones on
			// the light half: the classifier's choice is read first.
			for i := 0; i < len(tess.calls); i += tc.calls / 2 {
				if dark := tess.calls[i].corner < 128; dark == (tc.p180 > 0.9) {
					t.Errorf("crop %d top-left luma %d; turned over = %v", i, tess.calls[i].corner, tc.p180 > 0.9)
				}
			}
		})
	}
}

func TestHybridErrors(t *testing.T) {
	img, kernels := page()
	pl := newTestPipeline(t, Models{Det: fakeDet(400, 200, kernels...)}, nil)
	boom := errors.New("tesseract exploded")
	if _, err := pl.RecognizeHybrid(context.Background(), img, &fakeTess{err: boom}); !errors.Is(err, boom) {
		t.Errorf("recogniser error = %v, want it wrapped", err)
	}
	if _, err := pl.RecognizeHybrid(context.Background(), img, nil); err == nil {
		t.Error("RecognizeHybrid without a recogniser succeeded")
	}
	if _, err := pl.Recognize(context.Background(), img); err == nil {
		t.Error("Recognize without a CTC model succeeded")
	}
	detErr := errors.New("det failed")
	bad := newTestPipeline(t, Models{Det: runnerFunc(func(context.Context, []engine.Tensor) ([]engine.Tensor, error) { return nil, detErr })}, nil)
	if _, err := bad.RecognizeHybrid(context.Background(), img, &fakeTess{}); !errors.Is(err, detErr) {
		t.Errorf("detector error = %v, want it wrapped", err)
	}
	wrongShape := newTestPipeline(t, Models{Det: runnerFunc(func(context.Context, []engine.Tensor) ([]engine.Tensor, error) {
		return []engine.Tensor{engine.NewTensor([]int64{1, 1, 2, 2}, make([]float32, 4))}, nil
	})}, nil)
	if _, err := wrongShape.Detect(context.Background(), img); err == nil || !strings.Contains(err.Error(), "shape") {
		t.Errorf("detector output of the wrong shape: %v", err)
	}
}

func TestRecognizeCTC(t *testing.T) {
	img, kernels := page()
	dict := strings.Split("abcdefghijklmnopqrstuvwxyz", "")
	classes := ctcClasses(dict, true)
	pl := newTestPipeline(t, Models{Det: fakeDet(400, 200, kernels...), Rec: fakeRec("ab cd", classes, 0.8), Dict: dict}, func(p *Params) { p.Cls.Enabled = false })
	lines, err := pl.Recognize(context.Background(), img)
	if err != nil {
		t.Fatal(err)
	}
	if len(lines) != 2 {
		t.Fatalf("got %d lines", len(lines))
	}
	for _, l := range lines {
		if l.Text != "ab cd" || math.Abs(l.Confidence-0.8) > 1e-6 || len(l.Words) != 2 {
			t.Errorf("line %q conf %v words %d", l.Text, l.Confidence, len(l.Words))
			continue
		}
		a, b := l.Words[0].Box.Bounds(), l.Words[1].Box.Bounds()
		if a.Max.X > b.Min.X+1 || a.Min.X < l.Box.Bounds().Min.X-1 {
			t.Errorf("words %v %v in line %v overlap or spill", a, b, l.Box)
		}
	}

	t.Run("drop score", func(t *testing.T) {
		pl := newTestPipeline(t, Models{Det: fakeDet(400, 200, kernels...), Rec: fakeRec("ab", classes, 0.4), Dict: dict}, func(p *Params) { p.Cls.Enabled = false })
		lines, err := pl.Recognize(context.Background(), img)
		if err != nil || len(lines) != 0 {
			t.Errorf("lines below drop_score kept: %v, %v", lines, err)
		}
		line, err := pl.RecognizeLine(context.Background(), img)
		if err != nil || line.Text != "ab" || math.Abs(line.Confidence-0.4) > 1e-6 {
			t.Errorf("RecognizeLine = %+v, %v; it must not apply drop_score", line, err)
		}
	})
	t.Run("max width squeezes an extreme aspect ratio", func(t *testing.T) {
		var widths []int64
		rec := fakeRec("ab", classes, 0.9)
		spy := runnerFunc(func(ctx context.Context, in []engine.Tensor) ([]engine.Tensor, error) {
			widths = append(widths, in[0].Shape[3])
			return rec(ctx, in)
		})
		pl := newTestPipeline(t, Models{Det: fakeDet(1, 1), Rec: spy, Dict: dict}, func(p *Params) { p.Rec.MaxWidth = 640 })
		strip := image.NewGray(image.Rect(0, 0, 5000, 10))
		if _, err := pl.RecognizeLine(context.Background(), strip); err != nil {
			t.Fatal(err)
		}
		if _, err := pl.RecognizeLine(context.Background(), image.NewGray(image.Rect(0, 0, 100, 32))); err != nil {
			t.Fatal(err)
		}
		if len(widths) != 2 || widths[0] != 640 || widths[1] != 320 {
			t.Errorf("recogniser input widths %v, want [640 320] (capped, then the minimum)", widths)
		}
	})
	t.Run("dictionary does not match the model", func(t *testing.T) {
		pl := newTestPipeline(t, Models{Det: fakeDet(400, 200, kernels...), Rec: fakeRec("ab", classes, 0.9), Dict: dict[:10]}, nil)
		if _, err := pl.RecognizeLine(context.Background(), img); err == nil || !strings.Contains(err.Error(), "classes") {
			t.Errorf("class count mismatch: %v", err)
		}
	})
}

// Boxes come back in the input's coordinates even when the image does not
// start at (0,0).
func TestSubImageCoordinates(t *testing.T) {
	img, kernels := page()
	sub := img.SubImage(image.Rect(0, 100, 400, 200))
	pl := newTestPipeline(t, Models{Det: fakeDet(400, 100, kernels[0].Sub(image.Pt(0, 100)))}, nil)
	dets, err := pl.Detect(context.Background(), sub)
	if err != nil || len(dets) != 1 {
		t.Fatalf("Detect = %v, %v", dets, err)
	}
	if b := dets[0].Box.Bounds(); !kernels[0].In(b.Inset(-1)) || b.Min.Y < 100 {
		t.Errorf("box %v is not around %v in the parent image's coordinates", b, kernels[0])
	}
}

func TestDetSize(t *testing.T) {
	p := DefaultParams().Det
	minP := p
	minP.LimitType, minP.LimitSideLen = "min", 736
	for _, tc := range []struct {
		w, h   int
		p      DetParams
		rw, rh int
	}{
		{640, 480, p, 640, 480},
		{1920, 1080, p, 960, 544},
		{960, 960, p, 960, 960},
		{100, 30, p, 96, 32},
		{10, 10, p, 32, 32},
		{400, 200, p, 384, 192}, // 12.5 and 6.25 multiples of 32 round half to even
		{1000, 500, minP, 1472, 736},
		{2000, 1000, minP, 1984, 992}, // 62.5 rounds to 62, as Python's round does
		{20000, 100, minP, 4000, 32},  // a strip scaled up by "min" stops at max_side_len
		{8000, 6000, p, 960, 704},
	} {
		if rw, rh := detSize(tc.w, tc.h, tc.p); rw != tc.rw || rh != tc.rh {
			t.Errorf("detSize(%d, %d, %s %d) = %dx%d, want %dx%d", tc.w, tc.h, tc.p.LimitType, tc.p.LimitSideLen, rw, rh, tc.rw, tc.rh)
		}
	}
}

func TestParams(t *testing.T) {
	if err := DefaultParams().Validate(); err != nil {
		t.Fatalf("defaults invalid: %v", err)
	}
	// A manifest sets a few options; the rest keep their defaults.
	p := DefaultParams()
	if err := json.Unmarshal([]byte(`{"det": {"box_thresh": 0.5, "limit_side_len": 1280}, "drop_score": 0.3, "cls": {"enabled": false}}`), &p); err != nil {
		t.Fatal(err)
	}
	want := DefaultParams()
	want.Det.BoxThresh, want.Det.LimitSideLen, want.DropScore, want.Cls.Enabled = 0.5, 1280, 0.3, false
	if p != want {
		t.Errorf("decoded %+v\nwant    %+v", p, want)
	}
	for _, tc := range []struct {
		name string
		mod  func(*Params)
	}{
		{"limit type", func(p *Params) { p.Det.LimitType = "both" }},
		{"thresh", func(p *Params) { p.Det.Thresh = 1 }},
		{"std", func(p *Params) { p.Det.Std[1] = 0 }},
		{"rec batch", func(p *Params) { p.Rec.Batch = 0 }},
		{"cls size", func(p *Params) { p.Cls.Width = 0 }},
		{"drop score", func(p *Params) { p.DropScore = 2 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := DefaultParams()
			tc.mod(&p)
			if p.Validate() == nil {
				t.Errorf("Validate accepted %+v", p)
			}
			if _, err := New(Models{Det: fakeDet(1, 1)}, p); err == nil {
				t.Error("New accepted invalid params")
			}
		})
	}
	if _, err := New(Models{}, DefaultParams()); err == nil {
		t.Error("New accepted a pipeline without a detector")
	}
	if _, err := New(Models{Det: fakeDet(1, 1), Rec: fakeRec("", nil, 1)}, DefaultParams()); err == nil {
		t.Error("New accepted a recogniser without a dictionary")
	}
}

func TestHybridEvalTarget(t *testing.T) {
	img, kernels := page()
	tess := &fakeTess{}
	pl := newTestPipeline(t, Models{Det: fakeDet(400, 200, kernels...)}, nil)
	target := pl.HybridEvalTarget(tess)
	text, err := target.Line(context.Background(), img)
	if err != nil || text != "hello world" {
		t.Errorf("Line = %q, %v", text, err)
	}
	if len(tess.calls) != 1 || tess.calls[0].w != 400 || tess.calls[0].h != 200 || tess.calls[0].mode != engine.SegLine {
		t.Errorf("line image handed over as %+v, want the whole 400x200 image in line mode", tess.calls)
	}
	text, err = target.Page(context.Background(), img)
	if err != nil || text != "hello world\nhello world" {
		t.Errorf("Page = %q, %v", text, err)
	}
}

func TestHybridPad(t *testing.T) {
	img, kernels := page()
	sizes := map[float64][2]int{}
	var boxes []string
	for _, pad := range []float64{0, 0.25} {
		tess := &fakeTess{}
		pl := newTestPipeline(t, Models{Det: fakeDet(400, 200, kernels[:1]...)}, func(p *Params) { p.HybridPad = pad; p.Cls.Enabled = false })
		lines, err := pl.RecognizeHybrid(context.Background(), img, tess)
		if err != nil || len(lines) != 1 || len(tess.calls) != 1 {
			t.Fatalf("pad %v: %v lines, %v", pad, len(lines), err)
		}
		sizes[pad] = [2]int{tess.calls[0].w, tess.calls[0].h}
		boxes = append(boxes, fmt.Sprint(lines[0].Box))
	}
	h := sizes[0][1]
	if want := [2]int{sizes[0][0] + h/2, h + h/2}; absDiff(image.Pt(sizes[0.25][0], sizes[0.25][1]), image.Pt(want[0], want[1])) > 2 {
		t.Errorf("padded crop %v, want about %v (a quarter of the %d px height on every side)", sizes[0.25], want, h)
	}
	if boxes[0] != boxes[1] {
		t.Errorf("line box changed with the pad: %s vs %s", boxes[0], boxes[1])
	}
}
