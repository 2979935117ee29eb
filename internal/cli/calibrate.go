package cli

import (
	"context"
	"encoding/json"
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
	fs := newFlagSet("calibrate", "(--data DIR | --reviews URL) [flags]", stderr)
	var f serverFlags
	f.register(fs, config.Default(), false)
	data := fs.String("data", "", "directory of line images with <name>.gt.txt ground truth beside each (searched recursively)")
	reviews := fs.String("reviews", "", "a server's review export to fit on instead, e.g. http://127.0.0.1:8080 or .../v1/reviews/export?model=ocr-eng; the credential comes from $"+EnvAPIKey)
	maxBytes := fs.Int64("max-bytes", 4<<30, "the most bytes of a --reviews export to accept")
	model := fs.String("model", "", "model to calibrate (default: the first configured)")
	folds := fs.Int("folds", 5, "cross-validation folds for the reported error")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	if (*data == "") == (*reviews == "") || fs.NArg() > 0 {
		fs.Usage()
		return 2
	}
	cfg, err := f.load(fs)
	if err != nil {
		return fail(stderr, "calibrate", err)
	}
	// Read the configured model files (models:) with raw confidences: the
	// model's current calibration is off. A repository's packages would
	// apply their own calibration on top, so the repository is left out.
	if cfg.Repository.Dir != "" {
		fmt.Fprintf(stderr, "visionserve calibrate: reading with the models: entries' files, not the packages in %s (a package applies its own calibration)\n", cfg.Repository.Dir)
		cfg.Repository.Dir, cfg.Repository.Import.Dir = "", ""
	}
	found := -1
	for i := range cfg.Models {
		if *model == "" && i == 0 || cfg.Models[i].Name == *model {
			cfg.Models[i].Calibration = nil
			*model, found = cfg.Models[i].Name, i
		}
	}
	if found < 0 {
		return fail(stderr, "calibrate", fmt.Errorf("no configured model named %q", *model))
	}
	source := *data
	if *reviews != "" {
		dir, err := os.MkdirTemp("", "visionserve-reviews-")
		if err != nil {
			return fail(stderr, "calibrate", err)
		}
		defer os.RemoveAll(dir)
		u, err := exportURL(*reviews, *model)
		if err != nil {
			return fail(stderr, "calibrate", err)
		}
		n, err := fetchReviews(ctx, u, dir, reviewLimits{Bytes: *maxBytes, Entries: 3_000_000})
		if err != nil {
			return fail(stderr, "calibrate", err)
		}
		fmt.Fprintf(stderr, "visionserve calibrate: %d files from %s\n", n, u)
		*data, source = dir, u
	}
	samples, err := ocreval.LoadLines(*data)
	if err != nil {
		return fail(stderr, "calibrate", err)
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
	fmt.Fprintf(stdout, "model %s on %s\n", *model, source)
	c.WriteReport(stdout)
	// The same curve as a package's runtime (model pack --runtime), where
	// it travels with the traineddata it was fitted on; for a Tesseract
	// model, the whole ocr-tesseract runtime.
	runtime := map[string]any{"calibration": c.Curve}
	if m := cfg.Models[found]; m.Engine == config.EngineTesseract {
		runtime["lang"] = m.Languages
	}
	rt, err := json.Marshal(runtime)
	if err != nil {
		return fail(stderr, "calibrate", err)
	}
	fmt.Fprintf(stdout, "\n# the package runtime for visionserve model pack --runtime:\n%s\n", rt)
	return 0
}
