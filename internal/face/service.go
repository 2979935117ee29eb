package face

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"time"

	"github.com/visionserve/visionserve/internal/gallery"
	"github.com/visionserve/visionserve/internal/imageio"
)

// Sentinel errors of the face core.
var (
	// ErrNoFace: the image holds no face the detector is sure of.
	ErrNoFace = errors.New("no face found")
	// ErrBadOption: a request option is outside its range.
	ErrBadOption = errors.New("invalid option")
	// ErrDisabled: face recognition is not configured on this server.
	ErrDisabled = errors.New("face recognition is not enabled")
)

// Operations, the values of the metrics' "op" label.
const (
	OpDetect   = "detect"
	OpVerify   = "verify"
	OpEnroll   = "enroll"
	OpIdentify = "identify"
)

// Stages, the values of the stage metric's label and of TimingMS keys.
const (
	StageDecode = "decode"
	StageDetect = "detect"
	StageEmbed  = "embed"
	StageSearch = "search"
	StageTotal  = "total"
)

// Config tunes the service. Every bound a request can choose has a
// ceiling here.
type Config struct {
	// Threshold is the default cosine similarity at or above which two
	// faces are the same person (verify) or a gallery match counts
	// (identify). Calibrated on shared/data/face: see docs/faces.md.
	Threshold float64
	// DefaultMaxFaces is how many faces detect and identify return when
	// the request does not say; MaxFaces is the most it may ask for.
	DefaultMaxFaces, MaxFaces int
	// DefaultTopK and MaxTopK bound identify's matches per face.
	DefaultTopK, MaxTopK int
	// CacheEntries is how many recent images' analyses are kept (0: none).
	CacheEntries int
	Limits       imageio.Limits
}

// DefaultThreshold is the calibrated default; TestIntegrationCalibration
// derives it from the shared data again and fails if it drifts.
const DefaultThreshold = 0.45

// DefaultConfig returns the documented defaults.
func DefaultConfig() Config {
	return Config{
		Threshold: DefaultThreshold, DefaultMaxFaces: 10, MaxFaces: 100,
		DefaultTopK: 1, MaxTopK: 100, CacheEntries: 1024, Limits: imageio.DefaultLimits(),
	}
}

// Validate reports settings the service cannot use.
func (c Config) Validate() error {
	var errs []error
	check := func(ok bool, format string, args ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf(format, args...))
		}
	}
	check(c.Threshold >= -1 && c.Threshold <= 1, "threshold must be in [-1,1], got %g", c.Threshold)
	check(c.MaxFaces >= 1 && c.MaxFaces <= 1000, "max_faces must be in [1,1000], got %d", c.MaxFaces)
	check(c.DefaultMaxFaces >= 1 && c.DefaultMaxFaces <= c.MaxFaces, "default_max_faces must be in [1,max_faces], got %d", c.DefaultMaxFaces)
	check(c.MaxTopK >= 1 && c.MaxTopK <= 1000, "max_top_k must be in [1,1000], got %d", c.MaxTopK)
	check(c.DefaultTopK >= 1 && c.DefaultTopK <= c.MaxTopK, "default_top_k must be in [1,max_top_k], got %d", c.DefaultTopK)
	check(c.CacheEntries >= 0, "cache_entries must not be negative, got %d", c.CacheEntries)
	return errors.Join(errs...)
}

// Observer receives the service's measurements; metrics implement it.
type Observer interface {
	ObserveFaces(op string, n int)
	ObserveSimilarity(op string, sim float64)
	ObserveStage(stage string, d time.Duration)
	CacheLookup(hit bool)
}

type nopObserver struct{}

func (nopObserver) ObserveFaces(string, int)           {}
func (nopObserver) ObserveSimilarity(string, float64)  {}
func (nopObserver) ObserveStage(string, time.Duration) {}
func (nopObserver) CacheLookup(bool)                   {}

// Scheduler runs work on the server's bounded workers (sched.Scheduler).
type Scheduler interface {
	Run(ctx context.Context, fn func(context.Context) error) error
}

// Galleries is the gallery store the service enrolls into and searches
// (gallery.Manager). Every vector carries the id of the embedder that
// computed it (model), and is only ever compared with vectors of that id.
// Galleries are named within their tenant's namespace (gallery.Ref).
type Galleries interface {
	CreateGallery(ctx context.Context, g gallery.Ref) (gallery.Gallery, bool, error)
	DeleteGallery(ctx context.Context, g gallery.Ref) (int, error)
	Galleries(tenant, after string, limit int) ([]gallery.Gallery, bool, error)
	AddFace(ctx context.Context, g gallery.Ref, subject, model string, emb []float32) (string, error)
	Subject(ctx context.Context, g gallery.Ref, subject string) ([]gallery.FaceInfo, error)
	Subjects(ctx context.Context, g gallery.Ref, after string, limit int) ([]gallery.SubjectInfo, bool, error)
	DeleteSubject(ctx context.Context, g gallery.Ref, subject string) (int, error)
	Search(g gallery.Ref, model string, q []float32, k int, minSim float64) ([]gallery.Match, error)
	// Spaces lists the embedder ids of a gallery's faces, most faces
	// first; nil for an empty gallery (or one this replica has not seen).
	Spaces(g gallery.Ref) []gallery.Space
	MayExist(g gallery.Ref) bool
}

// Service is the face core every transport calls. It is safe for
// concurrent use.
//
// Each request pins the model versions it runs on (ModelSource) for its
// whole life. Detect and verify use the current versions. Enroll and
// identify use the embedder whose id the gallery's faces carry, as long as
// some loaded version computes it, and the current one for an empty
// gallery: a gallery is always searched, and grown, in one embedding
// space. When the gallery's embedder is not loaded they fail with an
// EmbedderError rather than compare vectors of different embedders.
type Service struct {
	cfg       Config
	models    ModelSource
	galleries Galleries
	sched     Scheduler
	obs       Observer
	cache     *analysisCache
	log       *slog.Logger
}

// NewService wires the core. galleries may be nil (detect and verify
// only); obs and log may be nil.
func NewService(cfg Config, models ModelSource, galleries Galleries, s Scheduler, obs Observer, log *slog.Logger) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("face: %w", err)
	}
	if models == nil || s == nil {
		return nil, errors.New("face: a service needs models and a scheduler")
	}
	if obs == nil {
		obs = nopObserver{}
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg.Limits = cfg.Limits.WithDefaults()
	return &Service{cfg: cfg, models: models, galleries: galleries, sched: s, obs: obs,
		cache: newAnalysisCache(cfg.CacheEntries), log: log.With("component", "face")}, nil
}

// Limits returns the input limits, for transports that read bodies.
func (s *Service) Limits() imageio.Limits { return s.cfg.Limits }

// Input is an encoded image as received.
type Input struct {
	Data     []byte
	Declared imageio.Format
}

// FaceBox is a detected face as the API returns it.
type FaceBox struct {
	Box       Box      `json:"box"`
	Landmarks [5]Point `json:"landmarks"`
	Score     float64  `json:"score"`
}

// DetectResult is the answer to Detect.
type DetectResult struct {
	Models   UsedModels         `json:"models"`
	Width    int                `json:"width"`
	Height   int                `json:"height"`
	Faces    []FaceBox          `json:"faces"`
	TimingMS map[string]float64 `json:"-"`
}

// Detect finds up to maxFaces faces (0: the default), best score first.
func (s *Service) Detect(ctx context.Context, in Input, maxFaces int) (*DetectResult, error) {
	maxFaces, err := s.maxFaces(maxFaces)
	if err != nil {
		return nil, err
	}
	t := timings{start: time.Now()}
	p, err := s.pin(nil)
	if err != nil {
		return nil, err
	}
	defer p.done()
	a, err := s.analyze(ctx, p, in, func(*Analysis) []int { return nil }, &t)
	if err != nil {
		return nil, err
	}
	res := &DetectResult{Models: p.used(), Width: a.Width, Height: a.Height, Faces: []FaceBox{}}
	for i := range min(maxFaces, len(a.Faces)) {
		res.Faces = append(res.Faces, faceBox(a.Faces[i]))
	}
	s.obs.ObserveFaces(OpDetect, len(res.Faces))
	res.TimingMS = s.finish(&t)
	return res, nil
}

// VerifyResult is the answer to Verify.
type VerifyResult struct {
	Models     UsedModels         `json:"models"`
	Similarity float64            `json:"similarity"`
	Match      bool               `json:"match"`
	Threshold  float64            `json:"threshold"`
	TimingMS   map[string]float64 `json:"-"`
}

// Verify compares the largest face of a with the largest face of b at
// threshold (nil: the default).
func (s *Service) Verify(ctx context.Context, a, b Input, threshold *float64) (*VerifyResult, error) {
	thr, err := s.threshold(threshold)
	if err != nil {
		return nil, err
	}
	t := timings{start: time.Now()}
	p, err := s.pin(func() (EmbedderVersion, func(), error) { return s.models.AcquireEmbedder("") })
	if err != nil {
		return nil, err
	}
	defer p.done()
	var embs [2][]float32
	for i, in := range []Input{a, b} {
		an, err := s.analyze(ctx, p, in, largest, &t)
		if err != nil {
			return nil, fmt.Errorf("image %q: %w", []string{"a", "b"}[i], err)
		}
		f, ok := largestFace(an)
		if !ok {
			return nil, fmt.Errorf("image %q: %w", []string{"a", "b"}[i], ErrNoFace)
		}
		embs[i] = f.Embedding
	}
	sim := round4(Cosine(embs[0], embs[1]))
	s.obs.ObserveSimilarity(OpVerify, sim)
	return &VerifyResult{Models: p.used(), Similarity: sim, Match: sim >= thr, Threshold: thr, TimingMS: s.finish(&t)}, nil
}

// EnrollResult is the answer to Enroll.
type EnrollResult struct {
	Models   UsedModels         `json:"models"`
	FaceID   string             `json:"face_id"`
	Box      Box                `json:"box"`
	Score    float64            `json:"score"`
	TimingMS map[string]float64 `json:"-"`
}

// Enroll adds the largest face of in to subject in gallery ref. It
// returns once the face is stored durably.
func (s *Service) Enroll(ctx context.Context, ref gallery.Ref, subject string, in Input) (*EnrollResult, error) {
	g, err := s.gal()
	if err != nil {
		return nil, err
	}
	// Check names before paying for inference.
	if err := ref.Validate(); err != nil {
		return nil, err
	}
	if err := gallery.ValidSubjectName(subject); err != nil {
		return nil, err
	}
	if !g.MayExist(ref) {
		return nil, gallery.ErrGalleryNotFound
	}
	t := timings{start: time.Now()}
	p, err := s.pin(func() (EmbedderVersion, func(), error) { return s.embedderFor(g, ref) })
	if err != nil {
		return nil, err
	}
	defer p.done()
	an, err := s.analyze(ctx, p, in, largest, &t)
	if err != nil {
		return nil, err
	}
	f, ok := largestFace(an)
	if !ok {
		return nil, ErrNoFace
	}
	id, err := g.AddFace(ctx, ref, subject, p.emb.ID, f.Embedding)
	if err != nil {
		return nil, err
	}
	s.obs.ObserveFaces(OpEnroll, 1)
	return &EnrollResult{Models: p.used(), FaceID: id, Box: roundBox(f.Box), Score: round4(f.Score), TimingMS: s.finish(&t)}, nil
}

// IdentifyOptions are identify's per-request choices; zero values select
// the defaults.
type IdentifyOptions struct {
	TopK      int
	Threshold *float64 // nil: the default
	MaxFaces  int
}

// IdentifiedFace is one face of an identify answer.
type IdentifiedFace struct {
	Box     Box             `json:"box"`
	Score   float64         `json:"score"`
	Matches []gallery.Match `json:"matches"`
}

// IdentifyResult is the answer to Identify.
type IdentifyResult struct {
	Models   UsedModels         `json:"models"`
	Faces    []IdentifiedFace   `json:"faces"`
	TimingMS map[string]float64 `json:"-"`
}

// Identify searches gallery ref for each of the (up to MaxFaces best)
// faces of in: up to TopK subjects per face, best first, none below
// Threshold.
func (s *Service) Identify(ctx context.Context, ref gallery.Ref, in Input, opt IdentifyOptions) (*IdentifyResult, error) {
	g, err := s.gal()
	if err != nil {
		return nil, err
	}
	if err := ref.Validate(); err != nil {
		return nil, err
	}
	maxFaces, err := s.maxFaces(opt.MaxFaces)
	if err != nil {
		return nil, err
	}
	threshold, err := s.threshold(opt.Threshold)
	if err != nil {
		return nil, err
	}
	topK := opt.TopK
	switch {
	case topK == 0:
		topK = s.cfg.DefaultTopK
	case topK < 1 || topK > s.cfg.MaxTopK:
		return nil, fmt.Errorf("%w: top_k=%d; use 1 to %d", ErrBadOption, topK, s.cfg.MaxTopK)
	}
	// Fail before inference when the gallery does not exist.
	if !g.MayExist(ref) {
		return nil, gallery.ErrGalleryNotFound
	}
	t := timings{start: time.Now()}
	p, err := s.pin(func() (EmbedderVersion, func(), error) { return s.embedderFor(g, ref) })
	if err != nil {
		return nil, err
	}
	defer p.done()
	an, err := s.analyze(ctx, p, in, func(a *Analysis) []int { return seq(min(maxFaces, len(a.Faces))) }, &t)
	if err != nil {
		return nil, err
	}
	res := &IdentifyResult{Models: p.used(), Faces: []IdentifiedFace{}}
	// Searching a large gallery is CPU work like inference: it runs on a
	// worker too.
	err = s.sched.Run(ctx, func(ctx context.Context) error {
		t0 := time.Now()
		defer func() { t.search += time.Since(t0) }()
		for i := range min(maxFaces, len(an.Faces)) {
			if err := ctx.Err(); err != nil {
				return err
			}
			f := an.Faces[i]
			matches, err := g.Search(ref, p.emb.ID, f.Embedding, topK, threshold)
			if err != nil {
				return err
			}
			for k := range matches {
				matches[k].Similarity = round4(matches[k].Similarity)
				s.obs.ObserveSimilarity(OpIdentify, matches[k].Similarity)
			}
			if matches == nil {
				matches = []gallery.Match{}
			}
			res.Faces = append(res.Faces, IdentifiedFace{Box: roundBox(f.Box), Score: round4(f.Score), Matches: matches})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.obs.ObserveFaces(OpIdentify, len(res.Faces))
	res.TimingMS = s.finish(&t)
	return res, nil
}

// CreateGallery creates a gallery if it does not exist.
func (s *Service) CreateGallery(ctx context.Context, ref gallery.Ref) (gallery.Gallery, bool, error) {
	g, err := s.gal()
	if err != nil {
		return gallery.Gallery{}, false, err
	}
	return g.CreateGallery(ctx, ref)
}

// DeleteGallery removes a gallery and all its faces; it returns how many
// faces.
func (s *Service) DeleteGallery(ctx context.Context, ref gallery.Ref) (int, error) {
	g, err := s.gal()
	if err != nil {
		return 0, err
	}
	return g.DeleteGallery(ctx, ref)
}

// Subject lists a subject's enrolled faces.
func (s *Service) Subject(ctx context.Context, ref gallery.Ref, subject string) ([]gallery.FaceInfo, error) {
	g, err := s.gal()
	if err != nil {
		return nil, err
	}
	return g.Subject(ctx, ref, subject)
}

// DeleteSubject removes a subject and its faces.
func (s *Service) DeleteSubject(ctx context.Context, ref gallery.Ref, subject string) (int, error) {
	g, err := s.gal()
	if err != nil {
		return 0, err
	}
	return g.DeleteSubject(ctx, ref, subject)
}

func (s *Service) gal() (Galleries, error) {
	if s.galleries == nil {
		return nil, fmt.Errorf("%w: galleries are not configured", ErrDisabled)
	}
	return s.galleries, nil
}

func (s *Service) maxFaces(n int) (int, error) {
	switch {
	case n == 0:
		return s.cfg.DefaultMaxFaces, nil
	case n < 1 || n > s.cfg.MaxFaces:
		return 0, fmt.Errorf("%w: max_faces=%d; use 1 to %d", ErrBadOption, n, s.cfg.MaxFaces)
	}
	return n, nil
}

func (s *Service) threshold(t *float64) (float64, error) {
	switch {
	case t == nil:
		return s.cfg.Threshold, nil
	case math.IsNaN(*t) || *t < -1 || *t > 1:
		return 0, fmt.Errorf("%w: threshold=%g; use -1 to 1", ErrBadOption, *t)
	}
	return *t, nil
}

// pinned is the model versions one request runs on.
type pinned struct {
	det      DetectorVersion
	emb      *EmbedderVersion // nil when the request embeds nothing
	releases []func()
}

// pin pins the current detector and, unless embedder is nil, the embedder
// it returns. Call done when the request ends.
func (s *Service) pin(embedder func() (EmbedderVersion, func(), error)) (*pinned, error) {
	det, release, err := s.models.AcquireDetector()
	if err != nil {
		return nil, err
	}
	p := &pinned{det: det, releases: []func(){release}}
	if embedder != nil {
		emb, release, err := embedder()
		if err != nil {
			p.done()
			return nil, err
		}
		p.emb = &emb
		p.releases = append(p.releases, release)
	}
	return p, nil
}

func (p *pinned) done() {
	for _, r := range p.releases {
		r()
	}
	p.releases = nil
}

// used names the versions for the response.
func (p *pinned) used() UsedModels {
	u := UsedModels{Detector: p.det.Ref}
	if p.emb != nil {
		u.Embedder = &EmbedderRef{ModelRef: p.emb.Ref, ID: p.emb.ID}
	}
	return u
}

// pipeline joins the pinned versions.
func (p *pinned) pipeline() *Pipeline {
	pl := &Pipeline{det: p.det.Detector}
	if p.emb != nil {
		pl.emb = p.emb.Embedder
	}
	return pl
}

// cacheKey distinguishes cached analyses of different model versions: a
// version's weights and parameters never change (a file's for the life of
// the process, a package's for good), but two versions may share weights
// and differ in parameters (a detection threshold, flipping).
func (p *pinned) cacheKey() string {
	k := p.det.Ref.Name + "/" + p.det.Ref.Version + "/" + p.det.Digest + "|"
	if p.emb != nil {
		k += p.emb.Ref.Name + "/" + p.emb.Ref.Version + "/" + p.emb.ID
	}
	return k + "|"
}

// embedderFor pins the embedder a gallery's requests use: a loaded one
// whose id the gallery's faces carry (the id holding the most faces
// first), or the current one when the gallery is empty.
func (s *Service) embedderFor(g Galleries, ref gallery.Ref) (EmbedderVersion, func(), error) {
	spaces := g.Spaces(ref)
	if len(spaces) == 0 {
		return s.models.AcquireEmbedder("")
	}
	for _, sp := range spaces {
		v, release, err := s.models.AcquireEmbedder(sp.Model)
		if err == nil {
			return v, release, nil
		}
		if !errors.Is(err, ErrEmbedderNotLoaded) {
			return EmbedderVersion{}, nil, err
		}
	}
	e := &EmbedderError{Gallery: ref.Name, Held: spaces[0].Model}
	if v, release, err := s.models.AcquireEmbedder(""); err == nil {
		e.Loaded = v.ID
		release()
	}
	return EmbedderVersion{}, nil, e
}

// analyze returns the faces of in (its first page), with embeddings for
// the faces need picks. A cached analysis of the same bytes is reused;
// otherwise the image is decoded, detected and embedded on one worker.
func (s *Service) analyze(ctx context.Context, p *pinned, in Input, need func(*Analysis) []int, t *timings) (*Analysis, error) {
	var key string
	var cached *Analysis // faces found earlier, perhaps without every embedding needed now
	if s.cfg.CacheEntries > 0 {
		sum := sha256.Sum256(in.Data)
		key = p.cacheKey() + string(sum[:])
		if cached = s.cache.get(key); cached != nil && embedded(cached, need(cached)) {
			s.obs.CacheLookup(true)
			return cached, nil
		}
		s.obs.CacheLookup(false)
	}
	doc, err := imageio.Open(in.Data, in.Declared, s.cfg.Limits)
	if err != nil {
		return nil, err
	}
	var out *Analysis
	err = s.sched.Run(ctx, func(ctx context.Context) error {
		t0 := time.Now()
		img, err := doc.Decode(ctx, 0)
		t.decode += time.Since(t0)
		if err != nil {
			return err
		}
		pl := p.pipeline()
		t1 := time.Now()
		a := cached
		if a == nil {
			a, err = pl.Detect(ctx, img, s.cfg.MaxFaces)
			t.detect += time.Since(t1)
			if err != nil {
				return err
			}
		} else {
			a.img = toBGR(img)
		}
		t2 := time.Now()
		err = pl.Embed(ctx, a, need(a)...)
		t.embed += time.Since(t2)
		a.img = nil // the image is not needed past this point
		out = a
		return err
	})
	if err != nil {
		return nil, err
	}
	if key != "" {
		s.cache.put(key, out)
	}
	return out, nil
}

// largest picks the largest face.
func largest(a *Analysis) []int {
	if len(a.Faces) == 0 {
		return nil
	}
	return a.Largest()[:1]
}

func largestFace(a *Analysis) (Face, bool) {
	if len(a.Faces) == 0 {
		return Face{}, false
	}
	return a.Faces[a.Largest()[0]], true
}

func embedded(a *Analysis, idx []int) bool {
	for _, i := range idx {
		if a.Faces[i].Embedding == nil {
			return false
		}
	}
	return true
}

func seq(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}

func faceBox(f Face) FaceBox {
	fb := FaceBox{Box: roundBox(f.Box), Score: round4(f.Score)}
	for i, p := range f.Landmarks {
		fb.Landmarks[i] = Point{round1(p[0]), round1(p[1])}
	}
	return fb
}

func roundBox(b Box) Box {
	return Box{X: round1(b.X), Y: round1(b.Y), Width: round1(b.Width), Height: round1(b.Height)}
}

func round1(v float64) float64 { return math.Round(v*10) / 10 }
func round4(v float64) float64 { return math.Round(v*1e4) / 1e4 }

// timings accumulate stage durations over one request.
type timings struct {
	start                         time.Time
	decode, detect, embed, search time.Duration
}

// finish reports the stages that ran, and the total, to the observer and
// returns them in milliseconds.
func (s *Service) finish(t *timings) map[string]float64 {
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	out := map[string]float64{}
	total := time.Since(t.start)
	for stage, d := range map[string]time.Duration{StageDecode: t.decode, StageDetect: t.detect, StageEmbed: t.embed, StageSearch: t.search, StageTotal: total} {
		if d > 0 {
			s.obs.ObserveStage(stage, d)
			out[stage] = ms(d)
		}
	}
	return out
}
