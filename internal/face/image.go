package face

import (
	"image"
	"image/color"
	"math"
)

// bgrImage is a packed 8-bit image in B, G, R order with its origin at
// (0,0). Both networks were trained on OpenCV-loaded (BGR) images, so the
// pipeline converts its input to this once and works on it.
type bgrImage struct {
	w, h int
	pix  []uint8 // 3 bytes per pixel, B G R, row-major
}

func newBGR(w, h int) *bgrImage { return &bgrImage{w: w, h: h, pix: make([]uint8, 3*w*h)} }

// toBGR copies img into a bgrImage. Transparent pixels are composited over
// black, which is what OpenCV's imread does with an alpha channel it drops
// (the colour values of a premultiplied pixel).
func toBGR(img image.Image) *bgrImage {
	b := img.Bounds()
	out := newBGR(b.Dx(), b.Dy())
	switch src := img.(type) {
	case *image.Gray:
		for y := range out.h {
			row := src.Pix[src.PixOffset(b.Min.X, b.Min.Y+y):]
			for x := range out.w {
				v := row[x]
				i := 3 * (y*out.w + x)
				out.pix[i], out.pix[i+1], out.pix[i+2] = v, v, v
			}
		}
		return out
	case *image.RGBA:
		for y := range out.h {
			row := src.Pix[src.PixOffset(b.Min.X, b.Min.Y+y):]
			for x := range out.w {
				i := 3 * (y*out.w + x)
				out.pix[i], out.pix[i+1], out.pix[i+2] = row[4*x+2], row[4*x+1], row[4*x]
			}
		}
		return out
	case *image.NRGBA:
		for y := range out.h {
			row := src.Pix[src.PixOffset(b.Min.X, b.Min.Y+y):]
			for x := range out.w {
				a := uint32(row[4*x+3])
				i := 3 * (y*out.w + x)
				out.pix[i] = uint8(uint32(row[4*x+2]) * a / 255)
				out.pix[i+1] = uint8(uint32(row[4*x+1]) * a / 255)
				out.pix[i+2] = uint8(uint32(row[4*x]) * a / 255)
			}
		}
		return out
	case *image.YCbCr:
		for y := range out.h {
			for x := range out.w {
				yi := src.YOffset(b.Min.X+x, b.Min.Y+y)
				ci := src.COffset(b.Min.X+x, b.Min.Y+y)
				r, g, bl := color.YCbCrToRGB(src.Y[yi], src.Cb[ci], src.Cr[ci])
				i := 3 * (y*out.w + x)
				out.pix[i], out.pix[i+1], out.pix[i+2] = bl, g, r
			}
		}
		return out
	}
	for y := range out.h {
		for x := range out.w {
			r, g, bl, _ := img.At(b.Min.X+x, b.Min.Y+y).RGBA()
			i := 3 * (y*out.w + x)
			out.pix[i], out.pix[i+1], out.pix[i+2] = uint8(bl>>8), uint8(g>>8), uint8(r>>8)
		}
	}
	return out
}

// resize scales m to w x h. Downscaling averages each destination pixel's
// source footprint (like OpenCV's INTER_AREA), so a large photo shrunk for
// the detector does not alias; upscaling is bilinear.
func (m *bgrImage) resize(w, h int) *bgrImage {
	if w == m.w && h == m.h {
		return m
	}
	out := newBGR(w, h)
	sx, sy := float64(m.w)/float64(w), float64(m.h)/float64(h)
	if sx <= 1 && sy <= 1 {
		for y := range h {
			fy := (float64(y)+0.5)*sy - 0.5
			for x := range w {
				fx := (float64(x)+0.5)*sx - 0.5
				i := 3 * (y*w + x)
				for c := range 3 {
					out.pix[i+c] = clampByte(m.bilinear(fx, fy, c, true))
				}
			}
		}
		return out
	}
	// Box filter: each destination pixel is the mean of the source pixels
	// its footprint covers (whole pixels; footprints are at least one).
	for y := range h {
		y0 := int(float64(y) * sy)
		y1 := max(int(math.Ceil(float64(y+1)*sy)), y0+1)
		y1 = min(y1, m.h)
		for x := range w {
			x0 := int(float64(x) * sx)
			x1 := max(int(math.Ceil(float64(x+1)*sx)), x0+1)
			x1 = min(x1, m.w)
			var sum [3]int
			for yy := y0; yy < y1; yy++ {
				row := m.pix[3*(yy*m.w):]
				for xx := x0; xx < x1; xx++ {
					sum[0] += int(row[3*xx])
					sum[1] += int(row[3*xx+1])
					sum[2] += int(row[3*xx+2])
				}
			}
			n := (y1 - y0) * (x1 - x0)
			i := 3 * (y*w + x)
			for c := range 3 {
				out.pix[i+c] = uint8((sum[c] + n/2) / n)
			}
		}
	}
	return out
}

// bilinear samples channel c at (x, y), pixel centres at integer
// coordinates. Outside the image it replicates the border when replicate
// is set and reads zero otherwise (OpenCV's BORDER_CONSTANT, which
// warpAffine uses for face alignment).
func (m *bgrImage) bilinear(x, y float64, c int, replicate bool) float64 {
	x0, y0 := math.Floor(x), math.Floor(y)
	fx, fy := x-x0, y-y0
	ix, iy := int(x0), int(y0)
	at := func(px, py int) float64 {
		if px < 0 || py < 0 || px >= m.w || py >= m.h {
			if !replicate {
				return 0
			}
			px = min(max(px, 0), m.w-1)
			py = min(max(py, 0), m.h-1)
		}
		return float64(m.pix[3*(py*m.w+px)+c])
	}
	top := at(ix, iy)*(1-fx) + at(ix+1, iy)*fx
	bot := at(ix, iy+1)*(1-fx) + at(ix+1, iy+1)*fx
	return top*(1-fy) + bot*fy
}

func clampByte(v float64) uint8 {
	switch {
	case v <= 0:
		return 0
	case v >= 255:
		return 255
	}
	return uint8(v + 0.5)
}
