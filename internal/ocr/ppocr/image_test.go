package ppocr

import (
	"image"
	"image/color"
	"math"
	"testing"
)

func TestResizeInto(t *testing.T) {
	// 4×2 image, R = 10·x, G = 100, B = 40·y.
	m := newRGB(4, 2)
	for y := range 2 {
		for x := range 4 {
			i := 3 * (y*4 + x)
			m.pix[i], m.pix[i+1], m.pix[i+2] = uint8(10*x), 100, uint8(40*y)
		}
	}
	id := norm{mean: [3]float64{0, 0, 0}, std: [3]float64{1.0 / 255, 1.0 / 255, 1.0 / 255}}
	t.Run("same size copies, RGB order", func(t *testing.T) {
		dst := make([]float32, 3*2*4)
		m.resizeInto(dst, 4, 4, 2, id)
		if dst[0*8+0*4+3] != 30 || dst[1*8+1*4+2] != 100 || dst[2*8+1*4+0] != 40 {
			t.Errorf("copy = %v", dst)
		}
	})
	t.Run("BGR order and normalisation", func(t *testing.T) {
		dst := make([]float32, 3*2*4)
		m.resizeInto(dst, 4, 4, 2, norm{bgr: true, mean: [3]float64{0.5, 0.5, 0.5}, std: [3]float64{0.5, 0.5, 0.5}})
		// Channel 0 is blue: row 1 has B=40 -> (40/255-0.5)/0.5.
		if got, want := dst[0*8+1*4+0], float32((40.0/255-0.5)/0.5); math.Abs(float64(got-want)) > 1e-6 {
			t.Errorf("B at (0,1) = %v, want %v", got, want)
		}
		if got, want := dst[2*8+0*4+2], float32((20.0/255-0.5)/0.5); math.Abs(float64(got-want)) > 1e-6 {
			t.Errorf("R at (2,0) = %v, want %v", got, want)
		}
	})
	t.Run("halving averages neighbours, padding untouched", func(t *testing.T) {
		dst := make([]float32, 3*1*4)
		for i := range dst {
			dst[i] = -7
		}
		m.resizeInto(dst, 4, 2, 1, id)
		// Output x=0 samples input x=0.5: R = 5; y=0.5: B = 20.
		if dst[0] != 5 || dst[1] != 25 || dst[2*4+0] != 20 || dst[2] != -7 || dst[3] != -7 {
			t.Errorf("halved = %v", dst)
		}
	})
}

func TestToRGB(t *testing.T) {
	rgba := image.NewRGBA(image.Rect(0, 0, 2, 1))
	rgba.Set(0, 0, color.RGBA{200, 10, 20, 255})
	// Fully transparent becomes white.
	rgba.Set(1, 0, color.RGBA{0, 0, 0, 0})
	gray := image.NewGray(image.Rect(5, 5, 7, 6))
	gray.SetGray(6, 5, color.Gray{77})
	nrgba := image.NewNRGBA(image.Rect(0, 0, 1, 1))
	nrgba.Set(0, 0, color.NRGBA{0, 0, 0, 128}) // half-transparent black over white
	ycc := image.NewYCbCr(image.Rect(0, 0, 2, 2), image.YCbCrSubsampleRatio420)
	for i := range ycc.Y {
		ycc.Y[i] = 255
	}
	for i := range ycc.Cb {
		ycc.Cb[i], ycc.Cr[i] = 128, 128
	}
	for _, tc := range []struct {
		name string
		img  image.Image
		x    int
		want [3]uint8
	}{
		{"rgba", rgba, 0, [3]uint8{200, 10, 20}},
		{"transparent is white", rgba, 1, [3]uint8{255, 255, 255}},
		{"gray sub-image", gray, 1, [3]uint8{77, 77, 77}},
		{"nrgba half alpha", nrgba, 0, [3]uint8{127, 127, 127}},
		{"ycbcr white", ycc, 1, [3]uint8{255, 255, 255}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := toRGB(tc.img)
			b := tc.img.Bounds()
			if m.w != b.Dx() || m.h != b.Dy() {
				t.Fatalf("size %dx%d, want %v", m.w, m.h, b.Size())
			}
			got := [3]uint8(m.pix[3*tc.x : 3*tc.x+3])
			if got != tc.want {
				t.Errorf("pixel %d = %v, want %v", tc.x, got, tc.want)
			}
		})
	}
}
