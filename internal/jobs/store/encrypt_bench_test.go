package store_test

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/visionserve/visionserve/internal/gallery/pgtest"
	"github.com/visionserve/visionserve/internal/jobs/store"
	"github.com/visionserve/visionserve/internal/keys"
	"github.com/visionserve/visionserve/internal/keys/keytest"
)

// benchOpener opens a store for a benchmark.
type benchOpener func(b *testing.B, opts store.Options) store.Store

// benchStores are the openers of each kind of store for b's
// sub-benchmarks (PostgreSQL only without -short).
func benchStores(b *testing.B) map[string]benchOpener {
	kinds := map[string]benchOpener{
		"bolt": func(b *testing.B, opts store.Options) store.Store {
			s, err := store.OpenBolt(b.TempDir(), opts)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { s.Close() })
			return s
		},
	}
	if !testing.Short() {
		// One server for every sub-benchmark: started on the parent, or
		// the first sub-benchmark's cleanup would stop it.
		parent := b
		var p *pg
		kinds["postgres"] = func(b *testing.B, opts store.Options) store.Store {
			if p == nil {
				p = &pg{srv: pgtest.Start(parent)}
			}
			s, err := store.OpenPostgres(ctx, p.database(b), 8, opts)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { s.Close() })
			return s
		}
	}
	return kinds
}

// BenchmarkAtRest measures what sealing job payloads costs: a clear store
// and an encrypted one of the same kind side by side, for submit (Create
// with a 1 MiB input: sealed and committed) and page (claim a task,
// record a 16 KiB page, read the job's pages back). The -ratio metrics
// are encrypted over clear; throughput is their inverse.
func BenchmarkAtRest(b *testing.B) {
	kinds := benchStores(b)
	for _, kind := range []string{"bolt", "postgres"} {
		open := kinds[kind]
		if open == nil {
			continue
		}
		for _, alg := range keys.Algorithms {
			b.Run(kind+"/"+string(alg), func(b *testing.B) {
				ss := [2]store.Store{open(b, opts(keys.Config{})), open(b, opts(keytest.Config(b, alg)))}
				rng := rand.New(rand.NewPCG(1, 1))
				input, result := randomBytes(rng, 1<<20), randomBytes(rng, 16<<10)
				submit := func(i int) func() {
					return func() {
						j := newJob("key:a", "acme", 1, 0)
						if _, err := ss[i].Create(ctx, j, [][]byte{input}, store.Limits{}); err != nil {
							b.Fatal(err)
						}
					}
				}
				page := func(i int) func() {
					return func() {
						c, err := ss[i].Claim(ctx, "w", t0, time.Minute)
						if err != nil || c == nil {
							b.Fatalf("claim: %v %v", c, err)
						}
						if _, err := ss[i].Complete(ctx, c, []store.Page{{Index: 0, Data: result}}, t0); err != nil {
							b.Fatal(err)
						}
						if got, err := readPages(ss[i], c.Job.ID); err != nil || len(got) != 1 {
							b.Fatalf("pages: %d %v", len(got), err)
						}
					}
				}
				sub, pg := &keytest.AB{Clear: submit(0), Sealed: submit(1)}, &keytest.AB{Clear: page(0), Sealed: page(1)}
				for b.Loop() {
					sub.Step()
					pg.Step()
				}
				sub.Report(b, "submit")
				pg.Report(b, "page")
			})
		}
	}
}
