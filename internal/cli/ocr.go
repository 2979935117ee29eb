package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/visionserve/visionserve/internal/app"
	"github.com/visionserve/visionserve/internal/config"
	"github.com/visionserve/visionserve/internal/ocr"
	"github.com/visionserve/visionserve/internal/render"
)

func runOCR(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("ocr", "[flags] IMAGE... (- reads standard input)", stderr)
	var f serverFlags
	f.register(fs, config.Default(), false)
	model := fs.String("model", "", "model name (default: the first configured model)")
	lang := fs.String("lang", "", "language spec, e.g. eng; selects the model reading it")
	format := fs.String("format", "text", "output format: "+strings.Join(render.Names(), ", ")+" (docs/output-formats.md)")
	mode := fs.String("mode", "auto", "auto, page, block, line or word")
	noRotate := fs.Bool("no-rotate", false, "skip detection of pages turned by 90, 180 or 270 degrees")
	dewarpMode := fs.String("dewarp", "", "auto (flatten photographed pages, level tilted scans), on or off (default: the config's ocr.dewarp)")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return 2
	}
	out, err := render.Lookup(*format)
	if err != nil {
		fmt.Fprintf(stderr, "visionserve ocr: --format: %v\n", err)
		return 2
	}
	if len(fs.Args()) > 1 && !listable(out) {
		fmt.Fprintf(stderr, "visionserve ocr: --format %s writes one document: give one image (a multi-page TIFF is one document)\n", out.Name)
		return 2
	}
	m, err := ocr.ParseMode(*mode)
	if err != nil {
		fmt.Fprintf(stderr, "visionserve ocr: %v\n", err)
		return 2
	}
	dw, err := ocr.ParseDewarp(*dewarpMode)
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

	opt := ocr.Options{Model: *model, Lang: *lang, Mode: m, NoRotate: *noRotate, Dewarp: dw}
	type outcome struct {
		res *ocr.Result
		in  ocr.Input
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
			in := ocr.Input{Data: data}
			res, err := a.OCR().Recognize(ctx, in, opt)
			results[i] <- outcome{res, in, err}
		}()
	}
	defer wg.Wait()

	code := 0
	for i, name := range images {
		o := <-results[i]
		if o.err == nil {
			o.err = writeOCR(ctx, stdout, out, name, len(images) > 1, o.res, render.InputPages(o.in, a.OCR().Limits()))
		}
		if o.err != nil {
			fmt.Fprintf(stderr, "visionserve ocr: %s: %v\n", name, o.err)
			code = 1
		}
	}
	return code
}

// listable reports whether results of several images can follow each
// other on standard output in format f: JSON lines and text sections.
func listable(f render.Format) bool { return f.Name == "json" || f.Name == "text" }

// writeOCR writes one image's result to w in format f. Alone, JSON is
// indented for people to read; in a list of several images, each result is
// one JSON line that names its file, or text under a "==> file <==" header
// (as head(1) does).
func writeOCR(ctx context.Context, w io.Writer, f render.Format, file string, several bool, res *ocr.Result, pages render.Pages) error {
	var doc bytes.Buffer
	if err := f.Render(ctx, &doc, res, pages); err != nil {
		return err
	}
	out := doc.Bytes()
	switch {
	case f.Name == "json" && several:
		name, _ := json.Marshal(file)
		out = append(append(append([]byte(`{"file":`), name...), ','), out[1:]...)
	case f.Name == "json":
		var ind bytes.Buffer
		if err := json.Indent(&ind, out, "", "  "); err != nil {
			return err
		}
		out = ind.Bytes()
	case f.Name == "text" && several:
		out = append([]byte("==> "+file+" <==\n"), out...)
	}
	_, err := w.Write(out)
	return err
}
