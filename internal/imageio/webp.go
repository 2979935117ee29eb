package imageio

import (
	"encoding/binary"
	"image"
)

// webpCost is what x/image/webp allocates for the page cfg describes,
// from the chunks it will decode rather than from cfg's colour model
// (which an extended file takes from its VP8X chunk, whatever follows):
// a VP8L chunk costs what vp8lCost counts; a VP8 chunk a 4:2:0 YCbCr page
// padded to whole macroblocks plus a copy of the data's partitions; an
// ALPH chunk the alpha plane, decoded through a lossless image when
// compressed. A file whose chunks cannot be read is charged all of them
// (x/image refuses it anyway).
func webpCost(data []byte, cfg image.Config, budget int64) (int64, pixelKind) {
	w, h := cfg.Width, cfg.Height
	px := int64(w) * int64(h)
	mbs := int64((w+15)/16) * int64((h+15)/16)
	lossy := 384*mbs + 8*mbs + int64(len(data))
	l, ok := webpChunks(data)
	if !ok {
		return lossy + px + 2*vp8lWorstCost(w, h), subsampledYCC
	}
	var alpha int64
	switch {
	case l.alpha == nil:
	case l.alphaCompressed:
		alpha = px + vp8lCost(l.alpha, w, h, budget)
	default:
		alpha = px
	}
	if l.lossless != nil {
		return alpha + vp8lCost(l.lossless, w, h, budget), fourPerPixel
	}
	return alpha + lossy, subsampledYCC
}

// webpLayout is what x/image/webp decodes of a file: a VP8L stream (after
// its header) or a VP8 frame, after an alpha plane if there is one.
type webpLayout struct {
	lossless        []byte
	alpha           []byte // after the ALPH chunk's first byte
	alphaCompressed bool
}

// webpChunks walks the chunks of a WebP file as x/image/webp does, up to
// the first VP8 or VP8L chunk; ok is false where x/image fails first.
// A chunk running past the data is cut short, as x/image reads it.
func webpChunks(data []byte) (l webpLayout, ok bool) {
	le := binary.LittleEndian
	if len(data) < 12 || le.Uint32(data[4:]) < 4 {
		return l, false
	}
	left := int64(le.Uint32(data[4:])) - 4 // the list's bytes after "WEBP"
	var vp8x, wantAlpha, padded bool
	for i := 12; ; {
		if padded {
			if left == 0 || i >= len(data) {
				return l, false
			}
			i, left = i+1, left-1
		}
		if left < 8 || i+8 > len(data) {
			return l, false
		}
		id, n := string(data[i:i+4]), int64(le.Uint32(data[i+4:]))
		if left -= 8; n > left {
			return l, false
		}
		body := data[i+8 : i+8+int(min(n, int64(len(data)-i-8)))]
		switch id {
		case "ALPH":
			if !wantAlpha || len(body) == 0 {
				return l, false
			}
			wantAlpha = false
			l.alpha, l.alphaCompressed = body[1:], body[0]&3 == 1
		case "VP8 ":
			return l, !wantAlpha
		case "VP8L":
			if len(body) < 5 {
				return l, false
			}
			l.lossless = body[5:]
			return l, true
		case "VP8X":
			if vp8x || n != 10 || len(body) < 10 {
				return l, false
			}
			vp8x, wantAlpha = true, body[0]&(1<<4) != 0
		}
		i, left, padded = i+8+int(n), left-int64(n), n&1 == 1
	}
}
