package ann

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// BenchmarkHNSWRandom measures the approximate index on ANN_N (default
// 1,000,000) random unit vectors of dimension 128: build time, memory,
// recall@10 against exact search over ANN_QUERIES (default 1000) random
// queries, and query latency, for each ef in ANN_EF (default
// "256,512,1024,2048,4096"). It builds once whatever b.N is; run it with
// -benchtime 1x (make bench-ann):
//
//	nice -n 19 go test ./internal/gallery/ann -run '^$' -bench HNSWRandom -benchtime 1x -timeout 2h -v
//
// ANN_M and ANN_EFC override the graph parameters, ANN_WORKERS the build
// goroutines (default GOMAXPROCS).
func BenchmarkHNSWRandom(b *testing.B) {
	const dim, k = 128, 10
	n := envInt(b, "ANN_N", 1_000_000)
	nq := envInt(b, "ANN_QUERIES", 1000)
	workers := envInt(b, "ANN_WORKERS", runtime.GOMAXPROCS(0))
	p := DefaultParams()
	p.M = envInt(b, "ANN_M", p.M)
	p.EfConstruction = envInt(b, "ANN_EFC", p.EfConstruction)
	efs := []int{256, 512, 1024, 2048, 4096}
	if s := os.Getenv("ANN_EF"); s != "" {
		efs = nil
		for _, f := range strings.Split(s, ",") {
			v, err := strconv.Atoi(f)
			if err != nil {
				b.Fatalf("ANN_EF: %v", err)
			}
			efs = append(efs, v)
		}
	}

	rng := rand.New(rand.NewPCG(42, 1))
	vecs := randomUnit(rng, n, dim)
	qs := randomUnit(rng, nq, dim)

	// Exact answers, computed in parallel over the queries.
	exact := make([][]Hit, nq)
	flat := &Flat{dim: dim, vecs: vecs, dead: make([]bool, n), live: n}
	t0 := time.Now()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < nq; i += workers {
				exact[i] = flat.Search(qs[i*dim:(i+1)*dim], k)
			}
		})
	}
	wg.Wait()
	b.Logf("exact search: %v per query (%d vectors, %d workers)", time.Since(t0)/time.Duration(nq)*time.Duration(workers), n, workers)

	arena := slices.Clone(vecs) // the index takes this over
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	b.ResetTimer()
	start, cpu0 := time.Now(), cpuTime()
	h, err := Build(context.Background(), dim, arena, p, 7, workers)
	if err != nil {
		b.Fatal(err)
	}
	build, buildCPU := time.Since(start), cpuTime()-cpu0
	b.StopTimer()
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	graphMB := float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / (1 << 20)
	b.Logf("build: %v wall, %v CPU, %d workers, M=%d efConstruction=%d", build.Round(time.Second), buildCPU.Round(time.Second), workers, p.M, p.EfConstruction)
	b.Logf("memory: index %.0f MiB = vectors %.0f MiB + graph (heap grew %.0f MiB during the build); process peak RSS %s",
		float64(h.Bytes())/(1<<20), float64(n*dim*4)/(1<<20), graphMB, peakRSS())
	b.ReportMetric(build.Seconds(), "build-s")
	b.ReportMetric(buildCPU.Seconds(), "build-cpu-s")
	b.ReportMetric(float64(h.Bytes())/(1<<20), "index-MiB")

	for _, ef := range efs {
		h.SetEfSearch(ef)
		var sum float64
		lat := make([]time.Duration, nq)
		cpuq := cpuTime()
		for i := range nq {
			q := qs[i*dim : (i+1)*dim]
			t := time.Now()
			got := h.Search(q, k)
			lat[i] = time.Since(t)
			sum += recallAt(exact[i], got)
		}
		slices.Sort(lat)
		var total time.Duration
		for _, d := range lat {
			total += d
		}
		recall := sum / float64(nq)
		perQueryCPU := (cpuTime() - cpuq) / time.Duration(nq)
		b.Logf("ef=%d: recall@%d %.4f, latency mean %v p50 %v p99 %v (one goroutine), CPU %v per query",
			ef, k, recall, total/time.Duration(nq), lat[nq/2], lat[nq*99/100], perQueryCPU)
		b.ReportMetric(recall, fmt.Sprintf("recall@10-ef%d", ef))
		b.ReportMetric(float64(total.Microseconds())/float64(nq), fmt.Sprintf("us/query-ef%d", ef))
	}
}

// cpuTime is the CPU time this process has used: on a shared machine a
// fairer measure of work than wall time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// peakRSS is the process's peak resident set (VmHWM), as Linux reports it.
func peakRSS() string {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return "unknown"
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

func envInt(b *testing.B, name string, def int) int {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < 1 {
		b.Fatalf("%s=%q: want a positive integer", name, s)
	}
	return v
}
