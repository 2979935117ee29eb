package imageio

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"runtime"
	"runtime/metrics"
	"sync/atomic"
	"testing"
	"time"

	"github.com/visionserve/visionserve/internal/imageio/imagetest"
)

// bomb is a page at the pixel limit made to cost its decoder as much as
// its format allows.
type bomb struct {
	name string
	data []byte
	// decodes says the page must be decoded, not refused: every format
	// whose pixels fit the bound once held at 8 bits per channel.
	decodes bool
}

// bombs returns pages of about side x side pixels in every format and
// layout Open accepts. Uncompressed formats are made as large as
// DefaultLimits().MaxBytes allows.
func bombs(side int) []bomb {
	fit := func(bytesPerPixel int) int { // the side of an uncompressed page within MaxBytes
		s := side
		for s*s*bytesPerPixel > int(DefaultLimits().MaxBytes)-4096 {
			s -= s / 64
		}
		return s
	}
	tiff := func(bits, samples, compression, tile int) []byte {
		s := side
		if compression == imagetest.TIFFNone {
			s = fit(bits / 8 * samples)
		}
		return imagetest.TIFFFlat{W: s, H: s, Bits: bits, Samples: samples, Compression: compression, Tile: tile}.Encode()
	}
	jpeg := func(f imagetest.JPEGFlat) []byte {
		f.W, f.H = side, side
		return f.Encode()
	}
	return []bomb{
		{"png/rgba16", imagetest.PNGFlat(side, side, 16, 6, false), true},
		{"png/grey16", imagetest.PNGFlat(side, side, 16, 0, false), true},
		{"png/grey-alpha16", imagetest.PNGFlat(side, side, 16, 4, false), true},
		{"png/rgb16-interlaced", imagetest.PNGFlat(side, side, 16, 2, true), true},
		{"png/rgba8-interlaced", imagetest.PNGFlat(side, side, 8, 6, true), true},
		{"png/paletted1", imagetest.PNGFlat(side, side, 1, 3, false), true},
		{"png/million-chunks", splitIDAT(imagetest.PNGFlat(side, side, 8, 0, false), 1<<20), true},
		{"tiff/rgba16-deflate", tiff(16, 4, imagetest.TIFFDeflate, 0), true},
		{"tiff/rgb16-lzw", tiff(16, 3, imagetest.TIFFLZW, 0), true},
		{"tiff/grey16-lzw", tiff(16, 1, imagetest.TIFFLZW, 0), true},
		{"tiff/rgba16-packbits", tiff(16, 4, imagetest.TIFFPackBits, 0), true},
		{"tiff/rgba16-none", tiff(16, 4, imagetest.TIFFNone, 0), true},
		{"tiff/rgba16-deflate-tiled", tiff(16, 4, imagetest.TIFFDeflate, 512), true},
		{"tiff/rgb8-deflate", tiff(8, 3, imagetest.TIFFDeflate, 0), true},
		{"tiff/grey8-lzw", tiff(8, 1, imagetest.TIFFLZW, 0), true},
		{"tiff/rgb8-lzw-row-strips", imagetest.TIFFFlat{W: side, H: side, Bits: 8, Samples: 3, Compression: imagetest.TIFFLZW, RowsPerStrip: 1}.Encode(), true},
		{"tiff/rgb8-deflate-row-strips", imagetest.TIFFFlat{W: side, H: side, Bits: 8, Samples: 3, Compression: imagetest.TIFFDeflate, RowsPerStrip: 1}.Encode(), true},
		{"pnm/p6-16bit", imagetest.PNM16(fit(6), fit(6), 3), true},
		{"pnm/p5-16bit", imagetest.PNM16(fit(2), fit(2), 1), true},
		{"jpeg/grey", jpeg(imagetest.JPEGFlat{Components: 1, Adobe: -1}), true},
		{"jpeg/ycbcr420", jpeg(imagetest.JPEGFlat{Components: 3, Sampling: [2]int{2, 2}, Adobe: -1}), true},
		{"jpeg/ycbcr444", jpeg(imagetest.JPEGFlat{Components: 3, Adobe: -1}), true},
		{"jpeg/rgb", jpeg(imagetest.JPEGFlat{Components: 3, Adobe: 0}), false},
		{"jpeg/cmyk", jpeg(imagetest.JPEGFlat{Components: 4, Adobe: 0}), false},
		{"jpeg/ycck", jpeg(imagetest.JPEGFlat{Components: 4, Sampling: [2]int{2, 2}, Adobe: 2}), false},
		{"jpeg/progressive-grey", jpeg(imagetest.JPEGFlat{Components: 1, Progressive: true, Adobe: -1}), false},
		{"jpeg/progressive-ycbcr420", jpeg(imagetest.JPEGFlat{Components: 3, Sampling: [2]int{2, 2}, Progressive: true, Adobe: -1}), false},
		{"jpeg/progressive-ycbcr444", jpeg(imagetest.JPEGFlat{Components: 3, Progressive: true, Adobe: -1}), false},
		{"webp/lossless", imagetest.WebPFlat(min(side, 16384), min(side, 16384)), true},
		{"webp/lossless-half", imagetest.WebPFlat(min(side, 16384), min(side, 16384)/2), true},
		{"bmp/rgb24", imagetest.BMPFlat(fit(3), fit(3)), true},
		{"gif/one-pixel-frame", imagetest.GIFScreen(side, side, 1, 1), true},
		{"gif/frame-a-row-short", imagetest.GIFScreen(side, side, side, side-1), true},
		{"gif/interlaced-frame-a-row-short", imagetest.GIFInterlaced(imagetest.GIFScreen(side, side, side, side-1)), true},
	}
}

// splitIDAT rewrites a PNG with one IDAT chunk so that its data is spread
// over chunks of a byte each, and empty ones up to n chunks in all.
func splitIDAT(data []byte, n int) []byte {
	chunk := func(out []byte, typ string, body []byte) []byte {
		out = binary.BigEndian.AppendUint32(out, uint32(len(body)))
		out = append(out, typ...)
		out = append(out, body...)
		return binary.BigEndian.AppendUint32(out, crc32.Update(crc32.ChecksumIEEE([]byte(typ)), crc32.IEEETable, body))
	}
	out := append([]byte(nil), data[:8+25]...) // signature and IHDR
	idat := data[8+25+8 : len(data)-4-12]      // up to its checksum and the IEND chunk
	for i := 0; i < n; i++ {
		var body []byte
		if i < len(idat) {
			body = idat[i : i+1]
		}
		out = chunk(out, "IDAT", body)
	}
	return chunk(out, "IEND", nil)
}

// decodeCost opens data and decodes its first page, and returns the
// bytes allocated meanwhile (an upper bound of what the decode held at
// any moment) and the peak of live heap objects above where it started,
// sampled every 100µs.
func decodeCost(data []byte, lim Limits) (allocated, peak uint64, err error) {
	return allocation(func() error {
		doc, err := Open(data, "", lim)
		if err == nil {
			_, err = doc.Decode(context.Background(), 0)
		}
		return err
	})
}

// allocation runs f and returns the bytes allocated meanwhile and the
// peak of live heap objects above where it started, sampled every 100µs.
func allocation(f func() error) (allocated, peak uint64, err error) {
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	live := func() uint64 { metrics.Read(sample); return sample[0].Value.Uint64() }
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	before, base := ms.TotalAlloc, live()
	var high atomic.Uint64
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(100 * time.Microsecond)
		defer t.Stop()
		for {
			if v := live(); v > high.Load() {
				high.Store(v)
			}
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	err = f()
	if v := live(); v > high.Load() {
		high.Store(v)
	}
	close(stop)
	<-done
	runtime.ReadMemStats(&ms)
	if h := high.Load(); h > base {
		peak = h - base
	}
	return ms.TotalAlloc - before, peak, err
}

// Decoding a page never allocates more than 4 bytes per pixel of the
// pixel limit plus 1 MB, the bound the docs promise:
// a page whose decoder would need more is refused before decoding, and
// doing so costs next to nothing. 16-bit pages decode to 8 bits per
// channel rather than being refused.
func TestDecodeMemoryBound(t *testing.T) {
	side := 1200
	if testing.Short() {
		side = 700 // still well above the 1 MB slack: a 16-bit page fails by 1 MB
	}
	lim := Limits{MaxPixels: int64(side * side), DecodeTimeout: time.Minute}
	bound := 4*uint64(lim.MaxPixels) + decodeSlack
	for _, b := range bombs(side) {
		t.Run(b.name, func(t *testing.T) {
			allocated, _, err := decodeCost(b.data, lim)
			switch {
			case err == nil:
				if allocated > bound {
					t.Errorf("decoding allocated %d bytes, %.1f per pixel of the limit; the bound is %d", allocated, float64(allocated)/float64(lim.MaxPixels), bound)
				}
			case errors.Is(err, ErrTooLarge) && !b.decodes:
				if allocated > decodeSlack {
					t.Errorf("refusing the page allocated %d bytes", allocated)
				}
			default:
				t.Fatalf("err = %v; the page must decode", err)
			}
		})
	}
}

// Open's estimate of what decoding a page costs is never below what the
// decoder allocates (beyond the state estimates leave out), so the budget
// check is sound: pages of every format and layout, turned upright too,
// under a limit that lets all of them decode.
func TestDecodeCostEstimates(t *testing.T) {
	side := 600
	if testing.Short() {
		side = 300
	}
	cases := bombs(side)
	marked := imagetest.Marked(side, side/2)
	for _, o := range []uint16{3, 6} {
		cases = append(cases,
			bomb{fmt.Sprintf("jpeg/orientation-%d", o), imagetest.JPEGWithOrientation(t, marked, o), true},
			bomb{fmt.Sprintf("tiff/orientation-%d", o), imagetest.TIFF([]imagetest.TIFFPage{{Img: marked, Orientation: o}}, false), true})
	}
	for _, b := range cases {
		t.Run(b.name, func(t *testing.T) {
			doc, err := Open(b.data, "", Limits{MaxPixels: 1 << 30})
			if err != nil {
				t.Fatal(err)
			}
			allocated, _, err := decodeCost(b.data, Limits{MaxPixels: 1 << 30, DecodeTimeout: time.Minute})
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("allocated %d bytes; Open estimated %d", allocated, doc.costs[0])
			if limit := uint64(doc.costs[0]) + decodeSlack/2; allocated > limit {
				t.Errorf("decoding allocated %d bytes; Open estimated %d", allocated, doc.costs[0])
			}
		})
	}
}

// BenchmarkDecodeBombs reports what decoding each bomb at the default
// pixel limit costs: alloc-MB (every byte allocated during Open and
// Decode), peak-MB (the highest live heap above the start) and
// refused (1 when the page was refused as too large to decode).
//
//	go test -run '^$' -bench DecodeBombs -benchtime 1x ./internal/imageio
func BenchmarkDecodeBombs(b *testing.B) {
	side := 7070 // 49.98 megapixels, just under DefaultLimits().MaxPixels
	for _, bm := range bombs(side) {
		b.Run(bm.name, func(b *testing.B) {
			var allocated, peak uint64
			var err error
			for range b.N {
				allocated, peak, err = decodeCost(bm.data, Limits{DecodeTimeout: time.Minute})
			}
			if err != nil && !errors.Is(err, ErrTooLarge) {
				b.Fatal(err)
			}
			refused := 0.0
			if err != nil {
				refused = 1
			}
			b.ReportMetric(float64(len(bm.data))/1e3, "input-kB")
			b.ReportMetric(float64(allocated)/1e6, "alloc-MB")
			b.ReportMetric(float64(peak)/1e6, "peak-MB")
			b.ReportMetric(refused, "refused")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// An interlaced GIF frame a row short of its screen costs image/gif the
// frame twice (it copies the rows into order) and the screen-sized canvas:
// 3 bytes a pixel, which Open counts. At 1000x1000 the third byte is over
// the slack the estimates leave out.
func TestGIFInterlacedCost(t *testing.T) {
	data := imagetest.GIFInterlaced(imagetest.GIFScreen(1000, 1000, 1000, 999))
	lim := Limits{MaxPixels: 1 << 30, DecodeTimeout: time.Minute}
	doc, err := Open(data, "", lim)
	if err != nil {
		t.Fatal(err)
	}
	allocated, _, err := decodeCost(data, lim)
	if err != nil {
		t.Fatal(err)
	}
	if limit := uint64(doc.costs[0]) + decodeSlack/2; allocated > limit {
		t.Errorf("decoding allocated %d bytes; Open estimated %d", allocated, doc.costs[0])
	}
}
