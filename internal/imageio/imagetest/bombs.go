package imagetest

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"image"
	"image/color"
	"image/gif"
	"io"
)

// The generators in this file write decompression bombs: pages whose
// samples are all zero, compressed as far as each format allows, so a few
// hundred kilobytes claim hundreds of megabytes of pixels. None of them
// holds the uncompressed samples in memory while writing.

// PNGFlat returns a w x h PNG whose samples are all zero, at bit depth
// depth and PNG colour type colorType (0 grey, 2 RGB, 3 paletted with one
// black entry, 4 grey and alpha, 6 RGBA), Adam7-interlaced if interlaced.
// A 7070x7070 16-bit RGBA page is about 390 KB.
func PNGFlat(w, h, depth int, colorType uint8, interlaced bool) []byte {
	channels := map[uint8]int{0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[colorType]
	bitsPerPixel := depth * channels
	var z bytes.Buffer
	zw, _ := zlib.NewWriterLevel(&z, zlib.BestCompression)
	passes := [][4]int{{1, 1, 0, 0}}
	if interlaced {
		passes = [][4]int{{8, 8, 0, 0}, {8, 8, 4, 0}, {4, 8, 0, 4}, {4, 4, 2, 0}, {2, 4, 0, 2}, {2, 2, 1, 0}, {1, 2, 0, 1}}
	}
	for _, p := range passes {
		pw, ph := (w-p[2]+p[0]-1)/p[0], (h-p[3]+p[1]-1)/p[1]
		if pw <= 0 || ph <= 0 {
			continue
		}
		writeZeros(zw, ph*(1+(bitsPerPixel*pw+7)/8)) // each row: filter byte 0, then zero samples
	}
	zw.Close()

	ihdr := binary.BigEndian.AppendUint32(nil, uint32(w))
	ihdr = binary.BigEndian.AppendUint32(ihdr, uint32(h))
	ihdr = append(ihdr, byte(depth), colorType, 0, 0, 0)
	if interlaced {
		ihdr[12] = 1
	}
	out := []byte("\x89PNG\r\n\x1a\n")
	out = pngChunk(out, "IHDR", ihdr)
	if colorType == 3 {
		out = pngChunk(out, "PLTE", []byte{0, 0, 0})
	}
	out = pngChunk(out, "IDAT", z.Bytes())
	return pngChunk(out, "IEND", nil)
}

func pngChunk(out []byte, typ string, data []byte) []byte {
	out = binary.BigEndian.AppendUint32(out, uint32(len(data)))
	out = append(out, typ...)
	out = append(out, data...)
	return binary.BigEndian.AppendUint32(out, crc32.Update(crc32.ChecksumIEEE([]byte(typ)), crc32.IEEETable, data))
}

var zeroBlock [64 << 10]byte

// writeZeros writes n zero bytes to w.
func writeZeros(w io.Writer, n int) {
	for n > 0 {
		k := min(n, len(zeroBlock))
		w.Write(zeroBlock[:k])
		n -= k
	}
}

// TIFF compression schemes TIFFPage can write.
const (
	TIFFNone     = 1
	TIFFLZW      = 5
	TIFFDeflate  = 8
	TIFFPackBits = 32773
)

// TIFFFlat describes a one-page little-endian TIFF whose samples are all
// zero, or Pix when it is set.
type TIFFFlat struct {
	W, H int
	// Bits per sample (1, 8 or 16) and samples per pixel (1: grey,
	// BlackIsZero; 3: RGB; 4: RGB and unassociated alpha).
	Bits, Samples int
	// Compression is TIFFNone, TIFFLZW, TIFFDeflate or TIFFPackBits.
	Compression int
	// RowsPerStrip is the height of a strip; 0 makes one strip of the
	// whole page. Tile, when positive, writes square tiles of that side
	// instead of strips.
	RowsPerStrip, Tile int
	// Predictor 2 marks the samples as horizontally differenced (they
	// are written as given).
	Predictor int
	// Pix, when set, holds the samples (big-endian 16-bit ones are
	// written as little-endian), row by row, one block after another in
	// the order strips or tiles are written: for strips that is the
	// page's rows; tests give tiled pages zero samples.
	Pix []byte
}

// Encode writes the TIFF.
func (f TIFFFlat) Encode() []byte {
	le := binary.LittleEndian
	bw, bh := f.W, f.H
	tiled := f.Tile > 0
	if tiled {
		bw, bh = f.Tile, f.Tile
	} else if f.RowsPerStrip > 0 && f.RowsPerStrip < f.H {
		bh = f.RowsPerStrip
	}
	across, down := (f.W+bw-1)/bw, (f.H+bh-1)/bh
	rowBytes := (bw*f.Bits*f.Samples + 7) / 8
	out := []byte("II*\x00\x00\x00\x00\x00")
	var offsets, counts []uint32
	pix := f.Pix
	cache := map[int][]byte{} // compressed zero blocks by row count
	for j := 0; j < down; j++ {
		rows := bh
		if !tiled && j == down-1 {
			rows = f.H - j*bh
		}
		for i := 0; i < across; i++ {
			n := rows * rowBytes
			var block []byte
			if pix != nil {
				block = f.compress(bytes.NewReader(pix[:n]), n)
				pix = pix[n:]
			} else if block = cache[rows]; block == nil {
				block = f.compress(zeroReader{}, n)
				cache[rows] = block
			}
			offsets = append(offsets, uint32(len(out)))
			counts = append(counts, uint32(len(block)))
			out = append(out, block...)
			if len(out)%2 == 1 {
				out = append(out, 0)
			}
		}
	}
	longs := func(v []uint32) uint32 { // an array of LONGs written out of line
		off := uint32(len(out))
		for _, x := range v {
			out = le.AppendUint32(out, x)
		}
		return off
	}
	bitsOff := uint32(0)
	if f.Samples > 2 {
		bitsOff = uint32(len(out))
		for range f.Samples {
			out = le.AppendUint16(out, uint16(f.Bits))
		}
	}
	offOff, cntOff := longs(offsets), longs(counts)
	type entry struct {
		tag, typ uint16
		count    uint32
		val      uint32
	}
	photometric := uint32(1)
	if f.Samples >= 3 {
		photometric = 2
	}
	bits := entry{258, 3, 1, uint32(f.Bits)}
	if f.Samples > 2 {
		bits = entry{258, 3, uint32(f.Samples), bitsOff}
	}
	n := uint32(len(offsets))
	entries := []entry{{256, 4, 1, uint32(f.W)}, {257, 4, 1, uint32(f.H)}, bits,
		{259, 3, 1, uint32(f.Compression)}, {262, 3, 1, photometric}}
	ref := func(tag uint16, off uint32, one uint32) entry {
		if n == 1 {
			return entry{tag, 4, 1, one}
		}
		return entry{tag, 4, n, off}
	}
	if !tiled {
		entries = append(entries, ref(273, offOff, offsets[0]))
	}
	entries = append(entries, entry{277, 3, 1, uint32(f.Samples)})
	if !tiled {
		entries = append(entries, entry{278, 4, 1, uint32(bh)}, ref(279, cntOff, counts[0]))
	}
	if f.Predictor != 0 {
		entries = append(entries, entry{317, 3, 1, uint32(f.Predictor)})
	}
	if tiled {
		entries = append(entries, entry{322, 4, 1, uint32(bw)}, entry{323, 4, 1, uint32(bh)},
			ref(324, offOff, offsets[0]), ref(325, cntOff, counts[0]))
	}
	if f.Samples == 4 {
		entries = append(entries, entry{338, 3, 1, 2})
	}
	if len(out)%2 == 1 {
		out = append(out, 0)
	}
	le.PutUint32(out[4:], uint32(len(out)))
	out = le.AppendUint16(out, uint16(len(entries)))
	for _, e := range entries {
		out = le.AppendUint16(out, e.tag)
		out = le.AppendUint16(out, e.typ)
		out = le.AppendUint32(out, e.count)
		if e.typ == 3 && e.count == 1 {
			out = le.AppendUint16(out, uint16(e.val))
			out = le.AppendUint16(out, 0)
		} else {
			out = le.AppendUint32(out, e.val)
		}
	}
	return le.AppendUint32(out, 0)
}

// compress reads n bytes of samples from r and compresses them.
func (f TIFFFlat) compress(r io.Reader, n int) []byte {
	r = io.LimitReader(r, int64(n))
	if f.Bits == 16 {
		r = &swap16{r: r}
	}
	var b bytes.Buffer
	switch f.Compression {
	case TIFFDeflate:
		zw, _ := zlib.NewWriterLevel(&b, zlib.BestCompression)
		io.Copy(zw, r)
		zw.Close()
	case TIFFLZW:
		lzwEncode(&b, r)
	case TIFFPackBits:
		packBits(&b, r)
	default:
		io.Copy(&b, r)
	}
	return b.Bytes()
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// swap16 turns big-endian 16-bit samples little-endian.
type swap16 struct{ r io.Reader }

func (s *swap16) Read(p []byte) (int, error) {
	n, err := io.ReadFull(s.r, p[:len(p)&^1])
	for i := 0; i+1 < n; i += 2 {
		p[i], p[i+1] = p[i+1], p[i]
	}
	if err == io.ErrUnexpectedEOF {
		err = io.EOF
	}
	return n &^ 1, err
}

// lzwEncode writes TIFF's flavour of LZW (MSB first, 8-bit literals, code
// width growing one code early) of everything in r.
func lzwEncode(w *bytes.Buffer, r io.Reader) {
	const clearCode, eoi, first, maxCode = 256, 257, 258, 4093
	var (
		table   = make([][256]uint16, 4096)
		next    = first
		width   = 9
		acc     uint32
		accBits int
	)
	emit := func(code int) {
		acc |= uint32(code) << (32 - width - accBits)
		accBits += width
		for accBits >= 8 {
			w.WriteByte(byte(acc >> 24))
			acc <<= 8
			accBits -= 8
		}
	}
	reset := func() {
		clear(table)
		next, width = first, 9
	}
	emit(clearCode)
	prefix := -1
	buf := make([]byte, 32<<10)
	for {
		n, err := r.Read(buf)
		for _, b := range buf[:n] {
			if prefix < 0 {
				prefix = int(b)
				continue
			}
			if c := table[prefix][b]; c != 0 {
				prefix = int(c)
				continue
			}
			emit(prefix)
			table[prefix][b] = uint16(next)
			next++
			if next >= 1<<width && width < 12 {
				width++
			}
			if next >= maxCode {
				emit(clearCode)
				reset()
			}
			prefix = int(b)
		}
		if err != nil {
			break
		}
	}
	if prefix >= 0 {
		emit(prefix)
		// The decoder counts this code too: it may widen the EOI code.
		if next++; next >= 1<<width && width < 12 {
			width++
		}
	}
	emit(eoi)
	if accBits > 0 {
		w.WriteByte(byte(acc >> 24))
	}
}

// packBits writes TIFF PackBits of everything in r: runs of equal bytes
// as repeats, the rest as literals (a run is cut where a 64 KB block ends).
func packBits(w *bytes.Buffer, r io.Reader) {
	data := make([]byte, 64<<10)
	for {
		n, err := io.ReadFull(r, data)
		packBlock(w, data[:n])
		if err != nil {
			return
		}
	}
}

func packBlock(w *bytes.Buffer, data []byte) {
	for i := 0; i < len(data); {
		run := 1
		for i+run < len(data) && run < 128 && data[i+run] == data[i] {
			run++
		}
		if run > 1 {
			w.WriteByte(byte(int8(1 - run)))
			w.WriteByte(data[i])
			i += run
			continue
		}
		lit := 1
		for i+lit < len(data) && lit < 128 && (i+lit+1 >= len(data) || data[i+lit] != data[i+lit+1]) {
			lit++
		}
		w.WriteByte(byte(lit - 1))
		w.Write(data[i : i+lit])
		i += lit
	}
}

// PNM16 returns a P5 (channels 1) or P6 (channels 3) PNM of w x h zero
// samples with maxval 65535: two bytes per sample.
func PNM16(w, h, channels int) []byte {
	magic := "P5"
	if channels == 3 {
		magic = "P6"
	}
	head := fmt.Appendf(nil, "%s %d %d 65535\n", magic, w, h)
	return append(head, make([]byte, 2*channels*w*h)...)
}

// JPEGFlat describes a JPEG whose every 8x8 block is flat mid-grey: each
// block costs the entropy coder two bits (one in a progressive DC scan),
// so a JPEG bomb of 50 megapixels is a few hundred kilobytes.
type JPEGFlat struct {
	W, H int
	// Components is 1 (grey), 3 (YCbCr, or RGB with Adobe 0) or 4 (CMYK
	// with Adobe 0, YCbCrK with Adobe 2).
	Components int
	// Sampling is the first component's horizontal and vertical sampling
	// factors (the others are 1x1; the fourth follows the first); zero
	// means 1x1.
	Sampling [2]int
	// Progressive writes a progressive JPEG with only a DC scan.
	Progressive bool
	// Adobe, when non-negative, writes an Adobe APP14 marker with that
	// colour transform (0 unknown: RGB or CMYK; 1 YCbCr; 2 YCbCrK).
	Adobe int
}

// Encode writes the JPEG.
func (f JPEGFlat) Encode() []byte {
	be := binary.BigEndian
	seg := func(out []byte, marker byte, data []byte) []byte {
		out = append(out, 0xff, marker)
		out = be.AppendUint16(out, uint16(len(data)+2))
		return append(out, data...)
	}
	out := []byte{0xff, 0xd8}
	if f.Adobe >= 0 {
		out = seg(out, 0xee, []byte{'A', 'd', 'o', 'b', 'e', 0, 100, 0, 0, 0, 0, byte(f.Adobe)})
	}
	dqt := make([]byte, 65)
	for i := 1; i < 65; i++ {
		dqt[i] = 1
	}
	out = seg(out, 0xdb, dqt)
	hs, vs := max(f.Sampling[0], 1), max(f.Sampling[1], 1)
	if f.Components == 1 {
		hs, vs = 1, 1
	}
	sof := []byte{8}
	sof = be.AppendUint16(sof, uint16(f.H))
	sof = be.AppendUint16(sof, uint16(f.W))
	sof = append(sof, byte(f.Components))
	blocksPerMCU := 0
	for i := range f.Components {
		h, v := 1, 1
		if i == 0 || i == 3 {
			h, v = hs, vs
		}
		blocksPerMCU += h * v
		sof = append(sof, byte(i+1), byte(h<<4|v), 0)
	}
	marker := byte(0xc0)
	if f.Progressive {
		marker = 0xc2
	}
	out = seg(out, marker, sof)
	// One code of one bit per table: DC difference 0, and AC end of block.
	table := func(class byte) []byte {
		t := make([]byte, 18)
		t[0], t[1] = class<<4, 1
		return t
	}
	out = seg(out, 0xc4, append(table(0), table(1)...))
	sos := []byte{byte(f.Components)}
	for i := range f.Components {
		sos = append(sos, byte(i+1), 0)
	}
	bitsPerBlock := 2
	if f.Progressive {
		sos = append(sos, 0, 0, 0)
		bitsPerBlock = 1
	} else {
		sos = append(sos, 0, 63, 0)
	}
	out = seg(out, 0xda, sos)
	mxx, myy := (f.W+8*hs-1)/(8*hs), (f.H+8*vs-1)/(8*vs)
	bits := mxx * myy * blocksPerMCU * bitsPerBlock
	out = append(out, make([]byte, bits/8)...)
	if r := bits % 8; r != 0 {
		out = append(out, 0xff>>r) // pad the last byte with one bits
	}
	return append(out, 0xff, 0xd9)
}

// WebPFlat returns a lossless WebP of w x h opaque black pixels (w and h
// at most 16384): every Huffman code has one symbol, so a pixel costs no
// bits at all and any size is about 30 bytes.
func WebPFlat(w, h int) []byte {
	var bw bitWriter
	bw.put(0x2f, 8)
	bw.put(uint32(w-1), 14)
	bw.put(uint32(h-1), 14)
	bw.put(0, 1)                                       // alpha unused
	bw.put(0, 3)                                       // version
	bw.put(0, 1)                                       // no transform
	bw.put(0, 1)                                       // no colour cache
	bw.put(0, 1)                                       // no meta Huffman codes
	for _, symbol := range []uint32{0, 0, 0, 255, 0} { // green, red, blue, alpha, distance
		bw.put(1, 1) // simple code
		bw.put(0, 1) // one symbol
		bw.put(1, 1) // of eight bits
		bw.put(symbol, 8)
	}
	vp8l := bw.bytes()
	pad := len(vp8l) % 2
	le := binary.LittleEndian
	out := []byte("RIFF")
	out = le.AppendUint32(out, uint32(4+8+len(vp8l)+pad))
	out = append(out, "WEBPVP8L"...)
	out = le.AppendUint32(out, uint32(len(vp8l)))
	out = append(out, vp8l...)
	return append(out, make([]byte, pad)...)
}

// bitWriter packs values least significant bit first, as VP8L reads them.
type bitWriter struct {
	out   []byte
	acc   uint64
	nbits uint
}

func (b *bitWriter) put(v uint32, n uint) {
	b.acc |= uint64(v) << b.nbits
	b.nbits += n
	for b.nbits >= 8 {
		b.out = append(b.out, byte(b.acc))
		b.acc >>= 8
		b.nbits -= 8
	}
}

func (b *bitWriter) bytes() []byte {
	if b.nbits > 0 {
		return append(b.out, byte(b.acc))
	}
	return b.out
}

// BMPFlat returns an uncompressed 24-bit BMP of w x h black pixels.
func BMPFlat(w, h int) []byte {
	le := binary.LittleEndian
	rowBytes := (3*w + 3) &^ 3
	out := []byte("BM")
	out = le.AppendUint32(out, uint32(54+rowBytes*h))
	out = le.AppendUint32(out, 0)
	out = le.AppendUint32(out, 54)
	out = le.AppendUint32(out, 40)
	out = le.AppendUint32(out, uint32(w))
	out = le.AppendUint32(out, uint32(h))
	out = le.AppendUint16(out, 1)
	out = le.AppendUint16(out, 24)
	out = append(out, make([]byte, 24)...) // no compression, sizes, resolutions, palette counts
	return append(out, make([]byte, rowBytes*h)...)
}

// GIFScreen returns a GIF whose logical screen is w x h (at most 65535
// each) but whose only frame, at the top left, is fw x fh: a viewer
// paints the rest of the screen, so the decoded page is w x h.
func GIFScreen(w, h, fw, fh int) []byte {
	var b bytes.Buffer
	frame := image.NewPaletted(image.Rect(0, 0, fw, fh), color.Palette{color.Black, color.White})
	if err := gif.Encode(&b, frame, nil); err != nil {
		panic(err)
	}
	out := b.Bytes()
	binary.LittleEndian.PutUint16(out[6:], uint16(w))
	binary.LittleEndian.PutUint16(out[8:], uint16(h))
	return out
}

// GIFInterlaced sets the interlace flag of the first frame of a GIF that
// GIFScreen made (its samples are all zero, so the order of its rows is
// immaterial): image/gif then copies the frame to put its rows in order.
func GIFInterlaced(data []byte) []byte {
	out := append([]byte(nil), data...)
	i := 13 + 3*(2<<(out[10]&7))         // after the header and the global colour table
	for i < len(out) && out[i] == 0x21 { // skip extensions
		i += 2
		for i < len(out) && out[i] != 0 {
			i += 1 + int(out[i])
		}
		i++
	}
	out[i+9] |= 0x40
	return out
}
