// Package jobstest builds inputs for job tests: PDFs whose pages are given
// images (so rendering them back gives the images' pixels).
package jobstest

import (
	"bytes"
	"compress/zlib"
	"fmt"
	"image"
	"image/draw"
)

// PDF returns a PDF with one page per image, each image drawn over the
// whole page at dpi (a page rendered at dpi has the image's size). Images
// are stored losslessly as 8-bit grey (FlateDecode); an image given for
// several pages (the same image value, a pointer) is stored once and drawn
// on each, so a long document of one repeated page stays small.
func PDF(pages []image.Image, dpi float64) []byte {
	var b bytes.Buffer
	var offsets []int
	obj := func(body string, stream []byte) int {
		offsets = append(offsets, b.Len())
		n := len(offsets)
		fmt.Fprintf(&b, "%d 0 obj\n%s\n", n, body)
		if stream != nil {
			b.WriteString("stream\n")
			b.Write(stream)
			b.WriteString("\nendstream\n")
		}
		b.WriteString("endobj\n")
		return n
	}
	b.WriteString("%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
	// Objects 1 and 2 are the catalog and the page tree; each page follows
	// with its content and, the first time it is drawn, its image.
	type pageObjs struct{ page, content, image int }
	objs := make([]pageObjs, len(pages))
	images := map[image.Image]int{}
	next := 3
	kids := ""
	for i, img := range pages {
		objs[i] = pageObjs{page: next, content: next + 1}
		next += 2
		if n, ok := images[img]; ok {
			objs[i].image = n
		} else {
			objs[i].image, images[img] = next, next
			next++
		}
		kids += fmt.Sprintf("%d 0 R ", objs[i].page)
	}
	obj("<< /Type /Catalog /Pages 2 0 R >>", nil)
	obj(fmt.Sprintf("<< /Type /Pages /Kids [%s] /Count %d >>", kids, len(pages)), nil)
	for i, img := range pages {
		bounds := img.Bounds()
		w, h := float64(bounds.Dx())*72/dpi, float64(bounds.Dy())*72/dpi
		content := fmt.Sprintf("q %.4f 0 0 %.4f 0 0 cm /Im0 Do Q", w, h)
		obj(fmt.Sprintf("<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %.4f %.4f] /Resources << /XObject << /Im0 %d 0 R >> >> /Contents %d 0 R >>", w, h, objs[i].image, objs[i].content), nil)
		obj(fmt.Sprintf("<< /Length %d >>", len(content)), []byte(content))
		if len(offsets)+1 != objs[i].image {
			continue // drawn before
		}
		gray := image.NewGray(image.Rect(0, 0, bounds.Dx(), bounds.Dy()))
		draw.Draw(gray, gray.Rect, img, bounds.Min, draw.Src)
		var z bytes.Buffer
		zw := zlib.NewWriter(&z)
		zw.Write(gray.Pix)
		zw.Close()
		obj(fmt.Sprintf("<< /Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace /DeviceGray /BitsPerComponent 8 /Filter /FlateDecode /Length %d >>",
			bounds.Dx(), bounds.Dy(), z.Len()), z.Bytes())
	}
	xref := b.Len()
	fmt.Fprintf(&b, "xref\n0 %d\n0000000000 65535 f \n", len(offsets)+1)
	for _, o := range offsets {
		fmt.Fprintf(&b, "%010d 00000 n \n", o)
	}
	fmt.Fprintf(&b, "trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n", len(offsets)+1, xref)
	return b.Bytes()
}
