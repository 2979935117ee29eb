package pdf

import (
	"encoding/binary"
	"sort"
	"unicode/utf16"
)

// The invisible text layer's font: a TrueType program with one empty
// glyph, 500 units wide in a 1000-unit em, that every character maps to
// (a CIDFontType2 whose CIDToGIDMap sends every CID to glyph 1, with
// Identity-H and a ToUnicode map from CID to UTF-16). Since every glyph
// has the same width, a word is placed exactly by choosing the font size
// from the word's height and the horizontal scaling from its width. The
// approach is Tesseract's GlyphLessFont (src/api/pdfrenderer.cpp); the
// font program is built here, table by table.
const (
	glyphWidth = 500  // advance of every glyph, in font units
	unitsPerEm = 1000 // so a glyph advances fontSize/2
	fontName   = "VisionserveInvisible"
)

// glyphlessFont returns the TrueType font program.
func glyphlessFont() []byte {
	be := binary.BigEndian
	tables := map[string][]byte{}

	head := make([]byte, 54)
	be.PutUint32(head[0:], 0x00010000)  // version
	be.PutUint32(head[4:], 0x00010000)  // fontRevision
	be.PutUint32(head[12:], 0x5F0F3CF5) // magicNumber
	be.PutUint16(head[16:], 0x000B)     // flags: baseline at 0, lsb at 0, integer ppem
	be.PutUint16(head[18:], unitsPerEm)
	// created, modified (20..35) stay zero.
	be.PutUint16(head[40:], glyphWidth) // xMax
	be.PutUint16(head[42:], unitsPerEm) // yMax
	be.PutUint16(head[46:], 3)          // lowestRecPPEM
	be.PutUint16(head[48:], 2)          // fontDirectionHint
	tables["head"] = head               // indexToLocFormat 0 (short), glyphDataFormat 0

	hhea := make([]byte, 36)
	be.PutUint32(hhea[0:], 0x00010000)
	be.PutUint16(hhea[4:], unitsPerEm) // ascender
	be.PutUint16(hhea[10:], glyphWidth)
	be.PutUint16(hhea[16:], glyphWidth) // xMaxExtent
	be.PutUint16(hhea[18:], 1)          // caretSlopeRise
	be.PutUint16(hhea[34:], 2)          // numberOfHMetrics
	tables["hhea"] = hhea

	maxp := make([]byte, 32)
	be.PutUint32(maxp[0:], 0x00010000)
	be.PutUint16(maxp[4:], 2)  // numGlyphs: .notdef and the glyphless glyph
	be.PutUint16(maxp[14:], 2) // maxZones
	tables["maxp"] = maxp

	hmtx := make([]byte, 8)
	be.PutUint16(hmtx[0:], glyphWidth)
	be.PutUint16(hmtx[4:], glyphWidth)
	tables["hmtx"] = hmtx
	tables["loca"] = make([]byte, 6) // both glyphs empty
	tables["glyf"] = []byte{}

	// cmap: one (3,0) format 4 subtable with only the final 0xFFFF segment.
	cmap := make([]byte, 4+8+24)
	be.PutUint16(cmap[2:], 1)  // numTables
	be.PutUint16(cmap[4:], 3)  // platform: Windows
	be.PutUint16(cmap[6:], 0)  // encoding: symbol
	be.PutUint32(cmap[8:], 12) // offset
	sub := cmap[12:]
	be.PutUint16(sub[0:], 4)  // format
	be.PutUint16(sub[2:], 24) // length
	be.PutUint16(sub[6:], 2)  // segCountX2
	be.PutUint16(sub[8:], 2)  // searchRange
	be.PutUint16(sub[14:], 0xFFFF)
	be.PutUint16(sub[18:], 0xFFFF)
	be.PutUint16(sub[20:], 1) // idDelta: 0xFFFF -> glyph 0
	tables["cmap"] = cmap

	tables["name"] = nameTable(map[uint16]string{1: fontName, 2: "Regular", 3: fontName + " 1.0", 4: fontName, 5: "Version 1.0", 6: fontName})

	os2 := make([]byte, 86)
	be.PutUint16(os2[0:], 1)          // version
	be.PutUint16(os2[2:], glyphWidth) // xAvgCharWidth
	be.PutUint16(os2[4:], 400)        // usWeightClass
	be.PutUint16(os2[6:], 5)          // usWidthClass
	copy(os2[58:], "VSRV")            // achVendID
	be.PutUint16(os2[62:], 0x40)      // fsSelection: regular
	be.PutUint16(os2[64:], 0x20)      // usFirstCharIndex
	be.PutUint16(os2[66:], 0xFFFF)    // usLastCharIndex
	be.PutUint16(os2[68:], unitsPerEm)
	be.PutUint16(os2[74:], unitsPerEm) // usWinAscent
	be.PutUint32(os2[78:], 1)          // ulCodePageRange1: Latin 1
	tables["OS/2"] = os2

	post := make([]byte, 32)
	be.PutUint32(post[0:], 0x00030000) // no glyph names
	be.PutUint16(post[8:], 0xFF9C)     // underlinePosition -100
	be.PutUint16(post[10:], 50)
	be.PutUint32(post[12:], 1) // isFixedPitch
	tables["post"] = post

	return sfnt(tables)
}

// sfnt assembles tables into a font file with the table directory,
// checksums and head's checkSumAdjustment.
func sfnt(tables map[string][]byte) []byte {
	be := binary.BigEndian
	tags := make([]string, 0, len(tables))
	for t := range tables {
		tags = append(tags, t)
	}
	sort.Strings(tags)
	n := len(tags)
	pow := 1
	for pow*2 <= n {
		pow *= 2
	}
	sel := 0
	for 1<<(sel+1) <= pow {
		sel++
	}
	out := make([]byte, 12+16*n)
	be.PutUint32(out[0:], 0x00010000)
	be.PutUint16(out[4:], uint16(n))
	be.PutUint16(out[6:], uint16(pow*16))
	be.PutUint16(out[8:], uint16(sel))
	be.PutUint16(out[10:], uint16(n*16-pow*16))
	headAt := 0
	for i, tag := range tags {
		data := tables[tag]
		rec := out[12+16*i:]
		copy(rec[0:4], tag)
		be.PutUint32(rec[4:], checksum(data))
		be.PutUint32(rec[8:], uint32(len(out)))
		be.PutUint32(rec[12:], uint32(len(data)))
		if tag == "head" {
			headAt = len(out)
		}
		out = append(out, data...)
		for len(out)%4 != 0 {
			out = append(out, 0)
		}
	}
	be.PutUint32(out[headAt+8:], 0xB1B0AFBA-checksum(out))
	return out
}

func checksum(b []byte) uint32 {
	var sum uint32
	for i := 0; i < len(b); i += 4 {
		var w [4]byte
		copy(w[:], b[i:])
		sum += binary.BigEndian.Uint32(w[:])
	}
	return sum
}

// nameTable writes a format 0 name table of Windows Unicode (3,1,0x409)
// records.
func nameTable(names map[uint16]string) []byte {
	be := binary.BigEndian
	ids := make([]int, 0, len(names))
	for id := range names {
		ids = append(ids, int(id))
	}
	sort.Ints(ids)
	hdr := make([]byte, 6+12*len(ids))
	be.PutUint16(hdr[2:], uint16(len(ids)))
	be.PutUint16(hdr[4:], uint16(len(hdr)))
	var strs []byte
	for i, id := range ids {
		var s []byte
		for _, u := range utf16.Encode([]rune(names[uint16(id)])) {
			s = be.AppendUint16(s, u)
		}
		rec := hdr[6+12*i:]
		be.PutUint16(rec[0:], 3)
		be.PutUint16(rec[2:], 1)
		be.PutUint16(rec[4:], 0x409)
		be.PutUint16(rec[6:], uint16(id))
		be.PutUint16(rec[8:], uint16(len(s)))
		be.PutUint16(rec[10:], uint16(len(strs)))
		strs = append(strs, s...)
	}
	return append(hdr, strs...)
}
