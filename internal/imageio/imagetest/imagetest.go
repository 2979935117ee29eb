// Package imagetest makes test images, including hostile ones that real
// encoders refuse to write: headers claiming huge sizes, TIFF directory
// loops, EXIF orientations, decompression bombs in every format the
// server reads (bombs.go), and lossless WebPs whose Huffman codes
// outweigh their pixels (vp8l.go). It is for tests only.
package imagetest

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"testing"

	"golang.org/x/image/bmp"
	"golang.org/x/image/tiff"
)

// TinyWebP is an 8x4 gray gradient, lossless, made by `cwebp -lossless`.
var TinyWebP = []byte{
	0x52, 0x49, 0x46, 0x46, 0x32, 0x00, 0x00, 0x00, 0x57, 0x45, 0x42, 0x50,
	0x56, 0x50, 0x38, 0x4c, 0x26, 0x00, 0x00, 0x00, 0x2f, 0x07, 0xc0, 0x00,
	0x00, 0x3f, 0x20, 0x10, 0x48, 0x22, 0xd9, 0x1f, 0x74, 0x88, 0xf1, 0x18,
	0x8f, 0xf9, 0x4f, 0x6c, 0x07, 0x61, 0xb6, 0x91, 0xc2, 0x58, 0xc6, 0x32,
	0x96, 0xf3, 0x7f, 0x1d, 0x43, 0x44, 0xff, 0x03, 0xdb, 0x07,
}

// Marked returns a w x h gray image, white except for a black pixel at
// (1, 0), so a test can see where the top-left corner went.
func Marked(w, h int) *image.Gray {
	g := image.NewGray(image.Rect(0, 0, w, h))
	for i := range g.Pix {
		g.Pix[i] = 255
	}
	g.SetGray(1, 0, color.Gray{0})
	return g
}

// Encode writes img in format ("png", "jpeg", "gif", "bmp" or "tiff").
func Encode(t testing.TB, format string, img image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	var err error
	switch format {
	case "png":
		err = png.Encode(&b, img)
	case "jpeg":
		err = jpeg.Encode(&b, img, &jpeg.Options{Quality: 95})
	case "gif":
		err = gif.Encode(&b, img, nil)
	case "bmp":
		err = bmp.Encode(&b, img)
	case "tiff":
		err = tiff.Encode(&b, img, nil)
	default:
		t.Fatalf("imagetest: no encoder for %s", format)
	}
	if err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TIFFPage describes one uncompressed 8-bit gray page for TIFF.
type TIFFPage struct {
	Img         *image.Gray
	W, H        uint32 // header dimensions; default to the image's
	Orientation uint16 // 0: no orientation tag
}

// TIFF writes a little-endian multi-page TIFF by hand. With loop, the last
// directory points back at the first.
func TIFF(pages []TIFFPage, loop bool) []byte {
	le := binary.LittleEndian
	out := []byte("II*\x00\x00\x00\x00\x00")
	var prevNext, first int
	for i, p := range pages {
		if p.W == 0 {
			p.W, p.H = uint32(p.Img.Rect.Dx()), uint32(p.Img.Rect.Dy())
		}
		dataOff := len(out)
		out = append(out, p.Img.Pix...)
		if len(out)%2 == 1 {
			out = append(out, 0)
		}
		ifdOff := len(out)
		if i == 0 {
			first = ifdOff
			le.PutUint32(out[4:], uint32(ifdOff))
		} else {
			le.PutUint32(out[prevNext:], uint32(ifdOff))
		}
		type entry struct {
			tag, typ uint16
			val      uint32
		}
		// Tags must be in ascending order.
		entries := []entry{
			{256, 4, p.W}, {257, 4, p.H}, {258, 3, 8}, {259, 3, 1}, {262, 3, 1},
			{273, 4, uint32(dataOff)},
		}
		if p.Orientation != 0 {
			entries = append(entries, entry{274, 3, uint32(p.Orientation)})
		}
		entries = append(entries, entry{277, 3, 1}, entry{278, 4, p.H}, entry{279, 4, uint32(len(p.Img.Pix))})
		out = le.AppendUint16(out, uint16(len(entries)))
		for _, e := range entries {
			out = le.AppendUint16(out, e.tag)
			out = le.AppendUint16(out, e.typ)
			out = le.AppendUint32(out, 1)
			if e.typ == 3 {
				out = le.AppendUint16(out, uint16(e.val))
				out = le.AppendUint16(out, 0)
			} else {
				out = le.AppendUint32(out, e.val)
			}
		}
		prevNext = len(out)
		out = le.AppendUint32(out, 0)
	}
	if loop {
		le.PutUint32(out[prevNext:], uint32(first))
	}
	return out
}

// PNGHeader returns a PNG whose IHDR claims w x h but carries almost no
// data: a decompression bomb's header.
func PNGHeader(w, h uint32) []byte {
	chunk := func(typ string, data []byte) []byte {
		out := binary.BigEndian.AppendUint32(nil, uint32(len(data)))
		out = append(out, typ...)
		out = append(out, data...)
		return binary.BigEndian.AppendUint32(out, crc32.ChecksumIEEE(append([]byte(typ), data...)))
	}
	ihdr := binary.BigEndian.AppendUint32(nil, w)
	ihdr = binary.BigEndian.AppendUint32(ihdr, h)
	ihdr = append(ihdr, 8, 0, 0, 0, 0)
	out := []byte("\x89PNG\r\n\x1a\n")
	out = append(out, chunk("IHDR", ihdr)...)
	out = append(out, chunk("IDAT", []byte{0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01})...)
	return append(out, chunk("IEND", nil)...)
}

// JPEGWithOrientation encodes img as JPEG with an EXIF APP1 segment
// carrying the given orientation right after the SOI marker.
func JPEGWithOrientation(t testing.TB, img image.Image, o uint16) []byte {
	j := Encode(t, "jpeg", img)
	tiffBlock := []byte("MM\x00\x2a\x00\x00\x00\x08\x00\x01\x01\x12\x00\x03\x00\x00\x00\x01")
	tiffBlock = binary.BigEndian.AppendUint16(tiffBlock, o)
	tiffBlock = append(tiffBlock, 0, 0, 0, 0, 0, 0)
	seg := append([]byte("Exif\x00\x00"), tiffBlock...)
	app1 := []byte{0xff, 0xe1}
	app1 = binary.BigEndian.AppendUint16(app1, uint16(len(seg)+2))
	app1 = append(app1, seg...)
	return append(append(append([]byte{}, j[:2]...), app1...), j[2:]...)
}
