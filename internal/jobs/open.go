package jobs

import (
	"github.com/visionserve/visionserve/internal/jobs/store"
)

// openStore opens the store the configuration names.
func openStore(cfg Config, opts store.Options) (store.Store, error) {
	return store.OpenBolt(cfg.Dir, opts)
}
