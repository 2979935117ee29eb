package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/visionserve/visionserve/internal/imageio"
	"github.com/visionserve/visionserve/internal/jobs/store"
	"github.com/visionserve/visionserve/internal/ocr"
)

// inputs reads the files of jobs: at submission it opens each as the
// runner will and plans the tasks; when a task runs it turns the task's
// file (an image with all its frames, or one page of a PDF rasterised by
// the Rasterizer in a child process) into the OCR input.
type inputs struct {
	cfg    Config
	limits imageio.Limits
	// raster is nil when PDFs cannot be read (poppler-utils missing).
	raster Rasterizer
	// holder runs each rasterisation holding a worker; nil: without one.
	holder Runner
	// tmp is the renderer's private working directory (it writes
	// nothing there: PDFs and pages stay in memory).
	tmp string
	// pdfs are the PDFs copied into memory files for the renderer, kept
	// while their job's pages run here.
	pdfs *fileCache
}

// newInputs prepares the temporary directory (emptied: what a previous
// process left there is garbage; without jobs.dir, a new one under the
// system's) and finds the renderer.
func newInputs(cfg Config, limits imageio.Limits, raster Rasterizer, holder Runner, log *slog.Logger) (*inputs, error) {
	in := &inputs{cfg: cfg, limits: limits, raster: raster, holder: holder}
	if cfg.Dir != "" {
		in.tmp = filepath.Join(cfg.Dir, "tmp")
		if err := os.RemoveAll(in.tmp); err != nil {
			return nil, err
		}
		if err := os.MkdirAll(in.tmp, 0o700); err != nil {
			return nil, err
		}
	} else {
		// A shared store: no directory of the jobs' own.
		dir, err := os.MkdirTemp("", "visionserve-jobs-")
		if err != nil {
			return nil, err
		}
		in.tmp = dir
	}
	// Enough for every runner to work on a different PDF, and then some;
	// the idle ones within one submission's bytes (they are memory).
	in.pdfs = newFileCache(2*cfg.Concurrency+2, cfg.MaxBytes)
	if in.raster == nil {
		in.raster = &Poppler{Pdfinfo: cfg.PDF.Pdfinfo, Pdftoppm: cfg.PDF.Pdftoppm, MemoryLimit: cfg.PDF.MemoryLimit, MaxOutput: limits.MaxBytes, TempDir: in.tmp}
	}
	if p, ok := in.raster.(*Poppler); ok {
		if err := p.Available(); err != nil {
			log.Warn("PDF jobs will be refused", "err", err)
			in.raster = nil
		}
	}
	return in, nil
}

// close removes the temporary directory.
func (in *inputs) close() { _ = os.RemoveAll(in.tmp) }

// plan opens every input as the runner will, so bad input is refused
// now with the same error a synchronous request gets, and plans the
// tasks: one per image (with all its frames), one per PDF page. It fills
// p and j's counts.
func (in *inputs) plan(ctx context.Context, j *store.Job, p *plan, files []Input) error {
	for i, f := range files {
		it := item{Declared: f.Declared, Bytes: int64(len(f.Data)), Kind: KindImage}
		j.InputBytes += it.Bytes
		remaining := in.cfg.MaxPages - j.PagesTotal
		if f.PDF {
			if err := in.planPDF(ctx, i, f.Data, remaining, &it); err != nil {
				return err
			}
			for pg := 1; pg <= it.Pages; pg++ {
				p.Tasks = append(p.Tasks, task{Item: i, Page: pg, Pages: 1, First: j.PagesTotal + pg - 1})
			}
		} else {
			doc, err := imageio.Open(f.Data, f.Declared, in.limits)
			if err != nil {
				return withItem(err, i)
			}
			it.Pages = len(doc.Pages)
			p.Tasks = append(p.Tasks, task{Item: i, Pages: it.Pages, First: j.PagesTotal})
		}
		p.Items = append(p.Items, it)
		j.PagesTotal += it.Pages
		if j.PagesTotal > in.cfg.MaxPages {
			return errorf(ErrTooLarge, "more than %d pages; the limit is %d per job", in.cfg.MaxPages, in.cfg.MaxPages)
		}
	}
	j.Tasks = len(p.Tasks)
	return nil
}

func (in *inputs) planPDF(ctx context.Context, i int, data []byte, remaining int, it *item) error {
	if in.raster == nil {
		return inputError(imageio.ErrUnsupported, "file %d is a PDF, and this server cannot rasterise PDFs (poppler-utils is not installed)", i)
	}
	it.Kind = KindPDF
	doc, err := NewPDFFile(data)
	if err != nil {
		return err
	}
	defer doc.Close()
	ctx, cancel := context.WithTimeout(ctx, in.cfg.PageTimeout)
	defer cancel()
	sizes, err := in.raster.Pages(ctx, doc, remaining)
	if err != nil {
		if errors.Is(err, ErrPDF) {
			return inputError(imageio.ErrUndecodable, "file %d: %v", i, err)
		}
		return err
	}
	if len(sizes) > remaining {
		return errorf(ErrTooLarge, "file %d has more pages than the %d this job has left (the limit is %d per job)", i, remaining, in.cfg.MaxPages)
	}
	it.Pages = len(sizes)
	for _, s := range sizes {
		it.PageDPI = append(it.PageDPI, PageDPI(s, in.cfg.PDF.DPI, in.limits.MaxPixels))
	}
	return nil
}

// withItem names the file in an input error's detail.
func withItem(err error, i int) error {
	var ie *imageio.Error
	if errors.As(err, &ie) {
		return &imageio.Error{Kind: ie.Kind, Detail: fmt.Sprintf("file %d: %s", i, ie.Detail)}
	}
	return err
}

// read returns task t's OCR input from item it of job id. load reads an
// input file from the store. A page that cannot be rendered is a
// *pageFailure: an error of the page, not of the job.
func (in *inputs) read(ctx context.Context, id string, it item, t task, load func(item int) ([]byte, error)) (ocr.Input, error) {
	if it.Kind != KindPDF {
		data, err := load(t.Item)
		return ocr.Input{Data: data, Declared: it.Declared}, err
	}
	doc, release, err := in.pdfs.open(id, t.Item, func() ([]byte, error) { return load(t.Item) })
	if err != nil {
		return ocr.Input{}, err
	}
	defer release()
	dpi := in.cfg.PDF.DPI
	if t.Page-1 < len(it.PageDPI) {
		dpi = it.PageDPI[t.Page-1]
	}
	var png []byte
	err = in.hold(ctx, func(ctx context.Context) (err error) {
		png, err = in.raster.Render(ctx, doc, t.Page, dpi)
		return err
	})
	if err != nil {
		return ocr.Input{}, &pageFailure{err}
	}
	return ocr.Input{Data: png, Declared: imageio.PNG}, nil
}

// hold runs fn holding a worker, when there is a holder.
func (in *inputs) hold(ctx context.Context, fn func(context.Context) error) error {
	if in.holder == nil {
		return fn(ctx)
	}
	return in.holder.Run(ctx, fn)
}

// forget drops job id's PDFs copied out for the renderer.
func (in *inputs) forget(id string) { in.pdfs.forget(id) }

// pageFailure is an error that fails the page it happened to.
type pageFailure struct{ error }

func (p *pageFailure) Unwrap() error { return p.error }
