package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sync"

	"github.com/visionserve/visionserve/internal/app"
	"github.com/visionserve/visionserve/internal/config"
	"github.com/visionserve/visionserve/internal/ocr"
)

func runOCR(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("ocr", "[flags] IMAGE... (- reads standard input)", stderr)
	var f serverFlags
	f.register(fs, config.Default(), false)
	model := fs.String("model", "", "model name (default: the first configured model)")
	lang := fs.String("lang", "", "language spec, e.g. eng; selects the model reading it")
	format := fs.String("format", "text", "text or json")
	mode := fs.String("mode", "auto", "auto, page, block, line or word")
	noRotate := fs.Bool("no-rotate", false, "skip detection of pages turned by 90, 180 or 270 degrees")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return 2
	}
	if *format != "text" && *format != "json" {
		fmt.Fprintf(stderr, "visionserve ocr: --format %q: use text or json\n", *format)
		return 2
	}
	m, err := ocr.ParseMode(*mode)
	if err != nil {
		fmt.Fprintf(stderr, "visionserve ocr: %v\n", err)
		return 2
	}
	cfg, err := f.load(fs)
	if err != nil {
		return fail(stderr, "ocr", err)
	}
	images := fs.Args()
	// One engine per image being read, up to the configured workers: a
	// single image needs one model load, not one per core.
	cfg.Server.Workers = min(cfg.Server.EffectiveWorkers(), len(images))
	cfg.Server.Queue = len(images)
	cfg.Log.Level = "warn"
	a, err := app.New(app.Options{Config: cfg, Logger: newLogger(cfg.Log, stderr), CoreOnly: true})
	if err != nil {
		return fail(stderr, "ocr", err)
	}
	defer a.Shutdown(context.Background())

	opt := ocr.Options{Model: *model, Lang: *lang, Mode: m, NoRotate: *noRotate}
	type outcome struct {
		res *ocr.Result
		err error
	}
	results := make([]chan outcome, len(images))
	sem := make(chan struct{}, cfg.Server.Workers)
	var wg sync.WaitGroup
	for i, name := range images {
		results[i] = make(chan outcome, 1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			data, err := readInput(name, int64(cfg.Limits.MaxBytes))
			if err != nil {
				results[i] <- outcome{err: err}
				return
			}
			res, err := a.OCR().Recognize(ctx, ocr.Input{Data: data}, opt)
			results[i] <- outcome{res, err}
		}()
	}
	defer wg.Wait()

	code := 0
	enc := json.NewEncoder(stdout)
	for i, name := range images {
		o := <-results[i]
		if o.err != nil {
			fmt.Fprintf(stderr, "visionserve ocr: %s: %v\n", name, o.err)
			code = 1
			continue
		}
		switch {
		case *format == "json" && len(images) == 1:
			enc.SetIndent("", "  ")
			_ = enc.Encode(o.res)
		case *format == "json":
			// One object per line, each naming its file.
			_ = enc.Encode(struct {
				File string `json:"file"`
				*ocr.Result
			}{name, o.res})
		case len(images) == 1:
			fmt.Fprintln(stdout, o.res.Text)
		default:
			fmt.Fprintf(stdout, "==> %s <==\n%s\n", name, o.res.Text)
		}
	}
	return code
}
