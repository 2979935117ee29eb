package imageio

import (
	"image"
	"image/color"
	"math/rand/v2"
	"testing"
)

// TestPack3 checks every fast path against the colour model's own
// conversion, composited over each background, in both orders, on
// sub-images whose bounds do not start at (0,0).
func TestPack3(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const w, h = 7, 5
	full := image.Rect(-3, 2, w+2, h+4) // the sub-image is (-1,3)-(w-1,h+3)
	sub := image.Rect(-1, 3, w-1, h+3)
	fill := func(set func(x, y int)) {
		for y := full.Min.Y; y < full.Max.Y; y++ {
			for x := full.Min.X; x < full.Max.X; x++ {
				set(x, y)
			}
		}
	}
	byte8 := func() uint8 { return uint8(rng.IntN(256)) }
	alpha := func() uint8 { return []uint8{0, 1, 128, 254, 255}[rng.IntN(5)] }

	gray := image.NewGray(full)
	fill(func(x, y int) { gray.SetGray(x, y, color.Gray{byte8()}) })
	rgba := image.NewRGBA(full)
	fill(func(x, y int) {
		a := alpha()
		c := func() uint8 { return uint8(int(byte8()) * int(a) / 255) } // premultiplied
		rgba.SetRGBA(x, y, color.RGBA{c(), c(), c(), a})
	})
	nrgba := image.NewNRGBA(full)
	fill(func(x, y int) { nrgba.SetNRGBA(x, y, color.NRGBA{byte8(), byte8(), byte8(), alpha()}) })
	ycc := image.NewYCbCr(full, image.YCbCrSubsampleRatio420)
	for i := range ycc.Y {
		ycc.Y[i] = byte8()
	}
	for i := range ycc.Cb {
		ycc.Cb[i], ycc.Cr[i] = byte8(), byte8()
	}
	pal := image.NewPaletted(full, color.Palette{color.NRGBA{10, 20, 30, 255}, color.NRGBA{200, 100, 50, 128}, color.Transparent})
	fill(func(x, y int) { pal.SetColorIndex(x, y, uint8(rng.IntN(3))) })

	cmyk := image.NewCMYK(full)
	for i := range cmyk.Pix {
		cmyk.Pix[i] = byte8()
	}

	type subImager interface {
		SubImage(image.Rectangle) image.Image
	}
	for name, img := range map[string]subImager{"gray": gray, "rgba": rgba, "nrgba": nrgba, "ycbcr": ycc, "paletted": pal, "cmyk": cmyk} {
		for _, bg := range []uint8{0, 255} {
			for _, order := range []ChannelOrder{RGB, BGR} {
				src := img.SubImage(sub)
				pix := Pack3(src, order, bg)
				if len(pix) != 3*w*h {
					t.Fatalf("%s: %d bytes, want %d", name, len(pix), 3*w*h)
				}
				for y := range h {
					for x := range w {
						r, g, b, a := src.At(sub.Min.X+x, sub.Min.Y+y).RGBA()
						share := float64(bg) * float64(0xffff-a) / 0xffff
						want := [3]float64{float64(r)/257 + share, float64(g)/257 + share, float64(b)/257 + share}
						if order == BGR {
							want[0], want[2] = want[2], want[0]
						}
						got := pix[3*(y*w+x) : 3*(y*w+x)+3]
						for c := range 3 {
							// Each path rounds its own way; none may be off
							// by more than one level.
							if d := float64(got[c]) - want[c]; d > 1 || d < -1.001 {
								t.Fatalf("%s, background %d, order %d, pixel (%d,%d) channel %d: %d, want %.2f (alpha %d)",
									name, bg, order, x, y, c, got[c], want[c], a>>8)
							}
						}
					}
				}
			}
		}
	}
}
