package imageio

import "encoding/binary"

// This file walks the TIFF structure: the chain of pages of a multi-page
// TIFF, and the orientation tag of an EXIF block (EXIF blocks in JPEG, PNG
// and WebP are TIFF structures too). tiff.go parses and decodes the pages.

const (
	tagOrientation = 0x0112
	typeShort      = 3
)

// tiffHeader parses a classic TIFF header and returns its byte order and
// the offset of the first IFD. BigTIFF is reported as unsupported.
func tiffHeader(b []byte) (binary.ByteOrder, uint32, error) {
	if len(b) < 8 {
		return nil, 0, errorf(ErrUndecodable, "tiff: header truncated")
	}
	var bo binary.ByteOrder
	switch string(b[:2]) {
	case "II":
		bo = binary.LittleEndian
	case "MM":
		bo = binary.BigEndian
	default:
		return nil, 0, errorf(ErrUndecodable, "tiff: bad byte-order mark")
	}
	switch bo.Uint16(b[2:4]) {
	case 42:
	case 43:
		return nil, 0, errorf(ErrUnsupported, "BigTIFF is not supported; save as classic TIFF")
	default:
		return nil, 0, errorf(ErrUndecodable, "tiff: bad magic number")
	}
	return bo, bo.Uint32(b[4:8]), nil
}

// ifdInfo is what we need from one image file directory.
type ifdInfo struct {
	next        uint32
	orientation int // 0 when the tag is absent
}

// readIFD reads the IFD at off. It never reads outside b.
func readIFD(b []byte, bo binary.ByteOrder, off uint32) (ifdInfo, error) {
	if uint64(off)+2 > uint64(len(b)) {
		return ifdInfo{}, errorf(ErrUndecodable, "tiff: directory offset %d outside the file", off)
	}
	n := uint64(bo.Uint16(b[off:]))
	end := uint64(off) + 2 + 12*n
	if end+4 > uint64(len(b)) {
		return ifdInfo{}, errorf(ErrUndecodable, "tiff: directory at %d truncated", off)
	}
	var info ifdInfo
	for i := uint64(0); i < n; i++ {
		e := b[uint64(off)+2+12*i:]
		if bo.Uint16(e[0:2]) == tagOrientation && bo.Uint16(e[2:4]) == typeShort {
			info.orientation = int(bo.Uint16(e[8:10]))
		}
	}
	info.next = bo.Uint32(b[end:])
	return info, nil
}

// tiffPages walks the IFD chain. It returns at most maxPages+1 entries so a
// caller can tell "too many" without walking a hostile chain to its end, and
// it stops on loops.
func tiffPages(b []byte, maxPages int) ([]tiffPage, binary.ByteOrder, error) {
	bo, off, err := tiffHeader(b)
	if err != nil {
		return nil, nil, err
	}
	seen := make(map[uint32]bool)
	var pages []tiffPage
	for off != 0 && len(pages) <= maxPages {
		if seen[off] {
			return nil, nil, errorf(ErrUndecodable, "tiff: directory chain loops at offset %d", off)
		}
		seen[off] = true
		info, err := readIFD(b, bo, off)
		if err != nil {
			if len(pages) > 0 {
				// A broken link after good pages: keep what is readable,
				// as libtiff does, rather than losing the whole document.
				break
			}
			return nil, nil, err
		}
		pages = append(pages, tiffPage{ifd: off, orientation: info.orientation})
		off = info.next
	}
	if len(pages) == 0 {
		return nil, nil, errorf(ErrUndecodable, "tiff: no image directory")
	}
	return pages, bo, nil
}

// exifOrientation reads the orientation tag from IFD0 of an EXIF TIFF
// block. It returns 0 when absent or unreadable: a broken EXIF block must
// not make an otherwise good image fail.
func exifOrientation(b []byte) int {
	bo, off, err := tiffHeader(b)
	if err != nil {
		return 0
	}
	info, err := readIFD(b, bo, off)
	if err != nil {
		return 0
	}
	return info.orientation
}
