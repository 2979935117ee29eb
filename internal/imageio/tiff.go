package imageio

import (
	"bytes"
	"compress/zlib"
	"context"
	"encoding/binary"
	"errors"
	"image"
	"image/color"
	"io"
	"math"

	"golang.org/x/image/ccitt"
)

// TIFF pages are decoded here rather than by x/image/tiff, which
// decompresses a whole strip or tile into memory (8 bytes a pixel for
// 16-bit RGBA, and a strip is often the whole page) and materialises
// 16-bit samples next to it. This decoder streams each strip's rows out of
// its decompressor into a page of 8 bits per channel: 1 byte a pixel grey
// or paletted, 4 otherwise, plus one row. It reads what x/image/tiff reads
// (baseline grey, paletted and RGB at 1, 8 or 16 bits; none, CCITT G3/G4,
// LZW, deflate and PackBits; strips or tiles; the horizontal predictor) and
// gives the same pixels, 16-bit samples cut to their high byte
// (FuzzTIFFMatchesXImage holds it to that).

// TIFF tags, compressions and photometric interpretations the decoder uses.
const (
	tagImageWidth      = 256
	tagImageLength     = 257
	tagBitsPerSample   = 258
	tagCompression     = 259
	tagPhotometric     = 262
	tagFillOrder       = 266
	tagStripOffsets    = 273
	tagRowsPerStrip    = 278
	tagStripByteCounts = 279
	tagT4Options       = 292
	tagT6Options       = 293
	tagPredictor       = 317
	tagColorMap        = 320
	tagTileWidth       = 322
	tagTileLength      = 323
	tagTileOffsets     = 324
	tagTileByteCounts  = 325
	tagExtraSamples    = 338
	tagSampleFormat    = 339

	compNone       = 1
	compG3         = 3
	compG4         = 4
	compLZW        = 5
	compDeflate    = 8
	compDeflateOld = 32946
	compPackBits   = 32773

	photoWhiteIsZero = 0
	photoBlackIsZero = 1
	photoRGB         = 2
	photoPaletted    = 3
)

// tiffMode is how a page's samples become pixels.
type tiffMode int

const (
	modeGray tiffMode = iota
	modeGrayInvert
	modePaletted
	modeRGB
	modeRGBA  // associated (premultiplied) alpha
	modeNRGBA // unassociated alpha
)

// tiffPage is one page of a TIFF file: its directory, parsed.
type tiffPage struct {
	ifd         uint32
	orientation int

	w, h        int
	mode        tiffMode
	bpp         int // bits per sample: 1, 8 or 16
	samples     int // samples per pixel
	compression uint32
	photometric uint32
	predictor   uint32
	fillOrder   uint32
	palette     color.Palette

	// The page is cut into blocks (strips, or tiles when tiled) of
	// blockW x blockH pixels, across x down of them.
	tiled           bool
	blockW, blockH  int
	across, down    int
	offsets, counts tiffArray
}

// tiffArray is a directory entry's array of integers, read in place.
type tiffArray struct {
	data  []byte // the values, at the entry or out of line
	size  int    // bytes per value: 1, 2 or 4
	count int
	bo    binary.ByteOrder
}

func (a tiffArray) at(i int) uint64 {
	switch a.size {
	case 1:
		return uint64(a.data[i])
	case 2:
		return uint64(a.bo.Uint16(a.data[2*i:]))
	}
	return uint64(a.bo.Uint32(a.data[4*i:]))
}

// tiffTypeSize is the size of each TIFF field type's value, by type: BYTE,
// ASCII, SHORT, LONG, RATIONAL.
var tiffTypeSize = [...]uint32{0, 1, 1, 2, 4, 8}

func tiffFormat(format string, args ...any) error {
	return errorf(ErrUndecodable, "tiff: "+format, args...)
}

func tiffUnsupported(format string, args ...any) error {
	return errorf(ErrUnsupported, "tiff: "+format, args...)
}

// parseTIFFPage reads the directory at p.ifd and checks everything
// decoding it will rely on, as x/image/tiff does.
func parseTIFFPage(b []byte, bo binary.ByteOrder, p *tiffPage) error {
	off := uint64(p.ifd)
	if off+2 > uint64(len(b)) {
		return tiffFormat("directory offset %d outside the file", off)
	}
	n := uint64(bo.Uint16(b[off:]))
	if off+2+12*n > uint64(len(b)) {
		return tiffFormat("directory at %d truncated", off)
	}
	small := map[int][]uint32{} // the tags whose values do not grow with the page
	blocks := map[int]tiffArray{}
	prev := -1
	for i := uint64(0); i < n; i++ {
		e := b[off+2+12*i : off+14+12*i]
		tag := int(bo.Uint16(e))
		var err error
		switch tag {
		case tagBitsPerSample, tagExtraSamples, tagPhotometric, tagCompression, tagPredictor,
			tagRowsPerStrip, tagTileWidth, tagTileLength, tagImageLength, tagImageWidth,
			tagFillOrder, tagT4Options, tagT6Options:
			small[tag], err = tiffUints(b, bo, e, 16)
		case tagStripOffsets, tagStripByteCounts, tagTileOffsets, tagTileByteCounts:
			blocks[tag], err = tiffEntry(b, bo, e, math.MaxInt32)
		case tagColorMap:
			var v []uint32
			if v, err = tiffUints(b, bo, e, 3*256+1); err == nil {
				p.palette, err = tiffPalette(v)
			}
		case tagSampleFormat:
			var v []uint32
			v, err = tiffUints(b, bo, e, 16)
			for _, f := range v {
				if f != 1 && err == nil {
					err = tiffUnsupported("sample format %d", f)
				}
			}
		case tagOrientation:
			if bo.Uint16(e[2:4]) == typeShort {
				p.orientation = int(bo.Uint16(e[8:10]))
			}
		}
		if err != nil {
			return err
		}
		if tag <= prev {
			return tiffFormat("tags are not sorted in ascending order")
		}
		prev = tag
	}
	first := func(tag int) uint32 {
		if v := small[tag]; len(v) > 0 {
			return v[0]
		}
		return 0
	}
	p.w, p.h = int(first(tagImageWidth)), int(first(tagImageLength))
	if p.w == 0 || p.h == 0 {
		return tiffFormat("zero-size image")
	}
	bits := small[tagBitsPerSample]
	if len(bits) == 0 {
		bits = []uint32{1} // the default, per the specification
	}
	p.bpp, p.samples = int(bits[0]), len(bits)
	p.compression, p.photometric = first(tagCompression), first(tagPhotometric)
	p.predictor, p.fillOrder = first(tagPredictor), first(tagFillOrder)
	switch p.bpp {
	case 1, 8, 16:
	case 0:
		return tiffFormat("BitsPerSample must not be 0")
	default:
		return tiffUnsupported("BitsPerSample of %d", p.bpp)
	}
	if err := p.setMode(bits, first(tagExtraSamples)); err != nil {
		return err
	}
	if p.predictor == 2 && p.bpp == 1 {
		return tiffUnsupported("horizontal predictor with 1 BitsPerSample")
	}
	switch p.compression {
	case 0, compNone, compG3, compG4, compLZW, compDeflate, compDeflateOld, compPackBits:
	default:
		return tiffUnsupported("compression value %d", p.compression)
	}
	return p.setBlocks(first(tagTileWidth), first(tagTileLength), first(tagRowsPerStrip), blocks)
}

// setMode decides how samples become pixels, from the photometric
// interpretation and the samples' sizes.
func (p *tiffPage) setMode(bits []uint32, extra uint32) error {
	switch p.photometric {
	case photoRGB:
		for _, v := range bits {
			if int(v) != p.bpp || (p.bpp != 8 && p.bpp != 16) {
				return tiffFormat("wrong number of samples for %dbit RGB", max(p.bpp, 8))
			}
		}
		switch {
		case p.samples == 3:
			p.mode = modeRGB
		case p.samples == 4 && extra == 1:
			p.mode = modeRGBA
		case p.samples == 4 && extra == 2:
			p.mode = modeNRGBA
		default:
			return tiffFormat("wrong number of samples for RGB")
		}
		return nil
	case photoPaletted:
		p.mode = modePaletted
	case photoWhiteIsZero:
		p.mode = modeGrayInvert
	case photoBlackIsZero:
		p.mode = modeGray
	default:
		return tiffUnsupported("color model")
	}
	if p.samples != 1 {
		return tiffUnsupported("extra samples")
	}
	return nil
}

// setBlocks lays the page out in strips or tiles and checks that the
// directory locates every one of them.
func (p *tiffPage) setBlocks(tileW, tileH, rowsPerStrip uint32, arrays map[int]tiffArray) error {
	p.blockW, p.blockH, p.across, p.down = p.w, p.h, 1, 1
	offTag, cntTag := tagStripOffsets, tagStripByteCounts
	if tileW != 0 {
		p.tiled = true
		p.blockW, p.blockH = int(tileW), int(tileH)
		// As x/image/tiff: tiles under 8 pixels are refused (too much
		// work for too little), and so are tiles both much larger than
		// the page and over 1024 pixels.
		if p.blockW < 8 || p.blockH < 8 {
			return tiffFormat("tile size is too small")
		}
		if (p.blockW-p.w > 16 || p.blockH-p.h > 16) && (p.blockW > 1024 || p.blockH > 1024) {
			return tiffFormat("tile size exceeds image size")
		}
		p.across, p.down = (p.w+p.blockW-1)/p.blockW, (p.h+p.blockH-1)/p.blockH
		offTag, cntTag = tagTileOffsets, tagTileByteCounts
	} else {
		if rowsPerStrip > 0 && int64(rowsPerStrip) < int64(p.blockH) {
			p.blockH = int(rowsPerStrip)
		}
		p.down = (p.h + p.blockH - 1) / p.blockH
	}
	n := p.across * p.down
	p.offsets, p.counts = arrays[offTag], arrays[cntTag]
	if p.offsets.count < n || p.counts.count < n {
		return tiffFormat("inconsistent header")
	}
	return nil
}

// tiffEntry locates the values of the directory entry e, as an array of at
// most maxCount BYTEs, SHORTs or LONGs.
func tiffEntry(b []byte, bo binary.ByteOrder, e []byte, maxCount int) (tiffArray, error) {
	typ := int(bo.Uint16(e[2:4]))
	if typ <= 0 || typ >= len(tiffTypeSize) {
		return tiffArray{}, tiffUnsupported("IFD entry datatype")
	}
	count := bo.Uint32(e[4:8])
	if count > math.MaxInt32/tiffTypeSize[typ] {
		return tiffArray{}, tiffFormat("IFD data too large")
	}
	if typ != 1 && typ != 3 && typ != 4 {
		return tiffArray{}, tiffUnsupported("data type")
	}
	a := tiffArray{size: int(tiffTypeSize[typ]), count: min(int(count), maxCount), bo: bo}
	size := uint64(a.size) * uint64(a.count)
	if uint64(tiffTypeSize[typ])*uint64(count) <= 4 {
		a.data = e[8:12]
		return a, nil
	}
	at := uint64(bo.Uint32(e[8:12]))
	if at+size > uint64(len(b)) {
		return tiffArray{}, tiffFormat("directory entry values outside the file")
	}
	a.data = b[at : at+size]
	return a, nil
}

func tiffUints(b []byte, bo binary.ByteOrder, e []byte, maxCount int) ([]uint32, error) {
	a, err := tiffEntry(b, bo, e, maxCount)
	if err != nil {
		return nil, err
	}
	v := make([]uint32, a.count)
	for i := range v {
		v[i] = uint32(a.at(i))
	}
	return v, nil
}

// tiffPalette makes the ColorMap's 16-bit red, green and blue arrays a
// palette, with the colours x/image/tiff gives.
func tiffPalette(v []uint32) (color.Palette, error) {
	n := len(v) / 3
	if len(v)%3 != 0 || n <= 0 || n > 256 {
		return nil, tiffFormat("bad ColorMap length")
	}
	pal := make(color.Palette, n)
	for i := range pal {
		pal[i] = color.RGBA64{uint16(v[i]), uint16(v[i+n]), uint16(v[i+2*n]), 0xffff}
	}
	return pal, nil
}

// pixelSamples is the number of samples each pixel has in the data.
func (p *tiffPage) pixelSamples() int {
	switch p.mode {
	case modeRGB:
		return 3
	case modeRGBA, modeNRGBA:
		return 4
	}
	return 1
}

// pixels is how the decoded page stores its pixels: 1 byte a pixel grey or
// paletted, 4 otherwise.
func (p *tiffPage) pixels() pixelKind {
	if p.pixelSamples() == 1 {
		return onePerPixel
	}
	return fourPerPixel
}

// decodeBytes is what decoding the page costs: the page; a row of
// samples; and for CCITT, whose decoder cannot be reused, two rows and its
// state per block.
func (p *tiffPage) decodeBytes() int64 {
	cost := p.pixels().bytes() * int64(p.w) * int64(p.h)
	cost += (int64(p.blockW)*int64(p.pixelSamples()*p.bpp) + 7) / 8
	if p.compression == compG3 || p.compression == compG4 {
		cost += int64(p.across*p.down) * (2*int64(p.blockW) + 512)
	}
	return cost
}

var errNoPixels = tiffFormat("not enough pixel data")

// decodeTIFF decodes a page parseTIFFPage accepted. ctx is checked every
// row.
func decodeTIFF(ctx context.Context, b []byte, bo binary.ByteOrder, p *tiffPage) (image.Image, error) {
	rect := image.Rect(0, 0, p.w, p.h)
	var img image.Image
	switch p.mode {
	case modeGray, modeGrayInvert:
		img = image.NewGray(rect)
	case modePaletted:
		img = image.NewPaletted(rect, p.palette)
	case modeNRGBA:
		img = image.NewNRGBA(rect)
	default:
		img = image.NewRGBA(rect)
	}
	row := make([]byte, (p.blockW*p.pixelSamples()*p.bpp+7)/8)
	var rs blockReaders
	for i := range p.across {
		for j := range p.down {
			// Strips end at the page; tiles are padded.
			blkW, blkH := p.blockW, p.blockH
			if !p.tiled && j == p.down-1 && p.h%p.blockH != 0 {
				blkH = p.h % p.blockH
			}
			k := j*p.across + i
			r, err := rs.open(p, b, p.offsets.at(k), p.counts.at(k), blkW, blkH)
			if err != nil {
				return nil, err
			}
			xmin, ymin := i*p.blockW, j*p.blockH
			if err := p.decodeBlock(ctx, img, r, row, bo, xmin, ymin, min(xmin+blkW, p.w), min(ymin+blkH, p.h)); err != nil {
				return nil, err
			}
		}
	}
	return img, nil
}

// blockReaders are the decompressors of a page's blocks, reset from one
// block to the next: a page of one-row strips must not cost a decompressor
// per row.
type blockReaders struct {
	raw bytes.Reader
	z   io.ReadCloser
	lzw *lzwReader
	pb  packBitsReader
}

// open returns the decompressed samples of the block of n bytes at offset.
func (rs *blockReaders) open(p *tiffPage, b []byte, offset, n uint64, blkW, blkH int) (io.Reader, error) {
	var raw []byte
	if offset < uint64(len(b)) {
		raw = b[offset:min(offset+n, uint64(len(b)))]
	}
	rs.raw.Reset(raw)
	switch p.compression {
	case 0, compNone:
		// As x/image/tiff: a block may not claim more than 8 bytes a pixel.
		if n > uint64(p.blockW)*uint64(p.blockH)*8 {
			return nil, tiffFormat("block data size too large")
		}
		return &rs.raw, nil
	case compG3, compG4:
		order, sub := ccitt.MSB, ccitt.Group3
		if p.fillOrder == 2 {
			order = ccitt.LSB
		}
		if p.compression == compG4 {
			sub = ccitt.Group4
		}
		return ccitt.NewReader(&rs.raw, order, sub, blkW, blkH, &ccitt.Options{Invert: p.photometric == photoWhiteIsZero}), nil
	case compLZW:
		if rs.lzw == nil {
			rs.lzw = new(lzwReader)
		}
		rs.lzw.reset(&rs.raw)
		return rs.lzw, nil
	case compDeflate, compDeflateOld:
		var err error
		if rs.z == nil {
			rs.z, err = zlib.NewReader(&rs.raw)
		} else {
			err = rs.z.(zlib.Resetter).Reset(&rs.raw, nil)
		}
		if err != nil {
			rs.z = nil
			return nil, tiffFormat("%v", err)
		}
		return rs.z, nil
	case compPackBits:
		rs.pb = packBitsReader{r: &rs.raw}
		return &rs.pb, nil
	}
	return nil, tiffUnsupported("compression value %d", p.compression)
}

// decodeBlock reads the rows of one block from r and writes the part of
// the block inside the page, [xmin, xmax) x [ymin, ymax), to img.
func (p *tiffPage) decodeBlock(ctx context.Context, img image.Image, r io.Reader, row []byte, bo binary.ByteOrder, xmin, ymin, xmax, ymax int) error {
	bytesPerPixel := p.pixelSamples() * p.bpp / 8
	for y := ymin; y < ymax; y++ {
		if y%64 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		if _, err := io.ReadFull(r, row); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return errNoPixels
			}
			return tiffFormat("%v", err)
		}
		if p.predictor == 2 {
			predict(row, bytesPerPixel, p.bpp, bo)
		}
		if err := p.putRow(img, row, bo, y, xmax-xmin, xmin); err != nil {
			return err
		}
	}
	return nil
}

// predict undoes horizontal differencing: each sample after the first
// pixel is stored as the difference from the same sample a pixel left.
func predict(row []byte, bytesPerPixel, bpp int, bo binary.ByteOrder) {
	if bpp == 16 {
		for i := bytesPerPixel; i+1 < len(row); i += 2 {
			bo.PutUint16(row[i:], bo.Uint16(row[i:])+bo.Uint16(row[i-bytesPerPixel:]))
		}
		return
	}
	for i := bytesPerPixel; i < len(row); i++ {
		row[i] += row[i-bytesPerPixel]
	}
}

// putRow writes w pixels of row y from the samples in row, starting at x0.
func (p *tiffPage) putRow(img image.Image, row []byte, bo binary.ByteOrder, y, w, x0 int) error {
	// one is sample x of a row of one sample a pixel, as stored.
	one := func(x int) uint16 {
		switch p.bpp {
		case 16:
			return bo.Uint16(row[2*x:])
		case 8:
			return uint16(row[x])
		}
		return uint16(row[x/8] >> (7 - x%8) & 1)
	}
	switch m := img.(type) {
	case *image.Gray:
		pix := m.Pix[y*m.Stride+x0 : y*m.Stride+x0+w]
		for x := range pix {
			v := one(x)
			switch p.bpp {
			case 16:
				v >>= 8
			case 1:
				v *= 0xff
			}
			if p.mode == modeGrayInvert {
				v = 0xff - v
			}
			pix[x] = uint8(v)
		}
	case *image.Paletted:
		pix := m.Pix[y*m.Stride+x0 : y*m.Stride+x0+w]
		for x := range pix {
			i := uint8(one(x)) // as x/image/tiff, a 16-bit index keeps its low byte
			if int(i) >= len(m.Palette) {
				return tiffFormat("invalid color index")
			}
			pix[x] = i
		}
	case *image.RGBA, *image.NRGBA:
		pix := pixOf(m)[y*4*p.w+4*x0 : y*4*p.w+4*(x0+w)]
		if p.bpp == 8 && p.pixelSamples() == 4 {
			copy(pix, row)
			return nil
		}
		for x := 0; x < w; x++ {
			d := pix[4*x : 4*x+4]
			for c := range p.pixelSamples() {
				if p.bpp == 16 {
					d[c] = uint8(bo.Uint16(row[2*(p.pixelSamples()*x+c):]) >> 8)
				} else {
					d[c] = row[p.pixelSamples()*x+c]
				}
			}
			if p.mode == modeRGB {
				d[3] = 0xff
			}
		}
	}
	return nil
}

func pixOf(img image.Image) []byte {
	if m, ok := img.(*image.RGBA); ok {
		return m.Pix
	}
	return img.(*image.NRGBA).Pix
}

// packBitsReader decompresses TIFF PackBits as a stream.
type packBitsReader struct {
	r      *bytes.Reader
	lit    int  // literal bytes left in the current run
	repeat int  // repeats left of b
	b      byte // the repeated byte
}

func (p *packBitsReader) Read(dst []byte) (int, error) {
	n := 0
	for n < len(dst) {
		switch {
		case p.lit > 0:
			k, _ := p.r.Read(dst[n:min(len(dst), n+p.lit)])
			if k == 0 {
				return n, io.ErrUnexpectedEOF
			}
			n += k
			p.lit -= k
		case p.repeat > 0:
			k := min(p.repeat, len(dst)-n)
			for i := range k {
				dst[n+i] = p.b
			}
			n += k
			p.repeat -= k
		default:
			code, err := p.r.ReadByte()
			if err != nil {
				if n > 0 {
					return n, nil
				}
				return 0, io.EOF
			}
			switch c := int(int8(code)); {
			case c >= 0:
				p.lit = c + 1
			case c == -128: // no-op
			default:
				if p.b, err = p.r.ReadByte(); err != nil {
					return n, io.ErrUnexpectedEOF
				}
				p.repeat = 1 - c
			}
		}
	}
	return n, nil
}
