package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/visionserve/visionserve/internal/app"
	"github.com/visionserve/visionserve/internal/config"
	"github.com/visionserve/visionserve/internal/ocr"
	"github.com/visionserve/visionserve/internal/ocreval"
)

// runCalibrate reads labelled text lines with a model's raw confidences,
// fits its word calibration and reports the cross-validated effect.
func runCalibrate(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("calibrate", "--data DIR [flags]", stderr)
	var f serverFlags
	f.register(fs, config.Default(), false)
	data := fs.String("data", "", "directory of line images with <name>.gt.txt ground truth beside each (searched recursively)")
	model := fs.String("model", "", "model to calibrate (default: the first configured)")
	folds := fs.Int("folds", 5, "cross-validation folds for the reported error")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	if *data == "" || fs.NArg() > 0 {
		fs.Usage()
		return 2
	}
	cfg, err := f.load(fs)
	if err != nil {
		return fail(stderr, "calibrate", err)
	}
	samples, err := ocreval.LoadLines(*data)
	if err != nil {
		return fail(stderr, "calibrate", err)
	}
	// Read with raw confidences: the model's current calibration is off.
	found := false
	for i := range cfg.Models {
		if *model == "" && i == 0 || cfg.Models[i].Name == *model {
			cfg.Models[i].Calibration = nil
			*model, found = cfg.Models[i].Name, true
		}
	}
	if !found {
		return fail(stderr, "calibrate", fmt.Errorf("no configured model named %q", *model))
	}
	cfg.Log.Level = "warn"
	a, err := app.New(app.Options{Config: cfg, Logger: newLogger(cfg.Log, stderr), CoreOnly: true})
	if err != nil {
		return fail(stderr, "calibrate", err)
	}
	defer a.Shutdown(context.Background())

	readings := make([]ocreval.Reading, len(samples))
	errs := make([]error, len(samples))
	var wg sync.WaitGroup
	sem := make(chan struct{}, cfg.Server.EffectiveWorkers())
	for i, s := range samples {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			img, err := os.ReadFile(s.Image)
			if err != nil {
				errs[i] = err
				return
			}
			res, err := a.OCR().Recognize(ctx, ocr.Input{Data: img}, ocr.Options{Model: *model})
			if err != nil {
				errs[i] = fmt.Errorf("%s: %w", s.Image, err)
				return
			}
			r := ocreval.Reading{Truth: s.Truth, Text: res.Text, LineScore: res.Confidence}
			for _, p := range res.Pages {
				for _, l := range p.Lines {
					for _, w := range l.Words {
						r.Words = append(r.Words, ocreval.ScoredWord{Text: w.Text, Score: w.Confidence})
					}
				}
			}
			readings[i] = r
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return fail(stderr, "calibrate", err)
		}
	}
	c, err := ocreval.Calibrate(readings, *folds)
	if err != nil {
		return fail(stderr, "calibrate", err)
	}
	fmt.Fprintf(stdout, "model %s on %s\n", *model, *data)
	c.WriteReport(stdout)
	return 0
}
