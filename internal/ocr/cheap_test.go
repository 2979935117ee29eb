package ocr

import (
	"context"
	"image"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/visionserve/visionserve/internal/engine"
	"github.com/visionserve/visionserve/internal/metrics"
	"github.com/visionserve/visionserve/internal/ocr/tier"
)

// queued is a scheduler with a settable queue length.
type queued struct {
	direct
	n int
}

func (q *queued) QueueLength() int { return q.n }

// TestCheapTier: under queueing a model with a cheaper tier reads a
// downscaled page once (no orientation check), says so in the result and
// the metrics, and still reports boxes in the submitted page's coordinates.
func TestCheapTier(t *testing.T) {
	img := page(400, [2]int{20, 40}, [2]int{100, 40}) // two lines: page mode, 400x150
	cheap := &CheapTier{MaxSide: 100, SkipOrientation: true}
	for _, tc := range []struct {
		name      string
		cheaper   *CheapTier
		queue     int
		tier      string
		readings  int
		sawLonger int
	}{
		{"idle", cheap, 0, "full", 2, 400},
		{"queueing", cheap, 5, "cheap", 1, 100},
		{"queueing, no cheaper tier", nil, 5, "", 2, 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fe := &fakeEngine{orientation: engine.Orientation{Degrees: 180, Confidence: 0.9}}
			models, _ := NewStaticModels(&Model{Ref: ModelRef{Name: "m", Version: "1"}, Languages: "eng", Engines: onePool{fe}, Cheaper: tc.cheaper})
			cfg := DefaultConfig()
			cfg.Tier = tier.Policy{EnterQueue: 2}
			m := metrics.New(prometheus.NewRegistry())
			svc := NewService(cfg, models, &queued{n: tc.queue}, m, nil)
			res, err := svc.Recognize(context.Background(), Input{Data: pngOf(t, img)}, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if res.Tier != tc.tier {
				t.Errorf("tier %q, want %q", res.Tier, tc.tier)
			}
			if len(fe.sizes) != tc.readings || max(fe.sizes[0].X, fe.sizes[0].Y) != tc.sawLonger {
				t.Errorf("engine saw %v; want %d readings, the first %d pixels long", fe.sizes, tc.readings, tc.sawLonger)
			}
			p := res.Pages[0]
			if p.Width != 400 || p.Height != img.Rect.Dy() {
				t.Errorf("page %dx%d, want the submitted size", p.Width, p.Height)
			}
			// The fake reads one line spanning the image's width, less a pixel
			// each side: mapped back, it spans the submitted page.
			if b := p.Lines[0].Box.Bounds(); !b.In(img.Rect) || b.Dx() < 380 {
				t.Errorf("line box %v in a %v page", b, img.Rect)
			}
			wantTier := tc.tier
			if wantTier == "" {
				wantTier = "full"
			}
			if got := testutil.ToFloat64(m.Tiers.WithLabelValues("m", wantTier)); got != 1 {
				t.Errorf("visionserve_ocr_tier_requests_total{tier=%q} = %v", wantTier, got)
			}
		})
	}
}

func TestDownscale(t *testing.T) {
	g := image.NewGray(image.Rect(0, 0, 1000, 250))
	if out, f := downscale(g, 0); out != g || f != 1 {
		t.Error("no limit changed the image")
	}
	if out, f := downscale(g, 2000); out != g || f != 1 {
		t.Error("a small image was scaled")
	}
	out, f := downscale(g, 500)
	if f != 0.5 || out.Bounds().Dx() != 500 || out.Bounds().Dy() != 125 {
		t.Errorf("%v %v", out.Bounds(), f)
	}
	if err := (CheapTier{MaxSide: 10}).Validate(); err == nil {
		t.Error("max_side 10 accepted")
	}
}
