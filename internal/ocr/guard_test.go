package ocr

import (
	"context"
	"errors"
	"image"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/visionserve/visionserve/internal/engine"
	"github.com/visionserve/visionserve/internal/metrics"
)

// hungEngine ignores its context: when hang is set, its recognition
// blocks until the test lets it go, as a Tesseract stuck in a C call
// would.
type hungEngine struct {
	fakeEngine
	hang    bool
	release chan struct{}
	calls   atomic.Int32
	closed  atomic.Bool
}

func (h *hungEngine) RecognizeText(ctx context.Context, img *image.Gray, mode engine.SegMode) ([]engine.TextLine, error) {
	h.calls.Add(1)
	if h.hang {
		<-h.release
	}
	return []engine.TextLine{{Text: "ok", Confidence: 0.9, Words: []engine.TextWord{{Text: "ok", Confidence: 0.9}}}}, nil
}

func (h *hungEngine) Close() error { h.closed.Store(true); return nil }

// A request whose engine never returns still ends at its deadline, with
// the deadline's error; the engine is set aside rather than lent to the
// next request, which is read by its replacement; closing the pool does
// not wait for the stuck call.
func TestRecognizeEndsAtTheDeadlineWhenTheEngineHangs(t *testing.T) {
	var built []*hungEngine
	pool, err := engine.NewPool(1, func(int) (Engine, error) {
		h := &hungEngine{hang: len(built) == 0, release: make(chan struct{})}
		built = append(built, h) // builds are sequential here: one at start, one replacement
		return h, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	pool.SetGrace(10 * time.Millisecond)
	models, _ := NewStaticModels(&Model{Ref: ModelRef{Name: "m", Version: "1"}, Languages: "eng", Engines: pool})
	m := metrics.New(prometheus.NewRegistry())
	svc := NewService(DefaultConfig(), models, direct{}, m, nil)
	img := pngOf(t, page(60, [2]int{5, 10}))

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := svc.Recognize(ctx, Input{Data: img}, Options{})
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Recognize = %v, want the deadline", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("Recognize waited for an engine that never returns")
	}
	res, err := svc.Recognize(context.Background(), Input{Data: img}, Options{})
	if err != nil || res.Text != "ok" {
		t.Fatalf("next request: %v %+v", err, res)
	}
	if len(built) != 2 || built[0].calls.Load() != 1 || built[1].calls.Load() != 1 {
		t.Fatalf("the stuck engine served again, or no replacement was built (%d engines)", len(built))
	}
	if n := testutil.ToFloat64(m.EngineCallsStuck); n != 1 {
		t.Errorf("stuck calls = %v, want 1", n)
	}
	if err := pool.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if built[0].closed.Load() || !built[1].closed.Load() {
		t.Fatal("Close must free the replacement and leave the stuck engine alone")
	}
	close(built[0].release)
}
