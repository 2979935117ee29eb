package apptest

import (
	"path/filepath"
	"testing"

	"github.com/visionserve/visionserve/internal/config"
	"github.com/visionserve/visionserve/internal/engine/onnx/onnxtest"
	"github.com/visionserve/visionserve/internal/testenv"
)

// WithFace returns a mutate function for Start that turns face
// recognition on with the shared YuNet and MobileFaceNet models and an
// embedded gallery store in a temporary directory. It skips the test
// (fails under CI) when ONNX Runtime or the models are missing.
func WithFace(t testing.TB) func(*config.Config) {
	t.Helper()
	onnxtest.Init(t)
	det := testenv.Shared(t, "models/face/yunet_s_dynamic.onnx")
	emb := testenv.Shared(t, "models/face/MobileFaceNet.onnx")
	dir := t.TempDir()
	return func(c *config.Config) {
		c.Face.Detector, c.Face.Embedder = det, emb
		c.Face.Gallery.Path = filepath.Join(dir, "galleries.db")
	}
}
