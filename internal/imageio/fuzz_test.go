package imageio

import (
	"context"
	"errors"
	"testing"
	"time"

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
