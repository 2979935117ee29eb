package imageio

import (
	"bytes"
	"encoding/binary"
)

// jpegOrientation finds the EXIF orientation in a JPEG's APP1 segment.
func jpegOrientation(b []byte) int {
	i := 2 // after SOI
	for i+4 <= len(b) {
		if b[i] != 0xff {
			return 0
		}
		marker := b[i+1]
		if marker == 0xff { // fill byte
			i++
			continue
		}
		if marker == 0xda || marker == 0xd9 { // start of scan, end of image
			return 0
		}
		if marker >= 0xd0 && marker <= 0xd7 || marker == 0x01 { // no length
			i += 2
			continue
		}
		n := int(binary.BigEndian.Uint16(b[i+2:]))
		if n < 2 || i+2+n > len(b) {
			return 0
		}
		seg := b[i+4 : i+2+n]
		if marker == 0xe1 && bytes.HasPrefix(seg, []byte("Exif\x00\x00")) {
			return exifOrientation(seg[6:])
		}
		i += 2 + n
	}
	return 0
}

// pngOrientation reads an eXIf chunk placed before the image data.
func pngOrientation(b []byte) int {
	i := 8
	for i+12 <= len(b) {
		n := int(binary.BigEndian.Uint32(b[i:]))
		typ := string(b[i+4 : i+8])
		if n < 0 || i+12+n > len(b) || typ == "IDAT" {
			return 0
		}
		if typ == "eXIf" {
			return exifOrientation(b[i+8 : i+8+n])
		}
		i += 12 + n
	}
	return 0
}

// webpOrientation reads the EXIF chunk of an extended WebP file.
func webpOrientation(b []byte) int {
	i := 12
	for i+8 <= len(b) {
		n := int(binary.LittleEndian.Uint32(b[i+4:]))
		if n < 0 || i+8+n > len(b) {
			return 0
		}
		if string(b[i:i+4]) == "EXIF" {
			seg := b[i+8 : i+8+n]
			// Some writers keep the JPEG-style prefix.
			seg = bytes.TrimPrefix(seg, []byte("Exif\x00\x00"))
			return exifOrientation(seg)
		}
		i += 8 + n + n&1 // chunks are padded to even sizes
	}
	return 0
}
