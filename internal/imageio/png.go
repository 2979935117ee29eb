package imageio

import (
	"compress/zlib"
	"context"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"image"
	"image/color"
	"io"
)

// PNG is decoded here rather than by image/png, which materialises 16-bit
// samples (8 bytes a pixel for RGBA) and every pass of an interlaced image
// next to the page. This decoder streams the rows out of the compressed
// data into a page of 8 bits per channel, the only size the pipelines use:
// the pixels cost 1 byte each (grey, paletted) or 4 (colour), plus two rows.
// It accepts what image/png accepts and gives the same pixels, 16-bit
// samples cut to their high byte (FuzzPNGMatchesStdlib holds it to that).

// pngInfo is what the chunks before the pixel data say.
type pngInfo struct {
	w, h       int
	depth      int   // bits per sample: 1, 2, 4, 8 or 16
	colorType  uint8 // 0 grey, 2 RGB, 3 paletted, 4 grey+alpha, 6 RGBA
	interlaced bool
	palette    color.Palette
	// transparent is the tRNS colour of a grey or RGB image: two bytes
	// per sample, big-endian; nil when there is none.
	transparent []byte
	data        []byte
	idat        int // offset of the first IDAT chunk
}

const (
	pngGrey      = 0
	pngRGB       = 2
	pngPaletted  = 3
	pngGreyAlpha = 4
	pngRGBA      = 6
)

var pngChannels = [7]int{pngGrey: 1, pngRGB: 3, pngPaletted: 1, pngGreyAlpha: 2, pngRGBA: 4}

func pngErr(detail string) error { return errorf(ErrUndecodable, "png: %s", detail) }

// parsePNG checks the structure of a whole PNG file (chunk order, as
// image/png does, and the checksums of the chunks before the pixel data)
// and returns its header. Open calls it before a worker is held, so the
// checksums of the pixel data and what follows it, most of the file, are
// left to decodePNG.
func parsePNG(data []byte) (*pngInfo, error) {
	const (
		start = iota
		seenIHDR
		seenPLTE
		seentRNS
		seenIDAT
	)
	p := &pngInfo{data: data}
	stage := start
	for off := 8; ; {
		if len(data)-off < 12 {
			return nil, pngErr("data truncated")
		}
		length := binary.BigEndian.Uint32(data[off:])
		typ := string(data[off+4 : off+8])
		if length > 0x7fffffff || uint64(len(data)-off-12) < uint64(length) {
			return nil, pngErr("data truncated")
		}
		body := data[off+8 : off+8+int(length)]
		if stage < seenIDAT && typ != "IDAT" && !pngChecksumOK(data, off) {
			return nil, pngErr("invalid checksum")
		}
		chunk := off
		off += 12 + int(length)
		var err error
		switch typ {
		case "IHDR":
			if stage != start {
				return nil, pngErr("chunk out of order")
			}
			stage, err = seenIHDR, p.parseIHDR(body)
		case "PLTE":
			if stage != seenIHDR {
				return nil, pngErr("chunk out of order")
			}
			stage, err = seenPLTE, p.parsePLTE(body)
		case "tRNS":
			ok := stage == seenIHDR
			switch p.colorType {
			case pngPaletted:
				ok = stage == seenPLTE
			case pngRGB:
				ok = stage == seenIHDR || stage == seenPLTE
			}
			if !ok {
				return nil, pngErr("chunk out of order")
			}
			stage, err = seentRNS, p.parsetRNS(body)
		case "IDAT":
			if stage < seenIHDR || (stage == seenIHDR && p.colorType == pngPaletted) {
				return nil, pngErr("chunk out of order")
			}
			// The pixel data is the run of IDAT chunks starting here;
			// IDAT chunks after it are ignored, as image/png ignores
			// trailing ones.
			if stage != seenIDAT {
				stage, p.idat = seenIDAT, chunk
			}
		case "IEND":
			if stage != seenIDAT {
				return nil, pngErr("chunk out of order")
			}
			if length != 0 {
				return nil, pngErr("bad IEND length")
			}
			return p, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

func (p *pngInfo) parseIHDR(b []byte) error {
	if len(b) != 13 {
		return pngErr("bad IHDR length")
	}
	if b[10] != 0 || b[11] != 0 {
		return errorf(ErrUnsupported, "png: compression or filter method %d/%d", b[10], b[11])
	}
	if b[12] > 1 {
		return pngErr("invalid interlace method")
	}
	w, h := int32(binary.BigEndian.Uint32(b[0:])), int32(binary.BigEndian.Uint32(b[4:]))
	if w <= 0 || h <= 0 {
		return pngErr("non-positive dimension")
	}
	p.w, p.h, p.depth, p.colorType, p.interlaced = int(w), int(h), int(b[8]), b[9], b[12] == 1
	valid := false
	switch p.colorType {
	case pngGrey:
		valid = p.depth == 1 || p.depth == 2 || p.depth == 4 || p.depth == 8 || p.depth == 16
	case pngPaletted:
		valid = p.depth == 1 || p.depth == 2 || p.depth == 4 || p.depth == 8
	case pngRGB, pngGreyAlpha, pngRGBA:
		valid = p.depth == 8 || p.depth == 16
	}
	if !valid {
		return errorf(ErrUnsupported, "png: bit depth %d, color type %d", p.depth, p.colorType)
	}
	return nil
}

func (p *pngInfo) parsePLTE(b []byte) error {
	n := len(b) / 3
	if len(b)%3 != 0 || n <= 0 || n > 256 || n > 1<<p.depth {
		return pngErr("bad PLTE length")
	}
	switch p.colorType {
	case pngPaletted:
		// Indices past the palette read as opaque black, as in image/png
		// and libpng: the palette has room for all 256.
		p.palette = make(color.Palette, 256)
		for i := range p.palette {
			p.palette[i] = color.RGBA{0, 0, 0, 0xff}
			if i < n {
				p.palette[i] = color.RGBA{b[3*i], b[3*i+1], b[3*i+2], 0xff}
			}
		}
		p.palette = p.palette[:n]
	case pngRGB, pngRGBA:
		// Optional and ignorable for truecolour (PNG 4.1.2).
	default:
		return pngErr("PLTE, color type mismatch")
	}
	return nil
}

func (p *pngInfo) parsetRNS(b []byte) error {
	switch p.colorType {
	case pngGrey:
		if len(b) != 2 {
			return pngErr("bad tRNS length")
		}
		p.transparent = append([]byte(nil), b...)
	case pngRGB:
		if len(b) != 6 {
			return pngErr("bad tRNS length")
		}
		p.transparent = append([]byte(nil), b...)
	case pngPaletted:
		if len(b) > 256 {
			return pngErr("bad tRNS length")
		}
		if len(p.palette) < len(b) {
			p.palette = p.palette[:len(b)]
		}
		for i, a := range b {
			c := p.palette[i].(color.RGBA)
			p.palette[i] = color.NRGBA{c.R, c.G, c.B, a}
		}
	default:
		return pngErr("tRNS, color type mismatch")
	}
	return nil
}

// pngChecksumOK reports whether the chunk at off, known to lie within
// data, has the right CRC.
func pngChecksumOK(data []byte, off int) bool {
	n := int(binary.BigEndian.Uint32(data[off:]))
	return crc32.ChecksumIEEE(data[off+4:off+8+n]) == binary.BigEndian.Uint32(data[off+8+n:])
}

// checksumsFrom verifies the checksums of the chunks from off to IEND,
// which parsePNG found well-formed.
func (p *pngInfo) checksumsFrom(off int) error {
	for {
		if !pngChecksumOK(p.data, off) {
			return pngErr("invalid checksum")
		}
		n := int(binary.BigEndian.Uint32(p.data[off:]))
		if string(p.data[off+4:off+8]) == "IEND" {
			return nil
		}
		off += 12 + n
	}
}

// pixels is how the decoded page stores its pixels: 1 byte a pixel grey
// (Gray) or paletted, 4 otherwise (RGBA, NRGBA).
func (p *pngInfo) pixels() pixelKind {
	if (p.colorType == pngGrey && p.transparent == nil) || p.colorType == pngPaletted {
		return onePerPixel
	}
	return fourPerPixel
}

// decodeBytes is what decoding costs: the page and two rows of samples.
func (p *pngInfo) decodeBytes() int64 {
	rowBytes := (int64(p.w)*int64(p.depth*pngChannels[p.colorType]) + 7) / 8
	return p.pixels().bytes()*int64(p.w)*int64(p.h) + 2*rowBytes
}

// adam7 is the placement of each pass of an interlaced image: x step, y
// step, x offset, y offset.
var adam7 = [7][4]int{{8, 8, 0, 0}, {8, 8, 4, 0}, {4, 8, 0, 4}, {4, 4, 2, 0}, {2, 4, 0, 2}, {2, 2, 1, 0}, {1, 2, 0, 1}}

// decodePNG decodes a file parsePNG accepted. ctx is checked every row.
func decodePNG(ctx context.Context, p *pngInfo) (image.Image, error) {
	z, err := zlib.NewReader(&idatReader{data: p.data, next: p.idat})
	if err != nil {
		return nil, pngErr(err.Error())
	}
	defer z.Close()
	rect := image.Rect(0, 0, p.w, p.h)
	var img image.Image
	switch {
	case p.colorType == pngPaletted:
		img = image.NewPaletted(rect, p.palette)
	case p.colorType == pngGrey && p.transparent == nil:
		img = image.NewGray(rect)
	case p.colorType == pngRGB && p.transparent == nil:
		img = image.NewRGBA(rect)
	default:
		img = image.NewNRGBA(rect)
	}
	passes := [][4]int{{1, 1, 0, 0}}
	if p.interlaced {
		passes = adam7[:]
	}
	bitsPerPixel := p.depth * pngChannels[p.colorType]
	rowSize := 1 + (bitsPerPixel*p.w+7)/8
	cur, prev := make([]byte, rowSize), make([]byte, rowSize)
	for _, pass := range passes {
		pw, ph := (p.w-pass[2]+pass[0]-1)/pass[0], (p.h-pass[3]+pass[1]-1)/pass[1]
		if pw <= 0 || ph <= 0 {
			continue // an empty pass has no rows, not even filter bytes
		}
		n := 1 + (bitsPerPixel*pw+7)/8
		cr, pr := cur[:n], prev[:n]
		clear(pr)
		for y := 0; y < ph; y++ {
			if y%64 == 0 && ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if _, err := io.ReadFull(z, cr); err != nil {
				if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
					return nil, pngErr("not enough pixel data")
				}
				return nil, pngErr(err.Error())
			}
			if err := unfilter(cr, pr, (bitsPerPixel+7)/8); err != nil {
				return nil, err
			}
			p.putRow(img, cr[1:], pw, pass, pass[3]+y*pass[1])
			cr, pr = pr, cr
		}
	}
	// The stream must end here: a checksum error or more pixel data than
	// the page holds makes the file invalid.
	var one [1]byte
	for i := 0; ; i++ {
		n, err := z.Read(one[:])
		if n != 0 {
			return nil, pngErr("too much pixel data")
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, pngErr(err.Error())
		}
		if i == 100 {
			return nil, pngErr(io.ErrNoProgress.Error())
		}
	}
	if err := p.checksumsFrom(p.idat); err != nil {
		return nil, err
	}
	return img, nil
}

// unfilter reverses the row filter named by row[0], in place, with prev
// the previous row of the pass (zero for the first).
func unfilter(row, prev []byte, bpp int) error {
	cdat, pdat := row[1:], prev[1:]
	switch row[0] {
	case 0:
	case 1: // Sub
		for i := bpp; i < len(cdat); i++ {
			cdat[i] += cdat[i-bpp]
		}
	case 2: // Up
		for i, p := range pdat {
			cdat[i] += p
		}
	case 3: // Average
		for i := range cdat {
			left := 0
			if i >= bpp {
				left = int(cdat[i-bpp])
			}
			cdat[i] += uint8((left + int(pdat[i])) / 2)
		}
	case 4: // Paeth
		for i := range cdat {
			var a, c int
			if i >= bpp {
				a, c = int(cdat[i-bpp]), int(pdat[i-bpp])
			}
			b := int(pdat[i])
			pa, pb, pc := abs(b-c), abs(a-c), abs(a+b-2*c)
			switch {
			case pa <= pb && pa <= pc:
				cdat[i] += uint8(a)
			case pb <= pc:
				cdat[i] += uint8(b)
			default:
				cdat[i] += uint8(c)
			}
		}
	default:
		return pngErr("bad filter type")
	}
	return nil
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

// putRow writes the pw pixels of one unfiltered row of a pass to row y of
// img, every pass[0]-th pixel from pass[2].
func (p *pngInfo) putRow(img image.Image, row []byte, pw int, pass [4]int, y int) {
	dx, x0 := pass[0], pass[2]
	depth := p.depth
	// sample returns sample i of the row, as stored (up to 16 bits).
	sample := func(i int) int {
		switch depth {
		case 8:
			return int(row[i])
		case 16:
			return int(row[2*i])<<8 | int(row[2*i+1])
		}
		bit := i * depth
		return int(row[bit/8]>>(8-depth-bit%8)) & (1<<depth - 1)
	}
	// eight scales a stored sample to 8 bits: low depths by replication,
	// 16 bits by keeping the high byte.
	eight := func(v int) uint8 {
		switch depth {
		case 16:
			return uint8(v >> 8)
		case 8:
			return uint8(v)
		}
		return uint8(v * 255 / (1<<depth - 1))
	}
	switch m := img.(type) {
	case *image.Gray:
		pix := m.Pix[y*m.Stride:]
		if depth == 8 && dx == 1 {
			copy(pix, row[:pw])
			return
		}
		for x := range pw {
			pix[x0+x*dx] = eight(sample(x))
		}
	case *image.Paletted:
		pix := m.Pix[y*m.Stride:]
		for x := range pw {
			i := uint8(sample(x))
			if int(i) >= len(m.Palette) {
				m.Palette = m.Palette[:int(i)+1]
			}
			pix[x0+x*dx] = i
		}
	case *image.RGBA: // RGB without a transparent colour
		pix := m.Pix[y*m.Stride:]
		for x := range pw {
			o := 4 * (x0 + x*dx)
			pix[o], pix[o+1], pix[o+2], pix[o+3] = eight(sample(3*x)), eight(sample(3*x+1)), eight(sample(3*x+2)), 0xff
		}
	case *image.NRGBA:
		pix := m.Pix[y*m.Stride:]
		if p.colorType == pngRGBA && depth == 8 && dx == 1 {
			copy(pix, row[:4*pw])
			return
		}
		for x := range pw {
			o := 4 * (x0 + x*dx)
			var r, g, b int
			a := uint8(0xff)
			switch p.colorType {
			case pngGrey:
				r = sample(x)
				g, b = r, r
				if p.isTransparent(r) {
					a = 0
				}
			case pngGreyAlpha:
				r = sample(2 * x)
				g, b, a = r, r, eight(sample(2*x+1))
			case pngRGB:
				r, g, b = sample(3*x), sample(3*x+1), sample(3*x+2)
				if p.isTransparent(r, g, b) {
					a = 0
				}
			case pngRGBA:
				r, g, b, a = sample(4*x), sample(4*x+1), sample(4*x+2), eight(sample(4*x+3))
			}
			pix[o], pix[o+1], pix[o+2], pix[o+3] = eight(r), eight(g), eight(b), a
		}
	}
}

// isTransparent reports whether the stored samples are the tRNS colour.
// Below 8 bits, image/png compares the low byte of the tRNS value,
// scaled, with the scaled sample; that is the stored values compared.
func (p *pngInfo) isTransparent(samples ...int) bool {
	for i, v := range samples {
		t := int(p.transparent[2*i])<<8 | int(p.transparent[2*i+1])
		if p.depth < 16 {
			t = int(p.transparent[2*i+1])
			if p.depth < 8 {
				if v*(255/(1<<p.depth-1)) != t*(255/(1<<p.depth-1))&0xff {
					return false
				}
				continue
			}
		}
		if v != t {
			return false
		}
	}
	return true
}

// idatReader reads the data of a run of IDAT chunks, which parsePNG
// found well-formed, as one stream. It is an io.ByteReader, so the
// decompressor reads no further than its stream.
type idatReader struct {
	data  []byte
	next  int    // offset of the next chunk
	chunk []byte // what is left of the current chunk's data
}

func (r *idatReader) Read(p []byte) (int, error) {
	for len(r.chunk) == 0 {
		if len(r.data)-r.next < 12 || string(r.data[r.next+4:r.next+8]) != "IDAT" {
			return 0, io.EOF
		}
		n := int(binary.BigEndian.Uint32(r.data[r.next:]))
		r.chunk = r.data[r.next+8 : r.next+8+n]
		r.next += 12 + n
	}
	n := copy(p, r.chunk)
	r.chunk = r.chunk[n:]
	return n, nil
}

func (r *idatReader) ReadByte() (byte, error) {
	var b [1]byte
	if _, err := r.Read(b[:]); err != nil {
		return 0, err
	}
	return b[0], nil
}
