package config

import "github.com/visionserve/visionserve/internal/review"

// UI configures the web console (docs/console.md).
type UI struct {
	// Enabled serves the console at /ui/ on the public listener (and, for
	// model administration, on the admin listener).
	Enabled bool `yaml:"enabled"`
}

// Reviews configures where reviewed OCR lines are kept (docs/console.md).
type Reviews struct {
	// Store is "embedded" (a bbolt file at Path, one process) or
	// "postgres" (shared by replicas).
	Store string `yaml:"store"`
	// Path is the embedded store's file; "" turns reviews off.
	Path string `yaml:"path"`
	// Postgres is the connection string of the postgres store; "" uses
	// face.gallery.postgres. Its password belongs in PGPASSWORD or a
	// .pgpass file, never here.
	Postgres string `yaml:"postgres"`
	// MaxPerTenant bounds each tenant's reviews.
	MaxPerTenant int `yaml:"max_per_tenant"`
}

func defaultReviews() Reviews {
	return Reviews{Store: StoreEmbedded, MaxPerTenant: review.DefaultConfig().MaxPerTenant}
}

// Enabled reports whether the server keeps reviews.
func (r Reviews) Enabled() bool { return r.Store == StorePostgres || r.Path != "" }

// ReviewsPostgres is the review postgres store's connection string: its own, else
// the gallery store's.
func (c Config) ReviewsPostgres() string {
	if c.Reviews.Postgres != "" {
		return c.Reviews.Postgres
	}
	return c.Face.Gallery.Postgres
}

func (c Config) validateConsole(add func(string, ...any)) {
	switch c.Reviews.Store {
	case StoreEmbedded:
	case StorePostgres:
		if c.ReviewsPostgres() == "" {
			add("reviews.store is postgres but neither reviews.postgres nor face.gallery.postgres names a database")
		}
	default:
		add("reviews.store %q: use %s or %s", c.Reviews.Store, StoreEmbedded, StorePostgres)
	}
	if c.Reviews.MaxPerTenant < 0 {
		add("reviews.max_per_tenant must be >= 0 (0: no bound), got %d", c.Reviews.MaxPerTenant)
	}
}

// ReviewConfig converts to the review core's configuration.
func (c Config) ReviewConfig() review.Config {
	return review.Config{MaxPerTenant: c.Reviews.MaxPerTenant, Limits: c.Limits.ImageLimits()}
}
