package batch_test

import (
	"context"
	"math"
	"os"
	"runtime"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/visionserve/visionserve/internal/engine"
	"github.com/visionserve/visionserve/internal/engine/batch"
	"github.com/visionserve/visionserve/internal/engine/onnx"
	"github.com/visionserve/visionserve/internal/engine/onnx/onnxtest"
	"github.com/visionserve/visionserve/internal/sched"
	"github.com/visionserve/visionserve/internal/testenv"
)

// BenchmarkDBDetectorBatching measures the PP-OCRv3 DB text detector's
// throughput at concurrency 8 with dynamic batching off and on, in the same
// run: one scheduler with a worker per core, one single-threaded session
// per worker (the server's configuration), 320x320 inputs. Off, each
// request runs alone on a worker; on, requests are batched up to
// max_batch_size rows with a 5 ms queue delay (4 = 8 clients / 2 workers,
// so every worker has a full batch when all clients wait). The 0/180
// line classifier (3x48x192 inputs, a far smaller network) runs the same
// way for comparison. Rounds alternate the two modes so that load from
// elsewhere on the machine hits both alike; the reported figures are
// medians over the rounds.
//
//	nice -n 10 go test -run '^$' -bench Batching -benchtime 1x ./internal/engine/batch/
func BenchmarkDBDetectorBatching(b *testing.B) {
	for _, tc := range []struct {
		name     string
		file     string
		c, h, w  int
		maxBatch int
		requests int // per client and mode in a round
	}{
		{"det-320x320/max_batch_size=4", "models/ocr/en_PP-OCRv3_det_infer.onnx", 3, 320, 320, 4, 3},
		{"cls-48x192/max_batch_size=4", "models/ocr/ch_ppocr_mobile_v2.0_cls_infer.onnx", 3, 48, 192, 4, 25},
	} {
		b.Run(tc.name, func(b *testing.B) {
			benchBatching(b, tc.file, tc.c, tc.h, tc.w, tc.maxBatch, tc.requests)
		})
	}
}

func benchBatching(b *testing.B, file string, ch, h, w, maxBatch, perClient int) {
	onnxtest.Init(b)
	model, err := os.ReadFile(testenv.Shared(b, file))
	if err != nil {
		b.Fatal(err)
	}
	const (
		concurrency = 8
		rounds      = 7
	)
	workers := runtime.GOMAXPROCS(0)
	opts := onnx.DefaultOptions()
	opts.Sessions = workers
	pool, err := onnx.NewPool(model, opts)
	if err != nil {
		b.Fatal(err)
	}
	defer pool.Close(context.Background())
	s := sched.New(workers, 2*concurrency, nil)
	obs := &observer{}
	on, err := batch.New(batch.Config{
		Runner: pool, Inputs: pool.Inputs(), Outputs: pool.Outputs(), Scheduler: s, Parallel: workers, Observer: obs,
		Options: batch.Options{MaxBatchSize: maxBatch, MaxQueueDelay: batch.Duration(5 * time.Millisecond), MaxQueue: 2 * concurrency},
	})
	if err != nil {
		b.Fatal(err)
	}
	defer on.Close(context.Background())
	off := batch.Unbatched(pool, s)

	// A page-like input: dark strokes on a light background, normalised
	// as the models expect.
	data := make([]float32, ch*h*w)
	for c := range ch {
		for y := range h {
			for x := range w {
				v := 0.9
				if (y/12)%3 == 0 && (x/5)%4 != 0 {
					v = 0.1
				}
				data[(c*h+y)*w+x] = float32((v - 0.45) / 0.225)
			}
		}
	}
	in := []engine.Tensor{engine.NewTensor([]int64{1, int64(ch), int64(h), int64(w)}, data)}

	measure := func(r engine.TensorRunner) float64 {
		var wg sync.WaitGroup
		start := time.Now()
		for range concurrency {
			wg.Go(func() {
				for range perClient {
					if _, err := r.Run(context.Background(), in); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		return float64(concurrency*perClient) / time.Since(start).Seconds()
	}
	// Warm up both paths (first runs at a shape allocate ORT's buffers).
	measure(off)
	measure(on)
	obs.mu.Lock()
	obs.runs = nil
	obs.mu.Unlock()

	b.ResetTimer()
	for b.Loop() {
		var offRates, onRates, ratios []float64
		for r := range rounds {
			var a, c float64
			if r%2 == 0 {
				a, c = measure(off), measure(on)
			} else {
				c, a = measure(on), measure(off)
			}
			offRates, onRates, ratios = append(offRates, a), append(onRates, c), append(ratios, c/a)
			b.Logf("round %d: off %.2f req/s, on %.2f req/s, ratio %.2f", r, a, c, c/a)
		}
		var rows, runs int
		obs.mu.Lock()
		for _, run := range obs.runs {
			rows += run[0]
			runs++
		}
		obs.mu.Unlock()
		meanRows := float64(rows) / math.Max(1, float64(runs))
		b.ReportMetric(median(offRates), "off_req/s")
		b.ReportMetric(median(onRates), "on_req/s")
		b.ReportMetric(median(ratios), "on/off")
		b.ReportMetric(meanRows, "rows/batch")
		b.Logf("workers %d, concurrency %d, max_batch_size %d: median off %.2f req/s, on %.2f req/s, ratio on/off %.2f, mean batch %.2f rows",
			workers, concurrency, maxBatch, median(offRates), median(onRates), median(ratios), meanRows)
	}
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[len(s)/2]
}
