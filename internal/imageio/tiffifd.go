package imageio

import (
	"context"
	"encoding/binary"
	"io"
)

// This file reads just enough of the TIFF structure to list the pages of a
// multi-page TIFF and to find orientation tags (EXIF blocks in JPEG, PNG and
// WebP are TIFF structures too). Pixel decoding stays with x/image/tiff.

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

// tiffPage locates one page of a TIFF file.
type tiffPage struct {
	ifd         uint32
	orientation int
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

// pageReader presents a TIFF file whose header points at another IFD, so a
// single-image decoder reads page N without the file being copied. Every
// read checks ctx, which bounds decode time.
type pageReader struct {
	ctx   context.Context
	data  []byte
	patch [4]byte // replaces bytes 4..8, the first-IFD offset
	pos   int64
}

func newPageReader(ctx context.Context, data []byte, bo binary.ByteOrder, ifd uint32) *pageReader {
	r := &pageReader{ctx: ctx, data: data}
	bo.PutUint32(r.patch[:], ifd)
	return r
}

// ReadAt implements io.ReaderAt.
func (r *pageReader) ReadAt(p []byte, off int64) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	if off < 0 {
		return 0, io.ErrUnexpectedEOF
	}
	if off >= int64(len(r.data)) {
		return 0, io.EOF
	}
	n := copy(p, r.data[off:])
	for i := max(4-off, 0); i < int64(n) && off+i < 8; i++ {
		p[i] = r.patch[off+i-4]
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// Read implements io.Reader over the same view.
func (r *pageReader) Read(p []byte) (int, error) {
	n, err := r.ReadAt(p, r.pos)
	r.pos += int64(n)
	if err == io.EOF && n > 0 {
		err = nil
	}
	return n, err
}
