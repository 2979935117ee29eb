package imageio

import (
	"bytes"
	"compress/bzip2"
	"context"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/image/tiff"
	xlzw "golang.org/x/image/tiff/lzw"

	"github.com/visionserve/visionserve/internal/imageio/imagetest"
	"github.com/visionserve/visionserve/internal/testenv"
)

// The PNG and TIFF decoders here replace image/png and x/image/tiff to keep
// decoding within 4 bytes a pixel. Whatever those read, these read too,
// with the same pixels: 16-bit samples cut to their high byte.

// to8 is what the reference decoders' page is at 8 bits per channel: the
// type and the pixels the decoders here give.
func to8(img image.Image) image.Image {
	b := img.Bounds()
	switch m := img.(type) {
	case *image.Gray16:
		g := image.NewGray(b)
		for i := range g.Pix {
			g.Pix[i] = m.Pix[2*i]
		}
		return g
	case *image.RGBA64:
		r := image.NewRGBA(b)
		for i := range r.Pix {
			r.Pix[i] = m.Pix[2*i]
		}
		return r
	case *image.NRGBA64:
		r := image.NewNRGBA(b)
		for i := range r.Pix {
			r.Pix[i] = m.Pix[2*i]
		}
		return r
	}
	return img
}

// sameImage says how got differs from want, or "" when they are the same
// type with the same pixels (and palette).
func sameImage(got, want image.Image) string {
	if reflect.TypeOf(got) != reflect.TypeOf(want) {
		return fmt.Sprintf("got a %T, want a %T", got, want)
	}
	if got.Bounds() != want.Bounds() {
		return fmt.Sprintf("bounds %v, want %v", got.Bounds(), want.Bounds())
	}
	if g, ok := got.(*image.Paletted); ok {
		if w := want.(*image.Paletted); !reflect.DeepEqual(g.Palette, w.Palette) {
			return fmt.Sprintf("palette %v, want %v", g.Palette, w.Palette)
		}
	}
	b := got.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			if g, w := got.At(x, y), want.At(x, y); g != w {
				return fmt.Sprintf("pixel (%d,%d) = %v, want %v", x, y, g, w)
			}
		}
	}
	return ""
}

// goTool runs the go command for a path the tests read reference files
// from.
func goTool(t testing.TB, args ...string) string {
	t.Helper()
	out, err := exec.Command("go", args...).Output()
	if err != nil {
		t.Fatalf("go %s: %v", strings.Join(args, " "), err)
	}
	return strings.TrimSpace(string(out))
}

// pngCorpus is the standard library's PNG test files (PngSuite among them)
// and generated pages of every colour type, depth, transparency and
// interlacing, with random samples.
func pngCorpus(t testing.TB) map[string][]byte {
	files := map[string][]byte{}
	root := filepath.Join(goTool(t, "env", "GOROOT"), "src", "image", "png", "testdata")
	for _, pattern := range []string{"*.png", "pngsuite/*.png"} {
		names, _ := filepath.Glob(filepath.Join(root, pattern))
		for _, name := range names {
			data, err := os.ReadFile(name)
			if err != nil {
				t.Fatal(err)
			}
			files[filepath.Base(name)] = data
		}
	}
	if len(files) < 40 {
		t.Fatalf("found %d PNG test files under %s", len(files), root)
	}
	rnd := rand.New(rand.NewPCG(3, 4))
	random := func(r image.Rectangle, set func(x, y int, v [4]uint16)) {
		for y := r.Min.Y; y < r.Max.Y; y++ {
			for x := r.Min.X; x < r.Max.X; x++ {
				var v [4]uint16
				for i := range v {
					v[i] = uint16(rnd.Uint32())
				}
				if rnd.IntN(4) == 0 {
					v[3] = 0xffff
				}
				set(x, y, v)
			}
		}
	}
	r := image.Rect(0, 0, 19, 11)
	g16, rgba64, nrgba64, g8, nrgba := image.NewGray16(r), image.NewRGBA64(r), image.NewNRGBA64(r), image.NewGray(r), image.NewNRGBA(r)
	random(r, func(x, y int, v [4]uint16) {
		g16.SetGray16(x, y, color.Gray16{v[0]})
		g8.SetGray(x, y, color.Gray{uint8(v[0])})
		rgba64.SetRGBA64(x, y, color.RGBA64{v[0] & v[3], v[1] & v[3], v[2] & v[3], 0xffff})
		nrgba64.SetNRGBA64(x, y, color.NRGBA64{v[0], v[1], v[2], v[3]})
		nrgba.SetNRGBA(x, y, color.NRGBA{uint8(v[0]), uint8(v[1]), uint8(v[2]), uint8(v[3])})
	})
	for name, img := range map[string]image.Image{"gray16": g16, "rgb16": rgba64, "nrgba16": nrgba64, "gray8": g8, "nrgba8": nrgba} {
		var b bytes.Buffer
		if err := png.Encode(&b, img); err != nil {
			t.Fatal(err)
		}
		files["generated-"+name] = b.Bytes()
	}
	return files
}

func TestPNGMatchesStdlib(t *testing.T) { matchCorpus(t, pngCorpus(t), png.Decode, 40) }

// matchCorpus decodes every file of corpus here and with the reference
// decoder: whatever the reference decodes must decode here with the same
// pixels, and what it refuses must be refused here too. At least atLeast
// files must be compared.
func matchCorpus(t *testing.T, corpus map[string][]byte, reference func(io.Reader) (image.Image, error), atLeast int) {
	t.Helper()
	compared := 0
	for name, data := range corpus {
		want, refErr := reference(bytes.NewReader(data))
		got, err := decodeFirst(data)
		if refErr != nil {
			if err == nil {
				t.Errorf("%s: the reference refuses it (%v); decoded here", name, refErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v; the reference decodes it", name, err)
			continue
		}
		if diff := sameImage(got, to8(want)); diff != "" {
			t.Errorf("%s: %s", name, diff)
		}
		compared++
	}
	if compared < atLeast {
		t.Fatalf("only %d files compared", compared)
	}
}

// tiffCorpus is x/image/tiff's test files, the shared test pages when
// present, and generated pages of every depth, sample count, compression,
// layout and predictor the decoder reads, with random samples.
func tiffCorpus(t testing.TB) map[string][]byte {
	files := map[string][]byte{}
	dir := filepath.Join(goTool(t, "list", "-m", "-f", "{{.Dir}}", "golang.org/x/image"), "tiff", "testdata")
	names, _ := filepath.Glob(filepath.Join(dir, "*.tiff*"))
	for _, name := range names {
		data, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(name, ".bz2") {
			if data, err = io.ReadAll(bzip2.NewReader(bytes.NewReader(data))); err != nil {
				t.Fatal(err)
			}
		}
		files[filepath.Base(name)] = data
	}
	if len(files) < 10 {
		t.Fatalf("found %d TIFF test files under %s", len(files), dir)
	}
	rnd := rand.New(rand.NewPCG(5, 6))
	for _, kind := range [][2]int{{1, 1}, {8, 1}, {16, 1}, {8, 3}, {16, 3}, {8, 4}, {16, 4}} {
		for _, c := range []int{imagetest.TIFFNone, imagetest.TIFFLZW, imagetest.TIFFDeflate, imagetest.TIFFPackBits} {
			for _, rows := range []int{0, 4} {
				for _, predictor := range []int{0, 2} {
					if predictor == 2 && kind[0] == 1 {
						continue
					}
					f := imagetest.TIFFFlat{W: 23, H: 13, Bits: kind[0], Samples: kind[1], Compression: c, RowsPerStrip: rows, Predictor: predictor}
					f.Pix = make([]byte, f.H*((f.W*f.Bits*f.Samples+7)/8))
					for i := range f.Pix {
						f.Pix[i] = byte(rnd.Uint32())
					}
					files[fmt.Sprintf("generated-%d-%d-%d-%d-%d", kind[0], kind[1], c, rows, predictor)] = f.Encode()
				}
			}
		}
	}
	if dir := testenv.SharedDir(); dir != "" {
		for _, name := range []string{"phototest.tif", "phototestrot.tif", "eurotext.tif"} {
			if data, err := os.ReadFile(filepath.Join(dir, "data", "ocr", "pages", name)); err == nil {
				files[name] = data
			}
		}
	}
	return files
}

func TestTIFFMatchesXImage(t *testing.T) { matchCorpus(t, tiffCorpus(t), tiff.Decode, 100) }

// A checksum error anywhere, in the pixel data or after it, makes a PNG
// undecodable, as in image/png, though Open checks only the header's.
func TestPNGChecksums(t *testing.T) {
	good := imagetest.PNGFlat(9, 5, 8, 2, false)
	idatCRC := len(good) - 12 - 1 // last byte of the IDAT chunk's checksum
	for name, at := range map[string]int{"IHDR": 8 + 8 + 13, "IDAT": idatCRC, "IEND": len(good) - 1} {
		data := bytes.Clone(good)
		data[at] ^= 1
		_, err := decodeFirst(data)
		if !errors.Is(err, ErrUndecodable) || !strings.Contains(err.Error(), "checksum") {
			t.Errorf("%s checksum broken: %v", name, err)
		}
	}
}

// decodeFirst decodes the first page of data as stored (no orientation),
// within generous limits.
func decodeFirst(data []byte) (image.Image, error) {
	doc, err := Open(data, "", Limits{MaxPixels: 1 << 26})
	if err != nil {
		return nil, err
	}
	doc.Pages[0].Orientation = Upright
	if doc.Format == TIFF {
		doc.tiff[0].orientation = 1
	}
	return doc.Decode(context.Background(), 0)
}

// FuzzPNGMatchesStdlib: any PNG image/png decodes (within 64K pixels)
// decodes here with the same pixels.
func FuzzPNGMatchesStdlib(f *testing.F) { fuzzAgainst(f, pngCorpus(f), png.DecodeConfig, png.Decode) }

// FuzzTIFFMatchesXImage: any TIFF x/image/tiff decodes (within 64K
// pixels) decodes here with the same pixels.
func FuzzTIFFMatchesXImage(f *testing.F) {
	fuzzAgainst(f, tiffCorpus(f), tiff.DecodeConfig, tiff.Decode)
}

// fuzzAgainst fuzzes from the corpus's small files (large ones make
// mutation slow): whatever the reference decodes, within 64K pixels, must
// decode here with the same pixels.
func fuzzAgainst(f *testing.F, corpus map[string][]byte, config func(io.Reader) (image.Config, error), reference func(io.Reader) (image.Image, error)) {
	for _, data := range corpus {
		if len(data) <= 16<<10 {
			f.Add(data)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := config(bytes.NewReader(data))
		if err != nil || cfg.Width*cfg.Height > 1<<16 {
			return
		}
		want, err := reference(bytes.NewReader(data))
		if err != nil {
			return
		}
		got, err := decodeFirst(data)
		if err != nil {
			t.Fatalf("the reference decodes it; here: %v", err)
		}
		if diff := sameImage(got, to8(want)); diff != "" {
			t.Fatal(diff)
		}
	})
}

// The LZW decoder gives the bytes and the errors x/image/tiff/lzw gives, on
// valid streams (the generated LZW pages above) and on random ones, and
// after a reset as when new.
func TestLZWMatchesXImage(t *testing.T) {
	rnd := rand.New(rand.NewPCG(7, 8))
	var d lzwReader
	for i := range 3000 {
		data := make([]byte, rnd.IntN(600))
		for k := range data {
			data[k] = byte(rnd.Uint32())
		}
		if i%2 == 0 && len(data) > 0 {
			data[0] = 0x80 // a clear code first, as encoders write
		}
		want, wantErr := io.ReadAll(xlzw.NewReader(bytes.NewReader(data), xlzw.MSB, 8))
		d.reset(bytes.NewReader(data))
		got, err := io.ReadAll(&d)
		if !bytes.Equal(got, want) || (err == nil) != (wantErr == nil) {
			t.Fatalf("stream %x: got %d bytes, %v; x/image gives %d bytes, %v", data, len(got), err, len(want), wantErr)
		}
	}
}
