package dewarp

import (
	"image"
	"math"
	"math/rand/v2"
	"testing"
)

// The tilt of a page's lines is measured within 0.15 degrees over the whole
// range, for pages read across (lines) and turned pages (columns), and
// a level page measures level.
func TestEstimateSkew(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 5))
	page := textPage(700, 900, 16, 235, 30, rng)
	for _, deg := range []float64{0, 0.4, -1, 2.5, -4, 7.3, -10, 14.5, -15} {
		for _, turn := range []float64{0, 90} {
			s := EstimateSkew(rotated(page, deg+turn, 235), MaxSkew)
			if math.Abs(s.Degrees-deg) > 0.15 {
				t.Errorf("tilt %g (turned %g): measured %+v", deg, turn, s)
			}
			if s.Lines != 26 || s.Confidence < MinSkewConfidence || s.Paper < 232 || s.Paper > 235 {
				t.Errorf("tilt %g (turned %g): %+v", deg, turn, s)
			}
			if math.Abs(deg) >= MinSkew && s.Gain < MinSkewGain {
				t.Errorf("tilt %g (turned %g): gain %.2f over level", deg, turn, s.Gain)
			}
		}
	}
}

// Light text on a dark page is measured the same way.
func TestEstimateSkewInverted(t *testing.T) {
	rng := rand.New(rand.NewPCG(6, 6))
	page := textPage(700, 900, 16, 20, 230, rng)
	if s := EstimateSkew(rotated(page, 4, 20), MaxSkew); math.Abs(s.Degrees-4) > 0.15 || s.Paper < 20 || s.Paper > 23 || s.Lines != 26 {
		t.Errorf("measured %+v", s)
	}
}

// Nothing to measure gives a zero Skew, not a guess.
func TestEstimateSkewWithoutText(t *testing.T) {
	blank := image.NewGray(image.Rect(0, 0, 500, 500))
	for i := range blank.Pix {
		blank.Pix[i] = 250
	}
	if s := EstimateSkew(blank, MaxSkew); s.Degrees != 0 || s.Confidence != 0 || s.Lines != 0 {
		t.Errorf("blank page: %+v", s)
	}
	black := image.NewGray(image.Rect(0, 0, 500, 500))
	if s := EstimateSkew(black, MaxSkew); s.Confidence != 0 {
		t.Errorf("black page: %+v", s)
	}
}
