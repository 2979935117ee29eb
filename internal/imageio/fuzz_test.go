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
