package imageio

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/color"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/visionserve/visionserve/internal/imageio/imagetest"
	"github.com/visionserve/visionserve/internal/testenv"
)

func TestOpenDecodeFormats(t *testing.T) {
	img := imagetest.Marked(9, 5)
	cases := map[string][]byte{
		"png":    imagetest.Encode(t, "png", img),
		"jpeg":   imagetest.Encode(t, "jpeg", img),
		"gif":    imagetest.Encode(t, "gif", img),
		"bmp":    imagetest.Encode(t, "bmp", img),
		"tiff":   imagetest.Encode(t, "tiff", img),
		"webp":   imagetest.TinyWebP,
		"pnm-p5": append([]byte("P5\n# comment\n9 5\n255\n"), img.Pix...),
		"pnm-p2": []byte("P2 9 5 255\n" + pixText(img)),
		"pnm-p1": []byte("P1\n9 5\n" + bitText(img)),
		"pnm-p4": append([]byte("P4 9 5\n"), packBits(img)...),
		"pnm-p6": append([]byte("P6 9 5 255\n"), rgbBytes(img)...),
	}
	for name, data := range cases {
		t.Run(name, func(t *testing.T) {
			doc, err := Open(data, "", Limits{})
			if err != nil {
				t.Fatal(err)
			}
			if len(doc.Pages) != 1 {
				t.Fatalf("pages = %d", len(doc.Pages))
			}
			got, err := doc.Decode(context.Background(), 0)
			if err != nil {
				t.Fatal(err)
			}
			wantW, wantH := 9, 5
			if name == "webp" {
				wantW, wantH = 8, 4
			}
			if b := got.Bounds(); b.Dx() != wantW || b.Dy() != wantH {
				t.Fatalf("bounds = %v", b)
			}
			if name == "webp" {
				return
			}
			if y := gray(got, 1, 0); y > 64 {
				t.Errorf("marked pixel is %d, want dark", y)
			}
			if y := gray(got, 0, 0); y < 192 {
				t.Errorf("unmarked pixel is %d, want light", y)
			}
		})
	}
}

func gray(img image.Image, x, y int) uint8 {
	b := img.Bounds()
	return color.GrayModel.Convert(img.At(b.Min.X+x, b.Min.Y+y)).(color.Gray).Y
}

func pixText(g *image.Gray) string {
	var b bytes.Buffer
	for i, p := range g.Pix {
		b.WriteString(" ")
		b.WriteString(strconv.Itoa(int(p)))
		if i%9 == 8 {
			b.WriteString("\n")
		}
	}
	return b.String()
}

func bitText(g *image.Gray) string {
	var b bytes.Buffer
	for _, p := range g.Pix {
		if p < 128 {
			b.WriteString("1 ")
		} else {
			b.WriteString("0 ")
		}
	}
	return b.String()
}

func packBits(g *image.Gray) []byte {
	w, h := g.Rect.Dx(), g.Rect.Dy()
	rb := (w + 7) / 8
	out := make([]byte, rb*h)
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			if g.Pix[y*g.Stride+x] < 128 {
				out[y*rb+x/8] |= 0x80 >> (x % 8)
			}
		}
	}
	return out
}

func rgbBytes(g *image.Gray) []byte {
	out := make([]byte, 0, 3*len(g.Pix))
	for _, p := range g.Pix {
		out = append(out, p, p, p)
	}
	return out
}

func TestMultiPageTIFF(t *testing.T) {
	a, b, c := imagetest.Marked(6, 4), imagetest.Marked(5, 3), imagetest.Marked(7, 2)
	data := imagetest.TIFF([]imagetest.TIFFPage{{Img: a}, {Img: b, Orientation: 6}, {Img: c}}, false)
	doc, err := Open(data, TIFF, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if len(doc.Pages) != 3 {
		t.Fatalf("pages = %d, want 3", len(doc.Pages))
	}
	// Page 1 is rotated 90 degrees clockwise for display: 5x3 becomes 3x5
	// and the stored top-left corner moves to the top-right.
	if p := doc.Pages[1]; p.Width != 3 || p.Height != 5 || p.Orientation != Rotate90 {
		t.Fatalf("page 1 info = %+v", p)
	}
	for i, want := range []image.Point{{6, 4}, {3, 5}, {7, 2}} {
		img, err := doc.Decode(context.Background(), i)
		if err != nil {
			t.Fatalf("page %d: %v", i, err)
		}
		if img.Bounds().Size() != want {
			t.Errorf("page %d size = %v, want %v", i, img.Bounds().Size(), want)
		}
	}
	p1, _ := doc.Decode(context.Background(), 1)
	// Stored (1,0) shows at display (h-1-0, 1) = (2, 1).
	if gray(p1, 2, 1) != 0 {
		t.Errorf("rotated page: mark not at (2,1)")
	}
}

func TestLimits(t *testing.T) {
	small := imagetest.Marked(10, 10)
	three := imagetest.TIFF([]imagetest.TIFFPage{{Img: small}, {Img: small}, {Img: small}}, false)
	for _, tc := range []struct {
		name string
		data []byte
		lim  Limits
		want error
	}{
		{"bytes", imagetest.Encode(t, "png", small), Limits{MaxBytes: 10}, ErrTooLarge},
		{"pixels", imagetest.Encode(t, "png", small), Limits{MaxPixels: 99}, ErrTooLarge},
		{"pages", three, Limits{MaxPages: 2}, ErrTooLarge},
		{"tiff loop", imagetest.TIFF([]imagetest.TIFFPage{{Img: small}, {Img: small}}, true), Limits{}, ErrUndecodable},
		{"empty", nil, Limits{}, ErrUndecodable},
		{"garbage", []byte("hello, this is not an image at all"), Limits{}, ErrUnsupported},
		{"pdf", []byte("%PDF-1.7\n..."), Limits{}, ErrUnsupported},
		{"truncated png", imagetest.Encode(t, "png", small)[:40], Limits{}, ErrUndecodable},
		{"bigtiff", []byte("II+\x00\x08\x00\x00\x00\x10\x00\x00\x00\x00\x00\x00\x00"), Limits{}, ErrUnsupported},
	} {
		t.Run(tc.name, func(t *testing.T) {
			doc, err := Open(tc.data, "", tc.lim)
			if err == nil {
				_, err = doc.Decode(context.Background(), 0)
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			var ie *Error
			if !errors.As(err, &ie) || ie.Detail == "" {
				t.Fatalf("err %v carries no detail for the client", err)
			}
		})
	}
}

func TestDeclaredTypeMismatch(t *testing.T) {
	_, err := Open([]byte("definitely not a png"), PNG, Limits{})
	if !errors.Is(err, ErrUndecodable) {
		t.Fatalf("err = %v, want ErrUndecodable", err)
	}
}

func TestCheckMediaType(t *testing.T) {
	for ct, want := range map[string]error{
		"":                                  nil,
		"image/png":                         nil,
		"image/jpeg; charset=x":             nil,
		"application/octet-stream":          nil,
		"image/svg+xml":                     ErrUnsupported,
		"text/plain":                        ErrUnsupported,
		"application/x-www-form-urlencoded": nil,
		"application/pdf":                   ErrUnsupported,
		"image/png; ===":                    ErrUnsupported,
	} {
		if _, err := CheckMediaType(ct); !errors.Is(err, want) {
			t.Errorf("CheckMediaType(%q) = %v, want %v", ct, err, want)
		}
	}
}

// A header claiming 30000x30000 must be refused before anything close to
// its 900 MB is allocated.
func TestBombRefusedBeforeAllocation(t *testing.T) {
	bombs := map[string][]byte{
		"png":  imagetest.PNGHeader(30000, 30000),
		"tiff": imagetest.TIFF([]imagetest.TIFFPage{{Img: imagetest.Marked(2, 2), W: 30000, H: 30000}}, false),
		"pnm":  []byte("P5 30000 30000 255\n\x00\x00"),
	}
	for name, data := range bombs {
		t.Run(name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			_, err := Open(data, "", Limits{})
			runtime.ReadMemStats(&after)
			if !errors.Is(err, ErrTooLarge) {
				t.Fatalf("err = %v, want ErrTooLarge", err)
			}
			if grew := after.TotalAlloc - before.TotalAlloc; grew > 1<<20 {
				t.Errorf("refusing the bomb allocated %d bytes", grew)
			}
		})
	}
}

func TestDecodeTimeout(t *testing.T) {
	doc, err := Open(imagetest.Encode(t, "png", imagetest.Marked(500, 500)), "", Limits{DecodeTimeout: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := doc.Decode(context.Background(), 0); !errors.Is(err, ErrDecodeTimeout) {
		t.Fatalf("err = %v, want ErrDecodeTimeout", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := doc.Decode(ctx, 0); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

func TestEXIFOrientation(t *testing.T) {
	// A 40x20 image, black in its left half. Stored (x, y) lands at:
	//   6 (90 CW):  display 20x40, black in the top half
	//   8 (270 CW): display 20x40, black in the bottom half
	//   3 (180):    display 40x20, black in the right half
	src := image.NewGray(image.Rect(0, 0, 40, 20))
	for y := 0; y < 20; y++ {
		for x := 0; x < 40; x++ {
			if x >= 20 {
				src.SetGray(x, y, color.Gray{255})
			}
		}
	}
	for _, tc := range []struct {
		o          uint16
		size       image.Point
		dark, lite image.Point
	}{
		{1, image.Pt(40, 20), image.Pt(5, 10), image.Pt(35, 10)},
		{6, image.Pt(20, 40), image.Pt(10, 5), image.Pt(10, 35)},
		{8, image.Pt(20, 40), image.Pt(10, 35), image.Pt(10, 5)},
		{3, image.Pt(40, 20), image.Pt(35, 10), image.Pt(5, 10)},
	} {
		doc, err := Open(imagetest.JPEGWithOrientation(t, src, tc.o), JPEG, Limits{})
		if err != nil {
			t.Fatal(err)
		}
		img, err := doc.Decode(context.Background(), 0)
		if err != nil {
			t.Fatal(err)
		}
		if img.Bounds().Size() != tc.size {
			t.Errorf("orientation %d: size %v, want %v", tc.o, img.Bounds().Size(), tc.size)
			continue
		}
		if gray(img, tc.dark.X, tc.dark.Y) > 64 || gray(img, tc.lite.X, tc.lite.Y) < 192 {
			t.Errorf("orientation %d: pixels not where expected", tc.o)
		}
	}
}

func TestSourcePointInvertsApply(t *testing.T) {
	img := imagetest.Marked(7, 3)
	for o := Orientation(1); o <= 8; o++ {
		disp := o.ApplyGray(img)
		dw, dh := disp.Rect.Dx(), disp.Rect.Dy()
		for y := 0; y < dh; y++ {
			for x := 0; x < dw; x++ {
				// The centre of a displayed pixel maps to the centre of
				// the stored pixel it shows.
				sx, sy := o.SourcePoint(float64(x)+0.5, float64(y)+0.5, 7, 3)
				if disp.GrayAt(x, y) != img.GrayAt(int(sx), int(sy)) {
					t.Fatalf("orientation %d: display (%d,%d) -> source (%g,%g) disagrees", o, x, y, sx, sy)
				}
			}
		}
	}
}

// The shared test pages decode with the expected shapes: phototest.tif is a
// 1-bit WhiteIsZero TIFF, phototestrot.tif an LZW RGB TIFF.
func TestSharedPages(t *testing.T) {
	dir := testenv.Shared(t, "data/ocr/pages")
	for name, want := range map[string]image.Point{
		"phototest.tif":             {640, 480},
		"phototestrot.tif":          {480, 640},
		"phototest-rotated-L.png":   {480, 640},
		"phototest-rotated-180.png": {640, 480},
		"eurotext.tif":              {1024, 800},
	} {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		doc, err := Open(data, "", Limits{})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		img, err := doc.Decode(context.Background(), 0)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if img.Bounds().Size() != want {
			t.Errorf("%s: size %v, want %v", name, img.Bounds().Size(), want)
		}
	}
}

func TestToGray(t *testing.T) {
	want := imagetest.Marked(5, 3)
	rgba := image.NewRGBA(image.Rect(2, 2, 7, 5))
	nrgba := image.NewNRGBA(image.Rect(0, 0, 5, 3))
	pal := image.NewPaletted(image.Rect(0, 0, 5, 3), color.Palette{color.White, color.Black})
	ycc := image.NewYCbCr(image.Rect(0, 0, 5, 3), image.YCbCrSubsampleRatio420)
	for y := 0; y < 3; y++ {
		for x := 0; x < 5; x++ {
			c := want.GrayAt(x, y)
			rgba.Set(x+2, y+2, c)
			nrgba.Set(x, y, c)
			pal.Set(x, y, c)
			ycc.Y[ycc.YOffset(x, y)] = c.Y
		}
	}
	// A fully transparent pixel reads as white paper.
	nrgba.SetNRGBA(0, 0, color.NRGBA{0, 0, 0, 0})
	for name, img := range map[string]image.Image{"rgba": rgba, "nrgba": nrgba, "paletted": pal, "ycbcr": ycc, "gray": want} {
		g := ToGray(img)
		if g.Rect != want.Rect || !bytes.Equal(g.Pix, want.Pix) {
			t.Errorf("%s: ToGray = %v, want %v", name, g.Pix, want.Pix)
		}
	}
}

// ToGray's paths for CMYK and YCbCr with alpha agree with the colour
// models' own conversion, over white, within a level.
func TestToGrayCMYKAndAlpha(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	r := image.Rect(0, 0, 9, 6)
	cmyk := image.NewCMYK(r)
	for i := range cmyk.Pix {
		cmyk.Pix[i] = uint8(rng.IntN(256))
	}
	// Grey chroma: ToGray reads luma from the Y plane, which the colour
	// model agrees with until a colour leaves the RGB gamut.
	nycc := image.NewNYCbCrA(r, image.YCbCrSubsampleRatio420)
	for _, plane := range [][]uint8{nycc.Y, nycc.A} {
		for i := range plane {
			plane[i] = uint8(rng.IntN(256))
		}
	}
	for i := range nycc.Cb {
		nycc.Cb[i], nycc.Cr[i] = 128, 128
	}
	for name, img := range map[string]image.Image{"cmyk": cmyk, "nycbcra": nycc} {
		g := ToGray(img)
		for y := range r.Dy() {
			for x := range r.Dx() {
				want := int(grayOverWhite(img.At(x, y)))
				if d := int(g.GrayAt(x, y).Y) - want; d > 1 || d < -1 {
					t.Fatalf("%s (%d,%d): %d, want %d", name, x, y, g.GrayAt(x, y).Y, want)
				}
			}
		}
	}
}

// upright turns every kind of decoded page the way the generic
// At-and-Set transform would: 1- and 4-byte pages keep their type (in
// place when mirrored or half-turned), YCbCr pages become RGBA or NRGBA.
func TestUprightEveryType(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	const w, h = 7, 4
	r := image.Rect(0, 0, w, h)
	fill := func(pix []uint8) {
		for i := range pix {
			pix[i] = uint8(rng.IntN(256))
		}
	}
	pages := func() map[string]image.Image {
		gray, rgba, nrgba, cmyk := image.NewGray(r), image.NewRGBA(r), image.NewNRGBA(r), image.NewCMYK(r)
		pal := image.NewPaletted(r, color.Palette{color.Black, color.White, color.NRGBA{1, 2, 3, 4}})
		for _, pix := range [][]uint8{gray.Pix, nrgba.Pix, cmyk.Pix} {
			fill(pix)
		}
		for i := range rgba.Pix {
			rgba.Pix[i] = uint8(rng.IntN(256)) / 2
			if i%4 == 3 {
				rgba.Pix[i] = 255
			}
		}
		for i := range pal.Pix {
			pal.Pix[i] = uint8(rng.IntN(3))
		}
		ycc := image.NewYCbCr(r, image.YCbCrSubsampleRatio420)
		nycc := image.NewNYCbCrA(r, image.YCbCrSubsampleRatio422)
		for _, plane := range [][]uint8{ycc.Y, ycc.Cb, ycc.Cr, nycc.Y, nycc.Cb, nycc.Cr, nycc.A} {
			fill(plane)
		}
		// A JPEG decoder's grey page: a sub-image of a padded one.
		padded := image.NewGray(image.Rect(0, 0, 16, 8))
		fill(padded.Pix)
		return map[string]image.Image{"gray": gray, "rgba": rgba, "nrgba": nrgba, "cmyk": cmyk, "paletted": pal,
			"ycbcr": ycc, "nycbcra": nycc, "padded gray": padded.SubImage(r)}
	}
	for o := Orientation(1); o <= 8; o++ {
		for name, src := range pages() {
			want := reference(o, src)
			got := o.upright(src) // may change src's pixels: want was taken first
			if got.Bounds() != want.Bounds() {
				t.Fatalf("orientation %d, %s: bounds %v, want %v", o, name, got.Bounds(), want.Bounds())
			}
			_, ycc := src.(*image.YCbCr)
			_, nycc := src.(*image.NYCbCrA)
			if !ycc && !nycc && o != Upright && fmt.Sprintf("%T", got) != fmt.Sprintf("%T", src) {
				t.Fatalf("orientation %d, %s: became a %T", o, name, got)
			}
			for y := range want.Bounds().Dy() {
				for x := range want.Bounds().Dx() {
					gr, gg, gb, ga := got.At(x, y).RGBA()
					wr, wg, wb, wa := want.At(x, y).RGBA()
					if diff(gr, wr) > 0x101 || diff(gg, wg) > 0x101 || diff(gb, wb) > 0x101 || ga>>8 != wa>>8 {
						t.Fatalf("orientation %d, %s: (%d,%d) = %v, want %v", o, name, x, y, got.At(x, y), want.At(x, y))
					}
				}
			}
		}
	}
}

// reference is the reference transform: every displayed pixel read from the
// stored one it shows.
func reference(o Orientation, src image.Image) *image.NRGBA {
	b := src.Bounds()
	w, h := b.Dx(), b.Dy()
	dw, dh := o.Size(w, h)
	dst := image.NewNRGBA(image.Rect(0, 0, dw, dh))
	for y := range dh {
		for x := range dw {
			sx, sy := o.source(x, y, w, h)
			dst.Set(x, y, src.At(b.Min.X+sx, b.Min.Y+sy))
		}
	}
	return dst
}

func diff(a, b uint32) uint32 {
	if a > b {
		return a - b
	}
	return b - a
}

// A GIF whose first frame is smaller than its screen decodes to a paletted
// page of the screen's size, white outside the frame.
func TestGIFCanvas(t *testing.T) {
	doc, err := Open(imagetest.GIFScreen(40, 30, 10, 5), "", Limits{})
	if err != nil {
		t.Fatal(err)
	}
	img, err := doc.Decode(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := img.(*image.Paletted); !ok || img.Bounds() != image.Rect(0, 0, 40, 30) {
		t.Fatalf("decoded a %T of %v", img, img.Bounds())
	}
	if gray(img, 3, 3) != 0 || gray(img, 10, 3) != 255 || gray(img, 39, 29) != 255 {
		t.Fatalf("frame pixel %d, outside %d and %d; want 0, 255, 255", gray(img, 3, 3), gray(img, 10, 3), gray(img, 39, 29))
	}
}

// 16-bit PNM samples scale to 8 bits.
func TestPNM16(t *testing.T) {
	data := append([]byte("P6 2 1 65535\n"), 0xff, 0xff, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x01, 0xff, 0xff)
	doc, err := Open(data, "", Limits{})
	if err != nil {
		t.Fatal(err)
	}
	img, err := doc.Decode(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := img.(*image.RGBA).Pix; !bytes.Equal(got, []byte{255, 128, 0, 255, 0, 1, 255, 255}) {
		t.Fatalf("pixels = %v", got)
	}
}
