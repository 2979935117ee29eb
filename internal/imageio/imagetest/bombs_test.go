package imagetest

import (
	"bytes"
	"fmt"
	"image"
	_ "image/gif"
	"image/jpeg"
	"image/png"
	"io"
	"math/rand/v2"
	"strings"
	"testing"

	_ "golang.org/x/image/bmp"
	"golang.org/x/image/tiff"
	"golang.org/x/image/tiff/lzw"
	"golang.org/x/image/webp"
)

// The generators write files the reference decoders read, with the size
// they claim and nothing but zero (or flat) samples.

func TestPNGFlat(t *testing.T) {
	for _, ct := range []struct {
		colorType uint8
		depths    []int
	}{{0, []int{1, 2, 4, 8, 16}}, {2, []int{8, 16}}, {3, []int{1, 2, 4, 8}}, {4, []int{8, 16}}, {6, []int{8, 16}}} {
		for _, depth := range ct.depths {
			for _, interlaced := range []bool{false, true} {
				name := fmt.Sprintf("type%d/depth%d/interlaced=%v", ct.colorType, depth, interlaced)
				img, err := png.Decode(bytes.NewReader(PNGFlat(13, 7, depth, ct.colorType, interlaced)))
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				checkZero(t, name, img, 13, 7)
			}
		}
	}
}

func TestTIFFFlat(t *testing.T) {
	for _, layout := range []TIFFFlat{{RowsPerStrip: 0}, {RowsPerStrip: 3}, {Tile: 16}} {
		for _, kind := range [][2]int{{1, 1}, {8, 1}, {16, 1}, {8, 3}, {16, 3}, {8, 4}, {16, 4}} {
			for _, c := range []int{TIFFNone, TIFFLZW, TIFFDeflate, TIFFPackBits} {
				f := layout
				f.W, f.H, f.Bits, f.Samples, f.Compression = 21, 17, kind[0], kind[1], c
				name := fmt.Sprintf("%+v", f)
				img, err := tiff.Decode(bytes.NewReader(f.Encode()))
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				checkZero(t, name, img, 21, 17)
			}
		}
	}
}

func TestTIFFFlatWithSamples(t *testing.T) {
	pix := make([]byte, 2*3*9*5)
	for i := range pix {
		pix[i] = byte(i * 7)
	}
	for _, c := range []int{TIFFNone, TIFFLZW, TIFFDeflate, TIFFPackBits} {
		img, err := tiff.Decode(bytes.NewReader(TIFFFlat{W: 9, H: 5, Bits: 16, Samples: 3, Compression: c, RowsPerStrip: 2, Pix: pix}.Encode()))
		if err != nil {
			t.Fatal(err)
		}
		r, g, b, _ := img.At(8, 4).RGBA()
		i := 2 * 3 * (4*9 + 8)
		want := func(k int) uint32 { return uint32(pix[i+2*k])<<8 | uint32(pix[i+2*k+1]) }
		if r != want(0) || g != want(1) || b != want(2) {
			t.Errorf("compression %d: pixel (8,4) = %x %x %x, want %x %x %x", c, r, g, b, want(0), want(1), want(2))
		}
	}
}

func TestLZWRoundTrip(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{0, 1, 2, 300, 5000, 1 << 20} {
		for _, fill := range []string{"zeros", "random", "text"} {
			data := make([]byte, n)
			for i := range data {
				switch fill {
				case "random":
					data[i] = byte(rnd.IntN(256))
				case "text":
					data[i] = "the quick brown fox "[i%20]
				}
			}
			var b bytes.Buffer
			lzwEncode(&b, bytes.NewReader(data))
			got, err := io.ReadAll(lzw.NewReader(&b, lzw.MSB, 8))
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("%d bytes of %s: round trip gave %d bytes, %v", n, fill, len(got), err)
			}
		}
	}
}

func TestJPEGFlat(t *testing.T) {
	for _, f := range []JPEGFlat{
		{Components: 1, Adobe: -1},
		{Components: 3, Sampling: [2]int{2, 2}, Adobe: -1},
		{Components: 3, Adobe: 0},
		{Components: 4, Adobe: 0},
		{Components: 4, Sampling: [2]int{2, 2}, Adobe: 2},
		{Components: 3, Sampling: [2]int{2, 1}, Progressive: true, Adobe: -1},
		{Components: 1, Progressive: true, Adobe: -1},
	} {
		f.W, f.H = 37, 19
		img, err := jpeg.Decode(bytes.NewReader(f.Encode()))
		if err != nil {
			t.Fatalf("%+v: %v", f, err)
		}
		if img.Bounds() != image.Rect(0, 0, 37, 19) {
			t.Fatalf("%+v: bounds %v", f, img.Bounds())
		}
	}
}

func TestWebPFlat(t *testing.T) {
	img, err := webp.Decode(bytes.NewReader(WebPFlat(300, 7)))
	if err != nil {
		t.Fatal(err)
	}
	if img.Bounds() != image.Rect(0, 0, 300, 7) {
		t.Fatalf("bounds %v", img.Bounds())
	}
	if r, g, b, a := img.At(299, 6).RGBA(); r|g|b != 0 || a != 0xffff {
		t.Fatalf("pixel = %x %x %x %x, want opaque black", r, g, b, a)
	}
}

func checkZero(t *testing.T, name string, img image.Image, w, h int) {
	t.Helper()
	if img.Bounds() != image.Rect(0, 0, w, h) {
		t.Fatalf("%s: bounds %v", name, img.Bounds())
	}
	for y := range h {
		for x := range w {
			if r, g, b, _ := img.At(x, y).RGBA(); r|g|b != 0 {
				t.Fatalf("%s: pixel (%d,%d) is not zero", name, x, y)
			}
		}
	}
}

func TestBMPFlatAndGIFScreen(t *testing.T) {
	for name, data := range map[string][]byte{"bmp": BMPFlat(31, 9), "gif": GIFScreen(31, 9, 1, 1)} {
		cfg, _, err := image.DecodeConfig(bytes.NewReader(data))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if cfg.Width != 31 || cfg.Height != 9 {
			t.Fatalf("%s: %dx%d", name, cfg.Width, cfg.Height)
		}
		if _, _, err := image.Decode(bytes.NewReader(data)); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
}

// The lossless streams WebPLossless writes decode with x/image/webp in
// every shape the cost tests use: many groups, full trees, colour cache,
// transforms, literal pixels, extended files and compressed alpha.
func TestWebPLossless(t *testing.T) {
	for _, p := range []WebPLossless{
		{W: 1, H: 1},
		{W: 37, H: 19, Groups: 7},
		{W: 37, H: 19, Groups: 30, Full: true, CacheBits: 11},
		{W: 37, H: 19, Groups: 3, Full: true, Noise: true, MetaBits: 3, VP8X: true},
		{W: 37, H: 19, Groups: 5, Predictor: 2, ColorIndexing: 16},
		{W: 37, H: 19, Groups: 5, Predictor: 3, ColorIndexing: 200, Full: true, Noise: true, CacheBits: 4},
		{W: 2, H: 2, Groups: 2600, Full: true},
	} {
		img, err := webp.Decode(bytes.NewReader(p.Encode()))
		if err != nil {
			t.Fatalf("%+v: %v", p, err)
		}
		if img.Bounds() != image.Rect(0, 0, p.W, p.H) {
			t.Fatalf("%+v: bounds %v", p, img.Bounds())
		}
	}
	_, err := webp.Decode(bytes.NewReader(WebPLossless{W: 8, H: 8, Groups: 2601}.Encode()))
	if err == nil || !strings.Contains(err.Error(), "too many Huffman trees") {
		t.Fatalf("2601 groups: err = %v, want x/image's refusal of more than 2600", err)
	}
	alpha := WebPLossless{W: 30, H: 20, Groups: 4, Full: true}.AlphaStream()
	_, err = webp.Decode(bytes.NewReader(WebPWithAlpha(30, 20, alpha)))
	if err == nil || strings.Contains(err.Error(), "vp8l") {
		t.Fatalf("alpha: err = %v, want the VP8 frame's error after the alpha plane decoded", err)
	}
}
