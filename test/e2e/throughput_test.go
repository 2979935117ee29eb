package e2e

import (
	"context"
	"image"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/visionserve/visionserve/internal/engine"
	"github.com/visionserve/visionserve/internal/engine/tesseract"
	"github.com/visionserve/visionserve/internal/imageio"
	"github.com/visionserve/visionserve/internal/ocr"
	"github.com/visionserve/visionserve/internal/ocreval"
	"github.com/visionserve/visionserve/internal/sched"
	"github.com/visionserve/visionserve/internal/testenv"
)

// BenchmarkThroughput measures, in one run and on the same cores, how many
// of the 250 shared text lines per second are read by:
//
//	engine   Tesseract called in-process on decoded images (one engine per core)
//	pipeline the OCR core in-process: decode, layout, recognise (no HTTP)
//	server   the visionserve binary over HTTP on loopback
//	cli      one `tesseract --psm 7` process per image, one per core at a time
//
// and reports the ratios server/engine, server/pipeline and server/cli.
// After an untimed warm-up pass, the four are measured in interleaved
// rounds and each reports its median round, so a noisy neighbour slows all
// of them alike rather than whichever ran at the wrong moment.
// Run with: make bench (go test ./test/e2e -run '^$' -bench Throughput -benchtime 1x)
func BenchmarkThroughput(b *testing.B) {
	samples, err := ocreval.LoadLines(testenv.Shared(b, "data/ocr/lines"))
	if err != nil {
		b.Fatal(err)
	}
	n := runtime.NumCPU()
	const passes, rounds = 1, 3
	images := make([][]byte, len(samples))
	grays := make([]*image.Gray, len(samples))
	for i, s := range samples {
		if images[i], err = os.ReadFile(s.Image); err != nil {
			b.Fatal(err)
		}
		grays[i] = decodeGray(b, images[i])
	}
	total := float64(passes * len(samples))
	// parallel runs fn over every sample index, passes times, on workers
	// goroutines, and returns lines per second.
	parallel := func(workers int, fn func(i int) error) float64 {
		var next atomic.Int64
		var wg sync.WaitGroup
		start := time.Now()
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					k := int(next.Add(1) - 1)
					if k >= passes*len(samples) {
						return
					}
					if err := fn(k % len(samples)); err != nil {
						b.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		return total / time.Since(start).Seconds()
	}

	pool, err := engine.NewPool(n, func(int) (ocr.Engine, error) {
		return tesseract.New(tesseract.Config{Languages: "eng", Orientation: true})
	})
	if err != nil {
		testenv.Missing(b, "tesseract: "+err.Error())
	}
	defer pool.Close(context.Background())
	ctx := context.Background()

	engineRun := func(i int) error {
		e, err := pool.Acquire(ctx)
		if err != nil {
			return err
		}
		defer pool.Release(e)
		_, err = e.RecognizeText(ctx, grays[i], engine.SegLine)
		return err
	}
	models, _ := ocr.NewStaticModels(&ocr.Model{Ref: ocr.ModelRef{Name: "ocr-eng", Version: "1"}, Languages: "eng", Engines: pool})
	svc := ocr.NewService(ocr.DefaultConfig(), models, sched.New(n, 64, nil), nil, nil)
	pipelineRun := func(i int) error {
		_, err := svc.Recognize(ctx, ocr.Input{Data: images[i]}, ocr.Options{})
		return err
	}
	srv := startServer(b)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 2 * n}}
	serverRun := func(i int) error {
		code, body, err := postFile(client, srv.url+"/v1/ocr", samples[i].Image)
		if err == nil && code != 200 {
			b.Errorf("status %d: %s", code, body)
		}
		return err
	}
	cliRun := func(i int) error {
		cmd := exec.Command("tesseract", samples[i].Image, "-", "--psm", "7")
		cmd.Env = append(os.Environ(), "OMP_THREAD_LIMIT=1")
		return cmd.Run()
	}

	parallel(n, engineRun) // warm-up: first use of every model and code path
	parallel(2*n, serverRun)
	b.ResetTimer()
	var engineRates, pipelineRates, serverRates, cliRates []float64
	for r := 0; r < rounds; r++ {
		engineRates = append(engineRates, parallel(n, engineRun))
		pipelineRates = append(pipelineRates, parallel(n, pipelineRun))
		// Two clients per worker keep every worker busy while a response
		// is on the wire; the server's queue absorbs the rest.
		serverRates = append(serverRates, parallel(2*n, serverRun))
		cliRates = append(cliRates, parallel(n, cliRun))
	}
	b.StopTimer()
	engineRate, pipelineRate, serverRate, cliRate := median(engineRates), median(pipelineRates), median(serverRates), median(cliRates)

	b.ReportMetric(engineRate, "engine_lines/s")
	b.ReportMetric(pipelineRate, "pipeline_lines/s")
	b.ReportMetric(serverRate, "server_lines/s")
	b.ReportMetric(cliRate, "cli_lines/s")
	b.ReportMetric(serverRate/engineRate, "server/engine")
	b.ReportMetric(serverRate/pipelineRate, "server/pipeline")
	b.ReportMetric(serverRate/cliRate, "server/cli")
	b.Logf("rounds (lines/s): engine %.1f, pipeline %.1f, server %.1f, cli %.1f", engineRates, pipelineRates, serverRates, cliRates)
	b.Logf("%d cores, %d lines x %d passes, median of %d rounds: engine %.1f, pipeline %.1f, server %.1f, cli %.1f lines/s; server/engine %.3f, server/pipeline %.3f, server/cli %.2f",
		n, len(samples), passes, rounds, engineRate, pipelineRate, serverRate, cliRate, serverRate/engineRate, serverRate/pipelineRate, serverRate/cliRate)
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

func decodeGray(b testing.TB, data []byte) *image.Gray {
	doc, err := imageio.Open(data, "", imageio.Limits{})
	if err != nil {
		b.Fatal(err)
	}
	img, err := doc.Decode(context.Background(), 0)
	if err != nil {
		b.Fatal(err)
	}
	return imageio.ToGray(img)
}
