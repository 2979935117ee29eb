package calib

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"testing"
)

func TestApply(t *testing.T) {
	c := Curve{{0.2, 0.1}, {0.6, 0.5}, {0.9, 0.95}}
	for in, want := range map[float64]float64{0: 0.1, 0.2: 0.1, 0.4: 0.3, 0.6: 0.5, 0.75: 0.725, 0.9: 0.95, 1: 0.95} {
		if got := c.Apply(in); math.Abs(got-want) > 1e-9 {
			t.Errorf("Apply(%v) = %v, want %v", in, got, want)
		}
	}
	if got := Curve(nil).Apply(0.37); got != 0.37 {
		t.Errorf("empty curve is not the identity: %v", got)
	}
	if err := (Curve{{0.5, 0.6}, {0.4, 0.7}}).Validate(); err == nil {
		t.Error("unsorted curve accepted")
	}
	if err := (Curve{{0.5, 0.6}, {0.7, 0.5}}).Validate(); err == nil {
		t.Error("decreasing curve accepted")
	}
}

// A scorer that is systematically under-confident is corrected: samples
// drawn with true probability p = score^0.25 (a score of 0.5 is right 84%
// of the time) are fitted, and calibration error falls on fresh samples.
func TestFitCorrectsMiscalibration(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	draw := func(n int) []Sample {
		out := make([]Sample, n)
		for i := range out {
			s := r.Float64()
			out[i] = Sample{Score: s, Correct: r.Float64() < math.Pow(s, 0.25)}
		}
		return out
	}
	c, err := Fit(draw(5000))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	test := draw(5000)
	mapped := make([]Sample, len(test))
	for i, s := range test {
		mapped[i] = Sample{c.Apply(s.Score), s.Correct}
	}
	before, after := ECE(test, 10), ECE(mapped, 10)
	t.Logf("ECE %.4f -> %.4f, Brier %.4f -> %.4f, %d knots", before, after, Brier(test), Brier(mapped), len(c))
	if !(after < before/3) {
		t.Errorf("ECE %.4f -> %.4f: calibration did not help", before, after)
	}
	if got := c.Apply(0.5); math.Abs(got-math.Pow(0.5, 0.25)) > 0.05 {
		t.Errorf("Apply(0.5) = %.3f, want about %.3f", got, math.Pow(0.5, 0.25))
	}
}

func TestFitNeedsBothOutcomes(t *testing.T) {
	if _, err := Fit([]Sample{{0.5, true}, {0.7, true}}); err == nil {
		t.Error("fitted all-correct samples")
	}
	if _, err := Fit(nil); err == nil {
		t.Error("fitted nothing")
	}
}

func TestECEPerfect(t *testing.T) {
	var s []Sample
	for i := 0; i < 100; i++ {
		s = append(s, Sample{0.5, i%2 == 0})
	}
	if e := ECE(s, 5); e > 1e-9 {
		t.Errorf("ECE of perfectly calibrated samples = %v", e)
	}
	if b := Brier([]Sample{{1, true}, {0, false}}); b != 0 {
		t.Errorf("Brier = %v", b)
	}
}

func TestKnotJSON(t *testing.T) {
	c := Curve{{X: 0.1, Y: 0.2}, {X: 0.9, Y: 0.95}}
	data, err := json.Marshal(c)
	if err != nil || string(data) != "[[0.1,0.2],[0.9,0.95]]" {
		t.Fatalf("%s %v", data, err)
	}
	var back Curve
	if err := json.Unmarshal(data, &back); err != nil || len(back) != 2 || back[1] != c[1] {
		t.Fatalf("%v %v", back, err)
	}
	if err := json.Unmarshal([]byte("[[1,2,3]]"), &back); err == nil {
		t.Error("a knot of three numbers accepted")
	}
}
