package gallery

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/visionserve/visionserve/internal/gallery/pgtest"
	"github.com/visionserve/visionserve/internal/keys"
	"github.com/visionserve/visionserve/internal/keys/keytest"
)

func benchVector(rng *rand.Rand, dim int) []float32 {
	v := make([]float32, dim)
	var s float64
	for i := range v {
		x := rng.NormFloat64()
		v[i], s = float32(x), s+x*x
	}
	for i := range v {
		v[i] /= float32(math.Sqrt(s))
	}
	return v
}

// BenchmarkAtRest measures what sealing embeddings costs: a clear store
// and an encrypted one of the same kind side by side, for enroll
// (Manager.AddFace: seal and a committed write), identify (Search among
// 1,000 faces: answered from memory, the store is not read) and load
// (opening a store of 1,000 faces: every embedding opened). Embeddings
// are 128-d, MobileFaceNet's. The -ratio metrics are encrypted over clear.
func BenchmarkAtRest(b *testing.B) {
	const dim, faces = 128, 1000
	kinds := map[string]func(b *testing.B, name string, enc keys.Config) func() Store{
		"bolt": func(b *testing.B, name string, enc keys.Config) func() Store {
			path := filepath.Join(b.TempDir(), name+".db")
			return func() Store {
				s, err := OpenBolt(path, time.Second, enc)
				if err != nil {
					b.Fatal(err)
				}
				return s
			}
		},
	}
	if !testing.Short() {
		// One server for every sub-benchmark: started on the parent, or
		// the first sub-benchmark's cleanup would stop it.
		parent, n := b, 0
		var srv *pgtest.Server
		kinds["postgres"] = func(b *testing.B, _ string, enc keys.Config) func() Store {
			if srv == nil {
				srv = pgtest.Start(parent)
			}
			n++
			dsn := srv.CreateDatabase(b, fmt.Sprintf("bench%d", n))
			return func() Store {
				s, err := OpenPostgres(context.Background(), dsn, 4, enc)
				if err != nil {
					b.Fatal(err)
				}
				return s
			}
		}
	}
	ctx := context.Background()
	for _, kind := range []string{"bolt", "postgres"} {
		newStore := kinds[kind]
		if newStore == nil {
			continue
		}
		for _, alg := range keys.Algorithms {
			b.Run(kind+"/"+string(alg), func(b *testing.B) {
				opens := [2]func() Store{newStore(b, "clear", keys.Config{}), newStore(b, "sealed", keytest.Config(b, alg))}
				var ms [2]*Manager
				g := Ref{Name: "bench"}
				rng := rand.New(rand.NewPCG(1, 2))
				for i, open := range opens {
					m, err := Open(ctx, open(), DefaultConfig(), nil, nil)
					if err != nil {
						b.Fatal(err)
					}
					if _, _, err := m.CreateGallery(ctx, g); err != nil {
						b.Fatal(err)
					}
					for j := range faces {
						if _, err := m.AddFace(ctx, g, fmt.Sprintf("s%04d", j), testModel, benchVector(rng, dim)); err != nil {
							b.Fatal(err)
						}
					}
					ms[i] = m
				}
				q := benchVector(rng, dim)
				var enrolled [2]int
				enroll := func(i int) func() {
					return func() {
						enrolled[i]++
						if _, err := ms[i].AddFace(ctx, g, fmt.Sprintf("n%06d", enrolled[i]), testModel, q); err != nil {
							b.Fatal(err)
						}
					}
				}
				identify := func(i int) func() {
					return func() {
						if _, err := ms[i].Search(g, testModel, q, 5, 0); err != nil {
							b.Fatal(err)
						}
					}
				}
				en, id := &keytest.AB{Clear: enroll(0), Sealed: enroll(1)}, &keytest.AB{Clear: identify(0), Sealed: identify(1)}
				for b.Loop() {
					en.Step()
					id.Step()
				}
				en.Report(b, "enroll")
				id.Report(b, "identify")
				// Load the stores (faces + b.N faces each) a few times.
				ms[0].Close()
				ms[1].Close()
				load := func(i int) func() {
					return func() {
						m, err := Open(ctx, opens[i](), DefaultConfig(), nil, nil)
						if err != nil {
							b.Fatal(err)
						}
						m.Close()
					}
				}
				ld := &keytest.AB{Clear: load(0), Sealed: load(1)}
				for range 10 {
					ld.Step()
				}
				ld.Report(b, "load")
			})
		}
	}
}
