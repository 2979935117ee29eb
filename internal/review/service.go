package review

import (
	"context"
	"log/slog"
	"time"

	"github.com/visionserve/visionserve/internal/imageio"
)

// Config bounds the reviews a server keeps.
type Config struct {
	// MaxPerTenant is the most reviews one tenant may hold (<= 0: no
	// bound).
	MaxPerTenant int
	// Limits bound decoding the page a review's line is cut from.
	Limits imageio.Limits
	// PDFPage renders page (0 is the first) of a PDF as PNG, as a job
	// reads it, so that a line of a PDF is cut from the page its box was
	// found on (jobs.Manager.PDFPage). nil: reviews of PDFs are refused.
	PDFPage func(ctx context.Context, data []byte, page int) (png []byte, pages int, err error)
}

// DefaultConfig is the configuration's default.
func DefaultConfig() Config {
	return Config{MaxPerTenant: 100_000, Limits: imageio.DefaultLimits()}
}

// RunFunc runs fn on a worker of the process's scheduler (sched.Run), so
// decoding a page for a review takes a worker like OCR does.
type RunFunc func(ctx context.Context, fn func(context.Context) error) error

// Service is the reviews core over a Store.
type Service struct {
	store Store
	cfg   Config
	run   RunFunc
	log   *slog.Logger
	now   func() time.Time
}

// NewService returns the core over store; run may be nil (decode on the
// caller's goroutine), log may be nil.
func NewService(store Store, cfg Config, run RunFunc, log *slog.Logger) *Service {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if run == nil {
		run = func(ctx context.Context, fn func(context.Context) error) error { return fn(ctx) }
	}
	return &Service{store: store, cfg: cfg, run: run, log: log.With("component", "reviews"), now: time.Now}
}

// Input is a review as a client submits it: the review's fields and the
// image the line was read from, either the page (with Source.Box naming
// the line in it) or, without a box, the line image itself.
type Input struct {
	Review
	Data     []byte
	Declared imageio.Format
}

// Create checks in, cuts the line image and stores the review under a new
// id. Tenant and Author come from the caller's credential, never from the
// client's fields.
func (s *Service) Create(ctx context.Context, in Input) (Review, error) {
	r := in.Review
	r.Image = nil
	if err := r.validate(); err != nil {
		return Review{}, err
	}
	err := s.run(ctx, func(ctx context.Context) error {
		data, declared, page := in.Data, in.Declared, r.Source.Page
		if imageio.IsPDF(data) {
			if s.cfg.PDFPage == nil {
				return &imageio.Error{Kind: imageio.ErrUnsupported, Detail: "lines of PDFs are reviewed on a server with jobs (jobs.dir), which renders their pages"}
			}
			var err error
			if data, _, err = s.cfg.PDFPage(ctx, data, page); err != nil {
				return err
			}
			declared, page = imageio.PNG, 0
		}
		var err error
		r.Image, r.Width, r.Height, err = lineImage(ctx, data, declared, s.cfg.Limits, page, r.Source.Box)
		return err
	})
	if err != nil {
		return Review{}, err
	}
	r.Created = s.now().UTC().Truncate(time.Microsecond)
	r.ID = newID(r.Created)
	if err := s.store.Add(ctx, r, s.cfg.MaxPerTenant); err != nil {
		return Review{}, err
	}
	s.log.DebugContext(ctx, "review stored", "id", r.ID, "bytes", len(r.Image))
	return r, nil
}

// Get returns a review of the tenant, with its image.
func (s *Service) Get(ctx context.Context, tenant, id string) (Review, error) {
	if !ValidID(id) {
		return Review{}, ErrNotFound
	}
	return s.store.Get(ctx, tenant, id)
}

// List returns a page of the tenant's reviews (without images) and the
// cursor of the next page, "" after the last.
func (s *Service) List(ctx context.Context, tenant string, p Page) ([]Review, string, error) {
	if p.Limit <= 0 || p.Limit > MaxListLimit {
		p.Limit = MaxListLimit
	}
	out, more, err := s.store.List(ctx, tenant, p)
	if err != nil || !more || len(out) == 0 {
		return out, "", err
	}
	return out, out[len(out)-1].ID, nil
}

// Delete removes a review of the tenant.
func (s *Service) Delete(ctx context.Context, tenant, id string) error {
	if !ValidID(id) {
		return ErrNotFound
	}
	return s.store.Delete(ctx, tenant, id)
}

// Limits are the bounds of the images reviews are cut from.
func (s *Service) Limits() imageio.Limits { return s.cfg.Limits.WithDefaults() }

// Close closes the store.
func (s *Service) Close() error { return s.store.Close() }
