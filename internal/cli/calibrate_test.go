package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/visionserve/visionserve/internal/ocreval"
	"github.com/visionserve/visionserve/internal/testenv"
)

// calibrate fits on the configured model files with raw scores even when
// the configuration serves a model repository (whose packages would apply
// their own calibration, or, as here, hold no version at all), and prints
// the curve as an ocr-tesseract package runtime.
func TestCalibrateIgnoresTheRepository(t *testing.T) {
	samples, err := ocreval.LoadLines(testenv.Shared(t, "data/ocr/lines"))
	if err != nil {
		t.Fatal(err)
	}
	data := t.TempDir()
	for i, s := range samples[:8] {
		img, err := os.ReadFile(s.Image)
		if err != nil {
			t.Fatal(err)
		}
		truth := s.Truth
		if i < 2 { // a wrong word in each fold's training half
			truth = "Z" + truth
		}
		name := filepath.Join(data, string(rune('a'+i)))
		if os.WriteFile(name+".png", img, 0o644) != nil || os.WriteFile(name+".gt.txt", []byte(truth+"\n"), 0o644) != nil {
			t.Fatal("writing the samples")
		}
	}
	cfgPath := filepath.Join(t.TempDir(), "visionserve.yaml")
	if err := os.WriteFile(cfgPath, []byte("repository:\n  dir: "+t.TempDir()+"\n  trust: {allow_unsigned: true}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if code := Main(context.Background(), []string{"calibrate", "--config", cfgPath, "--data", data, "--folds", "2"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d\n%s%s", code, stdout.String(), stderr.String())
	}
	if out := stdout.String(); !strings.Contains(out, "8 samples") || !strings.Contains(out, `"lang":"eng"`) || !strings.Contains(stderr.String(), "not the packages") {
		t.Errorf("stdout:\n%s\nstderr:\n%s", out, stderr.String())
	}
}
