package face

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"

	"github.com/visionserve/visionserve/internal/engine/onnx"
)

// Interface guard: an ONNX session pool is a face model.
var _ Model = (*onnx.Pool)(nil)

// Files names the two model files of a face recognition model: the YuNet
// detector and the embedder. A model package will provide them from its
// directory; today the configuration does.
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

// Models is a loaded face recognition model: the pipeline over ONNX
// session pools, and the digests that identify it.
type Models struct {
	Pipeline *Pipeline
	// DetectorSHA256 and EmbedderSHA256 are the hex digests of the files
	// as loaded.
	DetectorSHA256, EmbedderSHA256 string
	det, emb                       *onnx.Pool
}

// EmbedderID names the embedding space: embeddings compare only with
// others of the same id, so galleries store it with every face.
func (m *Models) EmbedderID() string { return "sha256:" + m.EmbedderSHA256 }

// cacheKey distinguishes cached analyses of different models.
func (m *Models) cacheKey() string { return m.DetectorSHA256 + m.EmbedderSHA256 }

// Load reads and checks both model files and builds session pools for
// them (ONNX Runtime must be initialised: onnx.Init). Everything built is
// released again when a step fails.
func Load(files Files, opts LoadOptions) (m *Models, err error) {
	detBytes, detSum, err := readModel("detector", files.Detector)
	if err != nil {
		return nil, err
	}
	embBytes, embSum, err := readModel("embedder", files.Embedder)
	if err != nil {
		return nil, err
	}
	m = &Models{DetectorSHA256: detSum, EmbedderSHA256: embSum}
	defer func() {
		if err != nil {
			_ = m.Close(context.Background())
			m = nil
		}
	}()
	if m.det, err = onnx.NewPool(detBytes, opts.Runtime); err != nil {
		return m, fmt.Errorf("face detector %s: %w", files.Detector, err)
	}
	if m.emb, err = onnx.NewPool(embBytes, opts.Runtime); err != nil {
		return m, fmt.Errorf("face embedder %s: %w", files.Embedder, err)
	}
	det, err := NewDetector(m.det, opts.Detect)
	if err != nil {
		return m, fmt.Errorf("%s: %w", files.Detector, err)
	}
	emb, err := NewEmbedder(m.emb, opts.Embed)
	if err != nil {
		return m, fmt.Errorf("%s: %w", files.Embedder, err)
	}
	m.Pipeline, err = NewPipeline(det, emb)
	return m, err
}

func readModel(what, path string) ([]byte, string, error) {
	if path == "" {
		return nil, "", fmt.Errorf("face %s: no model file configured", what)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, "", fmt.Errorf("face %s: %w", what, err)
	}
	sum := sha256.Sum256(b)
	return b, hex.EncodeToString(sum[:]), nil
}

// Close frees the session pools, waiting for runs in progress until ctx
// ends. It is safe on a partially loaded Models.
func (m *Models) Close(ctx context.Context) error {
	if m == nil {
		return nil
	}
	return errors.Join(m.det.Close(ctx), m.emb.Close(ctx))
}
