package imageio

import (
	"image"
	"image/color"
)

// Orientation is an EXIF/TIFF orientation value, 1 to 8: how the stored
// pixels must be transformed to be displayed. Rotations by quarter turns
// clockwise are Rotate90 (6), Rotate180 (3) and Rotate270 (8).
type Orientation int

// Orientations used by callers.
const (
	Upright   Orientation = 1
	Rotate180 Orientation = 3
	Rotate90  Orientation = 6
	Rotate270 Orientation = 8
)

// RotationCW returns the orientation that rotates an image clockwise by deg
// degrees (0, 90, 180 or 270; anything else is treated as 0).
func RotationCW(deg int) Orientation {
	switch ((deg % 360) + 360) % 360 {
	case 90:
		return Rotate90
	case 180:
		return Rotate180
	case 270:
		return Rotate270
	}
	return Upright
}

func (o Orientation) valid() bool { return o >= 1 && o <= 8 }

// swapsAxes reports whether the displayed image has width and height swapped.
func (o Orientation) swapsAxes() bool { return o >= 5 && o <= 8 }

// Size returns the displayed size of a stored image of size w x h.
func (o Orientation) Size(w, h int) (int, int) {
	if o.swapsAxes() {
		return h, w
	}
	return w, h
}

// source maps a displayed pixel (x, y) to the stored pixel it shows, for a
// stored image of size w x h.
func (o Orientation) source(x, y, w, h int) (int, int) {
	switch o {
	case 2:
		return w - 1 - x, y
	case 3:
		return w - 1 - x, h - 1 - y
	case 4:
		return x, h - 1 - y
	case 5:
		return y, x
	case 6:
		return y, h - 1 - x
	case 7:
		return w - 1 - y, h - 1 - x
	case 8:
		return w - 1 - y, x
	}
	return x, y
}

// SourcePoint maps a continuous point (pixel edges at integers) of the
// displayed image back to the stored image of size w x h. It is how boxes
// found in a transformed image are reported in the original's coordinates.
func (o Orientation) SourcePoint(x, y float64, w, h int) (float64, float64) {
	fw, fh := float64(w), float64(h)
	switch o {
	case 2:
		return fw - x, y
	case 3:
		return fw - x, fh - y
	case 4:
		return x, fh - y
	case 5:
		return y, x
	case 6:
		return y, fh - x
	case 7:
		return fw - y, fh - x
	case 8:
		return fw - y, x
	}
	return x, y
}

// ApplyGray returns img transformed for display. Upright returns img itself.
func (o Orientation) ApplyGray(img *image.Gray) *image.Gray {
	if !o.valid() || o == Upright {
		return img
	}
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	dw, dh := o.Size(w, h)
	dst := image.NewGray(image.Rect(0, 0, dw, dh))
	for y := 0; y < dh; y++ {
		row := dst.Pix[y*dst.Stride : y*dst.Stride+dw]
		for x := range row {
			sx, sy := o.source(x, y, w, h)
			row[x] = img.Pix[(sy)*img.Stride+sx]
		}
	}
	return dst
}

// upright returns img, the page a decoder has just made, transformed for
// display, at the cost orientBytes accounts for: pages of 1 or 4 bytes a
// pixel (Gray, Paletted, RGBA, NRGBA, CMYK) keep their type, mirrored or
// half-turned in img's own pixels and copied when turned a quarter; YCbCr
// pages become RGBA (NYCbCrA ones NRGBA). Callers must not use img again.
func (o Orientation) upright(img image.Image) image.Image {
	if !o.valid() || o == Upright {
		return img
	}
	b := img.Bounds()
	switch m := img.(type) {
	case *image.Gray:
		pix, stride, r := o.pixels(m.Pix, m.Stride, b, 1)
		return &image.Gray{Pix: pix, Stride: stride, Rect: r}
	case *image.Paletted:
		pix, stride, r := o.pixels(m.Pix, m.Stride, b, 1)
		return &image.Paletted{Pix: pix, Stride: stride, Rect: r, Palette: m.Palette}
	case *image.RGBA:
		pix, stride, r := o.pixels(m.Pix, m.Stride, b, 4)
		return &image.RGBA{Pix: pix, Stride: stride, Rect: r}
	case *image.NRGBA:
		pix, stride, r := o.pixels(m.Pix, m.Stride, b, 4)
		return &image.NRGBA{Pix: pix, Stride: stride, Rect: r}
	case *image.CMYK:
		pix, stride, r := o.pixels(m.Pix, m.Stride, b, 4)
		return &image.CMYK{Pix: pix, Stride: stride, Rect: r}
	case *image.YCbCr:
		return o.ycbcr(m, nil)
	case *image.NYCbCrA:
		return o.ycbcr(&m.YCbCr, m)
	}
	w, h := b.Dx(), b.Dy()
	dw, dh := o.Size(w, h)
	dst := image.NewRGBA(image.Rect(0, 0, dw, dh))
	for y := 0; y < dh; y++ {
		for x := 0; x < dw; x++ {
			sx, sy := o.source(x, y, w, h)
			dst.SetRGBA(x, y, color.RGBAModel.Convert(img.At(b.Min.X+sx, b.Min.Y+sy)).(color.RGBA))
		}
	}
	return dst
}

// pixels transforms the pixels of a page of bounds b whose pixel (x, y)
// is the size bytes at pix[y*stride+x*size] (relative to b.Min). It
// mirrors and half-turns in place; quarter turns fill a new buffer. The
// result's origin is (0, 0).
func (o Orientation) pixels(pix []byte, stride int, b image.Rectangle, size int) ([]byte, int, image.Rectangle) {
	w, h := b.Dx(), b.Dy()
	swap := func(i, j int) {
		for k := range size {
			pix[i+k], pix[j+k] = pix[j+k], pix[i+k]
		}
	}
	if !o.swapsAxes() {
		if o == 2 || o == 3 { // mirror each row
			for y := 0; y < h; y++ {
				for x := 0; x < w/2; x++ {
					swap(y*stride+x*size, y*stride+(w-1-x)*size)
				}
			}
		}
		if o == 3 || o == 4 { // mirror the rows' order
			for y := 0; y < h/2; y++ {
				for x := 0; x < w; x++ {
					swap(y*stride+x*size, (h-1-y)*stride+x*size)
				}
			}
		}
		return pix, stride, image.Rect(0, 0, w, h)
	}
	dw, dh := o.Size(w, h)
	out := make([]byte, dw*dh*size)
	for y := 0; y < dh; y++ {
		for x := 0; x < dw; x++ {
			sx, sy := o.source(x, y, w, h)
			copy(out[(y*dw+x)*size:(y*dw+x+1)*size], pix[sy*stride+sx*size:])
		}
	}
	return out, dw * size, image.Rect(0, 0, dw, dh)
}

// ycbcr turns a YCbCr page into a new RGBA one (NRGBA with the alpha of
// a, when a is not nil): its chroma planes cannot be mirrored on their
// own without shifting colour by a pixel at odd sizes.
func (o Orientation) ycbcr(m *image.YCbCr, a *image.NYCbCrA) image.Image {
	b := m.Rect
	w, h := b.Dx(), b.Dy()
	dw, dh := o.Size(w, h)
	r := image.Rect(0, 0, dw, dh)
	var pix []byte
	var out image.Image
	if a != nil {
		n := image.NewNRGBA(r)
		pix, out = n.Pix, n
	} else {
		n := image.NewRGBA(r)
		pix, out = n.Pix, n
	}
	for y := 0; y < dh; y++ {
		for x := 0; x < dw; x++ {
			sx, sy := o.source(x, y, w, h)
			sx, sy = sx+b.Min.X, sy+b.Min.Y
			ci := m.COffset(sx, sy)
			p := pix[4*(y*dw+x) : 4*(y*dw+x)+4]
			p[0], p[1], p[2] = color.YCbCrToRGB(m.Y[m.YOffset(sx, sy)], m.Cb[ci], m.Cr[ci])
			p[3] = 0xff
			if a != nil {
				p[3] = a.A[a.AOffset(sx, sy)]
			}
		}
	}
	return out
}
