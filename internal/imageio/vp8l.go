package imageio

import "errors"

// The lossless WebP format (VP8L) codes its pixels with groups of five
// Huffman trees, and a meta-Huffman image says which group each tile
// uses. x/image/vp8l builds every group the meta image names (it refuses
// more than 2600, which imagetest's TestWebPLossless holds it to) before
// it reads a pixel, each tree up to 2,328 symbols, so a 1 MB file with a
// 204x204 canvas makes it allocate 215 MB. A bound from the header alone
// would charge every lossless page of more than 204x204 pixels that
// worst case, so vp8lCost reads the stream as far as the decoder does
// before its pixels: the transforms (skipping their entropy-coded
// sub-images), the colour cache, the meta image (decoded, to count the
// groups) and every tree, and adds up what x/image will allocate.
//
// The count is only as good as the agreement between this reader and
// x/image. Both decode a complete prefix code the same way, as the format
// defines it; x/image also accepts some incomplete codes, whose bits it
// may read otherwise. So the reader stops with errVP8LDiverge at any code
// it must decode with (a sub-image's, a code length code) that is not
// complete, and the caller then charges the worst case the canvas allows
// (vp8lWorstCost); the codes of the pixels are only read past, and their
// lengths mean the same to both whatever they are. It stops with errVP8LStop where x/image
// fails too, having allocated no more than what is counted so far (the
// data ends, or a value x/image refuses at the same point). Encoders
// (libwebp) write complete codes only, so real pages are counted exactly.

var (
	errVP8LStop    = errors.New("vp8l: the decoder stops here too")
	errVP8LDiverge = errors.New("vp8l: the decoder may read this otherwise")
)

// Sizes of what x/image/vp8l allocates, as declared there.
const (
	vp8lTreeSize      = 24 + 4<<7                             // hTree: a nodes slice and a 128-entry look-up table
	vp8lGroupSize     = 5 * vp8lTreeSize                      // hGroup
	vp8lNodeSize      = 8                                     // hNode
	vp8lMaxGroups     = 2600                                  // more and x/image refuses the stream
	vp8lMaxGreen      = 256 + 24 + 1<<11                      // the largest alphabet: literals, lengths, an 11-bit cache
	vp8lCodeLenTree   = 37*vp8lNodeSize + 19*4 + vp8lTreeSize // a code length code's nodes, codes and table
	vp8lMaxSubImages  = 4                                     // predictor, cross-colour and colour-indexing images, the meta image
	vp8lMaxGroupIndex = 1000                                  // x/image remaps group indices from here on
)

// vp8lAlphabets are the five alphabet sizes of a group, the green one
// without its colour cache.
var vp8lAlphabets = [5]int{256 + 24, 256, 256, 256, 40}

// allocSize is an upper bound of what the runtime hands out for an
// allocation of n bytes: small size classes waste at most an eighth, and
// an object over 32 kB takes whole 8 kB pages.
func allocSize(n int64) int64 {
	if n > 32<<10 {
		return (n + 8<<10 - 1) &^ (8<<10 - 1)
	}
	return n + n/8 + 16
}

// vp8lCost is what x/image/vp8l allocates decoding the stream (the bits
// after the 5-byte header of a VP8L chunk, or an ALPH chunk's compressed
// data) of a w x h image: the pixels, the transforms' images, and the
// Huffman codes and colour caches.
//
// It stops counting once the cost is over limit (the page is refused
// then), which also bounds what it allocates itself: the meta image's
// indices, 4 bytes a tile, once x/image's own copy of them is counted.
func vp8lCost(stream []byte, w, h int, limit int64) int64 {
	s := vp8lScan{b: bitReader{data: stream}, limit: limit}
	if err := s.image(w, h); errors.Is(err, errVP8LDiverge) {
		return vp8lWorstCost(w, h)
	}
	return s.cost
}

// vp8lWorstCost bounds vp8lCost for any stream of a w x h image: the
// pixels, and packed colour indices at two a pixel at most (a
// colour-indexing transform expands them into the pixels), three tile
// images (a tile per 4x4 block at most) and the palette; every
// sub-image with the largest group; the
// groups of the pixels, at most one per tile, each with the largest
// trees; and every other group x/image reads without building it.
func vp8lWorstCost(w, h int) int64 {
	tiles := int64((w+3)/4) * int64((h+3)/4)
	built := min(tiles, vp8lMaxGroups)
	return allocSize(4*int64(w)*int64(h)) + allocSize(4*int64((w+1)/2)*int64(h)) + 3*allocSize(4*tiles) + allocSize(4*256) +
		(vp8lMaxSubImages+1)*allocSize(4<<11) + // colour caches
		vp8lMaxSubImages*vp8lWorstGroup() +
		built*vp8lWorstGroup() + (vp8lMaxGroups-built)*vp8lWorstUnbuilt() +
		allocSize(2*vp8lMaxGroups) // the index map
}

// vp8lWorstGroup is the most a group built from the stream costs: its
// share of the group slice and every tree with every symbol.
func vp8lWorstGroup() int64 {
	c := int64(vp8lGroupSize)
	for i, a := range vp8lAlphabets {
		if i == 0 {
			a = vp8lMaxGreen
		}
		c += vp8lTreeCost(a, a, true)
	}
	return c
}

// vp8lWorstUnbuilt is the most a group read but not built costs (its
// code lengths are read into a temporary slice all the same).
func vp8lWorstUnbuilt() int64 {
	var c int64
	for i, a := range vp8lAlphabets {
		if i == 0 {
			a = vp8lMaxGreen
		}
		c += vp8lTreeCost(a, 0, false)
	}
	return c
}

// vp8lTreeCost is what reading a normal code of an alphabet of a symbols,
// n of them used, allocates: its code lengths and the code length code,
// and when it is built its codes and nodes.
func vp8lTreeCost(a, n int, built bool) int64 {
	c := allocSize(4*int64(a)) + allocSize(vp8lCodeLenTree)
	if built {
		c += allocSize(4*int64(a)) + allocSize(vp8lNodeSize*int64(2*max(n, 1)-1))
	}
	return c
}

// vp8lScan reads a VP8L stream the way x/image/vp8l does up to the
// pixels, adding up in cost what the decoder allocates meanwhile, each
// item before reading it.
type vp8lScan struct {
	b           bitReader
	cost, limit int64
	lengths     [vp8lMaxGreen]uint8 // a code's lengths, reused
}

// charge adds n bytes to the cost, and stops the scan once it is over
// the limit.
func (s *vp8lScan) charge(n int64) error {
	if s.cost += n; s.cost > s.limit {
		return errVP8LStop
	}
	return nil
}

// image reads the transforms and the top-level codes of a w x h image.
func (s *vp8lScan) image(w, h int) error {
	var seen [4]bool
	width := w
	for {
		more, err := s.b.read(1)
		if err != nil {
			return err
		}
		if more == 0 {
			break
		}
		typ, err := s.b.read(2)
		if err != nil {
			return err
		}
		switch typ {
		case 0, 1: // predictor, cross-colour: a tile image
			bits, err := s.b.read(3)
			if err != nil {
				return err
			}
			if _, err := s.pixels(nTiles(w, bits+2), nTiles(h, bits+2), 0, false); err != nil {
				return err
			}
		case 3: // colour indexing: a palette, and a narrower image
			n, err := s.b.read(8)
			if err != nil {
				return err
			}
			if _, err := s.pixels(int(n)+1, 1, 256, false); err != nil {
				return err
			}
			switch {
			case n < 2:
				w = nTiles(w, 3)
			case n < 4:
				w = nTiles(w, 2)
			case n < 16:
				w = nTiles(w, 1)
			}
		}
		if seen[typ] {
			return errVP8LStop // repeated transform
		}
		seen[typ] = true
	}
	if err := s.codes(w, h); err != nil || w == width {
		return err
	}
	// Colour indices packed several to a pixel are expanded into a new
	// image (16 colours or fewer; more are looked up in place).
	return s.charge(allocSize(4 * int64(width) * int64(h)))
}

// nTiles is how many tiles of side 1<<bits cover size.
func nTiles(size int, bits uint32) int { return (size + 1<<bits - 1) >> bits }

// cache reads the colour cache parameters and charges the cache.
func (s *vp8lScan) cache() (int, error) {
	use, err := s.b.read(1)
	if err != nil || use == 0 {
		return 0, err
	}
	bits, err := s.b.read(4)
	if err != nil {
		return 0, err
	}
	if bits < 1 || bits > 11 {
		return 0, errVP8LStop
	}
	return 1 << bits, s.charge(allocSize(4 << bits))
}

// codes reads the top-level codes of a w x h image: the colour cache,
// the meta image and every group it names.
func (s *vp8lScan) codes(w, h int) error {
	cacheSize, err := s.cache()
	if err != nil {
		return err
	}
	meta, err := s.b.read(1)
	if err != nil {
		return err
	}
	if meta == 0 {
		if err := s.charge(allocSize(vp8lGroupSize)); err != nil {
			return err
		}
		if _, err := s.group(cacheSize, true, false); err != nil {
			return err
		}
		return s.charge(allocSize(4 * int64(w) * int64(h)))
	}
	bits, err := s.b.read(3)
	if err != nil {
		return err
	}
	tileW, tileH := nTiles(w, bits+2), nTiles(h, bits+2)
	idx, err := s.pixels(tileW, tileH, 0, true)
	if err != nil {
		return err
	}
	// Which groups x/image builds: all up to the largest index, or, when
	// that is large, only those the meta image uses.
	largest := 0
	for _, v := range idx {
		largest = max(largest, int(v>>8&0xffff))
	}
	if largest >= vp8lMaxGroups {
		return errVP8LStop
	}
	var used []bool
	groups := largest + 1
	if largest >= vp8lMaxGroupIndex || largest >= tileW*tileH {
		if err := s.charge(allocSize(2 * int64(largest+1))); err != nil {
			return err
		}
		used = make([]bool, largest+1)
		groups = 0
		for _, v := range idx {
			if g := v >> 8 & 0xffff; !used[g] {
				used[g] = true
				groups++
			}
		}
	}
	if err := s.charge(allocSize(vp8lGroupSize * int64(groups))); err != nil {
		return err
	}
	for g := 0; g <= largest; g++ {
		if _, err := s.group(cacheSize, used == nil || used[g], false); err != nil {
			return err
		}
		if err := s.charge(0); err != nil {
			return err
		}
	}
	return s.charge(allocSize(4 * int64(w) * int64(h)))
}

// group reads a group's five codes for an image with a colour cache of
// cacheSize entries; build says whether x/image builds them or only
// reads past them, decode whether they code pixels read here.
func (s *vp8lScan) group(cacheSize int, build, decode bool) ([5]huffCode, error) {
	var g [5]huffCode
	for i, a := range vp8lAlphabets {
		if i == 0 {
			a += cacheSize
		}
		var err error
		if g[i], err = s.code(a, build, decode); err != nil {
			return g, err
		}
	}
	return g, nil
}

// pixels reads an entropy-coded sub-image of w x h pixels (x/image
// allocates room for at least capacity) with one group of codes, and
// returns its ARGB pixels when keep is set.
func (s *vp8lScan) pixels(w, h, capacity int, keep bool) ([]uint32, error) {
	cacheSize, err := s.cache()
	if err != nil {
		return nil, err
	}
	if err := s.charge(allocSize(vp8lGroupSize)); err != nil {
		return nil, err
	}
	g, err := s.group(cacheSize, true, true)
	if err != nil {
		return nil, err
	}
	n := w * h
	if err := s.charge(allocSize(4 * int64(max(n, capacity)))); err != nil {
		return nil, err
	}
	var px, cache []uint32
	if keep {
		px = make([]uint32, n)
		cache = make([]uint32, cacheSize)
	}
	shift := 32 - bitsLen(cacheSize)
	cached := 0
	for p := 0; p < n; {
		green, err := g[0].next(&s.b)
		if err != nil {
			return nil, err
		}
		switch {
		case green < 256:
			var argb [3]uint32
			for i := range argb {
				if argb[i], err = g[i+1].next(&s.b); err != nil {
					return nil, err
				}
			}
			if keep {
				px[p] = argb[2]<<24 | argb[0]<<16 | green<<8 | argb[1]
			}
			p++
		case green < 256+24:
			length, err := s.lz77(green - 256)
			if err != nil {
				return nil, err
			}
			sym, err := g[4].next(&s.b)
			if err != nil {
				return nil, err
			}
			code, err := s.lz77(sym)
			if err != nil {
				return nil, err
			}
			dist := distance(w, code)
			if p+length > n || dist > p {
				return nil, errVP8LStop
			}
			if keep {
				for end := p + length; p < end; p++ {
					px[p] = px[p-dist]
				}
			} else {
				p += length
			}
		default:
			i := int(green - 256 - 24)
			if i >= cacheSize {
				return nil, errVP8LStop
			}
			if keep {
				for ; cached < p; cached++ {
					cache[(px[cached]*0x1e35a7bd)>>shift] = px[cached]
				}
				px[p] = cache[i]
			}
			p++
		}
	}
	return px, nil
}

// bitsLen is log2 of a colour cache size (0 without a cache).
func bitsLen(size int) uint32 {
	n := uint32(0)
	for ; size > 1; size >>= 1 {
		n++
	}
	return n
}

// lz77 reads the rest of an LZ77 length or distance whose prefix code
// is symbol.
func (s *vp8lScan) lz77(symbol uint32) (int, error) {
	if symbol < 4 {
		return int(symbol) + 1, nil
	}
	extra := (symbol - 2) >> 1
	offset := (2 + symbol&1) << extra
	v, err := s.b.read(uint(extra))
	if err != nil {
		return 0, err
	}
	return int(offset+v) + 1, nil
}

// distanceCodes maps the first 120 distance codes to (dy, 8-dx) pairs,
// as the format defines them.
var distanceCodes = [120]uint8{
	0x18, 0x07, 0x17, 0x19, 0x28, 0x06, 0x27, 0x29, 0x16, 0x1a,
	0x26, 0x2a, 0x38, 0x05, 0x37, 0x39, 0x15, 0x1b, 0x36, 0x3a,
	0x25, 0x2b, 0x48, 0x04, 0x47, 0x49, 0x14, 0x1c, 0x35, 0x3b,
	0x46, 0x4a, 0x24, 0x2c, 0x58, 0x45, 0x4b, 0x34, 0x3c, 0x03,
	0x57, 0x59, 0x13, 0x1d, 0x56, 0x5a, 0x23, 0x2d, 0x44, 0x4c,
	0x55, 0x5b, 0x33, 0x3d, 0x68, 0x02, 0x67, 0x69, 0x12, 0x1e,
	0x66, 0x6a, 0x22, 0x2e, 0x54, 0x5c, 0x43, 0x4d, 0x65, 0x6b,
	0x32, 0x3e, 0x78, 0x01, 0x77, 0x79, 0x53, 0x5d, 0x11, 0x1f,
	0x64, 0x6c, 0x42, 0x4e, 0x76, 0x7a, 0x21, 0x2f, 0x75, 0x7b,
	0x31, 0x3f, 0x63, 0x6d, 0x52, 0x5e, 0x00, 0x74, 0x7c, 0x41,
	0x4f, 0x10, 0x20, 0x62, 0x6e, 0x30, 0x73, 0x7d, 0x51, 0x5f,
	0x40, 0x72, 0x7e, 0x61, 0x6f, 0x50, 0x71, 0x7f, 0x60, 0x70,
}

// distance turns a distance code into a distance in pixels for an image
// w pixels wide.
func distance(w, code int) int {
	if code > len(distanceCodes) {
		return code - len(distanceCodes)
	}
	c := int(distanceCodes[code-1])
	return max(c>>4*w+8-c&0xf, 1)
}

// code reads one Huffman code over an alphabet of a symbols, charging
// what x/image allocates for it (more when it builds the code), and
// returns it when decode is set. A code only read past may be any code:
// its lengths decide no bit's meaning.
func (s *vp8lScan) code(a int, build, decode bool) (huffCode, error) {
	simple, err := s.b.read(1)
	if err != nil {
		return huffCode{}, err
	}
	if simple == 1 {
		return s.simpleCode(a, build)
	}
	s.cost += vp8lTreeCost(a, 0, false)
	n, err := s.b.read(4)
	if err != nil {
		return huffCode{}, err
	}
	var clLengths [19]uint8
	for _, sym := range codeLengthOrder[:n+4] {
		v, err := s.b.read(3)
		if err != nil {
			return huffCode{}, err
		}
		clLengths[sym] = uint8(v)
	}
	var cl huffCode
	if err := cl.build(clLengths[:]); err != nil {
		return huffCode{}, err
	}
	lengths := s.lengths[:a]
	clear(lengths)
	if err := s.codeLengths(lengths, &cl); err != nil {
		return huffCode{}, err
	}
	if !build {
		return huffCode{}, nil
	}
	used := 0
	for _, l := range lengths {
		if l != 0 {
			used++
		}
	}
	s.cost += vp8lTreeCost(a, used, true) - vp8lTreeCost(a, 0, false)
	var c huffCode
	if !decode {
		return c, nil
	}
	return c, c.build(lengths)
}

// simpleCode reads a code of one or two symbols given outright.
func (s *vp8lScan) simpleCode(a int, build bool) (huffCode, error) {
	n, err := s.b.read(1)
	if err != nil {
		return huffCode{}, err
	}
	wide, err := s.b.read(1)
	if err != nil {
		return huffCode{}, err
	}
	c := huffCode{simple: int(n) + 1}
	if c.syms[0], err = s.b.read(uint(7*wide + 1)); err != nil {
		return huffCode{}, err
	}
	if n == 1 {
		if c.syms[1], err = s.b.read(8); err != nil {
			return huffCode{}, err
		}
	}
	if !build {
		return huffCode{}, nil
	}
	s.cost += allocSize(vp8lNodeSize * int64(2*c.simple-1))
	if int(c.syms[0]) >= a || int(c.syms[1]) >= a {
		return huffCode{}, errVP8LStop
	}
	return c, nil
}

// codeLengthOrder is the order code length code lengths come in.
var codeLengthOrder = [19]uint8{17, 18, 0, 1, 2, 3, 4, 5, 16, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}

// codeLengths reads the code lengths of an alphabet into dst, coded with
// the code length code cl.
func (s *vp8lScan) codeLengths(dst []uint8, cl *huffCode) error {
	limit := len(dst)
	if use, err := s.b.read(1); err != nil {
		return err
	} else if use == 1 {
		n, err := s.b.read(3)
		if err != nil {
			return err
		}
		v, err := s.b.read(uint(2 + 2*n))
		if err != nil {
			return err
		}
		if limit = int(v) + 2; limit > len(dst) {
			return errVP8LStop
		}
	}
	prev := uint8(8)
	for i := 0; i < len(dst) && limit > 0; limit-- {
		l, err := cl.next(&s.b)
		if err != nil {
			return err
		}
		if l < 16 {
			dst[i] = uint8(l)
			i++
			if l != 0 {
				prev = uint8(l)
			}
			continue
		}
		extra, offset := [3]uint{2, 3, 7}[l-16], [3]int{3, 3, 11}[l-16]
		r, err := s.b.read(extra)
		if err != nil {
			return err
		}
		repeat := int(r) + offset
		if i+repeat > len(dst) {
			return errVP8LStop
		}
		v := uint8(0)
		if l == 16 {
			v = prev
		}
		for ; repeat > 0; repeat-- {
			dst[i] = v
			i++
		}
	}
	return nil
}

// huffCode decodes a prefix code: a simple one of one or two symbols
// given outright, or a canonical one from code lengths. Only complete
// codes are built (and a code of one symbol, which takes no bits).
type huffCode struct {
	simple int       // 1 or 2 for a simple code, else 0
	syms   [2]uint32 // a simple code's symbols; syms[0] alone for a one-symbol code
	count  [16]uint16
	symbol []uint16 // symbols in canonical order
	one    bool     // a code of one symbol, syms[0]
}

// build makes a canonical code from lengths.
func (c *huffCode) build(lengths []uint8) error {
	n := 0
	for s, l := range lengths {
		if l != 0 {
			n++
			c.syms[0] = uint32(s)
		}
	}
	switch {
	case n == 0:
		return errVP8LStop // x/image refuses an empty code too
	case n == 1:
		c.one = true
		return nil
	}
	for _, l := range lengths {
		c.count[l]++
	}
	c.count[0] = 0
	left := 1
	var offs [16]uint16
	for l := 1; l < 16; l++ {
		left = left<<1 - int(c.count[l])
		if left < 0 {
			return errVP8LDiverge // over-subscribed
		}
		offs[l] = offs[l-1] + c.count[l-1]
	}
	if left != 0 {
		return errVP8LDiverge // incomplete
	}
	c.symbol = make([]uint16, n)
	for s, l := range lengths {
		if l != 0 {
			c.symbol[offs[l]] = uint16(s)
			offs[l]++
		}
	}
	return nil
}

// next decodes a symbol, reading its code a bit at a time (the sub-images
// are small; the pixels are never decoded here).
func (c *huffCode) next(b *bitReader) (uint32, error) {
	switch {
	case c.one || c.simple == 1:
		return c.syms[0], nil
	case c.simple == 2:
		bit, err := b.read(1)
		return c.syms[bit], err
	}
	code, first, index := 0, 0, 0
	for l := 1; l < 16; l++ {
		bit, err := b.read(1)
		if err != nil {
			return 0, err
		}
		code |= int(bit)
		n := int(c.count[l])
		if code-n < first {
			return uint32(c.symbol[index+code-first]), nil
		}
		index += n
		first = (first + n) << 1
		code <<= 1
	}
	return 0, errVP8LDiverge // unreachable for a complete code
}

// bitReader reads a VP8L bit stream, least significant bit first. Reading
// past the end fails, as x/image's reader does.
type bitReader struct {
	data []byte
	pos  int // in bits
}

func (b *bitReader) read(n uint) (uint32, error) {
	if n == 0 {
		return 0, nil
	}
	if b.pos+int(n) > 8*len(b.data) {
		return 0, errVP8LStop
	}
	var v uint64
	i := b.pos >> 3
	for k := 0; k < 4 && i+k < len(b.data); k++ {
		v |= uint64(b.data[i+k]) << (8 * k)
	}
	v >>= uint(b.pos & 7)
	b.pos += int(n)
	return uint32(v & (1<<n - 1)), nil
}
