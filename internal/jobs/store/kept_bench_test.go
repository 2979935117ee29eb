package store_test

import (
	"testing"
	"time"

	"github.com/visionserve/visionserve/internal/jobs/store"
)

// BenchmarkKeptBound measures what the bound on kept inputs costs a job's
// end at steady state: keptJobs finished jobs keep their inputs, and each
// new job's end (submit, claim, record its one page) evicts the oldest.
// The same store kind without a bound runs beside it; bounded-ratio is
// the bounded end's time over the unbounded one's.
func BenchmarkKeptBound(b *testing.B) {
	const keptJobs = 2000
	kinds := benchStores(b)
	for name, open := range kinds {
		b.Run(name, func(b *testing.B) {
			n := 0
			end := func(s store.Store) {
				n++
				j := newJob("o", "T", 1, time.Duration(n)*time.Millisecond)
				if _, err := s.Create(ctx, j, [][]byte{[]byte("input")}, store.Limits{}); err != nil {
					b.Fatal(err)
				}
				now := t0.Add(time.Duration(n) * time.Millisecond)
				c, err := s.Claim(ctx, "w", now, time.Minute)
				if err != nil || c == nil {
					b.Fatal(c, err)
				}
				if _, err := s.Complete(ctx, c, []store.Page{{Index: 0, Data: []byte("page")}}, now); err != nil {
					b.Fatal(err)
				}
			}
			var stores [2]store.Store
			for i, opts := range []store.Options{{KeepInputs: true}, {KeepInputs: true, MaxKeptBytes: keptJobs * 10}} {
				stores[i] = open(b, defaults(opts))
				for range keptJobs {
					end(stores[i])
				}
			}
			var spent [2]time.Duration
			ends := 0
			for b.Loop() {
				for i, s := range stores {
					start := time.Now()
					end(s)
					spent[i] += time.Since(start)
				}
				ends++
			}
			b.ReportMetric(float64(spent[0].Microseconds())/float64(ends), "unbounded-µs/end")
			b.ReportMetric(float64(spent[1].Microseconds())/float64(ends), "bounded-µs/end")
			b.ReportMetric(float64(spent[1])/float64(spent[0]), "bounded-ratio")
		})
	}
}
