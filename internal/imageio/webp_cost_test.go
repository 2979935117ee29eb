package imageio

import (
	"bytes"
	"testing"

	"golang.org/x/image/webp"

	"github.com/visionserve/visionserve/internal/imageio/imagetest"
)

// huffmanBombs are small lossless WebPs whose Huffman codes cost
// x/image/webp far more than their pixels: as many groups as it accepts
// (2600), with the smallest or the largest trees, a colour cache, the
// transforms, unused groups, and the same in a compressed alpha plane.
func huffmanBombs() []bomb {
	many := imagetest.WebPLossless{W: 204, H: 204, Groups: 2600} // 51x51 tiles of 4x4
	full := many
	full.Full, full.CacheBits = true, 11
	fullNoCache := full
	fullNoCache.CacheBits = 0
	transforms := full
	transforms.Predictor, transforms.ColorIndexing = 2, 256
	unused := full
	unused.W, unused.H = 4, 4
	extended := full
	extended.VP8X = true
	return []bomb{
		{"simple-trees", many.Encode(), false},
		{"full-trees", fullNoCache.Encode(), false},
		{"full-trees-cache11", full.Encode(), false},
		{"full-trees-cache11-transforms", transforms.Encode(), false},
		{"full-trees-cache11-vp8x", extended.Encode(), false},
		{"unused-groups-4x4", unused.Encode(), false},
		{"alpha-full-trees-cache11", imagetest.WebPWithAlpha(204, 204, full.AlphaStream()), false},
	}
}

// BenchmarkWebPHuffmanBombs reports what x/image/webp allocates decoding
// each Huffman bomb, called directly (no cost check in front):
//
//	go test -run '^$' -bench WebPHuffmanBombs -benchtime 1x ./internal/imageio
func BenchmarkWebPHuffmanBombs(b *testing.B) {
	for _, bm := range huffmanBombs() {
		b.Run(bm.name, func(b *testing.B) {
			var allocated, peak uint64
			for range b.N {
				allocated, peak, _ = allocation(func() error {
					_, err := webp.Decode(bytes.NewReader(bm.data))
					return err
				})
			}
			b.ReportMetric(float64(len(bm.data))/1e3, "input-kB")
			b.ReportMetric(float64(allocated)/1e6, "alloc-MB")
			b.ReportMetric(float64(peak)/1e6, "peak-MB")
			b.ReportMetric(0, "ns/op")
		})
	}
}
