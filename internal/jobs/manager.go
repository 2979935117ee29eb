package jobs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/visionserve/visionserve/internal/imageio"
	"github.com/visionserve/visionserve/internal/jobs/claim"
	"github.com/visionserve/visionserve/internal/jobs/store"
	"github.com/visionserve/visionserve/internal/jobs/webhook"
	"github.com/visionserve/visionserve/internal/keys"
	"github.com/visionserve/visionserve/internal/ocr"
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
	// Keys seals job inputs and results at rest (zero: in clear).
	Keys keys.Config
}

// Runner runs fn holding a worker (sched.Background).
type Runner interface {
	Run(ctx context.Context, fn func(context.Context) error) error
}

// Manager is the job system as the transports see it: submissions,
// status, results, cancellation. It wires the parts: the store (where
// jobs live), the inputs (files into OCR inputs), the queue (claiming and
// running tasks) and the webhook deliverer.
type Manager struct {
	cfg     Config
	log     *slog.Logger
	metrics *Metrics
	now     func() time.Time
	prop    propagation.TextMapPropagator
	secret  []byte

	db      store.Store
	inputs  *inputs
	queue   *queue
	deliver *webhook.Deliverer
	uploads *uploads

	closed atomic.Bool
	stop   context.CancelFunc
	wg     sync.WaitGroup
}

// Open opens the store and prepares the parts; nothing runs until Start.
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
		cfg: cfg, log: opts.Log.With("component", "jobs"), metrics: opts.Metrics, now: opts.Now, prop: opts.Propagator,
		uploads: newUploads(cfg, opts.Metrics.uploads()),
	}
	secret, err := cfg.Webhook.LoadSecret()
	if err != nil {
		return nil, err
	}
	m.secret = secret
	if m.inputs, err = newInputs(cfg, opts.Limits.WithDefaults(), opts.Rasterizer, opts.Scheduler, m.log); err != nil {
		return nil, err
	}
	sopts := cfg.storeOptions()
	sopts.Keys, sopts.Event, sopts.Evicted = opts.Keys, m.event, m.evicted
	if m.db, err = openStore(cfg, sopts); err != nil {
		m.inputs.close()
		return nil, err
	}
	exec := &executor{ocr: opts.OCR, inputs: m.inputs, db: m.db, cfg: cfg, metrics: opts.Metrics, tracer: opts.Tracer, prop: opts.Propagator}
	m.queue = newQueue(queueOptions{
		Work: m.db, Worker: workerID(), Runners: cfg.Concurrency, Lease: cfg.Lease, Poll: cfg.PollInterval,
		Now: m.now, Log: m.log, Exec: exec.run, Ended: m.ended,
	})
	m.deliver = webhook.NewDeliverer(webhook.Options{
		Config: cfg.Webhook.delivery(), Outbox: m.db, Key: m.secret, Log: m.log, Now: m.now, Version: opts.Version,
		Outcomes: m.metrics.webhooks(), Poll: cfg.PollInterval, Worker: m.queue.worker,
	})
	m.sweep()
	if st, err := m.db.Stats(context.Background()); err == nil && st.Jobs > 0 {
		m.log.Info("resuming unfinished jobs", "jobs", st.Jobs)
	}
	m.observe()
	return m, nil
}

// event is the webhook body announcing j's end.
func (m *Manager) event(j *store.Job) ([]byte, error) {
	return json.Marshal(Event{Type: "job." + string(j.State), Timestamp: j.Finished, Data: statusOf(j)})
}

// Keys returns the ring that seals the store's inputs and results.
func (m *Manager) Keys() *keys.Ring {
	if k, ok := m.db.(interface{ Keys() *keys.Ring }); ok {
		return k.Keys()
	}
	return nil
}

// Config returns the configuration in force.
func (m *Manager) Config() Config { return m.cfg }

// Upload reserves a slot for reading owner's submission: one of the
// server's MaxConcurrentUploads, within the tenant's share of them. The
// error is ErrTooManyUploads when none is free (answer 429).
func (m *Manager) Upload(owner Owner) (release func(), err error) {
	return m.uploads.acquire(owner.share())
}

// WebhooksEnabled reports whether a signing secret is configured.
func (m *Manager) WebhooksEnabled() bool { return m.secret != nil }

// Start runs the queue, the webhook deliverer and the janitor until
// Close.
func (m *Manager) Start() {
	ctx, cancel := context.WithCancel(context.Background())
	m.stop = cancel
	m.log.Info("jobs started", "store", m.cfg.Store, "worker", m.queue.worker, "runners", m.cfg.Concurrency, "lease", m.cfg.Lease,
		"encryption", m.Keys())
	m.wg.Go(func() { m.queue.run(ctx) })
	m.wg.Go(func() { m.deliver.Run(ctx) })
	m.wg.Go(func() { m.janitor(ctx) })
}

// Close stops the runners (a task in progress is given back, to be run
// again here or by another replica), waits for them, and closes the
// store.
func (m *Manager) Close() error {
	m.closed.Store(true)
	if m.stop != nil {
		m.stop()
	}
	m.wg.Wait()
	m.inputs.close()
	return m.db.Close()
}

// Submit validates and stores a job and queues it. created is false when
// the Idempotency-Key named an existing job with the same request.
func (m *Manager) Submit(ctx context.Context, owner Owner, sub *Submission) (st Status, created bool, err error) {
	if sub.WebhookURL != "" && m.secret == nil {
		return st, false, errorf(ErrWebhookDisabled, "this server has no webhook signing secret (jobs.webhook.secret_file or $%s)", m.cfg.Webhook.SecretEnv)
	}
	if len(sub.Inputs) > m.cfg.MaxItems {
		return st, false, errorf(ErrTooLarge, "%d files; the limit is %d per job", len(sub.Inputs), m.cfg.MaxItems)
	}
	if err := m.checkWebhookHost(sub.WebhookURL); err != nil {
		return st, false, err
	}
	j := &store.Job{
		ID: store.NewID("job_"), Owner: owner.ID, Tenant: owner.share(), WebhookURL: sub.WebhookURL,
		IdempotencyKey: sub.IdempotencyKey, Fingerprint: fingerprint(sub),
	}
	p := &plan{Options: sub.OCR}
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		carrier := propagation.MapCarrier{}
		m.prop.Inject(ctx, carrier)
		p.TraceParent = carrier.Get("traceparent")
	}
	// A replay answers before any inspection work.
	if sub.IdempotencyKey != "" {
		prev, err := m.db.Idempotent(ctx, owner.ID, sub.IdempotencyKey)
		if err != nil {
			return st, false, err
		}
		if prev != nil {
			return m.replayed(prev, j)
		}
	}
	if err := m.inputs.plan(ctx, j, p, sub.Inputs); err != nil {
		return st, false, err
	}
	if m.closed.Load() {
		return st, false, ErrClosed
	}
	if j.Plan, err = json.Marshal(p); err != nil {
		return st, false, err
	}
	j.Created = m.now()
	j.Updated = j.Created
	files := make([][]byte, len(sub.Inputs))
	for i, in := range sub.Inputs {
		files[i] = in.Data
	}
	prev, err := m.db.Create(ctx, j, files, m.cfg.limits())
	var le *store.LimitError
	switch {
	case errors.As(err, &le):
		return st, false, errorf(ErrQueueFull, "%s", m.cfg.limitDetail(le))
	case err != nil:
		return st, false, fmt.Errorf("storing the job: %w", err)
	case prev != nil: // a concurrent twin won the race
		return m.replayed(prev, j)
	}
	m.log.InfoContext(ctx, "job submitted", "job", j.ID, "items", len(p.Items), "pages", j.PagesTotal, "bytes", j.InputBytes)
	if m.metrics != nil {
		m.metrics.Submitted.Inc()
	}
	m.observe()
	m.queue.poke()
	return statusOf(j), true, nil
}

// checkWebhookHost refuses at once a webhook URL that names an address
// the deliverer would refuse (names are checked when dialled).
func (m *Manager) checkWebhookHost(raw string) error {
	if raw == "" || m.cfg.Webhook.AllowPrivateNetworks {
		return nil
	}
	u, err := url.Parse(raw)
	if err != nil {
		return errorf(ErrBadRequest, "webhook_url: %v", err)
	}
	ip, err := netip.ParseAddr(u.Hostname())
	if err != nil {
		return nil // a name
	}
	if err := webhook.CheckAddress(ip); err != nil {
		return errorf(ErrBadRequest, "webhook_url: %v; webhooks reach public addresses only (jobs.webhook.allow_private_networks)", err)
	}
	return nil
}

// replayed answers a submission whose Idempotency-Key names prev.
func (m *Manager) replayed(prev, j *store.Job) (Status, bool, error) {
	if prev.Fingerprint != j.Fingerprint {
		return Status{}, false, errorf(ErrIdempotencyConflict, "Idempotency-Key %q was used for job %s with a different request", j.IdempotencyKey, prev.ID)
	}
	return statusOf(prev), false, nil
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
func (m *Manager) lookup(ctx context.Context, owner, id string) (*store.Job, error) {
	if !ValidID(id) {
		return nil, ErrNotFound
	}
	j, err := m.db.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if j.Owner != owner {
		return nil, ErrNotFound
	}
	return j, nil
}

// Get returns a job's status.
func (m *Manager) Get(ctx context.Context, owner, id string) (Status, error) {
	j, err := m.lookup(ctx, owner, id)
	if err != nil {
		return Status{}, err
	}
	return statusOf(j), nil
}

// Pages returns a finished job's status and its pages in order, read from
// the store a few at a time as the iterator is consumed (a renderer can
// stream a large job without holding it). A canceled job's pages are
// those finished before the cancellation.
func (m *Manager) Pages(ctx context.Context, owner, id string) (Status, iter.Seq2[PageResult, error], error) {
	j, err := m.finished(ctx, owner, id)
	if err != nil {
		return Status{}, nil, err
	}
	return statusOf(j), m.pages(ctx, id), nil
}

// finished returns owner's job id once it is final.
func (m *Manager) finished(ctx context.Context, owner, id string) (*store.Job, error) {
	j, err := m.lookup(ctx, owner, id)
	if err != nil {
		return nil, err
	}
	if !j.State.Terminal() {
		return nil, errorf(ErrNotFinished, "job %s is %s (%d of %d pages done)", id, j.State, j.PagesDone, j.PagesTotal)
	}
	return j, nil
}

// pages yields job id's recorded pages in order, decoded.
func (m *Manager) pages(ctx context.Context, id string) iter.Seq2[PageResult, error] {
	return func(yield func(PageResult, error) bool) {
		for sp, err := range m.db.Pages(ctx, id) {
			var p PageResult
			if err == nil {
				err = json.Unmarshal(sp.Data, &p)
			}
			if err != nil {
				err = fmt.Errorf("job %s page %d: %w", id, sp.Index, err)
			}
			if !yield(p, err) || err != nil {
				return
			}
		}
	}
}

// Result returns a finished job's pages in order, with their text.
func (m *Manager) Result(ctx context.Context, owner, id string) (*Result, error) {
	return m.ResultPage(ctx, owner, id, AllPages)
}

// ResultPage returns a finished job's result, or with page >= 0 the
// result of that page alone (the page whose Index it is).
func (m *Manager) ResultPage(ctx context.Context, owner, id string, page int) (*Result, error) {
	j, err := m.finished(ctx, owner, id)
	if err != nil {
		return nil, err
	}
	res := &Result{ID: j.ID, State: j.State}
	if page != AllPages {
		p, err := m.onePage(ctx, j, page)
		if err != nil {
			return nil, err
		}
		res.Pages = []PageResult{p}
		res.Text = pageText(p)
		return res, nil
	}
	res.Pages = make([]PageResult, 0, j.PagesDone)
	var text strings.Builder
	for p, err := range m.pages(ctx, id) {
		if err != nil {
			return nil, err
		}
		if len(res.Pages) > 0 {
			text.WriteByte('\f')
		}
		text.WriteString(pageText(p))
		res.Pages = append(res.Pages, p)
	}
	res.Text = text.String()
	return res, nil
}

// pageText is a page's text ("" for a page that failed).
func pageText(p PageResult) string {
	if p.Page == nil {
		return ""
	}
	return ocr.PlainText([]ocr.Page{*p.Page})
}

// Cancel stops a job. Canceling a finished job changes nothing.
func (m *Manager) Cancel(ctx context.Context, owner, id string) (Status, error) {
	if _, err := m.lookup(ctx, owner, id); err != nil {
		return Status{}, err
	}
	j, changed, err := m.db.Cancel(ctx, id, m.now())
	if err != nil {
		return Status{}, err
	}
	if changed {
		m.ended(j)
	}
	return statusOf(j), nil
}

// Delete cancels a job if it runs and removes it and its result.
func (m *Manager) Delete(ctx context.Context, owner, id string) error {
	if _, err := m.lookup(ctx, owner, id); err != nil {
		return err
	}
	j, canceled, err := m.db.Delete(ctx, id, m.now())
	if err != nil {
		return err
	}
	if canceled {
		m.ended(j)
	}
	m.inputs.forget(id)
	return nil
}

// ended follows a job's end committed by this process: it stops the
// job's tasks running here (another replica's stop when their lease is
// renewed), frees its cached files and wakes the deliverer.
func (m *Manager) ended(j *store.Job) {
	m.queue.abort(j.ID)
	m.inputs.forget(j.ID)
	if j.WebhookURL != "" {
		m.deliver.Poke()
	}
	if m.metrics != nil {
		m.metrics.Finished.WithLabelValues(string(j.State)).Inc()
	}
	m.observe()
	m.log.Info("job finished", "job", j.ID, "state", j.State, "pages", j.PagesTotal, "done", j.PagesDone, "failed", j.PagesFailed)
}

// observe sets the gauges of unfinished jobs from the store (all
// replicas' jobs, with a shared store).
func (m *Manager) observe() {
	if m.metrics == nil {
		return
	}
	st, err := m.db.Stats(context.Background())
	if err != nil {
		return
	}
	m.metrics.Active.Set(float64(st.Jobs))
	m.metrics.PendingBytes.Set(float64(st.Bytes))
	m.metrics.KeptBytes.Set(float64(st.KeptBytes))
}

// evicted counts the kept inputs this process deleted to stay within
// jobs.max_kept_bytes.
func (m *Manager) evicted(n int) {
	if m.metrics != nil {
		m.metrics.Evictions.Add(float64(n))
	}
	m.log.Debug("evicted the kept inputs of finished jobs", "jobs", n)
}

// janitor deletes finished jobs past their retention and refreshes the
// gauges.
func (m *Manager) janitor(ctx context.Context) {
	claim.Every(ctx, min(m.cfg.Retention/4, time.Minute), func() {
		m.sweep()
		m.observe()
	})
}

// sweep deletes expired jobs; it returns how many.
func (m *Manager) sweep() int {
	n, err := m.db.Expire(context.Background(), m.now())
	if err != nil {
		m.log.Error("deleting expired jobs", "err", err)
	}
	if n > 0 {
		m.log.Debug("expired jobs deleted", "jobs", n)
	}
	return n
}
