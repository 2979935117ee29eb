package imageio

import (
	"encoding/binary"
	"image"
	"image/color"
)

// Decoding one page may allocate at most 4 bytes per pixel of
// Limits.MaxPixels and 1 MB more (decodeSlack) for rows, tables and
// decompressor state: that is the bound the documentation promises per
// worker. The decoders written here
// (PNG, TIFF, PNM) need at most 4 bytes a pixel for any page within the
// pixel limit. The standard ones need what their format makes them: a
// progressive JPEG keeps every DCT coefficient (4 bytes a pixel for each
// full-resolution component) and a CMYK or RGB JPEG is converted into a
// second image. Open works out from the headers what each page will cost,
// turning it upright included, and refuses a page over the budget as too
// large before anything is allocated (TestDecodeMemoryBound measures each
// decoder against its estimate).

const (
	// bytesPerPixelBudget and decodeSlack are the documented bound:
	// decoding a page allocates at most bytesPerPixelBudget bytes per pixel
	// of Limits.MaxPixels plus decodeSlack.
	bytesPerPixelBudget = 4
	decodeSlack         = 1 << 20
)

// decodeBudget is what a page's estimated cost (its pixels, converted
// copies and rows) may reach: half the slack is kept for the state the
// estimates leave out (decompressor windows, Huffman tables).
func (l Limits) decodeBudget() int64 { return bytesPerPixelBudget*l.MaxPixels + decodeSlack/2 }

// pixelKind is how a decoded page stores its pixels, which is what turning
// it upright costs.
type pixelKind int

const (
	onePerPixel   pixelKind = iota // Gray, Paletted: flipped in place, 1 byte a pixel when turned
	fourPerPixel                   // RGBA, NRGBA, CMYK: flipped in place, 4 bytes a pixel when turned
	subsampledYCC                  // YCbCr, NYCbCrA: any turn makes a new 4-byte RGBA or NRGBA page
)

// bytes is what one pixel of a page of this kind takes turned (the copy
// of a YCbCr page is RGBA).
func (k pixelKind) bytes() int64 {
	if k == onePerPixel {
		return 1
	}
	return 4
}

// orientBytes is what Orientation.upright allocates for a page of px
// pixels.
func orientBytes(o Orientation, kind pixelKind, px int64) int64 {
	switch {
	case !o.valid() || o == Upright:
		return 0
	case kind != subsampledYCC && !o.swapsAxes():
		return 0 // mirrored and half turns happen in place
	}
	return kind.bytes() * px
}

// stdCost is what a standard library or x/image decoder allocates for the
// page cfg describes, and how the result stores its pixels.
// budget is the most the page may cost: counting may stop beyond it.
func stdCost(f Format, data []byte, cfg image.Config, budget int64) (int64, pixelKind) {
	w, h := int64(cfg.Width), int64(cfg.Height)
	px := w * h
	switch f {
	case JPEG:
		return jpegCost(data, px)
	case GIF:
		// The first frame (at most the screen), a copy of it in row
		// order when it is interlaced and, when it is smaller, a
		// paletted canvas the size of the screen.
		return 3 * px, onePerPixel
	case BMP:
		if _, paletted := cfg.ColorModel.(color.Palette); paletted {
			return px + 4*w, onePerPixel // plus a row buffer
		}
		return 4*px + 4*w, fourPerPixel
	case WebP:
		return webpCost(data, cfg, budget)
	}
	return 4 * px, fourPerPixel
}

// jpegCost walks the markers of a JPEG for what image/jpeg will allocate:
// the component planes, padded to whole MCUs; for a progressive JPEG the
// coefficients, 256 bytes per 8x8 block; for CMYK, YCbCrK and RGB the
// converted 4-byte page. A JPEG whose markers cannot be read costs as the
// worst case would; the decoder refuses it anyway.
func jpegCost(data []byte, px int64) (int64, pixelKind) {
	worst := 4*5*px + 4*px // four progressive components, converted
	var (
		jfif, adobe, progressive, seenSOF bool
		transform                         byte
		comps                             [][3]int // id, h, v
		w, h                              int
	)
	for i := 2; i+4 <= len(data); {
		if data[i] != 0xff {
			// Entropy-coded data: skip to the next marker that is not a
			// stuffed zero or a restart.
			i++
			continue
		}
		m := data[i+1]
		switch {
		case m == 0xff:
			i++
			continue
		case m == 0x00 || (m >= 0xd0 && m <= 0xd8) || m == 0x01:
			i += 2
			continue
		case m == 0xd9:
			i = len(data)
			continue
		}
		n := int(binary.BigEndian.Uint16(data[i+2:]))
		if n < 2 || i+2+n > len(data) {
			break
		}
		seg := data[i+4 : i+2+n]
		switch {
		case m == 0xe0 && len(seg) >= 5 && string(seg[:5]) == "JFIF\x00":
			jfif = true
		case m == 0xee && len(seg) >= 12 && string(seg[:5]) == "Adobe":
			adobe, transform = true, seg[11]
		case (m == 0xc0 || m == 0xc1 || m == 0xc2) && !seenSOF && len(seg) >= 6:
			seenSOF, progressive = true, m == 0xc2
			h, w = int(binary.BigEndian.Uint16(seg[1:])), int(binary.BigEndian.Uint16(seg[3:]))
			for c := 0; c < int(seg[5]) && 6+3*c+2 < len(seg); c++ {
				hv := seg[7+3*c]
				comps = append(comps, [3]int{int(seg[6+3*c]), max(int(hv>>4), 1), max(int(hv&0xf), 1)})
			}
		}
		i += 2 + n
	}
	if !seenSOF || len(comps) == 0 || w == 0 || h == 0 {
		return worst, fourPerPixel
	}
	if len(comps) == 1 {
		comps[0][1], comps[0][2] = 1, 1
	}
	h0, v0 := comps[0][1], comps[0][2]
	mxx, myy := int64((w+8*h0-1)/(8*h0)), int64((h+8*v0-1)/(8*v0))
	var cost int64
	for _, c := range comps {
		blocks := mxx * myy * int64(c[1]*c[2])
		cost += 64 * blocks
		if progressive {
			cost += 256 * blocks
		}
	}
	switch {
	case len(comps) == 1:
		return cost, onePerPixel
	case len(comps) == 4:
		return cost + 4*px, fourPerPixel
	case len(comps) == 3 && !jfif && ((adobe && transform == 0) ||
		(comps[0][0] == 'R' && comps[1][0] == 'G' && comps[2][0] == 'B')):
		return cost + 4*px, fourPerPixel
	}
	return cost, subsampledYCC
}
