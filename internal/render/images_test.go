package render

import (
	"testing"

	"github.com/visionserve/visionserve/internal/imageio"
	"github.com/visionserve/visionserve/internal/imageio/imagetest"
)

// FuzzResolutions: reading a page's resolution from PNG, JPEG and TIFF
// metadata never panics or loops, whatever the bytes.
func FuzzResolutions(f *testing.F) {
	f.Add([]byte("\x89PNG\r\n\x1a\n\x00\x00\x00\x09pHYs\x00\x00\x0b\x13\x00\x00\x0b\x13\x01\x00\x00\x00\x00"))
	f.Add([]byte("\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x01\x01\x2c\x01\x2c\x00\x00"))
	p := imagetest.Marked(8, 8)
	f.Add(imagetest.TIFF([]imagetest.TIFFPage{{Img: p}, {Img: p}}, true))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, format := range []imageio.Format{imageio.PNG, imageio.JPEG, imageio.TIFF} {
			for _, d := range resolutions(data, format, 3) {
				if d != 0 && (d < 20 || d > 10000) {
					t.Fatalf("%s: implausible %v dpi", format, d)
				}
			}
		}
	})
}

func TestResolutions(t *testing.T) {
	for _, tc := range []struct {
		name string
		data []byte
		f    imageio.Format
		want float64
	}{
		{"png 300 dpi", []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\x09pHYs\x00\x00\x2e\x23\x00\x00\x2e\x23\x01\x00\x00\x00\x00"), imageio.PNG, 299.9994},
		{"jfif 300 dpi", []byte("\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x01\x01\x2c\x01\x2c\x00\x00"), imageio.JPEG, 300},
		{"jfif aspect only", []byte("\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"), imageio.JPEG, 0},
	} {
		if got := resolutions(tc.data, tc.f, 1)[0]; got < tc.want-0.01 || got > tc.want+0.01 {
			t.Errorf("%s: %v dpi, want %v", tc.name, got, tc.want)
		}
	}
}
