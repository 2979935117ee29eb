package imagetest

import (
	"encoding/binary"
	"math/bits"
	"math/rand/v2"
)

// WebPLossless describes a lossless (VP8L) WebP for WebPLossless.Encode
// to write, made to cost x/image/webp what its Huffman codes can: the
// decoder builds every tree of every group the meta-Huffman image names
// before it reads a pixel, whatever the canvas size.
type WebPLossless struct {
	W, H int
	// Groups is how many Huffman groups the meta-Huffman image names
	// (0 or 1: one group and no meta image). Tile i of the meta image
	// names group i%Groups; with fewer tiles than groups the last tile
	// names group Groups-1, so the rest are read but never used.
	Groups int
	// MetaBits is the log2 of the meta image's tile side (2 to 9; 0 is 2).
	MetaBits int
	// CacheBits is the colour cache's size (1 to 11 bits; 0: none), which
	// adds 1<<CacheBits symbols to every green alphabet.
	CacheBits int
	// Full gives every tree every symbol of its alphabet (normal codes of
	// 8 to 12 bits), the largest trees there are; otherwise each tree is
	// a simple code of one symbol, the cheapest group to write.
	Full bool
	// Predictor and ColorIndexing add those transforms (a predictor tile
	// image of side 1<<Predictor, 2 to 9; a palette of ColorIndexing
	// colours, 1 to 256).
	Predictor, ColorIndexing int
	// Noise makes the pixels (literals, written when Full) come from a
	// seeded generator rather than be black.
	Noise bool
	// VP8X wraps the stream in an extended file (a VP8X chunk first).
	VP8X bool
}

// Encode writes the file.
func (p WebPLossless) Encode() []byte {
	var bw bitWriter
	bw.put(0x2f, 8)
	bw.put(uint32(p.W-1), 14)
	bw.put(uint32(p.H-1), 14)
	bw.put(0, 1) // alpha unused
	bw.put(0, 3) // version
	p.stream(&bw)
	return webpFile(bw.bytes(), "VP8L", p.VP8X, false, p.W, p.H)
}

// AlphaStream writes the stream alone, without the VP8L header, as a
// compressed ALPH chunk carries it.
func (p WebPLossless) AlphaStream() []byte {
	var bw bitWriter
	p.stream(&bw)
	return bw.bytes()
}

// stream writes the transforms, the meta image, the groups and the pixels.
func (p WebPLossless) stream(bw *bitWriter) {
	w := p.W
	if p.Predictor > 0 {
		bw.put(1, 1)
		bw.put(0, 2) // predictor
		bw.put(uint32(p.Predictor-2), 3)
		side := 1 << p.Predictor
		subImage(bw, (w+side-1)/side*((p.H+side-1)/side), func(int) uint32 { return 0x000100 }) // mode 1 (L)
	}
	if p.ColorIndexing > 0 {
		bw.put(1, 1)
		bw.put(3, 2) // colour indexing
		bw.put(uint32(p.ColorIndexing-1), 8)
		subImage(bw, p.ColorIndexing, func(i int) uint32 { return 0xff000000 | uint32(i&1)*0x010101 })
		switch n := p.ColorIndexing; {
		case n <= 2:
			w = (w + 7) / 8
		case n <= 4:
			w = (w + 3) / 4
		case n <= 16:
			w = (w + 1) / 2
		}
	}
	bw.put(0, 1) // no more transforms
	if p.CacheBits > 0 {
		bw.put(1, 1)
		bw.put(uint32(p.CacheBits), 4)
	} else {
		bw.put(0, 1)
	}
	groups := max(p.Groups, 1)
	if groups > 1 {
		mb := max(p.MetaBits, 2)
		bw.put(1, 1)
		bw.put(uint32(mb-2), 3)
		side := 1 << mb
		tiles := (w + side - 1) / side * ((p.H + side - 1) / side)
		subImage(bw, tiles, func(i int) uint32 {
			g := i % groups
			if tiles < groups && i == tiles-1 {
				g = groups - 1
			}
			return uint32(g>>8)<<16 | uint32(g&0xff)<<8
		})
	} else {
		bw.put(0, 1)
	}
	green := 280
	if p.CacheBits > 0 {
		green += 1 << p.CacheBits
	}
	var codes [5][]uint16
	for g := 0; g < groups; g++ {
		for i, size := range [5]int{green, 256, 256, 256, 40} {
			if !p.Full {
				symbol := uint32(0)
				if i == 3 {
					symbol = 255 // opaque
				}
				putSimple(bw, symbol)
				continue
			}
			codes[i] = putTree(bw, completeLengths(size))
		}
	}
	if !p.Full {
		return // one-symbol codes: the pixels take no bits
	}
	// Literal pixels; every group's trees are the same, so one table
	// encodes whatever group a pixel falls in.
	rng := rand.New(rand.NewPCG(uint64(p.W), uint64(p.H)))
	lengths := [5][]uint8{completeLengths(green), completeLengths(256), completeLengths(256), completeLengths(256)}
	for range w * p.H {
		v := uint32(0)
		if p.Noise {
			v = rng.Uint32()
		}
		for i, c := range [4]uint32{v & 0xff, v >> 8 & 0xff, v >> 16 & 0xff, 255} {
			bw.putCode(codes[i][c], uint(lengths[i][c]))
		}
	}
}

// subImage writes an entropy-coded image of n pixels, each px(i) (ARGB),
// with one group of codes: 8 and 9-bit codes for red and green, simple
// codes of one symbol for blue, alpha and distance.
func subImage(bw *bitWriter, n int, px func(int) uint32) {
	bw.put(0, 1) // no colour cache
	gl, rl := completeLengths(280), completeLengths(256)
	gc, rc := putTree(bw, gl), putTree(bw, rl)
	putSimple(bw, px(0)&0xff)
	putSimple(bw, px(0)>>24)
	putSimple(bw, 0)
	for i := range n {
		v := px(i)
		g, r := v>>8&0xff, v>>16&0xff
		bw.putCode(gc[g], uint(gl[g]))
		bw.putCode(rc[r], uint(rl[r]))
	}
}

// putSimple writes a simple code of one 8-bit symbol.
func putSimple(bw *bitWriter, symbol uint32) {
	bw.put(1, 1) // simple
	bw.put(0, 1) // one symbol
	bw.put(1, 1) // of eight bits
	bw.put(symbol, 8)
}

// completeLengths returns code lengths for a complete code over n
// symbols: each of length k or k+1 where 2^k <= n < 2^(k+1).
func completeLengths(n int) []uint8 {
	k := bits.Len(uint(n)) - 1
	short := 2<<k - n // 2^(k+1) - n symbols of k bits, the rest k+1
	if n == 1<<k {
		short = n
	}
	l := make([]uint8, n)
	for i := range l {
		l[i] = uint8(k)
		if i >= short {
			l[i] = uint8(k + 1)
		}
	}
	return l
}

// canonical returns the canonical Huffman codes of lengths.
func canonical(lengths []uint8) []uint16 {
	var count [16]int
	for _, l := range lengths {
		count[l]++
	}
	count[0] = 0
	var next [16]int
	code := 0
	for l := 1; l < 16; l++ {
		code = (code + count[l-1]) << 1
		next[l] = code
	}
	codes := make([]uint16, len(lengths))
	for s, l := range lengths {
		if l > 0 {
			codes[s] = uint16(next[l])
			next[l]++
		}
	}
	return codes
}

// codeLengthOrder is the order code length code lengths are written in.
var codeLengthOrder = [19]int{17, 18, 0, 1, 2, 3, 4, 5, 16, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}

// putTree writes a normal code with the given lengths (at least two
// non-zero) and returns its codes. The lengths are run-length coded with
// code 16 (repeat the previous length 3 to 6 times) and literal lengths,
// under a code length code with equally long codes.
func putTree(bw *bitWriter, lengths []uint8) []uint16 {
	type op struct{ sym, extra uint32 }
	var ops []op
	for i := 0; i < len(lengths); {
		l := lengths[i]
		ops = append(ops, op{uint32(l), 0})
		j := i + 1
		for j < len(lengths) && lengths[j] == l && j-i-1 < 6 {
			j++
		}
		if run := j - i - 1; run >= 3 {
			ops = append(ops, op{16, uint32(run - 3)})
			i = j
			continue
		}
		i++
	}
	used := map[uint32]bool{}
	for _, o := range ops {
		used[o.sym] = true
	}
	var syms []uint32
	for s := uint32(0); s < 19; s++ {
		if used[s] {
			syms = append(syms, s)
		}
	}
	clLengths := make([]uint8, 19)
	for i, l := range completeLengths(len(syms)) {
		clLengths[syms[i]] = l
	}
	if len(syms) == 1 {
		clLengths[syms[0]] = 1 // one symbol: a zero-bit code
	}
	n := 4
	for i, s := range codeLengthOrder {
		if clLengths[s] > 0 {
			n = max(n, i+1)
		}
	}
	bw.put(0, 1) // normal code
	bw.put(uint32(n-4), 4)
	for _, s := range codeLengthOrder[:n] {
		bw.put(uint32(clLengths[s]), 3)
	}
	bw.put(0, 1) // max_symbol: the whole alphabet
	clCodes := canonical(clLengths)
	for _, o := range ops {
		if len(syms) > 1 {
			bw.putCode(clCodes[o.sym], uint(clLengths[o.sym]))
		}
		if o.sym == 16 {
			bw.put(o.extra, 2)
		}
	}
	return canonical(lengths)
}

// putCode writes a Huffman code, its most significant bit first.
func (b *bitWriter) putCode(code uint16, n uint) {
	if n > 0 {
		b.put(uint32(bits.Reverse16(code)>>(16-n)), n)
	}
}

// WebPWithAlpha returns an extended lossy WebP of w x h whose alpha plane
// is the compressed (lossless) stream alpha, as WebPLossless.AlphaStream
// writes it, and whose VP8 frame is the smallest key frame x/image
// accepts: enough to reach the alpha plane, which is decoded first.
func WebPWithAlpha(w, h int, alpha []byte) []byte {
	alph := append([]byte{1}, alpha...) // no filter, lossless compression
	return webpFile(alph, "ALPH", true, true, w, h, vp8KeyFrame(w, h)...)
}

// vp8KeyFrame is the header of a VP8 key frame of w x h with an empty
// first partition (x/image fails on it after the alpha plane is decoded).
func vp8KeyFrame(w, h int) []byte {
	b := []byte{0x10, 0, 0, 0x9d, 0x01, 0x2a} // key frame, show, partition length 0
	b = binary.LittleEndian.AppendUint16(b, uint16(w))
	return binary.LittleEndian.AppendUint16(b, uint16(h))
}

// webpFile wraps chunk data of the given type in a RIFF WebP file,
// after a VP8X chunk when vp8x is set, and before a VP8 chunk when
// trailing data is given.
func webpFile(data []byte, typ string, vp8x, alpha bool, w, h int, vp8 ...byte) []byte {
	le := binary.LittleEndian
	chunk := func(out []byte, typ string, data []byte) []byte {
		out = append(out, typ...)
		out = le.AppendUint32(out, uint32(len(data)))
		out = append(out, data...)
		if len(data)%2 == 1 {
			out = append(out, 0)
		}
		return out
	}
	body := []byte("WEBP")
	if vp8x {
		flags := byte(0)
		if alpha {
			flags = 1 << 4
		}
		x := []byte{flags, 0, 0, 0, byte(w - 1), byte((w - 1) >> 8), byte((w - 1) >> 16), byte(h - 1), byte((h - 1) >> 8), byte((h - 1) >> 16)}
		body = chunk(body, "VP8X", x)
	}
	body = chunk(body, typ, data)
	if vp8 != nil {
		body = chunk(body, "VP8 ", vp8)
	}
	out := le.AppendUint32([]byte("RIFF"), uint32(len(body)))
	return append(out, body...)
}
