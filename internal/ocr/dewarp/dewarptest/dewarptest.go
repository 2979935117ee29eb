// Package dewarptest draws photographed sheets for the tests of the
// packages that use dewarp.
package dewarptest

import (
	"bytes"
	"image"
	"image/png"
	"math"
	"testing"
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

// PNG encodes img.
func PNG(t testing.TB, img image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}
