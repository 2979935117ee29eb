package app

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/visionserve/visionserve/internal/config"
	"github.com/visionserve/visionserve/internal/jobs"
	"github.com/visionserve/visionserve/internal/keys"
)

// KeyedStore is a store whose records are sealed at rest, opened on its
// own (no server) for `visionserve keys`.
type KeyedStore struct {
	// Name is what the configuration calls it: galleries or jobs.
	Name string
	Ring *keys.Ring
	// File is an embedded store's bbolt file ("" for PostgreSQL), which
	// keeps overwritten values in free pages until it is compacted
	// (keybolt.Compact, with the store closed).
	File  string
	Close func() error
}

// OpenKeyedStores opens, with enc, every store of the configuration that
// keeps records sealed at rest: the gallery store when face recognition
// is on, the job store when jobs are, the review store when reviews are. An embedded store's file is locked
// by a running server: stop it first. On error nothing stays open.
func OpenKeyedStores(cfg config.Config, enc keys.Config) ([]KeyedStore, error) {
	var out []KeyedStore
	fail := func(err error) ([]KeyedStore, error) {
		for _, s := range out {
			_ = s.Close()
		}
		return nil, err
	}
	if cfg.Face.Enabled() {
		s, err := openGalleryStore(cfg.Face.Gallery, enc)
		if err != nil {
			return fail(fmt.Errorf("galleries: %w", err))
		}
		ks := KeyedStore{Name: "galleries", Ring: ringOf(s), Close: s.Close}
		if cfg.Face.Gallery.Store != config.StorePostgres {
			ks.File = cfg.Face.Gallery.Path
		}
		out = append(out, ks)
	}
	if jc := cfg.Jobs.Runtime(); jc.Enabled() {
		s, err := jobs.OpenStore(jc, enc)
		if err != nil {
			return fail(fmt.Errorf("jobs: %w", err))
		}
		ks := KeyedStore{Name: "jobs", Ring: ringOf(s), Close: s.Close}
		if jc.Store != jobs.StorePostgres {
			ks.File = filepath.Join(jc.Dir, "jobs.db")
		}
		out = append(out, ks)
	}
	if cfg.Reviews.Enabled() {
		s, err := openReviewStore(cfg, enc)
		if err != nil {
			return fail(fmt.Errorf("reviews: %w", err))
		}
		ks := KeyedStore{Name: "reviews", Ring: ringOf(s), Close: s.Close}
		if cfg.Reviews.Store != config.StorePostgres {
			ks.File = cfg.Reviews.Path
		}
		out = append(out, ks)
	}
	if len(out) == 0 {
		return nil, errors.New("the configuration names no store that keeps records at rest (face.gallery, jobs, reviews)")
	}
	return out, nil
}

// ringOf returns the ring of a store that has one (nil otherwise).
func ringOf(s any) *keys.Ring {
	if k, ok := s.(interface{ Keys() *keys.Ring }); ok {
		return k.Keys()
	}
	return nil
}
