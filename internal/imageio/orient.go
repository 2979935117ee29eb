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

// Apply returns img transformed for display. Gray images stay gray; other
// types become RGBA. Upright returns img itself.
func (o Orientation) Apply(img image.Image) image.Image {
	if !o.valid() || o == Upright {
		return img
	}
	if g, ok := img.(*image.Gray); ok && g.Rect.Min == (image.Point{}) {
		return o.ApplyGray(g)
	}
	b := img.Bounds()
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
