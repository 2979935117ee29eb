package imageio

import (
	"image"
	"image/color"
)

// ChannelOrder is the byte order of a packed three-channel pixel.
type ChannelOrder int

const (
	RGB ChannelOrder = iota // R, G, B: PaddleOCR's networks
	BGR                     // B, G, R: networks trained on OpenCV-loaded images
)

// Pack3 copies img into a row-major buffer of 8-bit pixels, three bytes
// each in the given order, with its origin at (0,0): the input layout of
// the ONNX vision pipelines. Transparent pixels are composited over the
// grey level background (0: black, as OpenCV's imread does when it drops
// an alpha channel; 255: white, right for dark text on a transparent
// page).
func Pack3(img image.Image, order ChannelOrder, background uint8) []uint8 {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	pix := make([]uint8, 3*w*h)
	ri, bi := 0, 2
	if order == BGR {
		ri, bi = 2, 0
	}
	put := func(i int, r, g, bl uint8) { pix[i+ri], pix[i+1], pix[i+bi] = r, g, bl }
	bg := uint32(background)
	switch src := img.(type) {
	case *image.Gray:
		for y := range h {
			row := src.Pix[src.PixOffset(b.Min.X, b.Min.Y+y):]
			for x := range w {
				v := row[x]
				put(3*(y*w+x), v, v, v)
			}
		}
		return pix
	case *image.RGBA:
		// Premultiplied: over the background adds its share 1-alpha
		// (capped in case the image breaks the premultiplication rule).
		pack4(pix, src.Pix[src.PixOffset(b.Min.X, b.Min.Y):], src.Stride, w, h, put,
			func(p, a uint8) uint8 { return uint8(min(uint32(p)+bg*(255-uint32(a))/255, 255)) })
		return pix
	case *image.NRGBA:
		pack4(pix, src.Pix[src.PixOffset(b.Min.X, b.Min.Y):], src.Stride, w, h, put,
			func(c, a uint8) uint8 { return uint8((uint32(c)*uint32(a) + bg*(255-uint32(a))) / 255) })
		return pix
	case *image.CMYK:
		for y := range h {
			row := src.Pix[src.PixOffset(b.Min.X, b.Min.Y+y):]
			for x := range w {
				r, g, bl := color.CMYKToRGB(row[4*x], row[4*x+1], row[4*x+2], row[4*x+3])
				put(3*(y*w+x), r, g, bl)
			}
		}
		return pix
	case *image.Paletted:
		lut := make([][3]uint8, len(src.Palette))
		for i, c := range src.Palette {
			lut[i] = over3(c, bg)
		}
		for y := range h {
			row := src.Pix[src.PixOffset(b.Min.X, b.Min.Y+y):]
			for x := range w {
				c := [3]uint8{uint8(bg), uint8(bg), uint8(bg)} // an index past the palette
				if int(row[x]) < len(lut) {
					c = lut[row[x]]
				}
				put(3*(y*w+x), c[0], c[1], c[2])
			}
		}
		return pix
	case *image.YCbCr:
		for y := range h {
			for x := range w {
				yi := src.YOffset(b.Min.X+x, b.Min.Y+y)
				ci := src.COffset(b.Min.X+x, b.Min.Y+y)
				r, g, bl := color.YCbCrToRGB(src.Y[yi], src.Cb[ci], src.Cr[ci])
				put(3*(y*w+x), r, g, bl)
			}
		}
		return pix
	}
	for y := range h {
		for x := range w {
			c := over3(img.At(b.Min.X+x, b.Min.Y+y), bg)
			put(3*(y*w+x), c[0], c[1], c[2])
		}
	}
	return pix
}

// over3 composites c over the grey level bg and returns its 8-bit R, G, B.
func over3(c color.Color, bg uint32) [3]uint8 {
	r, g, b, a := c.RGBA()
	share := bg * 0x101 * (0xffff - a) / 0xffff
	return [3]uint8{uint8((r + share) >> 8), uint8((g + share) >> 8), uint8((b + share) >> 8)}
}

// pack4 packs w×h pixels of four bytes (R, G, B, alpha) from src, whose
// rows are stride bytes apart, compositing each channel with over.
func pack4(pix, src []uint8, stride, w, h int, put func(i int, r, g, b uint8), over func(c, a uint8) uint8) {
	for y := range h {
		row := src[y*stride:]
		for x := range w {
			p := row[4*x : 4*x+4 : 4*x+4]
			put(3*(y*w+x), over(p[0], p[3]), over(p[1], p[3]), over(p[2], p[3]))
		}
	}
}
