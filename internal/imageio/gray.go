package imageio

import (
	"image"
	"image/color"
)

// ToGray converts img to 8-bit luma (ITU-R BT.601 weights, as
// color.GrayModel) with its origin at (0, 0). Transparent pixels are
// composed over white, as a page would show them. A *image.Gray at the
// origin is returned as is.
func ToGray(img image.Image) *image.Gray {
	b := img.Bounds()
	if g, ok := img.(*image.Gray); ok && b.Min == (image.Point{}) {
		return g
	}
	w, h := b.Dx(), b.Dy()
	dst := image.NewGray(image.Rect(0, 0, w, h))
	switch src := img.(type) {
	case *image.Gray:
		for y := 0; y < h; y++ {
			copy(dst.Pix[y*dst.Stride:y*dst.Stride+w], src.Pix[src.PixOffset(b.Min.X, b.Min.Y+y):])
		}
	case *image.YCbCr:
		// Luma is the Y plane.
		for y := 0; y < h; y++ {
			copy(dst.Pix[y*dst.Stride:y*dst.Stride+w], src.Y[src.YOffset(b.Min.X, b.Min.Y+y):])
		}
	case *image.RGBA:
		for y := 0; y < h; y++ {
			row := src.Pix[src.PixOffset(b.Min.X, b.Min.Y+y):]
			out := dst.Pix[y*dst.Stride : y*dst.Stride+w]
			for x := range out {
				p := row[4*x : 4*x+4]
				// Premultiplied: compose over white by adding 255-alpha.
				out[x] = luma(uint32(p[0])+255-uint32(p[3]), uint32(p[1])+255-uint32(p[3]), uint32(p[2])+255-uint32(p[3]))
			}
		}
	case *image.NRGBA:
		for y := 0; y < h; y++ {
			row := src.Pix[src.PixOffset(b.Min.X, b.Min.Y+y):]
			out := dst.Pix[y*dst.Stride : y*dst.Stride+w]
			for x := range out {
				p := row[4*x : 4*x+4]
				a := uint32(p[3])
				over := func(c uint8) uint32 { return (uint32(c)*a + 255*(255-a) + 127) / 255 }
				out[x] = luma(over(p[0]), over(p[1]), over(p[2]))
			}
		}
	case *image.NYCbCrA:
		// Luma over white, by the alpha plane.
		for y := 0; y < h; y++ {
			yr := src.Y[src.YOffset(b.Min.X, b.Min.Y+y):]
			ar := src.A[src.AOffset(b.Min.X, b.Min.Y+y):]
			out := dst.Pix[y*dst.Stride : y*dst.Stride+w]
			for x := range out {
				a := uint32(ar[x])
				out[x] = uint8((uint32(yr[x])*a + 255*(255-a) + 127) / 255)
			}
		}
	case *image.CMYK:
		for y := 0; y < h; y++ {
			row := src.Pix[src.PixOffset(b.Min.X, b.Min.Y+y):]
			out := dst.Pix[y*dst.Stride : y*dst.Stride+w]
			for x := range out {
				p := row[4*x : 4*x+4]
				r, g, bl := color.CMYKToRGB(p[0], p[1], p[2], p[3])
				out[x] = luma(uint32(r), uint32(g), uint32(bl))
			}
		}
	case *image.Paletted:
		lut := make([]uint8, len(src.Palette))
		for i, c := range src.Palette {
			lut[i] = grayOverWhite(c)
		}
		for y := 0; y < h; y++ {
			row := src.Pix[src.PixOffset(b.Min.X, b.Min.Y+y):]
			out := dst.Pix[y*dst.Stride : y*dst.Stride+w]
			for x := range out {
				if int(row[x]) < len(lut) {
					out[x] = lut[row[x]]
				} else {
					out[x] = 255
				}
			}
		}
	default:
		for y := 0; y < h; y++ {
			out := dst.Pix[y*dst.Stride : y*dst.Stride+w]
			for x := range out {
				out[x] = grayOverWhite(img.At(b.Min.X+x, b.Min.Y+y))
			}
		}
	}
	return dst
}

func grayOverWhite(c color.Color) uint8 {
	r, g, b, a := c.RGBA() // 16-bit, premultiplied
	white := 0xffff - a
	return luma((r+white)>>8, (g+white)>>8, (b+white)>>8)
}

// luma takes 8-bit channels (possibly one over 255 by rounding) and
// returns BT.601 luma, matching color.GrayModel.
func luma(r, g, b uint32) uint8 {
	y := (19595*min(r, 255) + 38470*min(g, 255) + 7471*min(b, 255) + 1<<15) >> 16
	return uint8(y)
}
