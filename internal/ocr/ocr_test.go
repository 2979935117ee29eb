package ocr

import (
	"bytes"
	"context"
	"errors"
	"image"
	"image/color"
	"image/png"
	"testing"

	"github.com/visionserve/visionserve/internal/calib"
	"github.com/visionserve/visionserve/internal/engine"
	"github.com/visionserve/visionserve/internal/imageio"
)

func TestReviewPolicy(t *testing.T) {
	p := DefaultReviewPolicy()
	for c, want := range map[float64]Tier{1: TierAccept, 0.85: TierAccept, 0.849: TierVerify, 0.6: TierVerify, 0.59: TierReview, 0: TierReview} {
		if got := p.Tier(c); got != want {
			t.Errorf("Tier(%v) = %s, want %s", c, got, want)
		}
	}
	if err := (ReviewPolicy{Accept: 0.5, Verify: 0.7}).Validate(); err == nil {
		t.Error("inverted policy accepted")
	}
}

func TestReadingQuad(t *testing.T) {
	r := image.Rect(10, 20, 30, 80)
	tl, tr, br, bl := Point{10, 20}, Point{30, 20}, Point{30, 80}, Point{10, 80}
	for o, want := range map[int]Quad{
		0:   {tl, tr, br, bl},
		270: {tr, br, bl, tl}, // text runs downwards: it starts top-right
		180: {br, bl, tl, tr},
		90:  {bl, tl, tr, br}, // text runs upwards: it starts bottom-left
	} {
		if got := readingQuad(r, o); got != want {
			t.Errorf("orientation %d: %v, want %v", o, got, want)
		}
	}
}

// page draws black bars standing in for text lines of the given heights.
func page(w int, bars ...[2]int) *image.Gray {
	maxY := 0
	for _, b := range bars {
		maxY = max(maxY, b[0]+b[1])
	}
	g := image.NewGray(image.Rect(0, 0, w, maxY+10))
	for i := range g.Pix {
		g.Pix[i] = 255
	}
	for _, b := range bars {
		for y := b[0]; y < b[0]+b[1]; y++ {
			for x := 5; x < w-5; x += 3 { // a dashed bar, like letters
				g.SetGray(x, y, color.Gray{0})
			}
		}
	}
	return g
}

func TestIsSingleLine(t *testing.T) {
	for _, tc := range []struct {
		name string
		img  *image.Gray
		want bool
	}{
		{"one line", page(400, [2]int{10, 30}), true},
		{"line with i-dots above", page(400, [2]int{5, 4}, [2]int{12, 30}), true},
		{"two lines", page(400, [2]int{10, 30}, [2]int{50, 30}), false},
		{"title and body", page(400, [2]int{10, 60}, [2]int{90, 25}, [2]int{130, 25}), false},
		{"too tall for a line", page(2000, [2]int{10, 400}), false},
		{"blank", page(100), false},
	} {
		if got := isSingleLine(tc.img); got != tc.want {
			t.Errorf("%s: isSingleLine = %v, want %v", tc.name, got, tc.want)
		}
	}
	// Light text on a dark background is the same line.
	inv := page(400, [2]int{10, 30})
	for i := range inv.Pix {
		inv.Pix[i] = 255 - inv.Pix[i]
	}
	if !isSingleLine(inv) {
		t.Error("inverted line not recognised")
	}
}

// fakeEngine reads every image as one line, turned by turnNeeded degrees
// when the caller has not turned it that far yet.
type fakeEngine struct {
	orientation engine.Orientation
	gotModes    []engine.SegMode
	sizes       []image.Point
}

func (f *fakeEngine) RecognizeText(_ context.Context, img *image.Gray, mode engine.SegMode) ([]engine.TextLine, error) {
	f.gotModes = append(f.gotModes, mode)
	f.sizes = append(f.sizes, img.Bounds().Size())
	conf := 0.3 // unturned: a poor reading
	if len(f.sizes) > 1 {
		conf = 0.95
	}
	b := img.Bounds()
	box := image.Rect(1, 1, b.Dx()-1, 5)
	return []engine.TextLine{{Text: "hello world", Confidence: conf, Box: box,
		Words: []engine.TextWord{{Text: "hello", Confidence: conf, Box: image.Rect(1, 1, 5, 5)}, {Text: "world", Confidence: conf, Box: image.Rect(6, 1, b.Dx()-1, 5)}}}}, nil
}

func (f *fakeEngine) DetectOrientation(context.Context, *image.Gray) (engine.Orientation, error) {
	return f.orientation, nil
}

func (f *fakeEngine) Close() error { return nil }

type onePool struct{ e Engine }

func (p onePool) Acquire(context.Context) (Engine, error)      { return p.e, nil }
func (p onePool) Release(Engine)                               {}
func (p onePool) ReleaseAfter(Engine, <-chan struct{}, func()) {}

type direct struct{}

func (direct) Run(ctx context.Context, fn func(context.Context) error) error { return fn(ctx) }

func pngOf(t *testing.T, img image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestServiceTurnsDoubtfulPages(t *testing.T) {
	fe := &fakeEngine{orientation: engine.Orientation{Degrees: 90, Confidence: 0.9}}
	models, _ := NewStaticModels(&Model{Ref: ModelRef{Name: "m", Version: "7"}, Languages: "eng", Engines: onePool{fe}})
	svc := NewService(DefaultConfig(), models, direct{}, nil, nil)
	img := page(60, [2]int{5, 10}, [2]int{30, 10}) // two lines: page mode
	res, err := svc.Recognize(context.Background(), Input{Data: pngOf(t, img)}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	p := res.Pages[0]
	if p.Angle != 90 || p.Mode != "page" || p.Confidence != 0.95 {
		t.Fatalf("page = %+v", p)
	}
	// The second reading got the image turned a quarter: w and h swapped.
	if len(fe.sizes) != 2 || fe.sizes[1] != (image.Point{img.Rect.Dy(), img.Rect.Dx()}) {
		t.Fatalf("engine saw sizes %v", fe.sizes)
	}
	// Its boxes are reported in the submitted image's coordinates.
	for _, l := range p.Lines {
		if b := l.Box.Bounds(); !b.In(img.Rect) {
			t.Errorf("box %v outside %v", b, img.Rect)
		}
	}
	if res.Model != (ModelRef{Name: "m", Version: "7"}) || res.Text != "hello world" || p.Lines[0].Review != TierAccept {
		t.Errorf("result = %+v", res)
	}
	for _, k := range []string{"decode", "preprocess", "recognize", "total"} {
		if _, ok := res.TimingMS[k]; !ok {
			t.Errorf("timing_ms lacks %s", k)
		}
	}
}

func TestServiceErrors(t *testing.T) {
	fe := &fakeEngine{}
	models, _ := NewStaticModels(&Model{Ref: ModelRef{Name: "ocr-eng", Version: "1"}, Languages: "eng", Engines: onePool{fe}})
	svc := NewService(DefaultConfig(), models, direct{}, nil, nil)
	good := pngOf(t, page(60, [2]int{5, 10}))
	for _, tc := range []struct {
		name string
		data []byte
		opt  Options
		want error
	}{
		{"unknown model", good, Options{Model: "nope"}, ErrModelNotFound},
		{"unknown language", good, Options{Lang: "deu"}, ErrModelNotFound},
		{"unknown version", good, Options{Version: "9"}, ErrVersionNotFound},
		{"tiny image", pngOf(t, image.NewGray(image.Rect(0, 0, 2, 2))), Options{}, imageio.ErrUnusable},
		{"garbage", []byte("nope"), Options{}, imageio.ErrUnsupported},
	} {
		if _, err := svc.Recognize(context.Background(), Input{Data: tc.data}, tc.opt); !errors.Is(err, tc.want) {
			t.Errorf("%s: err = %v, want %v", tc.name, err, tc.want)
		}
	}
	if _, err := ParseMode("sideways"); !errors.Is(err, ErrBadOption) {
		t.Errorf("ParseMode: %v", err)
	}
}

// With a calibration, word confidences go through the curve and a line's
// confidence is the probability that all its words are right.
func TestCalibratedConfidences(t *testing.T) {
	fe := &fakeEngine{}
	m := &Model{Ref: ModelRef{Name: "m", Version: "1"}, Languages: "eng", Engines: onePool{fe},
		Calibration: calib.Curve{{X: 0, Y: 0.5}, {X: 1, Y: 1}}}
	models, _ := NewStaticModels(m)
	svc := NewService(DefaultConfig(), models, direct{}, nil, nil)
	res, err := svc.Recognize(context.Background(), Input{Data: pngOf(t, page(60, [2]int{5, 10}))}, Options{Mode: ModeLine})
	if err != nil {
		t.Fatal(err)
	}
	l := res.Pages[0].Lines[0]
	// The fake engine's first reading scores every word 0.3: 0.5+0.3/2 = 0.65.
	if l.Words[0].Confidence != 0.65 || l.Words[1].Confidence != 0.65 {
		t.Errorf("words %+v", l.Words)
	}
	if l.Confidence != 0.4225 || l.Review != TierReview {
		t.Errorf("line confidence %v (%s), want 0.65^2 = 0.4225 (review)", l.Confidence, l.Review)
	}
}
