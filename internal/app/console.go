package app

import (
	"context"
	"time"

	"github.com/visionserve/visionserve/internal/config"
	"github.com/visionserve/visionserve/internal/keys"
	"github.com/visionserve/visionserve/internal/review"
)

// openReviews opens the review store the configuration names (nil when
// reviews are off) and builds the reviews core over it, decoding pages on
// the scheduler's workers.
func (a *App) openReviews(cfg config.Config) (*review.Service, error) {
	if !cfg.Reviews.Enabled() || a.opts.CoreOnly {
		return nil, nil
	}
	store, err := openReviewStore(cfg, a.enc)
	if err != nil {
		return nil, err
	}
	ring := ringOf(store)
	a.checkKeys("reviews", ring)
	a.log.Info("reviews", "store", cfg.Reviews.Store, "path", cfg.Reviews.Path, "max_per_tenant", cfg.Reviews.MaxPerTenant, "encryption", ring)
	rc := cfg.ReviewConfig()
	if a.jobs != nil {
		rc.PDFPage = a.jobs.PDFPage
	}
	return review.NewService(store, rc, a.sched.Run, a.opts.Logger), nil
}

// openReviewStore opens the review store cfg configures, its reviews
// sealed with enc.
func openReviewStore(cfg config.Config, enc keys.Config) (review.Store, error) {
	if cfg.Reviews.Store == config.StorePostgres {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		return review.OpenPostgres(ctx, cfg.ReviewsPostgres(), 0, enc)
	}
	return review.OpenBolt(cfg.Reviews.Path, 10*time.Second, enc)
}
