// Package config defines the server's configuration file: its schema,
// defaults, loading and validation. One YAML file; command-line flags
// override it (the cli package applies them); secrets, when there are
// some, come from the environment, never from the file.
//
// Unknown keys are errors: a misspelt limit must not silently fall back to
// its default.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/visionserve/visionserve/internal/auth"
	"github.com/visionserve/visionserve/internal/calib"
	"github.com/visionserve/visionserve/internal/imageio"
	"github.com/visionserve/visionserve/internal/keys"
	"github.com/visionserve/visionserve/internal/modelrepo"
	"github.com/visionserve/visionserve/internal/ocr"
	"github.com/visionserve/visionserve/internal/ocr/dewarp"
	"github.com/visionserve/visionserve/internal/ocr/tier"
	"github.com/visionserve/visionserve/internal/ratelimit"
	"github.com/visionserve/visionserve/internal/tracing"
)

// Config is the whole configuration file.
type Config struct {
	Server     Server           `yaml:"server"`
	TLS        TLS              `yaml:"tls"`
	Auth       auth.Config      `yaml:"auth"`
	RateLimits ratelimit.Config `yaml:"rate_limits"`
	Limits     Limits           `yaml:"limits"`
	OCR        OCR              `yaml:"ocr"`
	Models     []Model          `yaml:"models"`
	Face       Face             `yaml:"face"`
	Jobs       Jobs             `yaml:"jobs"`
	// Encryption seals face embeddings and job inputs and results at
	// rest; it names where the key-encryption key is, never the key.
	Encryption keys.Settings  `yaml:"encryption"`
	Tracing    tracing.Config `yaml:"tracing"`
	Log        Log            `yaml:"log"`
	ONNX       ONNX           `yaml:"onnx"`
	// Repository serves signed model packages instead of Models.
	Repository Repository `yaml:"repository"`
	UI         UI         `yaml:"ui"`
	Reviews    Reviews    `yaml:"reviews"`
}

// ONNX configures the ONNX Runtime library that onnx and ppocr models use.
type ONNX struct {
	// Library is the path of libonnxruntime.so; "" means
	// $VISIONSERVE_ONNXRUNTIME_LIB, then hack/setup-onnxruntime.sh's cache.
	Library string `yaml:"library"`
}

// Server configures the listener and the request path.
type Server struct {
	// Addr is the public listener. The default binds loopback only:
	// exposing the server is a decision.
	Addr string `yaml:"addr"`
	// AdminAddr is the admin listener (model administration, pprof,
	// metrics); "" turns it off.
	AdminAddr         string        `yaml:"admin_addr"`
	Workers           int           `yaml:"workers"` // 0: one per CPU
	Queue             int           `yaml:"queue"`   // admitted requests that may wait for a worker
	RequestTimeout    time.Duration `yaml:"request_timeout"`
	ShutdownTimeout   time.Duration `yaml:"shutdown_timeout"`
	ReadHeaderTimeout time.Duration `yaml:"read_header_timeout"`
	IdleTimeout       time.Duration `yaml:"idle_timeout"`

	// GRPCAddr is the gRPC listener (Open Inference Protocol), loopback
	// by default like Addr; "" turns gRPC off.
	GRPCAddr string `yaml:"grpc_addr"`

	// MaxConnections bounds the connections each listener (HTTP, gRPC,
	// admin) holds open; one more is closed on arrival. 0: no bound.
	MaxConnections int `yaml:"max_connections"`
	// BodyMemory bounds the bytes of request bodies held at once (being
	// read, waiting for a worker, running); one principal may hold a
	// quarter of it, and at least the largest body. 0: 16 x
	// limits.max_bytes (Config.BodyBudget).
	BodyMemory ByteSize `yaml:"body_memory"`
	// MinUploadRate is the pace, in bytes per second, a request body must
	// keep once read_header_timeout has passed; a slower upload is
	// refused with 408. 0: only request_timeout bounds an upload.
	MinUploadRate ByteSize `yaml:"min_upload_rate"`
}

// bodyEnvelope is what a multipart envelope may add to a request's images
// (the HTTP transport's bound).
const bodyEnvelope = 64 << 10

// largestBody is the largest request body a route takes: two images (face
// verification) in a multipart envelope.
func (c Config) largestBody() int64 { return 2*int64(c.Limits.MaxBytes) + bodyEnvelope }

// BodyBudget returns the bytes of request bodies the server holds at once
// (server.body_memory, by default 16 x limits.max_bytes) and what one
// principal may hold of them: a quarter, and never less than the largest
// body, so that every request can be read.
func (c Config) BodyBudget() (total, share int64) {
	total = int64(c.Server.BodyMemory)
	if total == 0 {
		total = max(16*int64(c.Limits.MaxBytes), c.largestBody())
	}
	return total, min(total, max(total/4, c.largestBody()))
}

// Limits bound each request's input.
type Limits struct {
	MaxBytes      ByteSize      `yaml:"max_bytes"`
	MaxPixels     int64         `yaml:"max_pixels"`
	MaxPages      int           `yaml:"max_pages"`
	DecodeTimeout time.Duration `yaml:"decode_timeout"`
	// MaxTensorElements bounds the elements of all input tensors of one
	// inference-protocol request.
	MaxTensorElements int64 `yaml:"max_tensor_elements"`
}

// OCR tunes the OCR pipeline.
type OCR struct {
	Review                   ocr.ReviewPolicy `yaml:"review"`
	OrientationCheckBelow    float64          `yaml:"orientation_check_below"`
	MinOrientationConfidence float64          `yaml:"min_orientation_confidence"`
	// Tier says when models that have a cheap_tier switch to it: under
	// sustained queueing (docs/operator.md). Off unless enter_queue is set.
	Tier tier.Policy `yaml:"tier"`
	// Languages routes a request's lang= to a model by name (chi_sim and
	// zh to ocr-zh by default); entries in the file add to the defaults
	// or replace them.
	Languages map[string]string `yaml:"languages"`
	// Scripts maps the script Tesseract's OSD sees on the first page to
	// the language lang=auto asks for (Latin: eng, Han and Japanese:
	// chi_sim by default).
	Scripts map[string]string `yaml:"scripts"`
	// Dewarp is the dewarp mode of requests that do not choose one:
	// auto (flatten photographed pages, level tilted scans), on or off.
	Dewarp dewarp.Mode `yaml:"dewarp"`
}

// Model is one served model.
type Model struct {
	Name      string `yaml:"name"`
	Version   string `yaml:"version"`
	Engine    string `yaml:"engine"`    // tesseract, ppocr or onnx
	Languages string `yaml:"languages"` // tesseract: language spec, e.g. eng or eng+deu
	DataPath  string `yaml:"data_path"` // tesseract: directory of .traineddata files; "" = the system's
	// Calibration maps the engine's word confidence to the probability the
	// word is right, as [score, probability] knots (`visionserve calibrate`
	// fits them). Empty: the engine's raw confidences are reported.
	Calibration calib.Curve `yaml:"calibration"`
	// Dir holds the model files of a ppocr or onnx model.
	Dir string `yaml:"dir"`
	// Runtime holds a ppocr or onnx model's options, the same object a
	// model package manifest carries under "runtime" (docs/configuration.md).
	Runtime map[string]any `yaml:"runtime"`
	// CheapTier is the model's cheaper quality tier, served while the
	// server is under sustained queueing (ocr.tier); none when absent.
	CheapTier *ocr.CheapTier `yaml:"cheap_tier"`
}

// DefaultCalibration is fitted by `visionserve calibrate` on the 250 shared
// text lines (../shared/data/ocr/lines) read by Debian's tesseract-ocr-eng
// 5.3 model; docs/confidence.md gives its cross-validated effect. It suits
// that model only: refit for any other traineddata.
var DefaultCalibration = calib.Curve{
	{X: 0.0136, Y: 0.4205}, {X: 0.6107, Y: 0.7887}, {X: 0.867, Y: 0.8391}, {X: 0.8895, Y: 0.8679},
	{X: 0.8949, Y: 0.9187}, {X: 0.9067, Y: 0.9363}, {X: 0.9159, Y: 0.9623}, {X: 0.9311, Y: 0.975},
	{X: 0.9528, Y: 0.9879}, {X: 0.9614, Y: 0.9892}, {X: 0.9633, Y: 0.9916}, {X: 0.9652, Y: 0.9937},
	{X: 0.9657, Y: 0.9972}, {X: 0.9658, Y: 0.9975}, {X: 0.9702, Y: 0.9975},
}

// Engines a model may use.
const (
	EngineTesseract = "tesseract"
	EnginePPOCR     = "ppocr"
	EngineONNX      = "onnx"
)

// Log configures logging.
type Log struct {
	Level  string `yaml:"level"`  // debug, info, warn, error
	Format string `yaml:"format"` // text or json
}

// Default returns the configuration used when no file is given; the flag
// defaults in the cli package are read from it.
func Default() Config {
	lim := imageio.DefaultLimits()
	oc := ocr.DefaultConfig()
	return Config{
		Server: Server{
			Addr:              "127.0.0.1:8080",
			GRPCAddr:          "127.0.0.1:9090",
			AdminAddr:         "127.0.0.1:9091",
			Queue:             64,
			RequestTimeout:    30 * time.Second,
			ShutdownTimeout:   30 * time.Second,
			ReadHeaderTimeout: 10 * time.Second,
			IdleTimeout:       2 * time.Minute,
			MaxConnections:    1024,
			MinUploadRate:     8 << 10,
		},
		Limits: Limits{
			MaxBytes:          ByteSize(lim.MaxBytes),
			MaxPixels:         lim.MaxPixels,
			MaxPages:          lim.MaxPages,
			DecodeTimeout:     lim.DecodeTimeout,
			MaxTensorElements: 1 << 24,
		},
		OCR: OCR{
			Review:                   oc.Review,
			OrientationCheckBelow:    oc.OrientationCheckBelow,
			MinOrientationConfidence: oc.MinOrientationConfidence,
			Tier:                     tier.Policy{Sustain: 10 * time.Second},
			Languages:                oc.Languages,
			Scripts:                  oc.Scripts,
			Dewarp:                   oc.Dewarp,
		},
		Models:  []Model{{Name: "ocr-eng", Version: "1", Engine: "tesseract", Languages: "eng", Calibration: DefaultCalibration}},
		Face:    defaultFace(),
		Jobs:    jobsDefaults(),
		Tracing: tracing.Config{SampleRatio: 1},
		Log:     Log{Level: "info", Format: "text"},

		Repository: DefaultRepository(),
		UI:         UI{Enabled: true},
		Reviews:    defaultReviews(),
	}
}

// Load reads the file at path over the defaults and validates the result.
// Keys absent from the file keep their defaults; a models list in the file
// replaces the default list.
func Load(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, err
	}
	c, err := Parse(data)
	if err != nil {
		return Config{}, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// Parse is Load for bytes already read.
func Parse(data []byte) (Config, error) {
	c := Default()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	// An empty file (io.EOF) means "all defaults".
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return Config{}, err
	}
	// Flags may still change what the file says (--models): checks that
	// depend on them wait for Validate.
	return c, c.validate(false)
}

// Validate reports every problem at once, so an operator fixes a file in
// one pass.
func (c Config) Validate() error { return c.validate(true) }

// validate is Validate; final is false for a file that flags may still
// complete.
func (c Config) validate(final bool) error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.Server.Addr == "" {
		add("server.addr is empty")
	}
	if c.Server.Workers < 0 {
		add("server.workers must be >= 0 (0 means one per CPU), got %d", c.Server.Workers)
	}
	if c.Server.Queue < 0 {
		add("server.queue must be >= 0, got %d", c.Server.Queue)
	}
	if c.Server.MaxConnections < 0 {
		add("server.max_connections must be >= 0 (0 means no bound), got %d", c.Server.MaxConnections)
	}
	if b := int64(c.Server.BodyMemory); b < 0 || b > 0 && b < c.largestBody() {
		add("server.body_memory must hold the largest request body, two images of limits.max_bytes (%d bytes; 0 means 16 x limits.max_bytes), got %d", c.largestBody(), b)
	}
	if c.Server.MinUploadRate < 0 {
		add("server.min_upload_rate must be >= 0 (0 means no minimum), got %d", c.Server.MinUploadRate)
	}
	for name, d := range map[string]time.Duration{
		"server.request_timeout": c.Server.RequestTimeout, "server.shutdown_timeout": c.Server.ShutdownTimeout,
		"server.read_header_timeout": c.Server.ReadHeaderTimeout, "limits.decode_timeout": c.Limits.DecodeTimeout,
	} {
		if d <= 0 {
			add("%s must be positive, got %v", name, d)
		}
	}
	if c.Limits.MaxBytes <= 0 || c.Limits.MaxPixels <= 0 || c.Limits.MaxPages <= 0 {
		add("limits.max_bytes, max_pixels and max_pages must be positive")
	}
	if c.Limits.MaxTensorElements <= 0 {
		add("limits.max_tensor_elements must be positive, got %d", c.Limits.MaxTensorElements)
	}
	if c.Server.GRPCAddr != "" && c.Server.GRPCAddr == c.Server.Addr && !strings.HasSuffix(c.Server.Addr, ":0") {
		add("server.grpc_addr and server.addr are both %s", c.Server.Addr)
	}
	if err := c.OCR.Review.Validate(); err != nil {
		add("ocr.%v", err)
	}
	for name, v := range map[string]float64{"ocr.orientation_check_below": c.OCR.OrientationCheckBelow, "ocr.min_orientation_confidence": c.OCR.MinOrientationConfidence} {
		if v < 0 || v > 1 {
			add("%s must be in [0,1], got %g", name, v)
		}
	}
	if err := c.OCR.Tier.Validate(); err != nil {
		add("ocr.%v", err)
	}
	for lang, model := range c.OCR.Languages {
		if lang == "" || lang == ocr.LangAuto || !modelrepo.ValidName(model) {
			add("ocr.languages: %q: %q: want a language other than %q and a model name", lang, model, ocr.LangAuto)
		}
	}
	for script, lang := range c.OCR.Scripts {
		if script == "" || lang == "" || lang == ocr.LangAuto {
			add("ocr.scripts: %q: %q: want an OSD script name and a language other than %q", script, lang, ocr.LangAuto)
		}
	}
	if _, err := ocr.ParseDewarp(string(c.OCR.Dewarp)); err != nil || c.OCR.Dewarp == "" {
		add("ocr.dewarp %q: use auto, on or off", c.OCR.Dewarp)
	}
	if len(c.Models) == 0 {
		add("models: at least one model is needed")
	}
	seen := map[string]bool{}
	for i, m := range c.Models {
		switch {
		case m.Name == "":
			add("models[%d].name is empty", i)
		case seen[m.Name]:
			add("models[%d].name %q is used twice", i, m.Name)
		}
		seen[m.Name] = true
		switch m.Engine {
		case EngineTesseract:
			if m.Languages == "" {
				add("models[%d].languages is empty (e.g. eng)", i)
			}
			if m.Dir != "" || m.Runtime != nil {
				add("models[%d]: dir and runtime are for ppocr and onnx models; tesseract uses languages and data_path", i)
			}
		case EnginePPOCR, EngineONNX:
			if m.Dir == "" {
				add("models[%d].dir is empty: the directory holding the %s model's files", i, m.Engine)
			}
			if m.DataPath != "" {
				add("models[%d].data_path is for tesseract models; a %s model takes runtime options", i, m.Engine)
			}
		default:
			add("models[%d].engine %q: use tesseract, ppocr or onnx", i, m.Engine)
		}
		if m.Version == "" {
			add("models[%d].version is empty", i)
		}
		if err := m.Calibration.Validate(); err != nil {
			add("models[%d].%v", i, err)
		}
		if m.CheapTier != nil {
			if err := m.CheapTier.Validate(); err != nil {
				add("models[%d].%v", i, err)
			}
		}
	}
	if c.Server.AdminAddr != "" && c.Server.AdminAddr == c.Server.Addr && !strings.HasSuffix(c.Server.Addr, ":0") {
		add("server.admin_addr must differ from server.addr")
	}
	for name, err := range map[string]error{
		"tls": c.TLS.Runtime().Validate(), "auth": c.Auth.Validate(), "rate_limits": c.RateLimits.Validate(),
		"jobs": c.Jobs.Runtime().Validate(), "tracing": c.Tracing.Validate(), "encryption": c.Encryption.Validate(),
	} {
		if err != nil {
			add("%s: %s", name, strings.ReplaceAll(err.Error(), "\n", "; "))
		}
	}
	if hasPassword(c.Jobs.Postgres) {
		add("jobs.postgres holds a password: put it in the PGPASSWORD environment variable or a .pgpass file, or the whole connection string in jobs.postgres_file")
	}
	c.Repository.validate(add)
	c.validateConsole(add)
	var hasRepository *bool
	if final {
		hasRepository = new(c.Repository.Dir != "")
	}
	errs = append(errs, c.Face.validate(hasRepository)...)
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		add("log.level %q: use debug, info, warn or error", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		add("log.format %q: use text or json", c.Log.Format)
	}
	return errors.Join(errs...)
}

// EffectiveWorkers resolves Workers=0 to the CPU count.
func (s Server) EffectiveWorkers() int {
	if s.Workers > 0 {
		return s.Workers
	}
	return runtime.NumCPU()
}

// ImageLimits converts to the decoder's limits.
func (l Limits) ImageLimits() imageio.Limits {
	return imageio.Limits{MaxBytes: int64(l.MaxBytes), MaxPixels: l.MaxPixels, MaxPages: l.MaxPages, DecodeTimeout: l.DecodeTimeout}
}

// ByteSize is a byte count that YAML may write as 33554432, "32MiB" or
// "32MB" (MB = 10^6, MiB = 2^20).
type ByteSize int64

var byteUnits = []struct {
	suffix string
	mult   int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"B", 1},
}

// ParseByteSize parses a ByteSize string.
func ParseByteSize(s string) (ByteSize, error) {
	s = strings.TrimSpace(s)
	for _, u := range byteUnits {
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			n, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
			if err != nil || n < 0 {
				return 0, fmt.Errorf("bad byte size %q", s)
			}
			return ByteSize(n * float64(u.mult)), nil
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("bad byte size %q (use e.g. 33554432 or 32MiB)", s)
	}
	return ByteSize(n), nil
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (b *ByteSize) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParseByteSize(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*b = v
	return nil
}

// String formats in the largest binary unit that divides exactly.
func (b ByteSize) String() string {
	switch {
	case b >= 1<<30 && b%(1<<30) == 0:
		return fmt.Sprintf("%dGiB", b>>30)
	case b >= 1<<20 && b%(1<<20) == 0:
		return fmt.Sprintf("%dMiB", b>>20)
	case b >= 1<<10 && b%(1<<10) == 0:
		return fmt.Sprintf("%dKiB", b>>10)
	}
	return strconv.FormatInt(int64(b), 10)
}
