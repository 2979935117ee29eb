package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/visionserve/visionserve/internal/imageio"
	"github.com/visionserve/visionserve/internal/jobs/store"
	"github.com/visionserve/visionserve/internal/ocr"
	"github.com/visionserve/visionserve/internal/render"
)

// AllPages asks ResultPage and Render for every page of a result.
const AllPages = -1

// Render writes a finished job's result to w in format f (any but the
// API's JSON, which is Result): every page in order, or with page >= 0
// only the page whose Index it is.
//
// Formats that stream (render.Streamer: text, hocr, alto, pdf, pdfa) are
// written as the pages are read from the store, a few at a time, so a
// job of any length is rendered holding one page and one page image. The
// images (for pdf and pdfa) come from the job's stored input files: the
// page of a PDF rasterised again at the resolution it was read at, an
// image decoded as /v1/ocr decodes it. Other formats (PAGE XML) hold one
// page: a job of several needs page.
//
// Every check that can refuse the request (the job's state, the page, the
// format, the first page's input) is made before anything is written to
// w; an error after that leaves w holding part of a document.
func (m *Manager) Render(ctx context.Context, owner, id string, f render.Format, page int, w io.Writer) error {
	j, err := m.finished(ctx, owner, id)
	if err != nil {
		return err
	}
	var p plan
	if err := json.Unmarshal(j.Plan, &p); err != nil {
		return fmt.Errorf("job %s: unreadable plan: %w", id, err)
	}
	d := &document{m: m, job: j, plan: &p, format: f, page: page}
	defer d.close()
	if err := d.check(ctx); err != nil {
		return err
	}
	s, ok := f.Renderer.(render.Streamer)
	if !ok {
		return d.whole(ctx, w)
	}
	return d.stream(ctx, s, w)
}

// document is one rendering of a job's result.
type document struct {
	m      *Manager
	job    *store.Job
	plan   *plan
	format render.Format
	page   int // AllPages, or the one page
	// first is the first page with a result: its model names the
	// document's, and the one page's result when page is set.
	first PageResult
	// read counts the pages with a result.
	read   int
	images *pageImages
}

// check decides, before anything is written, whether the document can be
// made: a page asked for exists and was read, or some page was; the
// format can hold the pages; the first page's input is still stored.
func (d *document) check(ctx context.Context) error {
	id := d.job.ID
	switch {
	case d.page != AllPages:
		p, err := d.m.onePage(ctx, d.job, d.page)
		if err != nil {
			return err
		}
		if p.Page == nil {
			return errorf(ErrNoResult, "page %d of job %s could not be read (%s); its JSON result has the error", d.page, id, describe(p.Error))
		}
		d.first, d.read = p, 1
	default:
		d.read = d.job.PagesDone - d.job.PagesFailed
		if d.read == 0 {
			return errorf(ErrNoResult, "no page of job %s was read (%d of %d failed); its JSON result has each page's error", id, d.job.PagesFailed, d.job.PagesTotal)
		}
		found := false
		for p, err := range d.m.pages(ctx, id) {
			if err != nil {
				return err
			}
			if p.Page != nil {
				d.first, found = p, true
				break
			}
		}
		if !found {
			return fmt.Errorf("job %s counts %d pages read and none is stored", id, d.read)
		}
	}
	if _, ok := d.format.Renderer.(render.Streamer); !ok && d.page == AllPages && d.job.PagesDone > 1 {
		return errorf(ErrBadRequest, "format=%s holds one page and job %s has %d; ask for one with page=N (0 to %d), or use alto or hocr",
			d.format.Name, id, d.job.PagesDone, d.job.PagesTotal-1)
	}
	d.images = &pageImages{m: d.m, id: id, plan: d.plan}
	if d.format.Images {
		return d.images.open(ctx, d.first.Source.Item)
	}
	return nil
}

// model is the document's model: the first page's.
func (d *document) model() ocr.ModelRef {
	if d.first.Model != nil {
		return *d.first.Model
	}
	return ocr.ModelRef{}
}

// whole renders the one page with a format that does not stream.
func (d *document) whole(ctx context.Context, w io.Writer) error {
	p := d.first
	res := &ocr.Result{Model: d.model(), Text: pageText(p), Confidence: p.Confidence, Pages: []ocr.Page{*p.Page}}
	return d.format.Render(ctx, w, res, render.PagesFunc(func(ctx context.Context, _ int) (render.Image, error) {
		return d.images.image(ctx, p.Source)
	}))
}

// stream writes the pages as they are read.
func (d *document) stream(ctx context.Context, s render.Streamer, w io.Writer) error {
	st, err := s.NewStream(w, render.Document{Model: d.model(), Pages: d.read})
	if err != nil {
		return err
	}
	add := func(p PageResult) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		return st.Add(ctx, render.StreamPage{Number: p.Index, Result: p.Page, Image: d.images.source(p)})
	}
	if d.page != AllPages {
		if err := add(d.first); err != nil {
			return err
		}
		return st.Close()
	}
	for p, err := range d.m.pages(ctx, d.job.ID) {
		if err == nil {
			err = add(p)
		}
		if err != nil {
			return err
		}
	}
	return st.Close()
}

func (d *document) close() {
	if d.images != nil {
		d.images.close()
	}
}

// onePage returns page index of finished job j.
func (m *Manager) onePage(ctx context.Context, j *store.Job, index int) (PageResult, error) {
	if index < 0 || index >= j.PagesTotal {
		return PageResult{}, errorf(ErrBadRequest, "page=%d: job %s has pages 0 to %d", index, j.ID, j.PagesTotal-1)
	}
	for p, err := range m.pages(ctx, j.ID) {
		if err != nil {
			return PageResult{}, err
		}
		if p.Index == index {
			return p, nil
		}
		if p.Index > index {
			break
		}
	}
	return PageResult{}, errorf(ErrNoResult, "page %d of job %s was not read before the job was %s", index, j.ID, j.State)
}

// describe names a page error: the last part of its problem type and
// its detail.
func describe(e *PageError) string {
	if e == nil {
		return "failed"
	}
	return e.Type[strings.LastIndexByte(e.Type, '/')+1:] + ": " + e.Detail
}

// pageImages gives the images of a job's pages from its stored inputs,
// holding one input file at a time: a PDF copied into a memory file for
// the renderer (and freed when done), or an image file's bytes.
type pageImages struct {
	m    *Manager
	id   string
	plan *plan

	item    int // the file at hand; -1 before the first
	pdf     *PDFFile
	release func()
	file    render.Pages // an image file's pages
}

// source is the image source of page p for a stream: nil for a failed
// page whose image could not be made when it ran (the rasteriser failed
// or timed out), which is not tried again.
func (pi *pageImages) source(p PageResult) func(context.Context) (render.Image, error) {
	if p.Page == nil && p.Error != nil && (strings.HasSuffix(p.Error.Type, "/pdf-render-failed") || strings.HasSuffix(p.Error.Type, "/page-timeout")) {
		return nil
	}
	return func(ctx context.Context) (render.Image, error) { return pi.image(ctx, p.Source) }
}

// open makes item the file at hand. A file the store no longer has is
// ErrInputsDeleted.
func (pi *pageImages) open(ctx context.Context, item int) error {
	if pi.release != nil || pi.file != nil {
		if pi.item == item {
			return nil
		}
		pi.close()
	}
	if item < 0 || item >= len(pi.plan.Items) {
		return fmt.Errorf("job %s has no file %d", pi.id, item)
	}
	load := func() ([]byte, error) {
		b, err := pi.m.db.Input(ctx, pi.id, item)
		if errors.Is(err, store.ErrNotFound) {
			return nil, errorf(ErrInputsDeleted, "the files of job %s were deleted (jobs.keep_inputs is off, or they were evicted to keep the inputs of finished jobs within jobs.max_kept_bytes); "+
				"format=pdf and pdfa show them: use text, hocr, alto or json", pi.id)
		}
		return b, err
	}
	it := pi.plan.Items[item]
	if it.Kind == KindPDF {
		if pi.m.inputs.raster == nil {
			return inputError(imageio.ErrUnsupported, "file %d of job %s is a PDF, and this server cannot rasterise PDFs (poppler-utils is not installed)", item, pi.id)
		}
		doc, release, err := pi.m.inputs.pdfs.open(pi.id, item, load)
		if err != nil {
			return err
		}
		pi.item, pi.pdf, pi.release = item, doc, release
		return nil
	}
	data, err := load()
	if err != nil {
		return err
	}
	pi.item, pi.file = item, render.InputPages(ocr.Input{Data: data, Declared: it.Declared}, pi.m.inputs.limits)
	return nil
}

// image returns the image of the page at src, holding a worker (the
// scheduler's background runner) while it is rasterised or decoded, each
// page within jobs.page_timeout.
func (pi *pageImages) image(ctx context.Context, src Source) (render.Image, error) {
	if err := pi.open(ctx, src.Item); err != nil {
		return render.Image{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, pi.m.cfg.PageTimeout)
	defer cancel()
	var img render.Image
	err := pi.m.inputs.hold(ctx, func(ctx context.Context) (err error) {
		if pi.file != nil {
			img, err = pi.file.Page(ctx, src.Page)
			return err
		}
		it := pi.plan.Items[src.Item]
		dpi := pi.m.cfg.PDF.DPI
		if src.Page < len(it.PageDPI) {
			dpi = it.PageDPI[src.Page]
		}
		png, err := pi.m.inputs.raster.Render(ctx, pi.pdf, src.Page+1, dpi)
		if err != nil {
			return err
		}
		img, err = render.InputPages(ocr.Input{Data: png, Declared: imageio.PNG}, pi.m.inputs.limits).Page(ctx, 0)
		img.DPI = float64(dpi)
		return err
	})
	return img, err
}

// close drops the file at hand; a PDF copied out for this document is
// freed (a copy of a stored input lingers in memory no longer than its
// use).
func (pi *pageImages) close() {
	if pi.release != nil {
		pi.release()
		pi.m.inputs.forget(pi.id)
	}
	pi.pdf, pi.release, pi.file = nil, nil, nil
}
