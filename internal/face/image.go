package face

import (
	"image"
	"math"

	"github.com/visionserve/visionserve/internal/imageio"
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
// black, which is what OpenCV's imread does with an alpha channel it drops.
func toBGR(img image.Image) *bgrImage {
	b := img.Bounds()
	return &bgrImage{w: b.Dx(), h: b.Dy(), pix: imageio.Pack3(img, imageio.BGR, 0)}
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
