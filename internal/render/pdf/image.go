package pdf

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"image"
	"image/color"
	"image/draw"
	"image/png"
)

// xobject is an image XObject ready to write: its dictionary entries
// (without /Length) and its (already filtered) data.
type xobject struct {
	dict string
	data []byte
}

// imageXObject encodes img for the page. JPEG bytes go in as they are
// (DCTDecode); PNG bytes that PDF can read directly lend their zlib data
// and predictors (FlateDecode, no decoding); anything else is encoded as
// PNG first and goes the same way: bilevel pages as 1 bit per pixel, grey
// as 8, colour as RGB over white.
func imageXObject(img Image) (xobject, error) {
	if len(img.Encoded) > 0 {
		if x, ok := jpegXObject(img.Encoded, img.Width, img.Height); ok {
			return x, nil
		}
		if x, ok := pngXObject(img.Encoded, img.Width, img.Height); ok {
			return x, nil
		}
	}
	if img.Pixels == nil {
		return xobject{}, errors.New("pdf: the page image has neither pixels nor an encoding a PDF can embed")
	}
	if b := img.Pixels.Bounds(); b.Dx() != img.Width || b.Dy() != img.Height {
		return xobject{}, fmt.Errorf("pdf: page image is %dx%d, the page %dx%d", b.Dx(), b.Dy(), img.Width, img.Height)
	}
	var buf bytes.Buffer
	enc := png.Encoder{CompressionLevel: png.DefaultCompression}
	if err := enc.Encode(&buf, normalize(img.Pixels)); err != nil {
		return xobject{}, err
	}
	x, ok := pngXObject(buf.Bytes(), img.Width, img.Height)
	if !ok {
		return xobject{}, errors.New("pdf: internal PNG encoding not embeddable")
	}
	return x, nil
}

var bilevel = color.Palette{color.Gray{0}, color.Gray{255}}

// normalize turns img into what the PNG encoder writes in a form PDF
// reads: a 1-bit palette for black-and-white pages, 8-bit grey, or opaque
// RGB (transparency flattened over white).
func normalize(img image.Image) image.Image {
	b := img.Bounds()
	gray, ok := img.(*image.Gray)
	if !ok {
		gray = image.NewGray(b)
		for y := b.Min.Y; y < b.Max.Y; y++ {
			for x := b.Min.X; x < b.Max.X; x++ {
				r, g, bl, a := img.At(x, y).RGBA()
				if a != 0xFFFF || r != g || g != bl {
					return overWhite(img)
				}
				gray.Pix[gray.PixOffset(x, y)] = uint8(r >> 8)
			}
		}
	}
	for y := b.Min.Y; y < b.Max.Y; y++ {
		row := gray.Pix[gray.PixOffset(b.Min.X, y):gray.PixOffset(b.Max.X, y)]
		for _, v := range row {
			if v != 0 && v != 255 {
				return gray
			}
		}
	}
	bw := image.NewPaletted(b, bilevel)
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			if gray.Pix[gray.PixOffset(x, y)] != 0 {
				bw.Pix[bw.PixOffset(x, y)] = 1
			}
		}
	}
	return bw
}

func overWhite(img image.Image) image.Image {
	out := image.NewRGBA(img.Bounds())
	draw.Draw(out, out.Bounds(), image.White, image.Point{}, draw.Src)
	draw.Draw(out, out.Bounds(), img, img.Bounds().Min, draw.Over)
	return out
}

// jpegXObject embeds a baseline or progressive JPEG of w x h pixels with
// one (grey) or three (YCbCr) components as it is.
func jpegXObject(data []byte, w, h int) (xobject, bool) {
	if len(data) < 4 || data[0] != 0xFF || data[1] != 0xD8 {
		return xobject{}, false
	}
	for i := 2; i+9 < len(data); {
		if data[i] != 0xFF {
			return xobject{}, false
		}
		m := data[i+1]
		if m == 0xFF {
			i++
			continue
		}
		if m == 0xD8 || m == 0x01 || (m >= 0xD0 && m <= 0xD7) {
			i += 2
			continue
		}
		n := int(binary.BigEndian.Uint16(data[i+2:]))
		// SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC).
		if m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC {
			bpc := int(data[i+4])
			hh := int(binary.BigEndian.Uint16(data[i+5:]))
			ww := int(binary.BigEndian.Uint16(data[i+7:]))
			nc := int(data[i+9])
			cs := map[int]string{1: "/DeviceGray", 3: "/DeviceRGB"}[nc]
			if m > 0xC2 || ww != w || hh != h || bpc != 8 || cs == "" {
				return xobject{}, false // lossless, arithmetic, CMYK or 12-bit: decode instead
			}
			return xobject{dict: fmt.Sprintf("/Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace %s /BitsPerComponent 8 /Filter /DCTDecode", w, h, cs), data: data}, true
		}
		if m == 0xDA { // start of scan before any frame header
			return xobject{}, false
		}
		i += 2 + n
	}
	return xobject{}, false
}

// pngXObject embeds a non-interlaced PNG of w x h pixels without
// transparency, grey (1 to 8 bits), RGB (8 bits) or palette: its IDAT
// chunks are a zlib stream with PNG row filters, which FlateDecode with
// /Predictor 15 reads as it is.
func pngXObject(data []byte, w, h int) (xobject, bool) {
	const sig = "\x89PNG\r\n\x1a\n"
	if !bytes.HasPrefix(data, []byte(sig)) {
		return xobject{}, false
	}
	var (
		width, height    int
		depth, ctype     byte
		palette, idat    []byte
		seenIHDR, seenTR bool
	)
	for p := data[len(sig):]; len(p) >= 12; {
		n := int(binary.BigEndian.Uint32(p))
		if n < 0 || n > len(p)-12 {
			return xobject{}, false
		}
		typ, body := string(p[4:8]), p[8:8+n]
		if crc32.ChecksumIEEE(p[4:8+n]) != binary.BigEndian.Uint32(p[8+n:]) {
			return xobject{}, false
		}
		switch typ {
		case "IHDR":
			if n != 13 || body[10] != 0 || body[11] != 0 || body[12] != 0 {
				return xobject{}, false // unknown compression/filter, or interlaced
			}
			width, height = int(binary.BigEndian.Uint32(body)), int(binary.BigEndian.Uint32(body[4:]))
			depth, ctype = body[8], body[9]
			seenIHDR = true
		case "PLTE":
			palette = body
		case "tRNS":
			seenTR = true
		case "IDAT":
			idat = append(idat, body...)
		}
		p = p[12+n:]
	}
	if !seenIHDR || seenTR || width != w || height != h || len(idat) == 0 {
		return xobject{}, false
	}
	var cs string
	colors := 1
	decode := ""
	switch {
	case ctype == 0 && depth <= 8:
		cs = "/DeviceGray"
	case ctype == 2 && depth == 8:
		cs, colors = "/DeviceRGB", 3
	case ctype == 3 && len(palette) >= 3 && len(palette)%3 == 0:
		if len(palette) == 6 && depth == 1 && isBW(palette) {
			// A black-and-white palette is grey, inverted if white comes first.
			cs = "/DeviceGray"
			if palette[0] != 0 {
				decode = " /Decode [1 0]"
			}
			break
		}
		cs = fmt.Sprintf("[/Indexed /DeviceRGB %d <%X>]", len(palette)/3-1, palette)
	default:
		return xobject{}, false // 16 bits, or an alpha channel
	}
	return xobject{
		dict: fmt.Sprintf("/Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace %s /BitsPerComponent %d%s /Filter /FlateDecode /DecodeParms << /Predictor 15 /Colors %d /BitsPerComponent %d /Columns %d >>",
			w, h, cs, depth, decode, colors, depth, w),
		data: idat,
	}, true
}

func isBW(p []byte) bool {
	black, white := []byte{0, 0, 0}, []byte{255, 255, 255}
	return (bytes.Equal(p[:3], black) && bytes.Equal(p[3:], white)) || (bytes.Equal(p[:3], white) && bytes.Equal(p[3:], black))
}

// Embeddable reports whether encoded, a JPEG or PNG of w x h pixels, goes
// into a PDF as it is (Image.Encoded), without decoding.
func Embeddable(encoded []byte, w, h int) bool {
	if _, ok := jpegXObject(encoded, w, h); ok {
		return true
	}
	_, ok := pngXObject(encoded, w, h)
	return ok
}
