package facerepo_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/visionserve/visionserve/internal/engine/onnx/onnxtest"
	"github.com/visionserve/visionserve/internal/face"
	"github.com/visionserve/visionserve/internal/face/facerepo"
	"github.com/visionserve/visionserve/internal/modelrepo"
	"github.com/visionserve/visionserve/internal/testenv"
)

// verified writes files into a directory and describes it as the
// verifier would: every file with its digest and size.
func verified(t *testing.T, kind, runtime string, files map[string][]byte) *modelrepo.Package {
	t.Helper()
	p := &modelrepo.Package{Dir: t.TempDir(), Name: "m", Version: 1, Kind: kind, Runtime: json.RawMessage(runtime), Files: map[string]modelrepo.File{}}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(p.Dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(data)
		p.Files[name] = modelrepo.File{SHA256: hex.EncodeToString(sum[:]), Size: int64(len(data))}
	}
	return p
}

func sharedFace(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(testenv.Shared(t, "models/face/"+name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func load(t *testing.T, p *modelrepo.Package) (modelrepo.Instance, error) {
	t.Helper()
	inst, err := facerepo.Loaders{Sessions: 2}.Map()[p.Kind].Load(context.Background(), p)
	if err == nil {
		t.Cleanup(func() {
			if err := inst.Close(); err != nil {
				t.Error(err)
			}
		})
	}
	return inst, err
}

// The shared models load from verified bytes with their runtime options,
// warm up in every session, and report their digests and embedder id.
func TestLoadSharedModels(t *testing.T) {
	onnxtest.Init(t)
	license := []byte("Apache-2.0")
	for _, file := range []string{"yunet_s_dynamic.onnx", "face_detection_yunet_2023mar.onnx"} {
		t.Run(file, func(t *testing.T) {
			data := sharedFace(t, file)
			inst, err := load(t, verified(t, facerepo.KindDetect, `{"detect": {"score_threshold": 0.8}, "sessions": 3}`,
				map[string][]byte{file: data, "LICENSE": license}))
			if err != nil {
				t.Fatal(err)
			}
			if err := inst.Warmup(context.Background()); err != nil {
				t.Fatalf("warm-up: %v", err)
			}
			d := inst.(*facerepo.DetectorInstance).FaceDetector()
			sum := sha256.Sum256(data)
			if d.Sessions() != 3 || d.SHA256 != hex.EncodeToString(sum[:]) {
				t.Errorf("sessions %d, digest %s", d.Sessions(), d.SHA256)
			}
		})
	}
	emb := sharedFace(t, "MobileFaceNet.onnx")
	inst, err := load(t, verified(t, facerepo.KindEmbed, "", map[string][]byte{"MobileFaceNet.onnx": emb, "LICENSE": license}))
	if err != nil {
		t.Fatal(err)
	}
	if err := inst.Warmup(context.Background()); err != nil {
		t.Fatalf("warm-up: %v", err)
	}
	e := inst.(*facerepo.EmbedderInstance).FaceEmbedder()
	const want = "sha256:b7120c095d60094f28a4a54ba6a8bf51b297a6273fb40ef6350dfec1f63d9507"
	if e.ID() != want || e.Sessions() != 2 || e.Dim() != 128 {
		t.Errorf("embedder id %s, sessions %d, dim %d", e.ID(), e.Sessions(), e.Dim())
	}
	// Flipping keeps the space; another normalisation is another space.
	flipped, err := load(t, verified(t, facerepo.KindEmbed, `{"embed": {"flip": true}, "sessions": 1}`, map[string][]byte{"m.onnx": emb}))
	if err != nil || flipped.(*facerepo.EmbedderInstance).FaceEmbedder().ID() != want {
		t.Errorf("flipped: %v", err)
	}
	other, err := load(t, verified(t, facerepo.KindEmbed, `{"embed": {"mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]}, "sessions": 1}`, map[string][]byte{"m.onnx": emb}))
	if err != nil {
		t.Fatal(err)
	}
	if id := other.(*facerepo.EmbedderInstance).FaceEmbedder().ID(); id == want || !strings.HasPrefix(id, want+";") {
		t.Errorf("another normalisation has id %s", id)
	}

	// A detector is not an embedder: the load fails (load_error, once the
	// repository has given it the load phase's reason).
	if _, err := load(t, verified(t, facerepo.KindEmbed, "", map[string][]byte{"m.onnx": sharedFace(t, "yunet_s_dynamic.onnx")})); err == nil {
		t.Error("a YuNet file loaded as an embedder")
	}
	if _, err := load(t, verified(t, facerepo.KindDetect, "", map[string][]byte{"m.onnx": emb})); err == nil {
		t.Error("MobileFaceNet loaded as a detector")
	}
}

// The loader hands ONNX Runtime the bytes it re-hashed: a file changed on
// disk after verification is refused, never loaded.
func TestChangedAfterVerification(t *testing.T) {
	onnxtest.Init(t)
	p := verified(t, facerepo.KindDetect, "", map[string][]byte{"yunet.onnx": sharedFace(t, "yunet_s_dynamic.onnx")})
	if err := os.WriteFile(filepath.Join(p.Dir, "yunet.onnx"), sharedFace(t, "face_detection_yunet_2023mar.onnx"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := load(t, p); modelrepo.ReasonOf(err) != modelrepo.ReasonDigestMismatch {
		t.Fatalf("file replaced after verification: %v (reason %s)", err, modelrepo.ReasonOf(err))
	}
}

// Runtime options are checked strictly, before anything is loaded.
func TestRuntimeRejected(t *testing.T) {
	one := map[string][]byte{"a.onnx": []byte("x")}
	two := map[string][]byte{"a.onnx": []byte("x"), "b.onnx": []byte("y")}
	for _, tc := range []struct {
		name, kind, runtime string
		files               map[string][]byte
	}{
		{"unknown key", facerepo.KindDetect, `{"detect": {"score_treshold": 0.5}}`, one},
		{"unknown top-level key", facerepo.KindEmbed, `{"flip": true}`, one},
		{"bad detect value", facerepo.KindDetect, `{"detect": {"score_threshold": 2}}`, one},
		{"bad std", facerepo.KindEmbed, `{"embed": {"std": [0, 1, 1]}}`, one},
		{"no sessions", facerepo.KindEmbed, `{"sessions": 0}`, one},
		{"two models, no file", facerepo.KindDetect, "", two},
		{"no model", facerepo.KindEmbed, "", map[string][]byte{"LICENSE": []byte("x")}},
		{"file not in the package", facerepo.KindDetect, `{"file": "c.onnx"}`, two},
		{"not an object", facerepo.KindDetect, `[1]`, one},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := load(t, verified(t, tc.kind, tc.runtime, tc.files))
			if modelrepo.ReasonOf(err) != modelrepo.ReasonManifestInvalid {
				t.Errorf("%v (reason %s), want manifest_invalid", err, modelrepo.ReasonOf(err))
			}
		})
	}
}

var _ face.ModelSource = (*facerepo.Source)(nil)
