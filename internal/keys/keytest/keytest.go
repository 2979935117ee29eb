// Package keytest helps tests and benchmarks of encrypted stores: fresh
// key-encryption keys, and an A/B timer for the overhead of sealing.
package keytest

import (
	"bytes"
	"encoding/hex"
	"testing"
	"time"

	"github.com/visionserve/visionserve/internal/keys"
)

// Config returns a Config with a new random KEK of alg; its data keys
// are of alg too.
func Config(t testing.TB, alg keys.Algorithm) keys.Config {
	t.Helper()
	text, err := keys.NewKEK(alg)
	if err != nil {
		t.Fatal(err)
	}
	kek, err := keys.ParseKEK(text, "a test key")
	if err != nil {
		t.Fatal(err)
	}
	return keys.Config{Algorithm: alg, KEK: kek}
}

// Clear names the variant of Variants without encryption.
const Clear = "clear"

// Variant is one way of storing: an algorithm with a new KEK, or Clear.
type Variant struct {
	Name   string
	Config keys.Config
	// Seed differs between variants: a test that writes data made from
	// it writes other bytes in each, so that one variant's plaintext in
	// a shared server's files (PostgreSQL's data and WAL) is never
	// taken for another's.
	Seed uint64
}

// Variants returns a Variant per algorithm and one named Clear (a zero
// Config): for tests that check a property of sealed stores and, on a
// store in clear, that their checks can fail.
func Variants(t testing.TB) []Variant {
	var out []Variant
	for i, alg := range keys.Algorithms {
		out = append(out, Variant{Name: string(alg), Config: Config(t, alg), Seed: uint64(i + 1)})
	}
	return append(out, Variant{Name: Clear, Seed: uint64(len(out) + 1)})
}

// Leaked reports whether any window of size bytes of a payload, taken
// every step bytes, appears in blobs, raw or as the hex a dump writes
// bytea in.
func Leaked(blobs [][]byte, size, step int, payloads ...[]byte) bool {
	for _, p := range payloads {
		for i := 0; i+size <= len(p); i += step {
			w := p[i : i+size]
			h := []byte(hex.EncodeToString(w))
			for _, b := range blobs {
				if bytes.Contains(b, w) || bytes.Contains(b, h) {
					return true
				}
			}
		}
	}
	return false
}

// AB times two variants of an operation side by side, for benchmarks that
// report one's cost over the other's from the same run: each Step runs
// both, in alternating order, so that the machine's load (shared cores,
// the page cache, fsync) falls on both alike.
type AB struct {
	// Clear and Sealed are the variants.
	Clear, Sealed func()
	n             int
	clear, sealed time.Duration
}

// Step runs both variants once.
func (t *AB) Step() {
	run := func(f func(), d *time.Duration) {
		start := time.Now()
		f()
		*d += time.Since(start)
	}
	if t.n%2 == 0 {
		run(t.Clear, &t.clear)
		run(t.Sealed, &t.sealed)
	} else {
		run(t.Sealed, &t.sealed)
		run(t.Clear, &t.clear)
	}
	t.n++
}

// Report adds op's mean times (µs) and their ratio, sealed over clear, to
// the benchmark's output.
func (t *AB) Report(b *testing.B, op string) {
	if t.n == 0 {
		return
	}
	b.ReportMetric(float64(t.clear.Microseconds())/float64(t.n), op+"-clear-µs")
	b.ReportMetric(float64(t.sealed.Microseconds())/float64(t.n), op+"-sealed-µs")
	b.ReportMetric(float64(t.sealed)/float64(t.clear), op+"-ratio")
}
