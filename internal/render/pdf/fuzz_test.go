package pdf

import (
	"bytes"
	"image"
	"image/jpeg"
	"image/png"
	"testing"
)

// FuzzEmbeddable: the JPEG and PNG parsers that decide whether an
// uploaded image goes into a PDF as it is never panic, whatever the bytes.
func FuzzEmbeddable(f *testing.F) {
	img := image.NewGray(image.Rect(0, 0, 8, 8))
	var jb, pb bytes.Buffer
	_ = jpeg.Encode(&jb, img, nil)
	_ = png.Encode(&pb, img)
	f.Add(jb.Bytes(), 8, 8)
	f.Add(pb.Bytes(), 8, 8)
	f.Add([]byte("\xff\xd8\xff\xc0\x00\x00"), 1, 1)
	f.Fuzz(func(t *testing.T, data []byte, w, h int) {
		if Embeddable(data, w, h) {
			if _, err := imageXObject(Image{Width: w, Height: h, Encoded: data}); err != nil {
				t.Fatalf("embeddable but: %v", err)
			}
		}
	})
}
