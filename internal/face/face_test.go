package face

import (
	"context"
	"image"
	"image/color"
	"math"
	"math/cmplx"
	"testing"

	"github.com/visionserve/visionserve/internal/engine"
)

func near(a, b, tol float64) bool { return math.Abs(a-b) <= tol }

func TestEstimateSimilarityRecoversTransform(t *testing.T) {
	for _, tc := range []struct {
		scale, angle, tx, ty float64
	}{
		{1, 0, 0, 0}, {0.5, 0.3, 10, -4}, {2.5, -1.2, -30, 77}, {0.8, math.Pi, 3, 3},
	} {
		want := similarity{a: cmplx.Rect(tc.scale, tc.angle), b: complex(tc.tx, tc.ty)}
		var src, dst [5]Point
		for i, p := range arcFaceTemplate {
			src[i] = p
			dst[i] = want.apply(p)
		}
		got, err := estimateSimilarity(src, dst)
		if err != nil {
			t.Fatal(err)
		}
		if cmplx.Abs(got.a-want.a) > 1e-9 || cmplx.Abs(got.b-want.b) > 1e-9 {
			t.Errorf("%+v: got %v, want %v", tc, got, want)
		}
		back := got.inverse().apply(dst[2])
		if !near(back[0], src[2][0], 1e-9) || !near(back[1], src[2][1], 1e-9) {
			t.Errorf("inverse: %v, want %v", back, src[2])
		}
	}
	var same [5]Point
	if _, err := estimateSimilarity(same, arcFaceTemplate); err == nil {
		t.Error("degenerate landmarks accepted")
	}
}

// TestAlignPlacesLandmarksOnTemplate draws dots at a face's landmarks in a
// large, rotated, scaled frame and checks that alignment moves each dot to
// its template position.
func TestAlignPlacesLandmarksOnTemplate(t *testing.T) {
	img := newBGR(400, 300)
	place := similarity{a: cmplx.Rect(2.2, 0.4), b: complex(120, 40)}
	var lm [5]Point
	for i, p := range arcFaceTemplate {
		lm[i] = place.apply(p)
		// A 5x5 white dot on black.
		for dy := -2; dy <= 2; dy++ {
			for dx := -2; dx <= 2; dx++ {
				x, y := int(math.Round(lm[i][0]))+dx, int(math.Round(lm[i][1]))+dy
				copy(img.pix[3*(y*img.w+x):], []uint8{255, 255, 255})
			}
		}
	}
	crop, err := align(img, lm)
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range arcFaceTemplate {
		x, y := int(math.Round(p[0])), int(math.Round(p[1]))
		if v := crop.pix[3*(y*AlignSize+x)]; v < 200 {
			t.Errorf("landmark %d: crop at template %v is %d, want the white dot", i, p, v)
		}
	}
	// Far from the dots the crop is dark.
	if v := crop.pix[3*(5*AlignSize+5)]; v != 0 {
		t.Errorf("corner is %d, want 0", v)
	}
}

func TestToBGRAndResize(t *testing.T) {
	rgba := image.NewRGBA(image.Rect(0, 0, 4, 2))
	rgba.Set(1, 0, color.RGBA{10, 20, 30, 255})
	b := toBGR(rgba)
	if got := b.pix[3:6]; got[0] != 30 || got[1] != 20 || got[2] != 10 {
		t.Errorf("RGBA pixel as BGR = %v", got)
	}
	g := image.NewGray(image.Rect(0, 0, 8, 8))
	for i := range g.Pix {
		g.Pix[i] = uint8(i * 4)
	}
	gb := toBGR(g)
	if gb.pix[3*9] != g.Pix[9] || gb.pix[3*9+2] != g.Pix[9] {
		t.Error("gray not replicated")
	}
	// Downscaling by 2 averages 2x2 blocks.
	small := gb.resize(4, 4)
	want := (int(g.Pix[0]) + int(g.Pix[1]) + int(g.Pix[8]) + int(g.Pix[9]) + 2) / 4
	if int(small.pix[0]) != want {
		t.Errorf("box filter: %d, want %d", small.pix[0], want)
	}
	big := gb.resize(16, 16)
	if big.w != 16 || big.h != 16 {
		t.Fatal("upscale size")
	}
	if same := gb.resize(8, 8); same != gb {
		t.Error("same-size resize copied")
	}
}

func TestNMS(t *testing.T) {
	d := func(x, y, s float64) Detection {
		return Detection{Box: Box{X: x, Y: y, Width: 10, Height: 10}, Score: s}
	}
	got := nms([]Detection{d(0, 0, 0.7), d(1, 1, 0.9), d(50, 50, 0.8), d(2, 0, 0.6)}, 0.3)
	if len(got) != 2 || got[0].Score != 0.9 || got[1].Score != 0.8 {
		t.Fatalf("nms = %+v", got)
	}
	if v := iou(Box{0, 0, 10, 10}, Box{5, 0, 10, 10}); !near(v, 50.0/150, 1e-12) {
		t.Errorf("iou = %v", v)
	}
	if iou(Box{0, 0, 1, 1}, Box{2, 2, 1, 1}) != 0 {
		t.Error("disjoint boxes overlap")
	}
}

// fakeYuNet answers every run with one confident face at a fixed cell of
// stride 16, so the decoding and coordinate mapping can be checked exactly.
type fakeYuNet struct {
	fixed  [2]int64 // 0: dynamic
	none   bool     // find nothing
	inputs [][]int64
}

func (f *fakeYuNet) Inputs() []engine.TensorInfo {
	h, w := int64(-1), int64(-1)
	if f.fixed[0] > 0 {
		h, w = f.fixed[0], f.fixed[1]
	}
	return []engine.TensorInfo{{Name: "input", DType: engine.FP32, Shape: []int64{1, 3, h, w}}}
}

func (f *fakeYuNet) Outputs() []engine.TensorInfo {
	var out []engine.TensorInfo
	for _, k := range []string{"cls", "obj", "bbox", "kps"} {
		for _, s := range []string{"8", "16", "32"} {
			out = append(out, engine.TensorInfo{Name: k + "_" + s, DType: engine.FP32, Shape: []int64{1, -1, 1}})
		}
	}
	return out
}

func (f *fakeYuNet) Run(_ context.Context, in []engine.Tensor) ([]engine.Tensor, error) {
	f.inputs = append(f.inputs, in[0].Shape)
	h, w := int(in[0].Shape[2]), int(in[0].Shape[3])
	outs := make([]engine.Tensor, 12)
	for k, width := range []int{1, 1, 4, 10} {
		for s, stride := range []int{8, 16, 32} {
			n := (h / stride) * (w / stride)
			data := make([]float32, n*width)
			if stride == 16 && n > 0 && !f.none {
				// Cell (row 1, col 2): centre (2.5*16, 1.5*16) = (40, 24),
				// size 16x16, landmarks at the cell's corner plus i.
				i := 1*(w/16) + 2
				switch k {
				case 0, 1:
					data[i] = 0.9
				case 2:
					copy(data[4*i:], []float32{0.5, 0.5, 0, 0})
				case 3:
					for j := range 5 {
						data[10*i+2*j] = float32(j) / 16
						data[10*i+2*j+1] = 0
					}
				}
			}
			outs[k*3+s] = engine.NewTensor([]int64{1, int64(n), int64(width)}, data)
		}
	}
	return outs, nil
}

func TestDetectorDecodeAndScale(t *testing.T) {
	m := &fakeYuNet{}
	p := DefaultDetectParams()
	p.Pad = 0
	d, err := NewDetector(m, p)
	if err != nil {
		t.Fatal(err)
	}
	// 1280x640 is scaled by 0.5 to 640x320 (a multiple of 32).
	faces, err := d.Detect(context.Background(), newBGR(1280, 640))
	if err != nil {
		t.Fatal(err)
	}
	if got := m.inputs[0]; got[2] != 320 || got[3] != 640 {
		t.Fatalf("input shape %v, want [1 3 320 640]", got)
	}
	if len(faces) != 1 {
		t.Fatalf("faces = %+v", faces)
	}
	f := faces[0]
	// In input pixels the box is (32,16)-(48,32); in the image, twice that.
	if !near(f.Box.X, 64, 1e-9) || !near(f.Box.Y, 32, 1e-9) || !near(f.Box.Width, 32, 1e-9) || !near(f.Score, 0.9, 1e-6) {
		t.Errorf("face %+v", f)
	}
	if !near(f.Landmarks[3][0], 2*(2*16+3), 1e-6) || !near(f.Landmarks[3][1], 2*16, 1e-6) {
		t.Errorf("landmark 3 = %v", f.Landmarks[3])
	}

	// A small image is scaled up to MinSide; an odd size is padded up to
	// a multiple of 32.
	m.inputs = nil
	if _, err := d.Detect(context.Background(), newBGR(50, 70)); err != nil {
		t.Fatal(err)
	}
	if got := m.inputs[0]; got[2] != 160 || got[3] != 128 {
		t.Fatalf("small image input %v, want [1 3 160 128] (scaled to 114x160, padded)", got)
	}

	// A fixed-size model letterboxes; a second, padded pass runs when
	// the first finds nothing.
	fixed := &fakeYuNet{fixed: [2]int64{640, 640}, none: true}
	d2, err := NewDetector(fixed, DefaultDetectParams())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d2.Detect(context.Background(), newBGR(60, 40)); err != nil {
		t.Fatal(err)
	}
	if len(fixed.inputs) != 2 {
		t.Fatalf("%d passes, want 2", len(fixed.inputs))
	}
	for _, in := range fixed.inputs {
		if in[2] != 640 || in[3] != 640 {
			t.Errorf("fixed model got %v", in)
		}
	}
}

func TestDetectorRejectsOtherModels(t *testing.T) {
	m := &fakeYuNet{}
	bad := &renamed{m}
	if _, err := NewDetector(bad, DefaultDetectParams()); err == nil {
		t.Error("model without YuNet outputs accepted")
	}
	p := DefaultDetectParams()
	p.ScoreThreshold = 2
	if _, err := NewDetector(m, p); err == nil {
		t.Error("bad params accepted")
	}
}

type renamed struct{ *fakeYuNet }

func (r *renamed) Outputs() []engine.TensorInfo {
	out := r.fakeYuNet.Outputs()
	out[0].Name = "scores"
	return out
}

func TestMetricsHelpers(t *testing.T) {
	pairs := []Pair{{true, 0.9}, {true, 0.6}, {false, 0.5}, {false, 0.1}, {true, 0.5}}
	// Genuine ranks above impostors except the tie at 0.5 (half).
	if got, want := AUC(pairs), (5.0+0.5)/6; !near(got, want, 1e-12) {
		t.Errorf("AUC = %v, want %v", got, want)
	}
	r := RatesAt(pairs, 0.55)
	if r.Genuine != 3 || r.Impostor != 2 || !near(r.FRR, 1.0/3, 1e-12) || r.FAR != 0 || !near(r.Accuracy, 0.8, 1e-12) {
		t.Errorf("RatesAt = %+v", r)
	}
	e := EqualError([]Pair{{true, 0.9}, {true, 0.8}, {false, 0.3}, {false, 0.85}})
	if e.FAR != 0.5 || e.FRR != 0.5 {
		t.Errorf("EqualError = %+v", e)
	}
	if !math.IsNaN(AUC([]Pair{{true, 1}})) {
		t.Error("AUC of one class is not NaN")
	}
	if got := CalibrateThreshold([]Pair{{true, 0.9}, {false, 0.42}, {false, 0.2}}, 0.001, 0.05); got != 0.45 {
		t.Errorf("CalibrateThreshold = %v, want 0.45", got)
	}
}

func TestNormalizeCosine(t *testing.T) {
	v := []float32{3, 4}
	if !Normalize(v) || !near(float64(v[0]), 0.6, 1e-6) || !near(Cosine(v, v), 1, 1e-6) {
		t.Errorf("Normalize = %v", v)
	}
	if Normalize([]float32{0, 0}) || Normalize([]float32{float32(math.NaN())}) {
		t.Error("zero or NaN vector normalised")
	}
}

func TestCache(t *testing.T) {
	c := newAnalysisCache(2)
	a := &Analysis{Width: 1, Faces: []Face{{Embedding: []float32{1}}}}
	c.put("a", a)
	c.put("b", &Analysis{Width: 2})
	if got := c.get("a"); got == nil || got.Width != 1 {
		t.Fatal("a missing")
	}
	got := c.get("a")
	got.Faces[0].Embedding = nil // a caller's copy; the cache keeps its own
	if c.get("a").Faces[0].Embedding == nil {
		t.Fatal("cache entry changed through a returned copy")
	}
	c.put("c", &Analysis{Width: 3}) // evicts b, the least recently used
	if c.get("b") != nil || c.get("c") == nil || c.len() != 2 {
		t.Fatal("LRU eviction")
	}
	var off *analysisCache
	off.put("x", a)
	if off.get("x") != nil {
		t.Fatal("nil cache stored")
	}
}
