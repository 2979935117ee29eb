package face

import (
	"bytes"
	"context"
	"errors"
	"image"
	"image/png"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/visionserve/visionserve/internal/engine"
	"github.com/visionserve/visionserve/internal/gallery"
	"github.com/visionserve/visionserve/internal/keys"
)

// constEmbedder is an embedding model that maps every face to one vector:
// the vector of its embedding space, so a space's faces match each other
// and nothing else.
type constEmbedder struct{ v []float32 }

func (c *constEmbedder) Inputs() []engine.TensorInfo {
	return []engine.TensorInfo{{Name: "input0", DType: engine.FP32, Shape: []int64{1, 3, AlignSize, AlignSize}}}
}

func (c *constEmbedder) Outputs() []engine.TensorInfo {
	return []engine.TensorInfo{{Name: "output0", DType: engine.FP32, Shape: []int64{1, int64(len(c.v))}}}
}

func (c *constEmbedder) Run(context.Context, []engine.Tensor) ([]engine.Tensor, error) {
	return []engine.Tensor{engine.NewTensor([]int64{1, int64(len(c.v))}, append([]float32(nil), c.v...))}, nil
}

// swapSource is a ModelSource whose loaded embedders and current one the
// test changes, as a repository swap would; it counts pinned handles.
type swapSource struct {
	t       *testing.T
	det     *Detector
	mu      sync.Mutex
	loaded  map[string]*Embedder
	current string
	pinned  int
}

func (s *swapSource) AcquireDetector() (DetectorVersion, func(), error) {
	return DetectorVersion{Ref: ModelRef{Name: "face-detect", Version: "1"}, Detector: s.det, Digest: "d"}, s.pin(), nil
}

func (s *swapSource) AcquireEmbedder(id string) (EmbedderVersion, func(), error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if id == "" {
		id = s.current
	}
	e := s.loaded[id]
	if e == nil {
		return EmbedderVersion{}, nil, ErrEmbedderNotLoaded
	}
	s.pinned++
	return EmbedderVersion{Ref: ModelRef{Name: "face-embed", Version: id}, Embedder: e, ID: id}, s.unpin, nil
}

func (s *swapSource) pin() func() {
	s.mu.Lock()
	s.pinned++
	s.mu.Unlock()
	return s.unpin
}

func (s *swapSource) unpin() {
	s.mu.Lock()
	s.pinned--
	s.mu.Unlock()
}

// newGalleries opens a gallery manager on an embedded store of the test.
func newGalleries(t *testing.T) *gallery.Manager {
	t.Helper()
	store, err := gallery.OpenBolt(filepath.Join(t.TempDir(), "g.db"), time.Second, keys.Config{})
	if err != nil {
		t.Fatal(err)
	}
	gm, err := gallery.Open(context.Background(), store, gallery.DefaultConfig(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { gm.Close() })
	return gm
}

type direct struct{}

func (direct) Run(ctx context.Context, fn func(context.Context) error) error { return fn(ctx) }

// TestEmbedderSwapRule: a gallery is enrolled into and searched with the
// embedder its faces carry while one is loaded, never with another; when
// none is, enroll and identify fail with EmbedderError; detect and verify
// use the current embedder; an empty gallery takes the current one.
func TestEmbedderSwapRule(t *testing.T) {
	ctx := context.Background()
	det, err := NewDetector(&fakeYuNet{}, DefaultDetectParams())
	if err != nil {
		t.Fatal(err)
	}
	embedder := func(v ...float32) *Embedder {
		e, err := NewEmbedder(&constEmbedder{v: v}, DefaultEmbedParams())
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	// A's and B's vectors are identical: comparing across spaces would
	// match perfectly, so only the rule keeps them apart.
	src := &swapSource{t: t, det: det, current: "A", loaded: map[string]*Embedder{"A": embedder(1, 0, 0, 0)}}
	gm := newGalleries(t)
	svc, err := NewService(DefaultConfig(), src, gm, direct{}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, image.NewGray(image.Rect(0, 0, 96, 64))); err != nil {
		t.Fatal(err)
	}
	img := func() Input { return Input{Data: buf.Bytes()} }
	embedderOf := func(u UsedModels) string {
		if u.Embedder == nil {
			return ""
		}
		if u.Embedder.ID != u.Embedder.Version {
			t.Fatalf("embedder ref %+v", u.Embedder)
		}
		return u.Embedder.ID
	}
	enroll := func(g, subject, want string) {
		t.Helper()
		res, err := svc.Enroll(ctx, gallery.Ref{Name: g}, subject, img())
		if err != nil {
			t.Fatalf("enroll %s into %s: %v", subject, g, err)
		}
		if got := embedderOf(res.Models); got != want {
			t.Fatalf("enroll %s into %s used embedder %s, want %s", subject, g, got, want)
		}
	}
	identify := func(g, want string, subjects int) {
		t.Helper()
		res, err := svc.Identify(ctx, gallery.Ref{Name: g}, img(), IdentifyOptions{TopK: 10, Threshold: new(-1.0)})
		if err != nil {
			t.Fatalf("identify in %s: %v", g, err)
		}
		if got := embedderOf(res.Models); got != want || len(res.Faces) != 1 || len(res.Faces[0].Matches) != subjects {
			t.Fatalf("identify in %s: embedder %s (want %s), %+v (want %d subjects)", g, got, want, res.Faces, subjects)
		}
	}
	for _, g := range []string{"old", "new"} {
		if _, _, err := svc.CreateGallery(ctx, gallery.Ref{Name: g}); err != nil {
			t.Fatal(err)
		}
	}
	enroll("old", "alice", "A")

	// B becomes current; A stays loaded.
	src.mu.Lock()
	src.loaded["B"], src.current = embedder(1, 0, 0, 0), "B"
	src.mu.Unlock()
	enroll("old", "bob", "A")
	identify("old", "A", 2)
	enroll("new", "carol", "B")
	identify("new", "B", 1)
	if v, err := svc.Verify(ctx, img(), img(), nil); err != nil || embedderOf(v.Models) != "B" {
		t.Fatalf("verify: %+v %v", v, err)
	}
	if d, err := svc.Detect(ctx, img(), 0); err != nil || d.Models.Embedder != nil || d.Models.Detector.Name != "face-detect" {
		t.Fatalf("detect: %+v %v", d, err)
	}

	// A is unloaded: the old gallery's requests fail, the new one's not.
	src.mu.Lock()
	delete(src.loaded, "A")
	src.mu.Unlock()
	var ee *EmbedderError
	if _, err := svc.Enroll(ctx, gallery.Ref{Name: "old"}, "dave", img()); !errors.As(err, &ee) || ee.Held != "A" || ee.Loaded != "B" || ee.Gallery != "old" {
		t.Fatalf("enroll without the gallery's embedder: %v", err)
	}
	if _, err := svc.Identify(ctx, gallery.Ref{Name: "old"}, img(), IdentifyOptions{}); !errors.Is(err, ErrEmbedderNotLoaded) {
		t.Fatalf("identify without the gallery's embedder: %v", err)
	}
	if st := gm.Stats(); st.Faces != 3 {
		t.Fatalf("faces %d after the refused enroll, want 3", st.Faces)
	}
	identify("new", "B", 1)

	// Emptied, the old gallery takes the current embedder again.
	for _, s := range []string{"alice", "bob"} {
		if _, err := svc.DeleteSubject(ctx, gallery.Ref{Name: "old"}, s); err != nil {
			t.Fatal(err)
		}
	}
	enroll("old", "alice", "B")
	identify("old", "B", 1)

	if src.pinned != 0 {
		t.Errorf("%d model handles still pinned after every request ended", src.pinned)
	}
}

// Two versions with the same weights may differ in parameters (a
// republished detector with another threshold): their cached analyses
// must not mix.
func TestCacheKeyPerVersion(t *testing.T) {
	key := func(detVersion, embVersion string) string {
		p := &pinned{det: DetectorVersion{Ref: ModelRef{Name: "face-detect", Version: detVersion}, Digest: "d"},
			emb: &EmbedderVersion{Ref: ModelRef{Name: "face-embed", Version: embVersion}, ID: "sha256:e"}}
		return p.cacheKey()
	}
	same, again := key("1", "1"), key("1", "1")
	if same == key("2", "1") || same == key("1", "2") || same != again {
		t.Error("cache keys do not follow the versions")
	}
	det := &pinned{det: DetectorVersion{Ref: ModelRef{Name: "face-detect", Version: "1"}, Digest: "d"}}
	if det.cacheKey() == key("1", "1") {
		t.Error("a detect-only key equals one with embeddings")
	}
}
