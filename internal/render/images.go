package render

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"sync"

	"github.com/visionserve/visionserve/internal/imageio"
	"github.com/visionserve/visionserve/internal/ocr"
	"github.com/visionserve/visionserve/internal/render/pdf"
)

// InputPages gives the page images of an OCR input as the service read
// it: the same decoder, limits and orientation. Nothing is decoded until
// a format asks for a page, and then one page at a time; a JPEG or PNG
// that displays as it is stored is handed over encoded, so a PDF embeds it
// without decoding.
func InputPages(in ocr.Input, lim imageio.Limits) Pages {
	var (
		once sync.Once
		doc  *imageio.Document
		dpi  []float64
		err  error
	)
	return PagesFunc(func(ctx context.Context, i int) (Image, error) {
		once.Do(func() {
			doc, err = imageio.Open(in.Data, in.Declared, lim)
			if err == nil {
				dpi = resolutions(in.Data, doc.Format, len(doc.Pages))
			}
		})
		if err != nil {
			return Image{}, err
		}
		if i < 0 || i >= len(doc.Pages) {
			return Image{}, fmt.Errorf("render: page %d of a %d-page input", i, len(doc.Pages))
		}
		p := doc.Pages[i]
		img := Image{Width: p.Width, Height: p.Height, DPI: dpi[i]}
		if (doc.Format == imageio.JPEG || doc.Format == imageio.PNG) && p.Orientation == imageio.Upright && pdf.Embeddable(in.Data, p.Width, p.Height) {
			img.Encoded = in.Data
			return img, nil
		}
		img.Pixels, err = doc.Decode(ctx, i)
		return img, err
	})
}

// resolutions reads each page's resolution in pixels per inch from the
// file's own metadata (PNG pHYs, JPEG JFIF density, TIFF XResolution);
// 0 where it states none or an implausible one.
func resolutions(data []byte, f imageio.Format, pages int) []float64 {
	out := make([]float64, pages)
	switch f {
	case imageio.PNG:
		if pages > 0 {
			out[0] = pngDPI(data)
		}
	case imageio.JPEG:
		if pages > 0 {
			out[0] = jfifDPI(data)
		}
	case imageio.TIFF:
		tiffDPIs(data, out)
	}
	for i, d := range out {
		if d < 20 || d > 10000 {
			out[i] = 0
		}
	}
	return out
}

func pngDPI(b []byte) float64 {
	for p := b[min(8, len(b)):]; len(p) >= 12; {
		n := int(binary.BigEndian.Uint32(p))
		if n < 0 || n > len(p)-12 {
			return 0
		}
		switch string(p[4:8]) {
		case "pHYs":
			if n == 9 && p[16] == 1 { // pixels per metre
				return float64(binary.BigEndian.Uint32(p[8:])) * 0.0254
			}
			return 0
		case "IDAT":
			return 0 // pHYs comes before the image data
		}
		p = p[12+n:]
	}
	return 0
}

func jfifDPI(b []byte) float64 {
	// SOI, then APP0 "JFIF\0" version(2) units(1) Xdensity(2) Ydensity(2).
	if len(b) < 18 || !bytes.Equal(b[2:4], []byte{0xFF, 0xE0}) || string(b[6:11]) != "JFIF\x00" {
		return 0
	}
	x := float64(binary.BigEndian.Uint16(b[14:]))
	switch b[13] {
	case 1:
		return x
	case 2:
		return x * 2.54
	}
	return 0
}

// tiffDPIs fills out with the resolution of each of the first len(out)
// image directories, following the chain at most that far.
func tiffDPIs(b []byte, out []float64) {
	if len(b) < 8 {
		return
	}
	var bo binary.ByteOrder
	switch string(b[:2]) {
	case "II":
		bo = binary.LittleEndian
	case "MM":
		bo = binary.BigEndian
	default:
		return
	}
	off := int64(bo.Uint32(b[4:]))
	for i := range out {
		if off < 8 || off+2 > int64(len(b)) {
			return
		}
		n := int64(bo.Uint16(b[off:]))
		if off+2+12*n+4 > int64(len(b)) {
			return
		}
		res, unit := 0.0, uint16(2) // ResolutionUnit defaults to inch
		for e := range n {
			ent := b[off+2+12*e:]
			tag, typ := bo.Uint16(ent), bo.Uint16(ent[2:])
			switch {
			case tag == 282 && typ == 5: // XResolution, RATIONAL
				at := int64(bo.Uint32(ent[8:]))
				if at >= 0 && at+8 <= int64(len(b)) {
					if den := bo.Uint32(b[at+4:]); den != 0 {
						res = float64(bo.Uint32(b[at:])) / float64(den)
					}
				}
			case tag == 296 && typ == 3: // ResolutionUnit, SHORT
				unit = bo.Uint16(ent[8:])
			}
		}
		switch unit {
		case 2:
			out[i] = res
		case 3:
			out[i] = res * 2.54
		}
		off = int64(bo.Uint32(b[off+2+12*n:]))
	}
}
