// Package dewarptest draws photographed sheets, and decodes pages the way
// the pipeline does, for the tests of dewarp and the packages that use it.
package dewarptest

import (
	"bytes"
	"context"
	"image"
	"image/png"
	"math"
	"os"
	"testing"

	"github.com/visionserve/visionserve/internal/imageio"
)

// Sheet sizes: a SheetWidth x SheetHeight sheet on a PhotoWidth x
// PhotoHeight photo.
const (
	PhotoWidth, PhotoHeight = 420, 520
	SheetWidth, SheetHeight = 300, 400
)

// Photo draws a sheet of paper with lines of dashes standing in for
// text, turned clockwise by deg about the centre of a dark background.
func Photo(deg float64) *image.Gray {
	const w, h, sw, sh = PhotoWidth, PhotoHeight, SheetWidth, SheetHeight
	g := image.NewGray(image.Rect(0, 0, w, h))
	sin, cos := math.Sincos(deg * math.Pi / 180)
	for y := range h {
		for x := range w {
			// Into the sheet's own frame: turn back about the centres.
			dx, dy := float64(x)+0.5-w/2, float64(y)+0.5-h/2
			px, py := cos*dx+sin*dy+sw/2, -sin*dx+cos*dy+sh/2
			v := uint8(60)
			if px >= 0 && py >= 0 && px < sw && py < sh {
				v = 230
				if int(py)%24 < 8 && py > 30 && py < sh-30 && px > 30 && px < sw-30 && int(px)%4 != 3 {
					v = 30
				}
			}
			g.Pix[y*g.Stride+x] = v
		}
	}
	return g
}

// ReadGray reads the first page of an image file as grey.
func ReadGray(t testing.TB, path string) *image.Gray {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return DecodeGray(t, data)
}

// DecodeGray decodes the first page of an image as grey, as the OCR
// pipeline does (imageio, EXIF orientation applied).
func DecodeGray(t testing.TB, data []byte) *image.Gray {
	t.Helper()
	doc, err := imageio.Open(data, "", imageio.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	img, err := doc.Decode(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	return imageio.ToGray(img)
}

// PNG encodes img.
func PNG(t testing.TB, img image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}
