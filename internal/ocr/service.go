package ocr

import (
	"context"
	"errors"
	"fmt"
	"image"
	"io"
	"log/slog"
	"time"

	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/visionserve/visionserve/internal/calib"
	"github.com/visionserve/visionserve/internal/engine"
	"github.com/visionserve/visionserve/internal/imageio"
	"github.com/visionserve/visionserve/internal/metrics"
	"github.com/visionserve/visionserve/internal/ocr/dewarp"
	"github.com/visionserve/visionserve/internal/ocr/tier"
	"github.com/visionserve/visionserve/internal/tracing"
)

// Sentinel errors of the OCR core.
var (
	// ErrModelNotFound: no served model matches the request's model or language.
	ErrModelNotFound = errors.New("model not found")
	// ErrVersionNotFound: the model exists but the pinned version is not ready.
	ErrVersionNotFound = errors.New("model version not found")
	// ErrBadOption: a request option has a value outside its enum.
	ErrBadOption = errors.New("invalid option")
)

// Mode is the segmentation mode a request asks for.
type Mode string

// Modes. ModeAuto picks line for an image holding one text line and page
// otherwise.
const (
	ModeAuto  Mode = "auto"
	ModePage  Mode = "page"
	ModeBlock Mode = "block"
	ModeLine  Mode = "line"
	ModeWord  Mode = "word"
)

// ParseMode validates a mode name; "" is ModeAuto.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(s); m {
	case "":
		return ModeAuto, nil
	case ModeAuto, ModePage, ModeBlock, ModeLine, ModeWord:
		return m, nil
	}
	return "", fmt.Errorf("%w: mode=%q; use auto, page, block, line or word", ErrBadOption, s)
}

func (m Mode) segMode() engine.SegMode {
	switch m {
	case ModeBlock:
		return engine.SegBlock
	case ModeLine:
		return engine.SegLine
	case ModeWord:
		return engine.SegWord
	}
	return engine.SegPage
}

// Options are the per-request choices.
type Options struct {
	Model   string // "" selects by Lang, or the default model
	Version string // "" lets the model source route
	Lang    string // a language (routed by Config.Languages), LangAuto, or "" for the model's own
	Mode    Mode
	// NoRotate skips orientation detection (pages known to be upright).
	NoRotate bool
	// Key makes version routing sticky: requests with the same key reach
	// the same version while the model's traffic weights are unchanged.
	Key string
	// MaxSide downscales pages to this longer side before recognition
	// (0: as they are); the cheaper tier sets it (cheap.go).
	MaxSide int
	// Dewarp says when pages are flattened or levelled before
	// recognition (flatten.go); "" takes Config.Dewarp.
	Dewarp dewarp.Mode
}

// Params are a request's options as every transport receives them: the
// /v1/ocr query parameters, the fields of visionserve.v1.RecognizeRequest.
// Empty fields take their defaults.
type Params struct {
	Model, Version, Lang string
	Mode                 string // auto, page, block, line, word
	Rotate               string // auto, off
	Dewarp               string // auto, on, off
}

// Options validates p; a value outside its enum is ErrBadOption.
func (p Params) Options() (Options, error) {
	mode, err := ParseMode(p.Mode)
	if err != nil {
		return Options{}, err
	}
	noRotate, err := ParseRotate(p.Rotate)
	if err != nil {
		return Options{}, err
	}
	dw, err := ParseDewarp(p.Dewarp)
	if err != nil {
		return Options{}, err
	}
	return Options{Model: p.Model, Version: p.Version, Lang: p.Lang, Mode: mode, NoRotate: noRotate, Dewarp: dw}, nil
}

// ParseRotate reads the rotate option: "" and auto detect pages turned by
// 90, 180 or 270 degrees; off skips detection (Options.NoRotate).
func ParseRotate(s string) (noRotate bool, err error) {
	switch s {
	case "", "auto":
		return false, nil
	case "off":
		return true, nil
	}
	return false, fmt.Errorf("%w: rotate=%q; use auto or off", ErrBadOption, s)
}

// Selector says which model a request wants. Key is the sticky routing
// key; sources without versions ignore it.
type Selector struct{ Name, Version, Lang, Key string }

// Engine is one OCR engine instance, used by one request at a time.
type Engine interface {
	engine.TextRecognizer
	engine.OrientationDetector
	io.Closer
}

// EnginePool lends engine instances (engine.Pool). ReleaseAfter gives
// back an engine whose call was abandoned at a deadline and may still be
// running: pending closes when it returns (nil: it has); onStuck is called
// if it does not return soon and the engine is quarantined.
type EnginePool interface {
	Acquire(ctx context.Context) (Engine, error)
	Release(Engine)
	ReleaseAfter(e Engine, pending <-chan struct{}, onStuck func())
}

// PageReader reads a whole page by itself: a pipeline that finds its own
// text lines (PP-OCR's DB detection) rather than an engine that lays out the
// page. mode is ModePage, ModeBlock, ModeLine or ModeWord (never ModeAuto).
// It returns lines in reading order with boxes in img's coordinates and
// leaves review tiers to the service. It must be safe for concurrent use
// and return promptly once ctx is done.
type PageReader interface {
	ReadPage(ctx context.Context, img image.Image, mode Mode) ([]Line, error)
}

// Model is one loaded, ready model version. It reads pages either with
// Engines (Tesseract: layout, orientation and recognition in one engine) or,
// when Pages is set, with a PageReader (Engines is then unused).
type Model struct {
	Ref       ModelRef
	Languages string
	Engines   EnginePool
	Pages     PageReader
	// Calibration maps the engine's word confidence to the probability
	// that the word is right. With it, a line's confidence is the
	// probability that the whole line is right: the product of its words'.
	// Without it (empty), confidences are the engine's own.
	Calibration calib.Curve
	// Cheaper is the model's cheaper quality tier, served under sustained
	// queueing (Config.Tier); nil: the model has none.
	Cheaper *CheapTier
}

// lineConfidence is the line's confidence from the engine's raw line
// score and its (already calibrated) words.
func (m *Model) lineConfidence(raw float64, words []Word) float64 {
	if len(m.Calibration) == 0 || len(words) == 0 {
		return roundConfidence(raw)
	}
	p := 1.0
	for _, w := range words {
		p *= w.Confidence
	}
	return roundConfidence(p)
}

// ModelSource resolves a Selector to a model version and pins it: the
// version stays loaded until release is called.
type ModelSource interface {
	Acquire(sel Selector) (m *Model, release func(), err error)
}

// Scheduler runs work on a bounded set of workers (sched.Scheduler).
type Scheduler interface {
	Run(ctx context.Context, fn func(context.Context) error) error
}

// Config tunes the pipeline.
type Config struct {
	Review ReviewPolicy
	// OrientationCheckBelow: a page or block whose first reading has a
	// mean confidence under this is checked for a 90/180/270 degree turn.
	OrientationCheckBelow float64
	// MinOrientationConfidence is the detector confidence (0..1) needed
	// before a turned reading is tried. A turned reading replaces the first
	// only if it is more confident.
	MinOrientationConfidence float64
	Limits                   imageio.Limits
	// Tracer receives a span per request and per pipeline stage; nil: none.
	Tracer trace.Tracer
	// Tier says when models with a cheaper tier switch to it; the zero
	// value never does.
	Tier tier.Policy
	// Languages routes a request's lang (one naming no model) to the
	// model that reads it, by name; a language without a route, or whose
	// model is not served, goes to the first model reading it.
	Languages map[string]string
	// Scripts maps the script OSD detects to the language lang=auto
	// asks for (LangAuto).
	Scripts map[string]string
	// Dewarp is the dewarp mode of requests that do not choose one;
	// the zero value is off.
	Dewarp dewarp.Mode
}

// DefaultConfig returns the documented defaults.
func DefaultConfig() Config {
	return Config{Review: DefaultReviewPolicy(), OrientationCheckBelow: 0.75, MinOrientationConfidence: 0.4, Limits: imageio.DefaultLimits(),
		Dewarp: dewarp.Auto, Languages: DefaultLanguages(), Scripts: DefaultScripts()}
}

// Service is the OCR core that every transport calls.
type Service struct {
	cfg     Config
	models  ModelSource
	sched   Scheduler
	metrics *metrics.Metrics // may be nil
	log     *slog.Logger
	tiers   *tier.Switch
}

// NewService wires the core. m may be nil (no metrics).
func NewService(cfg Config, models ModelSource, s Scheduler, m *metrics.Metrics, log *slog.Logger) *Service {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg.Limits = cfg.Limits.WithDefaults()
	cloneTables(&cfg)
	if cfg.Tracer == nil {
		cfg.Tracer = noop.NewTracerProvider().Tracer("")
	}
	return &Service{cfg: cfg, models: models, sched: s, metrics: m, log: log.With("component", "ocr"), tiers: tier.NewSwitch(cfg.Tier)}
}

// WithSource returns a Service like s that takes its models from src: a
// caller that already pinned a version (the inference protocol over a
// model repository) reads with exactly that version.
func (s *Service) WithSource(src ModelSource) *Service {
	c := *s
	c.models = src
	return &c
}

// Limits returns the input limits, for transports that read bodies.
func (s *Service) Limits() imageio.Limits { return s.cfg.Limits }

// Input is an encoded image as received.
type Input struct {
	Data     []byte
	Declared imageio.Format // what the client said it is, if anything
}

// Recognize runs OCR on every page of in. Pages are decoded and recognised
// one at a time, each holding a worker only while it runs.
func (s *Service) Recognize(ctx context.Context, in Input, opt Options) (*Result, error) {
	ctx, span := s.cfg.Tracer.Start(ctx, "ocr.recognize")
	defer span.End()
	res, err := s.recognize(ctx, in, opt)
	if err != nil {
		tracing.Fail(span, FailureReason(err), err)
	}
	return res, err
}

func (s *Service) recognize(ctx context.Context, in Input, opt Options) (*Result, error) {
	start := time.Now()
	if opt.Mode == "" {
		opt.Mode = ModeAuto
	}
	var t timings
	var doc *imageio.Document
	var err error
	auto := opt.Lang == LangAuto
	var script string
	if auto {
		// The language comes from the first page: open the input first.
		if doc, err = imageio.Open(in.Data, in.Declared, s.cfg.Limits); err != nil {
			return nil, err
		}
		if script, opt.Lang, err = s.detectLanguage(ctx, doc, opt.Key, &t); err != nil {
			return nil, err
		}
	}
	model, release, err := s.acquire(opt)
	if err != nil {
		return nil, err
	}
	defer release()
	trace.SpanFromContext(ctx).SetAttributes(modelAttrs(model.Ref)...)

	if doc == nil {
		if doc, err = imageio.Open(in.Data, in.Declared, s.cfg.Limits); err != nil {
			return nil, err
		}
	}
	res := &Result{Model: model.Ref, Pages: make([]Page, 0, len(doc.Pages))}
	if auto {
		res.Script, res.Lang = script, opt.Lang
	}
	res.Tier = string(s.chooseTier(model, &opt))
	for i := range doc.Pages {
		var page Page
		err := s.sched.Run(ctx, func(ctx context.Context) error {
			var err error
			page, err = s.page(ctx, model, doc, i, opt, &t)
			return err
		})
		if err != nil {
			return nil, err
		}
		res.Pages = append(res.Pages, page)
	}
	var lines []Line
	for _, p := range res.Pages {
		lines = append(lines, p.Lines...)
	}
	res.Text = PlainText(res.Pages)
	res.Confidence = MeanConfidence(lines)
	t.total = time.Since(start)
	res.TimingMS = t.ms()
	s.observe(model.Ref, res, &t)
	return res, nil
}

// page decodes, orients and recognises page i, with a worker held.
func (s *Service) page(ctx context.Context, model *Model, doc *imageio.Document, i int, opt Options, t *timings) (Page, error) {
	t0 := time.Now()
	sctx, span := s.stage(ctx, "ocr.decode", model, i)
	img, err := doc.Decode(sctx, i)
	endStage(span, err)
	t.decode += time.Since(t0)
	if err != nil {
		return Page{}, err
	}
	if model.Pages != nil {
		return s.readPage(ctx, model, img, i, opt, t)
	}
	eng, giveBack, err := s.lend(ctx, model)
	if err != nil {
		return Page{}, err
	}
	defer giveBack()

	t1 := time.Now()
	_, pspan := s.stage(ctx, "ocr.preprocess", model, i)
	gray := imageio.ToGray(img)
	img = nil // the gray copy is all we need; let the decoded page go
	b := gray.Bounds()
	if b.Dx() < 3 || b.Dy() < 3 {
		err := &imageio.Error{Kind: imageio.ErrUnusable, Detail: fmt.Sprintf("page %d is %dx%d pixels; text needs at least 3x3", i, b.Dx(), b.Dy())}
		endStage(pspan, err)
		return Page{}, err
	}
	fix := s.flatten(ctx, model, gray, i, opt, func(c *dewarp.Correction) { gray = c.Gray(gray) })
	gray, scale := downscale(gray, opt.MaxSide)
	mode := opt.Mode
	if mode == ModeAuto {
		mode = ModePage
		if isSingleLine(gray) {
			mode = ModeLine
		}
	}
	endStage(pspan, nil)
	t.preprocess += time.Since(t1)

	// Read the page as it is first: most pages are upright, and Tesseract
	// itself reads pages turned 90 degrees clockwise. Only a doubtful
	// reading pays for orientation detection (which costs about as much as
	// recognition) and, if a turn is worth trying, a second reading.
	lines, angle, err := s.read(ctx, model, eng, gray, 0, mode, t)
	if err != nil {
		return Page{}, err
	}
	conf := MeanConfidence(lines)
	if !opt.NoRotate && (mode == ModePage || mode == ModeBlock) && conf < s.cfg.OrientationCheckBelow {
		turn, err := s.turnToTry(ctx, model, eng, gray, i, t)
		if err != nil {
			return Page{}, err
		}
		if turn != 0 {
			turned, turnedAngle, err := s.read(ctx, model, eng, gray, turn, mode, t)
			if err != nil {
				return Page{}, err
			}
			if c := MeanConfidence(turned); c > conf {
				lines, angle, conf = turned, turnedAngle, c
			}
		}
	}
	unscale(lines, scale)
	page := Page{Index: i, Width: b.Dx(), Height: b.Dy(), Angle: angle, Mode: string(mode), Confidence: conf, Lines: lines}
	unwarp(&page, fix)
	return page, nil
}

// turnToTry returns the clockwise turn worth a second reading of a
// doubtful page, or 0: the turn the engine's orientation detector is sure
// of. An engine without an orientation model (a Tesseract package made
// without osd.traineddata) has the half turn tried instead, the one
// Tesseract cannot read by itself; the better of the two readings wins as
// with a detector, so the page is answered either way.
func (s *Service) turnToTry(ctx context.Context, model *Model, eng engine.OrientationDetector, gray *image.Gray, i int, t *timings) (int, error) {
	t0 := time.Now()
	sctx, span := s.stage(ctx, "ocr.orientation", model, i)
	o, err := eng.DetectOrientation(sctx, gray)
	t.preprocess += time.Since(t0)
	if errors.Is(err, engine.ErrNoOrientation) {
		span.AddEvent("no orientation model: trying the half turn")
		span.End()
		s.log.Debug("no orientation model; trying the half turn", "model", model.Ref.Name, "version", model.Ref.Version, "page", i)
		return 180, nil
	}
	endStage(span, err)
	if err != nil || o.Degrees == 0 || o.Confidence < s.cfg.MinOrientationConfidence {
		return 0, err
	}
	return o.Degrees, nil
}

// readPage reads page i with the model's PageReader. The reader finds and
// orients its own lines, so there is no page turn to try: Angle stays 0 and
// boxes come back as the reader found them, already in page coordinates.
// Confidences go through the model's calibration as Tesseract's do.
func (s *Service) readPage(ctx context.Context, model *Model, img image.Image, i int, opt Options, t *timings) (Page, error) {
	t0 := time.Now()
	_, pspan := s.stage(ctx, "ocr.preprocess", model, i)
	b := img.Bounds()
	if b.Dx() < 3 || b.Dy() < 3 {
		err := &imageio.Error{Kind: imageio.ErrUnusable, Detail: fmt.Sprintf("page %d is %dx%d pixels; text needs at least 3x3", i, b.Dx(), b.Dy())}
		endStage(pspan, err)
		return Page{}, err
	}
	gray := imageio.ToGray(img)
	fix := s.flatten(ctx, model, gray, i, opt, func(c *dewarp.Correction) {
		img = c.Image(img)
		gray = imageio.ToGray(img)
	})
	mode := opt.Mode
	if mode == ModeAuto {
		mode = ModePage
		if isSingleLine(gray) {
			mode = ModeLine
		}
	}
	endStage(pspan, nil)
	t.preprocess += time.Since(t0)

	t1 := time.Now()
	sctx, span := s.stage(ctx, "ocr.read_page", model, i)
	lines, err := model.Pages.ReadPage(sctx, img, mode)
	endStage(span, err)
	t.recognize += time.Since(t1)
	if err != nil {
		return Page{}, err
	}
	for k := range lines {
		l := &lines[k]
		for w := range l.Words {
			l.Words[w].Confidence = roundConfidence(model.Calibration.Apply(l.Words[w].Confidence))
		}
		l.Confidence = model.lineConfidence(l.Confidence, l.Words)
		l.Review = s.cfg.Review.Tier(l.Confidence)
		if l.Words == nil {
			l.Words = []Word{}
		}
	}
	if lines == nil {
		lines = []Line{}
	}
	page := Page{Index: i, Width: b.Dx(), Height: b.Dy(), Mode: string(mode), Confidence: MeanConfidence(lines), Lines: lines}
	unwarp(&page, fix)
	return page, nil
}

// read recognises gray turned clockwise by turn degrees and returns the
// lines with boxes in gray's coordinates, and the page angle: the turn plus
// the rotation at which the engine read most of the text.
func (s *Service) read(ctx context.Context, model *Model, eng engine.TextRecognizer, gray *image.Gray, turn int, mode Mode, t *timings) ([]Line, int, error) {
	t0 := time.Now()
	rot := imageio.RotationCW(turn)
	img := rot.ApplyGray(gray)
	t.preprocess += time.Since(t0)

	t1 := time.Now()
	sctx, span := s.stage(ctx, "ocr.recognize_text", model, -1)
	found, err := eng.RecognizeText(sctx, img, mode.segMode())
	endStage(span, err)
	t.recognize += time.Since(t1)
	if err != nil {
		return nil, 0, err
	}
	w, h := gray.Bounds().Dx(), gray.Bounds().Dy()
	toPage := func(r image.Rectangle, orientation int) Quad {
		q := readingQuad(r, orientation)
		for k, c := range q {
			x, y := rot.SourcePoint(c[0], c[1], w, h)
			q[k] = Point{x, y}
		}
		return q
	}
	lines := make([]Line, 0, len(found))
	chars := map[int]int{} // characters read at each orientation
	for _, fl := range found {
		l := Line{Text: fl.Text, Box: toPage(fl.Box, fl.Orientation), Words: make([]Word, len(fl.Words))}
		for k, w := range fl.Words {
			l.Words[k] = Word{Text: w.Text, Confidence: roundConfidence(model.Calibration.Apply(w.Confidence)), Box: toPage(w.Box, fl.Orientation)}
		}
		l.Confidence = model.lineConfidence(fl.Confidence, l.Words)
		l.Review = s.cfg.Review.Tier(l.Confidence)
		lines = append(lines, l)
		chars[fl.Orientation] += len(fl.Text)
	}
	dominant := 0
	for o, n := range chars {
		if n > chars[dominant] {
			dominant = o
		}
	}
	return lines, (turn + dominant) % 360, nil
}

// readingQuad returns the corners of r in the reading order of text that
// must be turned clockwise by orientation degrees to be upright: for text
// running downwards (270) the text's top-left is r's top-right corner.
func readingQuad(r image.Rectangle, orientation int) Quad {
	q := RectQuad(r)
	k := map[int]int{0: 0, 270: 1, 180: 2, 90: 3}[orientation]
	return Quad{q[k], q[(k+1)%4], q[(k+2)%4], q[(k+3)%4]}
}

// timings accumulate stage durations over the pages of one request.
type timings struct{ decode, preprocess, recognize, total time.Duration }

func (t *timings) ms() map[string]float64 {
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	return map[string]float64{
		metrics.StageDecode:     ms(t.decode),
		metrics.StagePreprocess: ms(t.preprocess),
		metrics.StageRecognize:  ms(t.recognize),
		metrics.StageTotal:      ms(t.total),
	}
}

func (s *Service) observe(ref ModelRef, res *Result, t *timings) {
	m := s.metrics
	if m == nil {
		return
	}
	for stage, d := range map[string]time.Duration{
		metrics.StageDecode: t.decode, metrics.StagePreprocess: t.preprocess,
		metrics.StageRecognize: t.recognize, metrics.StageTotal: t.total,
	} {
		m.Stage.WithLabelValues(ref.Name, ref.Version, stage).Observe(d.Seconds())
	}
	for _, p := range res.Pages {
		m.Pages.WithLabelValues(ref.Name, ref.Version, p.Mode).Inc()
		if len(p.Lines) > 0 {
			m.Confidence.WithLabelValues(ref.Name, ref.Version).Observe(p.Confidence)
		}
	}
}
