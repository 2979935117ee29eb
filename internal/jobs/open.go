package jobs

import (
	"context"
	"time"

	"github.com/visionserve/visionserve/internal/jobs/store"
	"github.com/visionserve/visionserve/internal/keys"
)

// OpenStore opens the job store cfg names, its payloads sealed with enc
// (for tools: `visionserve keys`; a Manager opens its own).
func OpenStore(cfg Config, enc keys.Config) (store.Store, error) {
	opts := cfg.storeOptions()
	opts.Keys = enc
	return openStore(cfg, opts)
}

// openStore opens the store the configuration names.
func openStore(cfg Config, opts store.Options) (store.Store, error) {
	if cfg.Store != StorePostgres {
		return store.OpenBolt(cfg.Dir, opts)
	}
	dsn, err := cfg.DSN()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// A connection per runner and per webhook sender, and a few for
	// requests and the lease keeper.
	return store.OpenPostgres(ctx, dsn, cfg.Concurrency+cfg.Webhook.Concurrency+4, opts)
}
