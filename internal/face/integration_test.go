package face_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	xdraw "golang.org/x/image/draw"

	"github.com/visionserve/visionserve/internal/engine/onnx"
	"github.com/visionserve/visionserve/internal/engine/onnx/onnxtest"
	"github.com/visionserve/visionserve/internal/face"
	"github.com/visionserve/visionserve/internal/gallery"
	"github.com/visionserve/visionserve/internal/imageio"
	"github.com/visionserve/visionserve/internal/keys"
	"github.com/visionserve/visionserve/internal/sched"
	"github.com/visionserve/visionserve/internal/testenv"
)

// realModels loads the shared YuNet and MobileFaceNet on the real ONNX
// Runtime, or skips (fails under CI) without them.
func realModels(tb testing.TB) *face.Models { return realModelsWith(tb, dynamicYuNet) }

// The two YuNet files of shared/models/face: the same weights with a
// dynamic input, and with a fixed 640x640 one.
const (
	dynamicYuNet = "yunet_s_dynamic.onnx"
	fixedYuNet   = "face_detection_yunet_2023mar.onnx"
)

func realModelsWith(tb testing.TB, detector string) *face.Models {
	tb.Helper()
	onnxtest.Init(tb)
	opts := face.DefaultLoadOptions()
	opts.Runtime = onnx.DefaultOptions()
	opts.Runtime.Sessions = 2
	m, err := face.Load(face.Files{
		Detector: testenv.Shared(tb, "models/face/"+detector),
		Embedder: testenv.Shared(tb, "models/face/MobileFaceNet.onnx"),
	}, opts)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { m.Close(context.Background()) })
	return m
}

var evalSets = []string{"orl-faces", "face_recognition-examples", "openface-examples"}

// TestIntegrationEvaluate is the reproducible accuracy report behind
// docs/faces.md:
//
//	go test ./internal/face -run TestIntegrationEvaluate -v
//
// Per labelled set of shared/data/face and pooled: detection, verification
// ROC AUC, accuracy/FAR/FRR at the default threshold, the equal error
// rate, and identification top-1 (one enrolled image per identity, every
// other image identified). It also re-derives the default threshold.
func TestIntegrationEvaluate(t *testing.T) {
	if testing.Short() {
		t.Skip("225 images and 20,035 pairs; skipped with -short")
	}
	m := realModels(t)
	ctx := context.Background()
	var pooled []face.Pair
	t.Logf("%-26s %6s %8s %6s %8s %8s %8s %8s %7s %14s", "set", "images", "detected", "pairs", "AUC", "acc@thr", "FAR@thr", "FRR@thr", "EER", "top-1")
	for _, name := range evalSets {
		res, err := face.Evaluate(ctx, m.Pipeline, name, testenv.Shared(t, "data/face/"+name))
		if err != nil {
			t.Fatal(err)
		}
		pooled = append(pooled, res.Pairs...)
		r := face.RatesAt(res.Pairs, face.DefaultThreshold)
		eer := face.EqualError(res.Pairs)
		t.Logf("%-26s %6d %4d/%-3d %6d %8.5f %8.4f %8.4f %8.4f %7.4f %4d/%-3d %.3f", name, res.Images, res.Detected, res.Faces,
			len(res.Pairs), res.AUC, r.Accuracy, r.FAR, r.FRR, (eer.FAR+eer.FRR)/2, res.Top1Correct, res.Probes, res.Top1())
		if res.Detected != res.Faces {
			t.Errorf("%s: detected %d of %d labelled faces", name, res.Detected, res.Faces)
		}
		if res.Top1() < 0.95 {
			t.Errorf("%s: identification top-1 %.3f, want at least 0.95", name, res.Top1())
		}
		if res.AUC < 0.99 {
			t.Errorf("%s: verification AUC %.4f, want at least 0.99", name, res.AUC)
		}
	}
	r := face.RatesAt(pooled, face.DefaultThreshold)
	eer := face.EqualError(pooled)
	t.Logf("%-26s %6s %8s %6d %8.5f %8.4f %8.4f %8.4f %7.4f", "pooled", "", "", len(pooled), face.AUC(pooled), r.Accuracy, r.FAR, r.FRR, (eer.FAR+eer.FRR)/2)
	t.Logf("pooled: %d genuine and %d impostor pairs; at threshold %.2f: FAR %.4f%% (%d pairs), FRR %.3f%% (%d pairs); EER %.3f%% at %.3f",
		r.Genuine, r.Impostor, face.DefaultThreshold, 100*r.FAR, int(math.Round(r.FAR*float64(r.Impostor))),
		100*r.FRR, int(math.Round(r.FRR*float64(r.Genuine))), 100*(eer.FAR+eer.FRR)/2, eer.Threshold)
	for _, thr := range []float64{0.30, 0.35, 0.40, 0.45, 0.50, 0.55} {
		x := face.RatesAt(pooled, thr)
		t.Logf("  threshold %.2f: accuracy %.4f FAR %.4f FRR %.4f", thr, x.Accuracy, x.FAR, x.FRR)
	}
	// The default is the smallest 0.05 step with FAR <= 0.1% on the
	// pooled pairs; if the models or the pipeline change, so may it.
	if got := face.CalibrateThreshold(pooled, 0.001, 0.05); got != face.DefaultThreshold {
		t.Errorf("calibration gives %.2f, but DefaultThreshold is %.2f: update it and docs/faces.md", got, face.DefaultThreshold)
	}
}

func decodeFile(tb testing.TB, path string) image.Image {
	tb.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	doc, err := imageio.Open(data, "", imageio.DefaultLimits())
	if err != nil {
		tb.Fatal(err)
	}
	img, err := doc.Decode(context.Background(), 0)
	if err != nil {
		tb.Fatal(err)
	}
	return img
}

func TestIntegrationDetect(t *testing.T) {
	m := realModels(t)
	ctx := context.Background()
	dir := testenv.Shared(t, "data/face")
	img := decodeFile(t, filepath.Join(dir, "face_recognition-examples/knn_examples/test/obama_and_biden.jpg"))
	a, err := m.Pipeline.Detect(ctx, img, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Obama, Biden, and a girl at the bottom right.
	if len(a.Faces) != 3 {
		t.Fatalf("%d faces, want 3: %+v", len(a.Faces), a.Faces)
	}
	for i, f := range a.Faces {
		l := f.Landmarks
		b := f.Box
		if !(l[0][0] < l[1][0] && l[3][0] < l[4][0]) {
			t.Errorf("face %d: eyes or mouth corners not left then right: %v", i, l)
		}
		if !(l[0][1] < l[2][1] && l[2][1] < l[3][1]) {
			t.Errorf("face %d: eyes, nose, mouth not top to bottom: %v", i, l)
		}
		for _, p := range l {
			if p[0] < b.X || p[0] > b.X+b.Width || p[1] < b.Y || p[1] > b.Y+b.Height {
				t.Errorf("face %d: landmark %v outside box %+v", i, p, b)
			}
		}
		if f.Score < 0.75 || f.Score > 1 {
			t.Errorf("face %d: score %v", i, f.Score)
		}
	}
}

// TestIntegrationTightCrop crops faces so they fill the frame, as ID
// photos and face thumbnails do: the detector must still find them, in
// the right place, with embeddings that match the uncropped face. With
// the fixed 640x640 model, the tightest crop is found only thanks to the
// padded second pass (DetectParams.Pad).
func TestIntegrationTightCrop(t *testing.T) {
	for _, det := range []string{dynamicYuNet, fixedYuNet} {
		t.Run(det, func(t *testing.T) { testTightCrop(t, realModelsWith(t, det)) })
	}
}

func testTightCrop(t *testing.T, m *face.Models) {
	ctx := context.Background()
	img := decodeFile(t, filepath.Join(testenv.Shared(t, "data/face"), "face_recognition-examples/knn_examples/train/obama/obama.jpg"))
	full, err := m.Pipeline.Detect(ctx, img, 0)
	if err != nil || len(full.Faces) == 0 {
		t.Fatalf("no face in the full image: %v", err)
	}
	if err := m.Pipeline.Embed(ctx, full, 0); err != nil {
		t.Fatal(err)
	}
	ref := full.Faces[0]
	for _, tc := range []struct{ margin, zoom float64 }{{0, 1}, {0.05, 1}, {-0.1, 1}, {0, 3}, {0.05, 3}, {-0.1, 3}} {
		margin := tc.margin
		b := ref.Box
		src := image.Rect(int(b.X-margin*b.Width), int(b.Y-margin*b.Height), int(b.X+b.Width*(1+margin)), int(b.Y+b.Height*(1+margin)))
		// zoom 3 stands for a high-resolution ID photo: once the detector
		// scales it to max_side, the face is beyond YuNet's range unless
		// it is padded.
		r := image.Rect(0, 0, int(float64(src.Dx())*tc.zoom), int(float64(src.Dy())*tc.zoom))
		cimg := image.NewRGBA(r)
		xdraw.BiLinear.Scale(cimg, r, img, src, xdraw.Src, nil)
		a, err := m.Pipeline.Detect(ctx, cimg, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(a.Faces) == 0 {
			t.Errorf("margin %+.2f zoom %g: no face in a %dx%d crop", margin, tc.zoom, r.Dx(), r.Dy())
			continue
		}
		best := a.Largest()[0]
		if err := m.Pipeline.Embed(ctx, a, best); err != nil {
			t.Fatal(err)
		}
		sim := face.Cosine(ref.Embedding, a.Faces[best].Embedding)
		fb := a.Faces[best].Box
		cover := fb.Width * fb.Height / float64(r.Dx()*r.Dy())
		t.Logf("margin %+.2f zoom %g: %dx%d crop, face box covers %.0f%% of it, similarity to the uncropped face %.3f", margin, tc.zoom, r.Dx(), r.Dy(), 100*cover, sim)
		if cover < 0.4 {
			t.Errorf("margin %+.2f: face box %+v covers %.0f%% of the crop", margin, fb, 100*cover)
		}
		if sim < face.DefaultThreshold {
			t.Errorf("margin %+.2f: similarity %.3f to the uncropped face, below the threshold", margin, sim)
		}
	}
}

// countingObserver records what the service reports.
type countingObserver struct {
	mu           sync.Mutex
	hits, misses int
	faces        map[string]int
	similarities []float64
	stages       map[string]int
}

func (o *countingObserver) ObserveFaces(op string, n int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.faces[op] += n
}

func (o *countingObserver) ObserveSimilarity(_ string, s float64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.similarities = append(o.similarities, s)
}

func (o *countingObserver) ObserveStage(stage string, _ time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.stages[stage]++
}

func (o *countingObserver) CacheLookup(hit bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if hit {
		o.hits++
	} else {
		o.misses++
	}
}

func TestIntegrationService(t *testing.T) {
	m := realModels(t)
	ctx := context.Background()
	dir := testenv.Shared(t, "data/face/face_recognition-examples/knn_examples")
	store, err := gallery.OpenBolt(filepath.Join(t.TempDir(), "g.db"), time.Second, keys.Config{})
	if err != nil {
		t.Fatal(err)
	}
	gm, err := gallery.Open(ctx, store, gallery.DefaultConfig(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { gm.Close() })
	obs := &countingObserver{faces: map[string]int{}, stages: map[string]int{}}
	svc, err := face.NewService(face.DefaultConfig(), m, gm, sched.New(2, 8, nil), obs, nil)
	if err != nil {
		t.Fatal(err)
	}
	in := func(rel string) face.Input {
		data, err := os.ReadFile(filepath.Join(dir, rel))
		if err != nil {
			t.Fatal(err)
		}
		return face.Input{Data: data}
	}

	det, err := svc.Detect(ctx, in("test/obama_and_biden.jpg"), 2)
	if err != nil || len(det.Faces) != 2 || det.Width != 2000 {
		t.Fatalf("detect: %+v %v", det, err)
	}
	same, err := svc.Verify(ctx, in("train/obama/obama.jpg"), in("train/obama/obama2.jpg"), nil)
	if err != nil || !same.Match || same.Threshold != face.DefaultThreshold {
		t.Fatalf("verify obama/obama: %+v %v", same, err)
	}
	other, err := svc.Verify(ctx, in("train/obama/obama.jpg"), in("train/biden/biden.jpg"), nil)
	if err != nil || other.Match || other.Similarity >= same.Similarity {
		t.Fatalf("verify obama/biden: %+v %v", other, err)
	}
	thr := -1.0
	if loose, err := svc.Verify(ctx, in("train/obama/obama.jpg"), in("train/biden/biden.jpg"), &thr); err != nil || !loose.Match {
		t.Fatalf("verify at threshold -1: %+v %v", loose, err)
	}
	// obama.jpg was analysed three times: one miss, then hits.
	if obs.hits < 2 {
		t.Errorf("cache hits %d, want at least 2 (misses %d)", obs.hits, obs.misses)
	}

	if _, err := svc.Enroll(ctx, gallery.Ref{Name: "people"}, "obama", in("train/obama/obama.jpg")); !errors.Is(err, gallery.ErrGalleryNotFound) {
		t.Fatalf("enroll before the gallery exists: %v", err)
	}
	if _, _, err := svc.CreateGallery(ctx, gallery.Ref{Name: "people"}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []struct{ subject, file string }{
		{"obama", "train/obama/obama.jpg"}, {"biden", "train/biden/biden.jpg"},
		{"kit_harington", "train/kit_harington/john1.jpeg"}, {"rose_leslie", "train/rose_leslie/img1.jpg"},
		{"alex_lacamoire", "train/alex_lacamoire/img1.jpg"},
	} {
		res, err := svc.Enroll(ctx, gallery.Ref{Name: "people"}, p.subject, in(p.file))
		if err != nil || res.FaceID == "" {
			t.Fatalf("enroll %s: %+v %v", p.subject, res, err)
		}
	}
	id, err := svc.Identify(ctx, gallery.Ref{Name: "people"}, in("test/obama_and_biden.jpg"), face.IdentifyOptions{TopK: 2})
	if err != nil {
		t.Fatal(err)
	}
	var best []string
	for _, f := range id.Faces {
		if len(f.Matches) > 0 {
			best = append(best, f.Matches[0].Subject)
		}
		for k := 1; k < len(f.Matches); k++ {
			if f.Matches[k].Similarity > f.Matches[k-1].Similarity {
				t.Errorf("matches not best first: %+v", f.Matches)
			}
		}
	}
	got := strings.Join(best, ",")
	if !strings.Contains(got, "obama") || !strings.Contains(got, "biden") {
		t.Errorf("identify obama_and_biden: best matches %q (faces %+v)", got, id.Faces)
	}
	// The third face (a girl) matches nobody at the default threshold.
	if len(id.Faces) != 3 || len(best) != 2 {
		t.Errorf("identify: %d faces, %d with matches; want 3 and 2", len(id.Faces), len(best))
	}

	// Errors.
	blank := image.NewGray(image.Rect(0, 0, 200, 200))
	var buf bytes.Buffer
	_ = png.Encode(&buf, blank)
	if _, err := svc.Enroll(ctx, gallery.Ref{Name: "people"}, "nobody", face.Input{Data: buf.Bytes()}); !errors.Is(err, face.ErrNoFace) {
		t.Errorf("enroll a blank image: %v", err)
	}
	if _, err := svc.Identify(ctx, gallery.Ref{Name: "people"}, in("test/obama1.jpg"), face.IdentifyOptions{TopK: 1000}); !errors.Is(err, face.ErrBadOption) {
		t.Errorf("top_k 1000: %v", err)
	}
	if _, err := svc.Detect(ctx, in("test/obama1.jpg"), 101); !errors.Is(err, face.ErrBadOption) {
		t.Errorf("max_faces 101: %v", err)
	}
	if _, err := svc.Identify(ctx, gallery.Ref{Name: "nope"}, in("test/obama1.jpg"), face.IdentifyOptions{}); !errors.Is(err, gallery.ErrGalleryNotFound) {
		t.Errorf("identify in a missing gallery: %v", err)
	}
	if _, err := svc.Enroll(ctx, gallery.Ref{Name: "people"}, "a/b", in("test/obama1.jpg")); !errors.Is(err, gallery.ErrInvalidName) {
		t.Errorf("bad subject name: %v", err)
	}
	if _, err := svc.Detect(ctx, face.Input{Data: []byte("not an image")}, 0); !errors.Is(err, imageio.ErrUnsupported) {
		t.Errorf("garbage: %v", err)
	}
	for _, stage := range []string{face.StageDecode, face.StageDetect, face.StageEmbed, face.StageSearch, face.StageTotal} {
		if obs.stages[stage] == 0 {
			t.Errorf("stage %s never reported", stage)
		}
	}
	t.Logf("faces %v, cache hits %d misses %d, similarities %v", obs.faces, obs.hits, obs.misses, obs.similarities)
}

// BenchmarkPipeline measures detect + embed of one face photo on one core.
func BenchmarkPipeline(b *testing.B) {
	m := realModels(b)
	img := decodeFile(b, filepath.Join(testenv.Shared(b, "data/face"), "openface-examples/clapton-2.jpg"))
	ctx := context.Background()
	for b.Loop() {
		a, err := m.Pipeline.Detect(ctx, img, 0)
		if err != nil || len(a.Faces) == 0 {
			b.Fatal(fmt.Sprint("detect: ", err))
		}
		if err := m.Pipeline.Embed(ctx, a, 0); err != nil {
			b.Fatal(err)
		}
	}
}
