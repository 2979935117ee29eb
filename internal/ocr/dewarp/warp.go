package dewarp

import (
	"image"
	"image/draw"
	"math"
)

// WarpGray returns the w x h image whose pixel centre (x+0.5, y+0.5) shows
// src at toSrc(x+0.5, y+0.5), sampled bilinearly; what falls outside src
// is fill. toSrc maps the output to the source, so every output pixel is
// computed exactly once.
func WarpGray(src *image.Gray, toSrc Homography, w, h int, fill uint8) *image.Gray {
	dst := image.NewGray(image.Rect(0, 0, w, h))
	b := src.Bounds()
	sw, sh := b.Dx(), b.Dy()
	pix := src.Pix[src.PixOffset(b.Min.X, b.Min.Y):]
	for y := range h {
		row := dst.Pix[y*dst.Stride : y*dst.Stride+w]
		eachSource(toSrc, y, w, func(x int, sx, sy float64) {
			row[x] = bilinear(pix, src.Stride, 1, sw, sh, sx, sy, fill)
		})
	}
	return dst
}

// eachSource calls fn with the source position of every pixel centre of
// output row y. The homography's numerators and denominator are linear in
// x, so they are stepped rather than recomputed.
func eachSource(toSrc Homography, y, w int, fn func(x int, sx, sy float64)) {
	fy := float64(y) + 0.5
	nx := toSrc[0]*0.5 + toSrc[1]*fy + toSrc[2]
	ny := toSrc[3]*0.5 + toSrc[4]*fy + toSrc[5]
	nw := toSrc[6]*0.5 + toSrc[7]*fy + toSrc[8]
	for x := range w {
		// Pixel centres in the source are at +0.5: shift to the
		// sample grid.
		fn(x, nx/nw-0.5, ny/nw-0.5)
		nx += toSrc[0]
		ny += toSrc[3]
		nw += toSrc[6]
	}
}

// bilinear interpolates a plane of w x h samples, row r starting at
// pix[r*stride] and samples step bytes apart, at sample-grid position
// (x, y), where (0, 0) is the first pixel's centre. Positions more than
// half a pixel outside the plane are fill; the border row and column are
// extended over that half pixel.
func bilinear(pix []uint8, stride, step, w, h int, x, y float64, fill uint8) uint8 {
	if !(x >= -0.5 && y >= -0.5 && x <= float64(w)-0.5 && y <= float64(h)-0.5) {
		return fill // also catches NaN
	}
	x0, y0 := int(math.Floor(x)), int(math.Floor(y))
	fx, fy := x-float64(x0), y-float64(y0)
	x0, x1 := step*clampInt(x0, 0, w-1), step*clampInt(x0+1, 0, w-1)
	r0 := pix[clampInt(y0, 0, h-1)*stride:]
	r1 := pix[clampInt(y0+1, 0, h-1)*stride:]
	top := float64(r0[x0]) + fx*(float64(r0[x1])-float64(r0[x0]))
	bot := float64(r1[x0]) + fx*(float64(r1[x1])-float64(r1[x0]))
	return uint8(top + fy*(bot-top) + 0.5)
}

func clampInt(v, lo, hi int) int { return max(lo, min(hi, v)) }

// WarpImage is WarpGray for any image: a grey image stays grey, anything
// else is resampled as RGBA. fill is the grey level outside src.
func WarpImage(src image.Image, toSrc Homography, w, h int, fill uint8) image.Image {
	if g, ok := src.(*image.Gray); ok && g.Rect.Min == (image.Point{}) {
		return WarpGray(g, toSrc, w, h, fill)
	}
	b := src.Bounds()
	rgba, ok := src.(*image.RGBA)
	if !ok || b.Min != (image.Point{}) {
		rgba = image.NewRGBA(image.Rect(0, 0, b.Dx(), b.Dy()))
		draw.Draw(rgba, rgba.Rect, src, b.Min, draw.Src)
	}
	sw, sh := b.Dx(), b.Dy()
	dst := image.NewRGBA(image.Rect(0, 0, w, h))
	// Alpha is premultiplied, so interpolating each channel alone is right.
	fills := [4]uint8{fill, fill, fill, 255}
	for y := range h {
		row := dst.Pix[y*dst.Stride : y*dst.Stride+4*w]
		eachSource(toSrc, y, w, func(x int, sx, sy float64) {
			for c, f := range fills {
				row[4*x+c] = bilinear(rgba.Pix[c:], rgba.Stride, 4, sw, sh, sx, sy, f)
			}
		})
	}
	return dst
}
