package imageio

import (
	"bytes"
	"context"
	"errors"
	"io"
	"runtime"
	"testing"
	"time"

	"golang.org/x/image/vp8l"

	"github.com/visionserve/visionserve/internal/imageio/imagetest"
)

// FuzzDecode feeds arbitrary bytes through the whole decode path with small
// limits. It must never panic, and every failure must be one of the input
// error kinds a transport knows how to report, never a raw decoder error.
func FuzzDecode(f *testing.F) {
	img := imagetest.Marked(9, 5)
	for _, format := range []Format{PNG, JPEG, GIF, BMP, TIFF} {
		f.Add(imagetest.Encode(f, string(format), img))
	}
	f.Add(imagetest.TinyWebP)
	f.Add(append([]byte("P5 9 5 255\n"), img.Pix...))
	f.Add([]byte("P3 2 1 255\n0 0 0 255 255 255"))
	f.Add(imagetest.TIFF([]imagetest.TIFFPage{{Img: img}, {Img: img, Orientation: 8}}, false))
	f.Add(imagetest.JPEGWithOrientation(f, img, 6))
	f.Add(imagetest.PNGHeader(3000, 3000))
	f.Add(imagetest.PNGFlat(30, 20, 16, 6, true))
	f.Add(imagetest.PNGFlat(17, 9, 2, 3, true))
	f.Add(imagetest.PNGFlat(17, 9, 4, 0, false))
	for _, c := range []int{imagetest.TIFFNone, imagetest.TIFFLZW, imagetest.TIFFDeflate, imagetest.TIFFPackBits} {
		f.Add(imagetest.TIFFFlat{W: 20, H: 10, Bits: 16, Samples: 4, Compression: c, RowsPerStrip: 3}.Encode())
		f.Add(imagetest.TIFFFlat{W: 20, H: 10, Bits: 1, Samples: 1, Compression: c, Tile: 16}.Encode())
	}
	f.Add(imagetest.JPEGFlat{W: 33, H: 17, Components: 3, Sampling: [2]int{2, 2}, Progressive: true, Adobe: -1}.Encode())
	f.Add(imagetest.JPEGFlat{W: 33, H: 17, Components: 4, Adobe: 0}.Encode())
	f.Add(imagetest.WebPFlat(40, 30))
	f.Add(imagetest.WebPLossless{W: 17, H: 9, Groups: 6, Full: true, CacheBits: 2, Predictor: 2, VP8X: true}.Encode())
	f.Add(imagetest.WebPWithAlpha(9, 5, imagetest.WebPLossless{W: 9, H: 5, Groups: 2}.AlphaStream()))
	f.Add(imagetest.GIFScreen(40, 30, 10, 5))
	f.Add(imagetest.PNM16(5, 4, 3))
	f.Fuzz(func(t *testing.T, data []byte) {
		lim := Limits{MaxBytes: 1 << 20, MaxPixels: 1 << 20, MaxPages: 4, DecodeTimeout: time.Second}
		doc, err := Open(data, "", lim)
		if err != nil {
			checkKind(t, err)
			return
		}
		for i := range doc.Pages {
			img, err := doc.Decode(context.Background(), i)
			if err != nil {
				checkKind(t, err)
				continue
			}
			if b := img.Bounds(); b.Dx() != doc.Pages[i].Width || b.Dy() != doc.Pages[i].Height {
				t.Fatalf("page %d: decoded %v, header said %dx%d", i, b, doc.Pages[i].Width, doc.Pages[i].Height)
			}
		}
	})
}

func checkKind(t *testing.T, err error) {
	t.Helper()
	for _, kind := range []error{ErrUnsupported, ErrUndecodable, ErrTooLarge, ErrUnusable, ErrDecodeTimeout} {
		if errors.Is(err, kind) {
			return
		}
	}
	t.Fatalf("unclassified error: %v", err)
}

// FuzzVP8LCost reads arbitrary lossless streams with the cost check and
// decodes them with x/image: the check never panics and ends, and x/image
// never allocates more than the check counted, beyond the slack the
// estimates leave out (whether the stream decodes or not).
func FuzzVP8LCost(f *testing.F) {
	for _, p := range []imagetest.WebPLossless{
		{W: 9, H: 5},
		{W: 9, H: 5, Groups: 3, Full: true, Noise: true, CacheBits: 3},
		{W: 17, H: 9, Groups: 12, Predictor: 2, ColorIndexing: 4},
		{W: 17, H: 9, Groups: 5, MetaBits: 3, Full: true, Noise: true, ColorIndexing: 40, Predictor: 3},
		{W: 4, H: 4, Groups: 40, Full: true, CacheBits: 11},
	} {
		f.Add(p.AlphaStream(), uint8(p.W-1), uint8(p.H-1))
	}
	f.Add(lz77MetaImage(64, 64), uint8(63), uint8(63))
	f.Fuzz(func(t *testing.T, stream []byte, w1, h1 uint8) {
		w, h := int(w1)%64+1, int(h1)%64+1
		cost := vp8lCost(stream, w, h, 1<<40)
		header := []byte{0x2f, byte(w - 1), byte((w-1)>>8) | byte((h-1)<<6), byte((h - 1) >> 2), byte((h - 1) >> 10)}
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, _ = vp8l.Decode(io.MultiReader(bytes.NewReader(header), bytes.NewReader(stream)))
		runtime.ReadMemStats(&after)
		if allocated := after.TotalAlloc - before.TotalAlloc; allocated > uint64(cost)+decodeSlack/2 {
			t.Fatalf("x/image allocated %d bytes for a %dx%d stream; the check counted %d", allocated, w, h, cost)
		}
	})
}
