package config

import (
	"strings"
	"testing"
	"time"
)

func TestTierConfig(t *testing.T) {
	c, err := Parse([]byte(`
ocr:
  tier: {enter_queue: 8, exit_queue: 1}
models:
  - {name: ocr-eng, version: "3", engine: tesseract, languages: eng, cheap_tier: {max_side: 1600, skip_orientation: true}}
`))
	if err != nil {
		t.Fatal(err)
	}
	if p := c.OCR.Tier; p.EnterQueue != 8 || p.ExitQueue != 1 || p.Sustain != 10*time.Second {
		t.Errorf("tier %+v (sustain should default to 10s)", p)
	}
	if ct := c.Models[0].CheapTier; ct == nil || ct.MaxSide != 1600 || !ct.SkipOrientation {
		t.Errorf("cheap_tier %+v", ct)
	}
	if Default().OCR.Tier.Enabled() || Default().Models[0].CheapTier != nil {
		t.Error("tiers are on by default")
	}
	_, err = Parse([]byte(`
ocr:
  tier: {enter_queue: 2, exit_queue: 2}
models:
  - {name: ocr-eng, version: "3", engine: tesseract, languages: eng, cheap_tier: {max_side: 10}}
`))
	for _, want := range []string{"ocr.tier.exit_queue 2 must be at least 0 and below tier.enter_queue 2", "models[0].cheap_tier.max_side 10"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not contain %q", err, want)
		}
	}
}
