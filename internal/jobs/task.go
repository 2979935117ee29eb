package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/visionserve/visionserve/internal/engine"
	"github.com/visionserve/visionserve/internal/imageio"
	"github.com/visionserve/visionserve/internal/jobs/store"
	"github.com/visionserve/visionserve/internal/ocr"
	"github.com/visionserve/visionserve/internal/sched"
	"github.com/visionserve/visionserve/internal/tracing"
)

// executor runs a claimed task: its input, OCR, and its pages encoded for
// the store.
type executor struct {
	ocr     Recognizer
	inputs  *inputs
	db      store.Jobs
	cfg     Config
	metrics *Metrics
	tracer  trace.Tracer
	prop    propagation.TextMapPropagator
}

// run implements queueOptions.Exec.
func (e *executor) run(ctx context.Context, c *store.Claim) ([]store.Page, error) {
	var p plan
	if err := json.Unmarshal(c.Job.Plan, &p); err != nil || c.Task >= len(p.Tasks) {
		return nil, fmt.Errorf("job %s: unreadable plan for task %d: %v", c.Job.ID, c.Task, err)
	}
	pages, err := e.runTask(ctx, c.Job.ID, &p, p.Tasks[c.Task])
	if err != nil {
		return nil, err
	}
	out := make([]store.Page, len(pages))
	failed := 0
	for i, pr := range pages {
		b, err := json.Marshal(pr)
		if err != nil {
			return nil, err
		}
		out[i] = store.Page{Index: pr.Index, Failed: pr.Error != nil, Data: b}
		if pr.Error != nil {
			failed++
		}
	}
	if e.metrics != nil {
		e.metrics.Pages.WithLabelValues("ok").Add(float64(len(pages) - failed))
		e.metrics.Pages.WithLabelValues("failed").Add(float64(failed))
	}
	return out, nil
}

// runTask recognises one task. A page that cannot be read becomes a page
// with an error; the returned error is reserved for "stop now, run this
// task again later" (shutdown, a lost lease) and "the job was canceled".
func (e *executor) runTask(jctx context.Context, id string, p *plan, t task) ([]PageResult, error) {
	ctx, cancel := context.WithTimeout(jctx, e.cfg.PageTimeout*time.Duration(max(t.Pages, 1)))
	defer cancel()
	var links []trace.Link
	if p.TraceParent != "" {
		pctx := e.prop.Extract(context.Background(), propagation.MapCarrier{"traceparent": p.TraceParent})
		links = append(links, trace.Link{SpanContext: trace.SpanContextFromContext(pctx)})
	}
	ctx, span := e.tracer.Start(ctx, "job.task", trace.WithLinks(links...), trace.WithAttributes(
		tracing.AttrJobID.String(id), tracing.AttrPage.Int(t.First)))
	defer span.End()

	it := p.Items[t.Item]
	source := func(k int) Source {
		if it.Kind == KindPDF {
			return Source{Item: t.Item, Page: t.Page - 1}
		}
		return Source{Item: t.Item, Page: k}
	}
	errPages := func(err error) []PageResult {
		kind, detail := pageError(err, ctx)
		tracing.Fail(span, kind, err)
		out := make([]PageResult, t.Pages)
		for k := range out {
			out[k] = PageResult{Index: t.First + k, Source: source(k), Error: &PageError{Type: problemBase + kind, Detail: detail}}
		}
		return out
	}
	in, err := e.inputs.read(ctx, id, it, t, func(item int) ([]byte, error) { return e.db.Input(ctx, id, item) })
	var pf *pageFailure
	if err != nil {
		if !errors.As(err, &pf) || transient(err, jctx) {
			return nil, err
		}
		return errPages(err), nil
	}
	res, err := e.ocr.Recognize(ctx, in, p.Options.ocr())
	if err != nil {
		if transient(err, jctx) {
			return nil, err
		}
		return errPages(err), nil
	}
	if len(res.Pages) != t.Pages {
		return errPages(fmt.Errorf("the file now has %d pages, not %d", len(res.Pages), t.Pages)), nil
	}
	out := make([]PageResult, t.Pages)
	for k := range res.Pages {
		model := res.Model
		out[k] = PageResult{Index: t.First + k, Source: source(k), Model: &model, Page: &res.Pages[k]}
	}
	return out, nil
}

// transient errors leave a task to run again: the task's context ended
// (shutdown, cancel, lost lease) or the server is draining.
func transient(err error, jctx context.Context) bool {
	return jctx.Err() != nil || errors.Is(err, sched.ErrDraining) || errors.Is(err, engine.ErrPoolClosed) || errors.Is(err, ErrClosed)
}

const problemBase = "https://visionserve.dev/problems/"

// pageError names a page failure with the problem type a synchronous
// request would have got.
func pageError(err error, ctx context.Context) (kind, detail string) {
	var ie *imageio.Error
	detail = err.Error()
	if errors.As(err, &ie) {
		detail = ie.Detail
	}
	switch {
	case errors.Is(err, imageio.ErrUnsupported):
		return "unsupported-media-type", detail
	case errors.Is(err, imageio.ErrUndecodable):
		return "undecodable-image", detail
	case errors.Is(err, imageio.ErrTooLarge):
		return "too-large", detail
	case errors.Is(err, imageio.ErrUnusable), errors.Is(err, imageio.ErrDecodeTimeout):
		return "unusable-image", detail
	case errors.Is(err, ocr.ErrModelNotFound), errors.Is(err, ocr.ErrVersionNotFound):
		return "model-not-found", detail
	case errors.Is(err, ocr.ErrBadOption):
		return "bad-request", detail
	case errors.Is(err, ErrPDF):
		return "pdf-render-failed", detail
	case ctx.Err() != nil:
		return "page-timeout", "the page did not finish within jobs.page_timeout"
	}
	return "internal", "internal error; the server log has the details"
}
