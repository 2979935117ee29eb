package imageio

import (
	"errors"
	"io"
)

// lzwReader decompresses TIFF's LZW (most significant bit first, 8-bit
// literals, the code width growing one code early) like x/image/tiff/lzw,
// but it can be reset onto the next strip: a page of one-row strips, which
// libtiff writes for wide colour pages, would otherwise make a 20 KB
// decoder per row.
type lzwReader struct {
	r     io.ByteReader
	bits  uint32
	nBits uint
	width uint
	// hi is the code the next entry gets, overflow the first code that
	// needs a wider width, last the previous code (lzwInvalid after a
	// clear or when the table is full).
	hi, overflow, last uint16
	suffix             [1 << lzwMaxWidth]uint8
	prefix             [1 << lzwMaxWidth]uint16
	output             [2 << lzwMaxWidth]byte
	o                  int
	toRead             []byte
	err                error
}

const (
	lzwMaxWidth = 12
	lzwClear    = 256
	lzwEOI      = 257
	lzwInvalid  = 0xffff
)

var errLZWCode = errors.New("lzw: invalid code")

// reset starts decompressing a new stream from r.
func (d *lzwReader) reset(r io.ByteReader) {
	d.r, d.bits, d.nBits, d.o, d.toRead, d.err = r, 0, 0, 0, nil, nil
	d.width, d.hi, d.overflow, d.last = 9, lzwEOI, 1<<9, lzwInvalid
}

func (d *lzwReader) code() (uint16, error) {
	for d.nBits < d.width {
		x, err := d.r.ReadByte()
		if err != nil {
			return 0, err
		}
		d.bits |= uint32(x) << (24 - d.nBits)
		d.nBits += 8
	}
	c := uint16(d.bits >> (32 - d.width))
	d.bits <<= d.width
	d.nBits -= d.width
	return c, nil
}

func (d *lzwReader) Read(b []byte) (int, error) {
	for {
		if len(d.toRead) > 0 {
			n := copy(b, d.toRead)
			d.toRead = d.toRead[n:]
			return n, nil
		}
		if d.err != nil {
			return 0, d.err
		}
		d.decode()
	}
}

// decode turns codes into bytes until about 4 KB are ready, an error or
// the end of the stream, and leaves them in d.toRead.
func (d *lzwReader) decode() {
	for d.o < 1<<lzwMaxWidth {
		code, err := d.code()
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			d.err = err
			break
		}
		switch {
		case code < lzwClear:
			d.output[d.o] = uint8(code)
			d.o++
			if d.last != lzwInvalid {
				d.suffix[d.hi], d.prefix[d.hi] = uint8(code), d.last
			}
		case code == lzwClear:
			d.width, d.hi, d.overflow, d.last = 9, lzwEOI, 1<<9, lzwInvalid
			continue
		case code == lzwEOI:
			d.err = io.EOF
		case code <= d.hi:
			// Expand the code backwards from the end of d.output, then move
			// the expansion into place. code == hi is the entry being made:
			// the previous expansion followed by its own first byte.
			c, i := code, len(d.output)-1
			if code == d.hi && d.last != lzwInvalid {
				c = d.last
				for c >= lzwClear {
					c = d.prefix[c]
				}
				d.output[i] = uint8(c)
				i--
				c = d.last
			}
			for c >= lzwClear {
				d.output[i] = d.suffix[c]
				i--
				c = d.prefix[c]
			}
			d.output[i] = uint8(c)
			d.o += copy(d.output[d.o:], d.output[i:])
			if d.last != lzwInvalid {
				d.suffix[d.hi], d.prefix[d.hi] = uint8(c), d.last
			}
		default:
			d.err = errLZWCode
		}
		if d.err != nil {
			break
		}
		d.last, d.hi = code, d.hi+1
		if d.hi+1 >= d.overflow { // TIFF's early change
			if d.width == lzwMaxWidth {
				d.last = lzwInvalid
			} else {
				d.width++
				d.overflow <<= 1
			}
		}
	}
	d.toRead = d.output[:d.o]
	d.o = 0
}
