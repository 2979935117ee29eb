package ppocr

import (
	"image"
	"image/color"
	"math"

	"github.com/visionserve/visionserve/internal/imageio"
)

// rgbImage is a packed 8-bit RGB image with its origin at (0,0); the
// pipeline converts its input once and works on this.
type rgbImage struct {
	w, h int
	pix  []uint8 // 3 bytes per pixel, R G B, row-major
}

func newRGB(w, h int) *rgbImage { return &rgbImage{w: w, h: h, pix: make([]uint8, 3*w*h)} }

// toRGB copies img into an rgbImage. Transparent pixels are composited over
// white, since text on a transparent background is usually dark on light.
func toRGB(img image.Image) *rgbImage {
	b := img.Bounds()
	return &rgbImage{w: b.Dx(), h: b.Dy(), pix: imageio.Pack3(img, imageio.RGB, 255)}
}

// at returns channel c of pixel (x, y), replicating the border.
func (m *rgbImage) at(x, y, c int) float64 {
	x = min(max(x, 0), m.w-1)
	y = min(max(y, 0), m.h-1)
	return float64(m.pix[3*(y*m.w+x)+c])
}

// bilinear samples channel c at (x, y), pixel centres at integer
// coordinates, border replicated.
func (m *rgbImage) bilinear(x, y float64, c int) float64 {
	x0, y0 := math.Floor(x), math.Floor(y)
	fx, fy := x-x0, y-y0
	ix, iy := int(x0), int(y0)
	top := m.at(ix, iy, c)*(1-fx) + m.at(ix+1, iy, c)*fx
	bot := m.at(ix, iy+1, c)*(1-fx) + m.at(ix+1, iy+1, c)*fx
	return top*(1-fy) + bot*fy
}

// warp samples the w×h crop whose pixel (u, v) shows the source point
// toSrc(u, v), bilinearly (cv2.warpPerspective with BORDER_REPLICATE).
func (m *rgbImage) warp(toSrc homography, w, h int) *rgbImage {
	out := newRGB(w, h)
	for v := range h {
		for u := range w {
			p := toSrc.apply(vec{float64(u), float64(v)})
			if !finite(p) {
				continue
			}
			p.X = clampf(p.X, -1, float64(m.w))
			p.Y = clampf(p.Y, -1, float64(m.h))
			i := 3 * (v*w + u)
			for c := range 3 {
				out.pix[i+c] = uint8(math.Round(clampf(m.bilinear(p.X, p.Y, c), 0, 255)))
			}
		}
	}
	return out
}

// rotate180 turns the image upside down in place.
func (m *rgbImage) rotate180() {
	n := m.w * m.h
	for i := range n / 2 {
		j := n - 1 - i
		for c := range 3 {
			m.pix[3*i+c], m.pix[3*j+c] = m.pix[3*j+c], m.pix[3*i+c]
		}
	}
}

// gray converts to 8-bit luma (ITU-R 601, as image/color does).
func (m *rgbImage) gray() *image.Gray {
	g := image.NewGray(image.Rect(0, 0, m.w, m.h))
	for i := range m.w * m.h {
		g.Pix[i] = color.GrayModel.Convert(color.RGBA{m.pix[3*i], m.pix[3*i+1], m.pix[3*i+2], 255}).(color.Gray).Y
	}
	return g
}

// norm maps an 8-bit value of channel c (in model order) to the model's
// input scale.
type norm struct {
	bgr       bool       // feed channels as B, G, R (PaddleOCR reads images with cv2)
	mean, std [3]float64 // applied to value/255 per model channel
}

// resizeInto resizes m to w×h with cv2.INTER_LINEAR's sampling (half-pixel
// centres, no anti-aliasing), normalises it and writes it as CHW planes
// into dst, a 3×h×stride tensor slice; only the first w columns of each
// row are written.
func (m *rgbImage) resizeInto(dst []float32, stride, w, h int, n norm) {
	xs := linearTaps(m.w, w)
	ys := linearTaps(m.h, h)
	plane := stride * h
	// Fold /255, mean and std into one multiply-add per channel.
	var scale, bias [3]float32
	for c := range 3 {
		scale[c] = float32(1 / (255 * n.std[c]))
		bias[c] = float32(-n.mean[c] / n.std[c])
	}
	for y, ty := range ys {
		r0 := m.pix[3*ty.i0*m.w:]
		r1 := m.pix[3*ty.i1*m.w:]
		for x, tx := range xs {
			a, b := 3*tx.i0, 3*tx.i1
			for c := range 3 {
				src := c
				if n.bgr {
					src = 2 - c
				}
				top := float32(r0[a+src])*(1-tx.f) + float32(r0[b+src])*tx.f
				bot := float32(r1[a+src])*(1-tx.f) + float32(r1[b+src])*tx.f
				v := top*(1-ty.f) + bot*ty.f
				dst[c*plane+y*stride+x] = v*scale[c] + bias[c]
			}
		}
	}
}

// tap is one output sample of a linear resize: input pixels i0 and i1,
// weighted 1-f and f.
type tap struct {
	i0, i1 int
	f      float32
}

// linearTaps computes the taps of resizing n input pixels to out pixels,
// with half-pixel centres and the border replicated.
func linearTaps(n, out int) []tap {
	taps := make([]tap, out)
	s := float64(n) / float64(out)
	for i := range taps {
		x := clampf((float64(i)+0.5)*s-0.5, 0, float64(n-1))
		x0 := int(x)
		taps[i] = tap{i0: x0, i1: min(x0+1, n-1), f: float32(x - float64(x0))}
	}
	return taps
}
