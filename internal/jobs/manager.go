package jobs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/visionserve/visionserve/internal/engine"
	"github.com/visionserve/visionserve/internal/imageio"
	"github.com/visionserve/visionserve/internal/jobs/webhook"
	"github.com/visionserve/visionserve/internal/ocr"
	"github.com/visionserve/visionserve/internal/sched"
	"github.com/visionserve/visionserve/internal/tracing"
)

// Recognizer is the OCR core as jobs use it; give it an ocr.Service whose
// scheduler is the Background runner.
type Recognizer interface {
	Recognize(ctx context.Context, in ocr.Input, opt ocr.Options) (*ocr.Result, error)
}

// Options wire a Manager.
type Options struct {
	Config Config
	OCR    Recognizer
	// Limits are the per-image decoding limits (those of /v1/ocr).
	Limits imageio.Limits
	// Rasterizer reads PDFs; nil: Poppler as configured.
	Rasterizer Rasterizer
	// Scheduler runs each PDF page's rasterisation holding a worker, so
	// the renderer's CPU is counted like recognition's (give it the
	// scheduler's Background runner); nil: rasterise without one.
	Scheduler  Runner
	Log        *slog.Logger
	Metrics    *Metrics
	Tracer     trace.Tracer
	Propagator propagation.TextMapPropagator
	Now        func() time.Time
	Version    string
}

// Runner runs fn holding a worker (sched.Background).
type Runner interface {
	Run(ctx context.Context, fn func(context.Context) error) error
}

// Manager owns the job database and runs the jobs.
type Manager struct {
	cfg     Config
	ocr     Recognizer
	inputs  *inputs
	log     *slog.Logger
	metrics *Metrics
	tracer  trace.Tracer
	prop    propagation.TextMapPropagator
	now     func() time.Time
	version string
	secret  []byte

	store   *store
	deliver *webhook.Deliverer
	uploads chan struct{}

	mu      sync.Mutex
	queue   []string // job ids waiting for a runner, oldest first
	queued  map[string]bool
	wake    chan struct{}
	running map[string]context.CancelCauseFunc
	active  int   // unfinished jobs
	pending int64 // input bytes of unfinished jobs
	closed  bool
	stop    context.CancelFunc
	wg      sync.WaitGroup
	subMu   sync.Mutex // serialises submissions' reservation checks
}

// errCanceledByUser is the cause of a job context canceled by Cancel or
// Delete (as opposed to a shutdown).
var errCanceledByUser = errors.New("job canceled")

// Open opens the database, and finds the unfinished jobs to resume and
// the webhooks still to deliver. Nothing runs until Start.
func Open(opts Options) (*Manager, error) {
	cfg := opts.Config
	if !cfg.Enabled() {
		return nil, ErrDisabled
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Tracer == nil {
		opts.Tracer = noop.NewTracerProvider().Tracer("")
	}
	if opts.Propagator == nil {
		opts.Propagator = propagation.TraceContext{}
	}
	m := &Manager{
		cfg: cfg, ocr: opts.OCR,
		log: opts.Log.With("component", "jobs"), metrics: opts.Metrics, tracer: opts.Tracer, prop: opts.Propagator,
		now: opts.Now, version: opts.Version,
		queued: map[string]bool{}, wake: make(chan struct{}, 1), running: map[string]context.CancelCauseFunc{},
		uploads: make(chan struct{}, cfg.MaxConcurrentUploads),
	}
	secret, err := cfg.Webhook.LoadSecret()
	if err != nil {
		return nil, err
	}
	m.secret = secret
	if m.inputs, err = newInputs(cfg, opts.Limits.WithDefaults(), opts.Rasterizer, opts.Scheduler, m.log); err != nil {
		return nil, err
	}
	if m.store, err = openStore(cfg.Dir, cfg.Retention); err != nil {
		return nil, err
	}
	m.sweep()
	var resume []*record
	err = m.store.all(func(r *record) error {
		if !r.State.Terminal() {
			resume = append(resume, r)
			m.active++
			m.pending += r.InputBytes
		}
		return nil
	})
	if err != nil {
		m.store.close()
		return nil, err
	}
	sort.Slice(resume, func(i, j int) bool { return resume[i].Created.Before(resume[j].Created) })
	for _, r := range resume {
		m.enqueue(r.ID)
	}
	if len(resume) > 0 {
		m.log.Info("resuming unfinished jobs", "jobs", len(resume))
	}
	m.deliver = webhook.NewDeliverer(webhook.Options{
		Config: cfg.Webhook.delivery(), Outbox: outbox{m.store}, Key: m.secret, Log: m.log, Now: m.now, Version: m.version,
		Outcomes: m.metrics.webhooks(),
	})
	m.observe()
	return m, nil
}

// Config returns the configuration in force.
func (m *Manager) Config() Config { return m.cfg }

// TryUpload reserves one of the MaxConcurrentUploads slots for reading a
// submission; ok is false when all are taken (answer 429).
func (m *Manager) TryUpload() (release func(), ok bool) {
	select {
	case m.uploads <- struct{}{}:
		return func() { <-m.uploads }, true
	default:
		return nil, false
	}
}

// WebhooksEnabled reports whether a signing secret is configured.
func (m *Manager) WebhooksEnabled() bool { return m.secret != nil }

// Start runs the job runners, the webhook deliverer and the janitor until
// Close.
func (m *Manager) Start() {
	ctx, cancel := context.WithCancel(context.Background())
	m.stop = cancel
	for i := 0; i < m.cfg.Concurrency; i++ {
		m.wg.Go(func() { m.runner(ctx) })
	}
	m.wg.Go(func() { m.deliver.Run(ctx) })
	m.wg.Go(func() { m.janitor(ctx) })
}

// Close stops the runners (a job's page in progress is abandoned, to be
// run again at the next start), waits for them, and closes the database.
func (m *Manager) Close() error {
	m.mu.Lock()
	m.closed = true
	m.mu.Unlock()
	if m.stop != nil {
		m.stop()
	}
	m.wg.Wait()
	m.inputs.close()
	return m.store.close()
}

func (m *Manager) enqueue(id string) {
	m.mu.Lock()
	if !m.queued[id] {
		m.queued[id] = true
		m.queue = append(m.queue, id)
	}
	m.mu.Unlock()
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

func (m *Manager) next(ctx context.Context) (string, bool) {
	for {
		m.mu.Lock()
		if len(m.queue) > 0 {
			id := m.queue[0]
			m.queue = m.queue[1:]
			delete(m.queued, id)
			more := len(m.queue) > 0
			m.mu.Unlock()
			if more {
				select { // let another runner take the next one
				case m.wake <- struct{}{}:
				default:
				}
			}
			return id, true
		}
		m.mu.Unlock()
		select {
		case <-ctx.Done():
			return "", false
		case <-m.wake:
		}
	}
}

func (m *Manager) runner(ctx context.Context) {
	for {
		id, ok := m.next(ctx)
		if !ok {
			return
		}
		if err := m.run(ctx, id); err != nil && ctx.Err() == nil {
			m.log.Error("job failed to run", "job", id, "err", err)
		}
	}
}

// Submit validates and stores a job and queues it. created is false when
// the Idempotency-Key named an existing job with the same request.
func (m *Manager) Submit(ctx context.Context, owner string, sub *Submission) (st Status, created bool, err error) {
	if sub.WebhookURL != "" && m.secret == nil {
		return st, false, errorf(ErrWebhookDisabled, "this server has no webhook signing secret (jobs.webhook.secret_file or $%s)", m.cfg.Webhook.SecretEnv)
	}
	if len(sub.Inputs) > m.cfg.MaxItems {
		return st, false, errorf(ErrTooLarge, "%d files; the limit is %d per job", len(sub.Inputs), m.cfg.MaxItems)
	}
	rec := &record{
		ID: newID("job_"), Owner: owner, State: StateQueued, Options: sub.OCR, WebhookURL: sub.WebhookURL,
		IdempotencyKey: sub.IdempotencyKey, Fingerprint: fingerprint(sub),
	}
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		carrier := propagation.MapCarrier{}
		m.prop.Inject(ctx, carrier)
		rec.TraceParent = carrier.Get("traceparent")
	}
	// A replay answers before any inspection work.
	if sub.IdempotencyKey != "" {
		if prev, err := m.replay(owner, sub.IdempotencyKey, rec.Fingerprint); prev != nil || err != nil {
			if err != nil {
				return st, false, err
			}
			return prev.status(), false, nil
		}
	}
	if err := m.inputs.plan(ctx, rec, sub.Inputs); err != nil {
		return st, false, err
	}

	m.mu.Lock()
	switch {
	case m.closed:
		m.mu.Unlock()
		return st, false, ErrClosed
	case m.active >= m.cfg.MaxQueued:
		m.mu.Unlock()
		return st, false, errorf(ErrQueueFull, "%d jobs are unfinished, the most this server keeps", m.active)
	case m.pending+rec.InputBytes > m.cfg.MaxPendingBytes:
		m.mu.Unlock()
		return st, false, errorf(ErrQueueFull, "unfinished jobs hold %d bytes of input; this one would pass the limit of %d", m.pending, m.cfg.MaxPendingBytes)
	}
	m.active++
	m.pending += rec.InputBytes
	m.mu.Unlock()

	now := m.now()
	rec.Created, rec.Updated = now, now
	prev, err := m.store.create(rec, sub.Inputs)
	if err != nil || prev != nil {
		m.mu.Lock()
		m.active--
		m.pending -= rec.InputBytes
		m.mu.Unlock()
	}
	switch {
	case err != nil:
		return st, false, fmt.Errorf("storing the job: %w", err)
	case prev != nil: // a concurrent twin won the race
		if prev.Fingerprint != rec.Fingerprint {
			return st, false, errorf(ErrIdempotencyConflict, "Idempotency-Key %q was used for job %s with a different request", rec.IdempotencyKey, prev.ID)
		}
		return prev.status(), false, nil
	}
	m.log.InfoContext(ctx, "job submitted", "job", rec.ID, "items", len(rec.Items), "pages", rec.PagesTotal, "bytes", rec.InputBytes)
	if m.metrics != nil {
		m.metrics.Submitted.Inc()
	}
	m.observe()
	m.enqueue(rec.ID)
	return rec.status(), true, nil
}

func (m *Manager) replay(owner, key, fp string) (*record, error) {
	prev, err := m.store.idempotent(owner, key)
	if err != nil {
		return nil, err
	}
	if prev != nil && prev.Fingerprint != fp {
		return nil, errorf(ErrIdempotencyConflict, "Idempotency-Key %q was used for job %s with a different request", key, prev.ID)
	}
	return prev, nil
}

// fingerprint identifies a submission's content for idempotent replays.
func fingerprint(sub *Submission) string {
	h := sha256.New()
	opt, _ := json.Marshal(sub.OCR)
	fmt.Fprintf(h, "%s\n%s\n%d\n", opt, sub.WebhookURL, len(sub.Inputs))
	for _, in := range sub.Inputs {
		sum := sha256.Sum256(in.Data)
		fmt.Fprintf(h, "%s %d %x\n", in.Declared, len(in.Data), sum)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// lookup returns owner's job id; another principal's job is "not found".
func (m *Manager) lookup(owner, id string) (*record, error) {
	if !ValidID(id) {
		return nil, ErrNotFound
	}
	r, err := m.store.get(id)
	if err != nil {
		return nil, err
	}
	if r.Owner != owner {
		return nil, ErrNotFound
	}
	return r, nil
}

// Get returns a job's status.
func (m *Manager) Get(owner, id string) (Status, error) {
	r, err := m.lookup(owner, id)
	if err != nil {
		return Status{}, err
	}
	return r.status(), nil
}

// Result returns a finished job's pages in order. A canceled job's result
// holds the pages finished before the cancellation.
func (m *Manager) Result(owner, id string) (*Result, error) {
	r, err := m.lookup(owner, id)
	if err != nil {
		return nil, err
	}
	if !r.State.Terminal() {
		return nil, errorf(ErrNotFinished, "job %s is %s (%d of %d pages done)", id, r.State, r.PagesDone, r.PagesTotal)
	}
	res := &Result{ID: r.ID, State: r.State, Pages: make([]PageResult, 0, r.PagesDone)}
	var text strings.Builder
	err = m.store.results(id, func(_ int, tr *taskResult) error {
		for _, p := range tr.Pages {
			if len(res.Pages) > 0 {
				text.WriteByte('\f')
			}
			if p.Page != nil {
				text.WriteString(ocr.PlainText([]ocr.Page{*p.Page}))
			}
			res.Pages = append(res.Pages, p)
		}
		return nil
	})
	res.Text = text.String()
	return res, err
}

// Cancel stops a job. Canceling a finished job changes nothing.
func (m *Manager) Cancel(owner, id string) (Status, error) {
	if _, err := m.lookup(owner, id); err != nil {
		return Status{}, err
	}
	out, transitioned, err := m.store.cancel(id, m.now())
	if err != nil {
		return Status{}, err
	}
	if transitioned {
		m.afterFinish(out)
	}
	return out.status(), nil
}

// Delete cancels a job if it runs and removes it and its result.
func (m *Manager) Delete(owner, id string) error {
	r, err := m.lookup(owner, id)
	if err != nil {
		return err
	}
	r, transitioned, err := m.store.remove(id, m.now())
	if err != nil {
		return err
	}
	if transitioned {
		m.afterFinish(r)
	}
	return nil
}

// afterFinish updates the in-memory accounting once a finish committed,
// stops the job if it is running, and wakes the deliverer.
func (m *Manager) afterFinish(r *record) {
	m.mu.Lock()
	if cancel, ok := m.running[r.ID]; ok && r.State == StateCanceled {
		cancel(errCanceledByUser)
	}
	m.mu.Unlock()
	m.forget(r)
	if r.WebhookURL != "" {
		m.deliver.Poke()
	}
	if m.metrics != nil {
		m.metrics.Finished.WithLabelValues(string(r.State)).Inc()
	}
	m.log.Info("job finished", "job", r.ID, "state", r.State, "pages", r.PagesTotal, "done", r.PagesDone, "failed", r.PagesFail)
}

// forget releases r's reservation, once: only the transaction that moved
// it to a final state calls this.
func (m *Manager) forget(r *record) {
	m.mu.Lock()
	m.active--
	m.pending -= r.InputBytes
	m.mu.Unlock()
	m.observe()
}

func (m *Manager) observe() {
	if m.metrics == nil {
		return
	}
	m.mu.Lock()
	a, p := m.active, m.pending
	m.mu.Unlock()
	m.metrics.Active.Set(float64(a))
	m.metrics.PendingBytes.Set(float64(p))
}

// run executes job id's remaining tasks. It returns nil when the job is
// finished, canceled, or must wait for the next start (shutdown).
func (m *Manager) run(ctx context.Context, id string) error {
	rec, err := m.store.get(id)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil || rec.State.Terminal() {
		return err
	}
	jctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	m.mu.Lock()
	m.running[id] = cancel
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		delete(m.running, id)
		m.mu.Unlock()
	}()
	if rec.State == StateQueued {
		ok, err := m.store.setRunning(id, m.now())
		if err != nil || !ok {
			return err
		}
	}
	done, err := m.store.done(id)
	if err != nil {
		return err
	}
	files := map[int]string{} // PDF items written out for the renderer
	defer func() {
		for _, f := range files {
			os.Remove(f)
		}
	}()
	for ti, t := range rec.Tasks {
		if done[ti] {
			continue
		}
		pages, err := m.runTask(jctx, rec, t, files)
		if err != nil {
			return nil // shutting down or canceled: nothing to record
		}
		failed := 0
		for _, p := range pages {
			if p.Error != nil {
				failed++
			}
		}
		if m.metrics != nil {
			m.metrics.Pages.WithLabelValues("ok").Add(float64(len(pages) - failed))
			m.metrics.Pages.WithLabelValues("failed").Add(float64(failed))
		}
		body, err := json.Marshal(taskResult{Pages: pages})
		if err != nil {
			return err
		}
		stop, err := m.store.recordTask(id, ti, body, len(pages), failed, m.now())
		if err != nil || stop {
			return err
		}
	}
	final, err := m.store.finishDone(id, m.now())
	if err != nil {
		return err
	}
	if final != nil {
		m.afterFinish(final)
	}
	return nil
}

// runTask recognises one task. A page that cannot be read becomes a page
// with an error; the returned error is reserved for "stop now, run this
// task again later" (shutdown) and "the job was canceled".
func (m *Manager) runTask(jctx context.Context, rec *record, t task, files map[int]string) ([]PageResult, error) {
	ctx, cancel := context.WithTimeout(jctx, m.cfg.PageTimeout*time.Duration(max(t.Pages, 1)))
	defer cancel()
	var links []trace.Link
	if rec.TraceParent != "" {
		pctx := m.prop.Extract(context.Background(), propagation.MapCarrier{"traceparent": rec.TraceParent})
		links = append(links, trace.Link{SpanContext: trace.SpanContextFromContext(pctx)})
	}
	ctx, span := m.tracer.Start(ctx, "job.task", trace.WithLinks(links...), trace.WithAttributes(
		tracing.AttrJobID.String(rec.ID), tracing.AttrPage.Int(t.First)))
	defer span.End()

	it := rec.Items[t.Item]
	errPages := func(err error) []PageResult {
		kind, detail := pageError(err, ctx)
		tracing.Fail(span, kind, err)
		out := make([]PageResult, t.Pages)
		for k := range out {
			src := Source{Item: t.Item, Page: k}
			if it.Kind == KindPDF {
				src.Page = t.Page - 1
			}
			out[k] = PageResult{Index: t.First + k, Source: src, Error: &PageError{Type: problemBase + kind, Detail: detail}}
		}
		return out
	}
	in, err := m.inputs.read(ctx, rec, t, files, func(item int) ([]byte, error) { return m.store.input(rec.ID, item) })
	var pf *pageFailure
	if err != nil {
		if !errors.As(err, &pf) || transient(err, jctx) {
			return nil, err
		}
		return errPages(err), nil
	}
	res, err := m.ocr.Recognize(ctx, in, rec.Options.ocr())
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
		src := Source{Item: t.Item, Page: k}
		if it.Kind == KindPDF {
			src.Page = t.Page - 1
		}
		model := res.Model
		out[k] = PageResult{Index: t.First + k, Source: src, Model: &model, Page: &res.Pages[k]}
	}
	return out, nil
}

// transient errors leave a task to run again: the job's context ended
// (shutdown or cancel) or the server is draining.
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

// janitor deletes finished jobs past their retention.
func (m *Manager) janitor(ctx context.Context) {
	every := min(m.cfg.Retention/4, time.Minute)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		m.sweep()
	}
}

// sweep deletes expired jobs; it returns how many.
func (m *Manager) sweep() int {
	n, err := m.store.expire(m.now())
	if err != nil {
		m.log.Error("deleting expired jobs", "err", err)
	}
	if n > 0 {
		m.log.Debug("expired jobs deleted", "jobs", n)
	}
	return n
}
