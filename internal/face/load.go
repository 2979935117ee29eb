package face

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/visionserve/visionserve/internal/engine/onnx"
)

// Interface guard: an ONNX session pool is a face model.
var _ Model = (*onnx.Pool)(nil)

// Files names the two model files of a face recognition model configured
// by path (face.detector and face.embedder): the YuNet detector and the
// embedder. Model packages (kinds face-detect and face-embed) load each
// half on its own with LoadDetector and LoadEmbedder instead.
type Files struct {
	Detector string
	Embedder string
}

// LoadOptions configure Load.
type LoadOptions struct {
	Detect  DetectParams
	Embed   EmbedParams
	Runtime onnx.Options // Sessions: how many requests run each model at once
}

// DefaultLoadOptions returns the defaults with one session per CPU.
func DefaultLoadOptions() LoadOptions {
	return LoadOptions{Detect: DefaultDetectParams(), Embed: DefaultEmbedParams(), Runtime: onnx.DefaultOptions()}
}

// DetectorModel is a loaded detector: a Detector over its own ONNX session
// pool, and the digest of the bytes it was built from.
type DetectorModel struct {
	*Detector
	// SHA256 is the hex digest of the ONNX file as loaded.
	SHA256 string
	pool   *onnx.Pool
}

// LoadDetector builds a YuNet detector from the bytes of its ONNX file
// (ONNX Runtime must be initialised: onnx.Init). It keeps no reference to
// data and reads no file: a package loader hands it the bytes it verified.
func LoadDetector(data []byte, p DetectParams, rt onnx.Options) (*DetectorModel, error) {
	pool, err := onnx.NewPool(data, rt)
	if err != nil {
		return nil, fmt.Errorf("face detector: %w", err)
	}
	det, err := NewDetector(pool, p)
	if err != nil {
		_ = pool.Close(context.Background())
		return nil, err
	}
	return &DetectorModel{Detector: det, SHA256: digest(data), pool: pool}, nil
}

// Sessions is the number of ONNX sessions (runs at once).
func (d *DetectorModel) Sessions() int { return d.pool.Size() }

// Close frees the sessions, waiting for runs in progress until ctx ends.
// It is safe on a nil DetectorModel.
func (d *DetectorModel) Close(ctx context.Context) error {
	if d == nil {
		return nil
	}
	return d.pool.Close(ctx)
}

// EmbedderModel is a loaded embedder: an Embedder over its own ONNX
// session pool, and the id of the embedding space it computes in.
type EmbedderModel struct {
	*Embedder
	// SHA256 is the hex digest of the ONNX file as loaded.
	SHA256 string
	id     string
	pool   *onnx.Pool
}

// LoadEmbedder builds an embedder from the bytes of its ONNX file, as
// LoadDetector does.
func LoadEmbedder(data []byte, p EmbedParams, rt onnx.Options) (*EmbedderModel, error) {
	pool, err := onnx.NewPool(data, rt)
	if err != nil {
		return nil, fmt.Errorf("face embedder: %w", err)
	}
	emb, err := NewEmbedder(pool, p)
	if err != nil {
		_ = pool.Close(context.Background())
		return nil, err
	}
	sum := digest(data)
	return &EmbedderModel{Embedder: emb, SHA256: sum, id: EmbedderID(sum, p), pool: pool}, nil
}

// ID names the embedding space (see EmbedderID).
func (e *EmbedderModel) ID() string { return e.id }

// Sessions is the number of ONNX sessions (runs at once).
func (e *EmbedderModel) Sessions() int { return e.pool.Size() }

// Close frees the sessions, waiting for runs in progress until ctx ends.
// It is safe on a nil EmbedderModel.
func (e *EmbedderModel) Close(ctx context.Context) error {
	if e == nil {
		return nil
	}
	return e.pool.Close(ctx)
}

// EmbedderID names the embedding space of an embedder whose ONNX file has
// the hex SHA-256 sum and that normalises its input with p: embeddings
// compare only with others of the same id, so galleries store it with
// every face. It is "sha256:<sum>" with the default normalisation, which
// makes the same weights the same space however they are configured or
// packaged (a file, or any version of a package); a different mean or
// standard deviation is a different space and adds them to the id.
// Flipping (p.Flip) averages two embeddings of the same space and does not
// change it.
func EmbedderID(sum string, p EmbedParams) string {
	id := "sha256:" + sum
	if d := DefaultEmbedParams(); p.Mean != d.Mean || p.Std != d.Std {
		f := func(v [3]float64) string {
			return strconv.FormatFloat(v[0], 'g', -1, 64) + "," + strconv.FormatFloat(v[1], 'g', -1, 64) + "," + strconv.FormatFloat(v[2], 'g', -1, 64)
		}
		id += ";mean=" + f(p.Mean) + ";std=" + f(p.Std)
	}
	return id
}

func digest(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// Models is a face recognition model loaded from two files: a detector
// and an embedder that serve every request. It is the ModelSource of a
// server configured with face.detector and face.embedder.
type Models struct {
	Pipeline *Pipeline
	// DetectorSHA256 and EmbedderSHA256 are the hex digests of the files
	// as loaded.
	DetectorSHA256, EmbedderSHA256 string
	det                            *DetectorModel
	emb                            *EmbedderModel
	detRef, embRef                 ModelRef
}

var _ ModelSource = (*Models)(nil)

// EmbedderID names the embedding space: embeddings compare only with
// others of the same id, so galleries store it with every face.
func (m *Models) EmbedderID() string { return m.emb.ID() }

// Load reads and checks both model files and builds session pools for
// them (ONNX Runtime must be initialised: onnx.Init). Everything built is
// released again when a step fails.
func Load(files Files, opts LoadOptions) (m *Models, err error) {
	detBytes, err := readModel("detector", files.Detector)
	if err != nil {
		return nil, err
	}
	embBytes, err := readModel("embedder", files.Embedder)
	if err != nil {
		return nil, err
	}
	m = &Models{}
	defer func() {
		if err != nil {
			_ = m.Close(context.Background())
			m = nil
		}
	}()
	if m.det, err = LoadDetector(detBytes, opts.Detect, opts.Runtime); err != nil {
		return m, fmt.Errorf("%s: %w", files.Detector, err)
	}
	if m.emb, err = LoadEmbedder(embBytes, opts.Embed, opts.Runtime); err != nil {
		return m, fmt.Errorf("%s: %w", files.Embedder, err)
	}
	m.DetectorSHA256, m.EmbedderSHA256 = m.det.SHA256, m.emb.SHA256
	// A file has no version number: its digest says which bytes answered.
	m.detRef = ModelRef{Name: filepath.Base(files.Detector), Version: "sha256:" + m.det.SHA256[:12]}
	m.embRef = ModelRef{Name: filepath.Base(files.Embedder), Version: "sha256:" + m.emb.SHA256[:12]}
	m.Pipeline, err = NewPipeline(m.det.Detector, m.emb.Embedder)
	return m, err
}

func readModel(what, path string) ([]byte, error) {
	if path == "" {
		return nil, fmt.Errorf("face %s: no model file configured", what)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("face %s: %w", what, err)
	}
	return b, nil
}

// AcquireDetector implements ModelSource: always the one detector.
func (m *Models) AcquireDetector() (DetectorVersion, func(), error) {
	return DetectorVersion{Ref: m.detRef, Detector: m.det.Detector, Digest: m.DetectorSHA256}, func() {}, nil
}

// AcquireEmbedder implements ModelSource: the one embedder, when id is
// empty or its own.
func (m *Models) AcquireEmbedder(id string) (EmbedderVersion, func(), error) {
	if id != "" && id != m.emb.ID() {
		return EmbedderVersion{}, nil, fmt.Errorf("%w: the configured embedder is %s", ErrEmbedderNotLoaded, m.emb.ID())
	}
	return EmbedderVersion{Ref: m.embRef, Embedder: m.emb.Embedder, ID: m.emb.ID()}, func() {}, nil
}

// Close frees the session pools, waiting for runs in progress until ctx
// ends. It is safe on a partially loaded Models.
func (m *Models) Close(ctx context.Context) error {
	if m == nil {
		return nil
	}
	return errors.Join(m.det.Close(ctx), m.emb.Close(ctx))
}
