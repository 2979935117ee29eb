package imageio

import (
	"context"
	"image"
)

// PNM (PBM, PGM, PPM; P1 to P6) is small enough to decode here, with the
// same limits as every other format: the header is checked before any
// pixel buffer is allocated.

type pnmHeader struct {
	kind   byte // '1'..'6'
	w, h   int
	maxval int
	data   int // offset of the raster
}

func parsePNMHeader(b []byte) (pnmHeader, error) {
	if Sniff(b) != PNM {
		return pnmHeader{}, errorf(ErrUndecodable, "pnm: bad magic")
	}
	h := pnmHeader{kind: b[1], maxval: 1}
	i := 2
	next := func() (int, error) {
		// Skip whitespace and comments.
		for i < len(b) {
			if b[i] == '#' {
				for i < len(b) && b[i] != '\n' && b[i] != '\r' {
					i++
				}
				continue
			}
			if !isPNMSpace(b[i]) {
				break
			}
			i++
		}
		start, v := i, 0
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			v = v*10 + int(b[i]-'0')
			if v > 1<<30 {
				return 0, errorf(ErrTooLarge, "pnm: header number too large")
			}
			i++
		}
		if i == start {
			return 0, errorf(ErrUndecodable, "pnm: header truncated or malformed")
		}
		return v, nil
	}
	var err error
	if h.w, err = next(); err != nil {
		return h, err
	}
	if h.h, err = next(); err != nil {
		return h, err
	}
	if h.kind != '1' && h.kind != '4' {
		if h.maxval, err = next(); err != nil {
			return h, err
		}
		if h.maxval < 1 || h.maxval > 65535 {
			return h, errorf(ErrUndecodable, "pnm: maxval %d out of range", h.maxval)
		}
	}
	if h.w < 1 || h.h < 1 {
		return h, errorf(ErrUndecodable, "pnm: empty image %dx%d", h.w, h.h)
	}
	// Exactly one whitespace byte separates the header from a binary raster.
	if i >= len(b) || !isPNMSpace(b[i]) {
		return h, errorf(ErrUndecodable, "pnm: header not terminated")
	}
	h.data = i + 1
	return h, nil
}

// channels is 3 for a pixmap (P3, P6), 1 otherwise.
func (h pnmHeader) channels() int {
	if h.kind == '3' || h.kind == '6' {
		return 3
	}
	return 1
}

// pixels is how the decoded page stores its pixels: Gray, or RGBA for a
// pixmap.
func (h pnmHeader) pixels() pixelKind {
	if h.channels() == 3 {
		return fourPerPixel
	}
	return onePerPixel
}

// decodeBytes is what decoding costs: the page alone.
func (h pnmHeader) decodeBytes() int64 { return h.pixels().bytes() * int64(h.w) * int64(h.h) }

// decodePNM decodes to Gray (P1, P2, P4, P5) or RGBA (P3, P6), writing
// samples scaled to 8 bits straight into the page: 1 or 4 bytes a pixel.
// The caller has already checked the limits.
func decodePNM(ctx context.Context, b []byte) (image.Image, error) {
	h, err := parsePNMHeader(b)
	if err != nil {
		return nil, err
	}
	channels := h.channels()
	samples := h.w * h.h * channels
	scale := func(v int) uint8 { return uint8((v*255 + h.maxval/2) / h.maxval) }
	r := image.Rect(0, 0, h.w, h.h)
	var img image.Image
	var out []uint8
	if channels == 1 {
		g := image.NewGray(r)
		img, out = g, g.Pix
	} else {
		m := image.NewRGBA(r)
		img, out = m, m.Pix
		for i := 3; i < len(out); i += 4 {
			out[i] = 0xff
		}
	}
	// at is where sample k goes: grey samples are the pixels, colour
	// samples fill three of each pixel's four bytes.
	at := func(k int) int {
		if channels == 1 {
			return k
		}
		return k/3*4 + k%3
	}
	pos := h.data
	switch h.kind {
	case '4': // packed bits, rows padded to bytes, 1 = black
		rowBytes := (h.w + 7) / 8
		if len(b)-pos < rowBytes*h.h {
			return nil, errorf(ErrUndecodable, "pnm: raster truncated")
		}
		for y := 0; y < h.h; y++ {
			row := b[pos+y*rowBytes:]
			for x := 0; x < h.w; x++ {
				if row[x/8]&(0x80>>(x%8)) == 0 {
					out[y*h.w+x] = 0xff
				}
			}
		}
	case '5', '6':
		size := 1
		if h.maxval > 255 {
			size = 2
		}
		if len(b)-pos < samples*size {
			return nil, errorf(ErrUndecodable, "pnm: raster truncated")
		}
		for k := 0; k < samples; k++ {
			v := int(b[pos+k*size])
			if size == 2 {
				v = v<<8 | int(b[pos+k*size+1])
			}
			out[at(k)] = scale(min(v, h.maxval))
		}
	default: // '1', '2', '3': ASCII samples
		i := h.data - 1
		for k := 0; k < samples; k++ {
			if k%65536 == 0 && ctx.Err() != nil {
				return nil, ctx.Err()
			}
			for i < len(b) && (isPNMSpace(b[i]) || b[i] == '#') {
				if b[i] == '#' {
					for i < len(b) && b[i] != '\n' {
						i++
					}
					continue
				}
				i++
			}
			if i >= len(b) {
				return nil, errorf(ErrUndecodable, "pnm: raster truncated")
			}
			v := 0
			if h.kind == '1' { // one digit per pixel, whitespace optional
				if b[i] != '0' && b[i] != '1' {
					return nil, errorf(ErrUndecodable, "pnm: bad bitmap sample")
				}
				if b[i] == '0' {
					v = 1
				}
				i++
			} else {
				start := i
				for i < len(b) && b[i] >= '0' && b[i] <= '9' && v <= 65535 {
					v = v*10 + int(b[i]-'0')
					i++
				}
				if i == start {
					return nil, errorf(ErrUndecodable, "pnm: bad sample")
				}
			}
			out[at(k)] = scale(min(v, h.maxval))
		}
	}
	return img, nil
}
