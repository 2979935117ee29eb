package config

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/visionserve/visionserve/internal/face"
	"github.com/visionserve/visionserve/internal/gallery"
	"github.com/visionserve/visionserve/internal/gallery/ann"
	"github.com/visionserve/visionserve/internal/modelrepo"
)

// Face configures face recognition. It is off unless its models are named,
// one of two ways: files (Detector and Embedder), or models of the model
// repository (DetectorModel and EmbedderModel), signed packages of kinds
// face-detect and face-embed that swap in like any other version.
type Face struct {
	// Detector and Embedder are the ONNX files of the YuNet detector
	// and the embedder (shared/models/face; docs/faces.md).
	Detector string `yaml:"detector"`
	Embedder string `yaml:"embedder"`
	// DetectorModel and EmbedderModel name repository models instead
	// (repository.dir, --models). Their packages' runtime options then
	// carry the detection and embedding parameters (detect, flip and
	// sessions below apply to files only; a package without sessions
	// gets this section's, or server.workers).
	DetectorModel string `yaml:"detector_model"`
	EmbedderModel string `yaml:"embedder_model"`
	// Sessions is the number of ONNX sessions per model (requests that
	// run it at once); 0 means server.workers.
	Sessions int `yaml:"sessions"`
	// Threshold is the default cosine similarity for a match.
	Threshold       float64           `yaml:"threshold"`
	DefaultMaxFaces int               `yaml:"default_max_faces"`
	MaxFaces        int               `yaml:"max_faces"`
	DefaultTopK     int               `yaml:"default_top_k"`
	MaxTopK         int               `yaml:"max_top_k"`
	CacheEntries    int               `yaml:"cache_entries"`
	Flip            bool              `yaml:"flip"` // add the mirrored face's embedding (twice the embedding cost)
	Detect          face.DetectParams `yaml:"detect"`
	Gallery         Gallery           `yaml:"gallery"`
}

// Gallery configures where galleries are stored and how they are indexed.
type Gallery struct {
	// Store is "embedded" (a bbolt file at Path, one process) or
	// "postgres" (shared by replicas; Postgres is the connection string,
	// whose password belongs in PGPASSWORD or a .pgpass file, never here).
	Store              string `yaml:"store"`
	Path               string `yaml:"path"`
	Postgres           string `yaml:"postgres"`
	MaxGalleries       int    `yaml:"max_galleries"`
	MaxFaces           int    `yaml:"max_faces"`
	MaxFacesPerSubject int    `yaml:"max_faces_per_subject"`
	// TenantQuota bounds each tenant's galleries and faces;
	// TenantQuotas overrides it for the tenants it names.
	TenantQuota  gallery.Quota            `yaml:"tenant_quota"`
	TenantQuotas map[string]gallery.Quota `yaml:"tenant_quotas"`
	ExactBelow   int                      `yaml:"exact_below"`
	HNSW         ann.Params               `yaml:"hnsw"`
	BuildWorkers int                      `yaml:"build_workers"`
	PollInterval time.Duration            `yaml:"poll_interval"`
	Retention    time.Duration            `yaml:"retention"`
}

// Gallery store kinds.
const (
	StoreEmbedded = "embedded"
	StorePostgres = "postgres"
)

// defaultFace is the face section's default: off, with every tunable at
// its documented default.
func defaultFace() Face {
	fc := face.DefaultConfig()
	gc := gallery.DefaultConfig()
	return Face{
		Threshold:       fc.Threshold,
		DefaultMaxFaces: fc.DefaultMaxFaces,
		MaxFaces:        fc.MaxFaces,
		DefaultTopK:     fc.DefaultTopK,
		MaxTopK:         fc.MaxTopK,
		CacheEntries:    fc.CacheEntries,
		Detect:          face.DefaultDetectParams(),
		Gallery: Gallery{
			Store:              StoreEmbedded,
			Path:               "galleries.db",
			MaxGalleries:       gc.MaxGalleries,
			MaxFaces:           gc.MaxFaces,
			MaxFacesPerSubject: gc.MaxFacesPerSubject,
			TenantQuota:        gc.TenantQuota,
			ExactBelow:         gc.Index.ExactBelow,
			HNSW:               gc.Index.HNSW,
			BuildWorkers:       gc.Index.BuildWorkers,
			PollInterval:       gc.PollInterval,
			Retention:          gc.Retention,
		},
	}
}

// Enabled reports whether face recognition is configured.
func (f Face) Enabled() bool { return f.FromFiles() || f.FromRepository() }

// FromFiles reports whether face.detector or face.embedder is set.
func (f Face) FromFiles() bool { return f.Detector != "" || f.Embedder != "" }

// FromRepository reports whether face.detector_model or
// face.embedder_model is set.
func (f Face) FromRepository() bool { return f.DetectorModel != "" || f.EmbedderModel != "" }

// ServiceConfig converts to the face core's configuration.
func (f Face) ServiceConfig(l Limits) face.Config {
	return face.Config{
		Threshold: f.Threshold, DefaultMaxFaces: f.DefaultMaxFaces, MaxFaces: f.MaxFaces,
		DefaultTopK: f.DefaultTopK, MaxTopK: f.MaxTopK, CacheEntries: f.CacheEntries, Limits: l.ImageLimits(),
	}
}

// ManagerConfig converts to the gallery manager's configuration.
func (g Gallery) ManagerConfig() gallery.Config {
	c := gallery.DefaultConfig()
	c.MaxGalleries, c.MaxFaces, c.MaxFacesPerSubject = g.MaxGalleries, g.MaxFaces, g.MaxFacesPerSubject
	c.TenantQuota, c.TenantQuotas = g.TenantQuota, g.TenantQuotas
	c.Index.ExactBelow, c.Index.HNSW, c.Index.BuildWorkers = g.ExactBelow, g.HNSW, g.BuildWorkers
	c.PollInterval, c.Retention = g.PollInterval, g.Retention
	return c
}

// validate reports every problem of the face section; only an enabled
// section is checked. repository says whether the server has a model
// repository; nil when that is not known yet (a file read before the
// command line's --models applies).
func (f Face) validate(repository *bool) []error {
	if !f.Enabled() {
		return nil
	}
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	switch {
	case f.FromFiles() && f.FromRepository():
		add("face: name the models one way: files (face.detector and face.embedder) or repository models (face.detector_model and face.embedder_model), not both")
	case f.FromFiles() && (f.Detector == "" || f.Embedder == ""):
		add("face: set both face.detector and face.embedder (or neither, to turn face recognition off)")
	case f.FromRepository() && (f.DetectorModel == "" || f.EmbedderModel == ""):
		add("face: set both face.detector_model and face.embedder_model (or neither, to turn face recognition off)")
	}
	for key, name := range map[string]string{"detector_model": f.DetectorModel, "embedder_model": f.EmbedderModel} {
		if name != "" && !modelrepo.ValidName(name) {
			add("face.%s %q is not a valid model name", key, name)
		}
	}
	if f.DetectorModel != "" && f.DetectorModel == f.EmbedderModel {
		add("face.detector_model and face.embedder_model are both %q: the detector and the embedder are two models (kinds face-detect and face-embed)", f.DetectorModel)
	}
	if f.FromRepository() && repository != nil && !*repository {
		add("face.detector_model and face.embedder_model name repository models, but there is no model repository: set repository.dir (--models), or name files with face.detector and face.embedder")
	}
	if f.Sessions < 0 {
		add("face.sessions must be >= 0 (0 means server.workers), got %d", f.Sessions)
	}
	if err := f.ServiceConfig(Limits{}).Validate(); err != nil {
		errs = append(errs, prefixed("face.", err)...)
	}
	if err := f.Detect.Validate(); err != nil {
		errs = append(errs, prefixed("face.detect.", err)...)
	}
	g := f.Gallery
	switch g.Store {
	case StoreEmbedded:
		if g.Path == "" {
			add("face.gallery.path is empty (the embedded store's file)")
		}
	case StorePostgres:
		if g.Postgres == "" {
			add("face.gallery.postgres is empty (a connection string, e.g. postgres://visionserve@db:5432/visionserve)")
		} else if hasPassword(g.Postgres) {
			add("face.gallery.postgres holds a password: put it in the PGPASSWORD environment variable or a .pgpass file instead")
		}
	default:
		add("face.gallery.store %q: use %s or %s", g.Store, StoreEmbedded, StorePostgres)
	}
	if err := g.ManagerConfig().Validate(); err != nil {
		errs = append(errs, prefixed("face.gallery.", err)...)
	}
	return errs
}

// prefixed splits a joined error and prefixes each line with the key path.
func prefixed(prefix string, err error) []error {
	var out []error
	for _, line := range strings.Split(err.Error(), "\n") {
		line = strings.TrimPrefix(strings.TrimPrefix(line, "face: "), "gallery: ")
		out = append(out, errors.New(prefix+line))
	}
	return out
}

// hasPassword reports a password inside a PostgreSQL connection string
// (URL user info or a password= keyword).
func hasPassword(dsn string) bool {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return false
		}
		if _, ok := u.User.Password(); ok {
			return true
		}
		return u.Query().Has("password")
	}
	for _, kv := range strings.Fields(dsn) {
		if strings.HasPrefix(kv, "password=") {
			return true
		}
	}
	return false
}
