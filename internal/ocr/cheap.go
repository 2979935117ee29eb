package ocr

import (
	"fmt"
	"image"
	"time"

	"golang.org/x/image/draw"

	"github.com/visionserve/visionserve/internal/ocr/tier"
)

// CheapTier is what a model gives up in its cheaper quality tier, which it
// serves in while the server is under sustained queueing (Config.Tier). The
// zero value changes nothing.
type CheapTier struct {
	// MaxSide downscales a page so that its longer side is at most this
	// many pixels before recognition (boxes are mapped back). 0: no limit.
	MaxSide int `yaml:"max_side" json:"max_side,omitempty"`
	// SkipOrientation reads doubtful pages once, as they are, without
	// checking them for a turn (which costs about a second reading).
	SkipOrientation bool `yaml:"skip_orientation" json:"skip_orientation,omitempty"`
}

// Validate reports impossible values.
func (c CheapTier) Validate() error {
	if c.MaxSide != 0 && c.MaxSide < 64 {
		return fmt.Errorf("cheap_tier.max_side %d: 0 (no limit) or at least 64 pixels", c.MaxSide)
	}
	return nil
}

// queueLength is implemented by sched.Scheduler.
type queueLength interface{ QueueLength() int }

// chooseTier decides the tier of one request from the scheduler's queue,
// counts it, and applies the model's cheaper tier to opt. It returns ""
// for a model without a cheaper tier (the response then has no tier).
func (s *Service) chooseTier(model *Model, opt *Options) tier.Name {
	name := tier.Full
	if q, ok := s.sched.(queueLength); ok && model.Cheaper != nil {
		name = s.tiers.Observe(q.QueueLength(), time.Now())
	}
	if s.metrics != nil {
		s.metrics.Tiers.WithLabelValues(model.Ref.Name, string(name)).Inc()
	}
	if model.Cheaper == nil {
		return ""
	}
	if name == tier.Cheap {
		opt.MaxSide = model.Cheaper.MaxSide
		opt.NoRotate = opt.NoRotate || model.Cheaper.SkipOrientation
	}
	return name
}

// downscale returns g scaled so that its longer side is at most maxSide,
// and the factor applied (1: unchanged).
func downscale(g *image.Gray, maxSide int) (*image.Gray, float64) {
	b := g.Bounds()
	long := max(b.Dx(), b.Dy())
	if maxSide <= 0 || long <= maxSide {
		return g, 1
	}
	f := float64(maxSide) / float64(long)
	dst := image.NewGray(image.Rect(0, 0, max(1, int(float64(b.Dx())*f+0.5)), max(1, int(float64(b.Dy())*f+0.5))))
	draw.ApproxBiLinear.Scale(dst, dst.Bounds(), g, b, draw.Src, nil)
	return dst, f
}

// unscale maps boxes found in a page downscaled by f back to the page.
func unscale(lines []Line, f float64) {
	if f == 1 {
		return
	}
	q := func(q *Quad) {
		for i := range q {
			q[i] = Point{q[i][0] / f, q[i][1] / f}
		}
	}
	for i := range lines {
		q(&lines[i].Box)
		for k := range lines[i].Words {
			q(&lines[i].Words[k].Box)
		}
	}
}
