package dewarp

import (
	"image"
	"image/color"
	"testing"
)

func gradient(w, h int) *image.Gray {
	g := image.NewGray(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			g.Pix[y*g.Stride+x] = uint8(7*x + 3*y)
		}
	}
	return g
}

func TestWarpGray(t *testing.T) {
	src := gradient(20, 10)
	if got := WarpGray(src, Identity, 20, 10, 0); string(got.Pix) != string(src.Pix) {
		t.Error("the identity changed pixels")
	}
	// A shift by whole pixels copies; what it uncovers is fill.
	shift := Homography{1, 0, 3, 0, 1, 2, 0, 0, 1} // output (x, y) shows source (x+3, y+2)
	got := WarpGray(src, shift, 20, 10, 9)
	for y := range 10 {
		for x := range 20 {
			want := uint8(9)
			if x+3 < 20 && y+2 < 10 {
				want = src.GrayAt(x+3, y+2).Y
			}
			if v := got.GrayAt(x, y).Y; v != want {
				t.Fatalf("(%d, %d) = %d, want %d", x, y, v, want)
			}
		}
	}
	// Half a pixel across interpolates between neighbours.
	half := WarpGray(src, Homography{1, 0, 0.5, 0, 1, 0, 0, 0, 1}, 19, 10, 0)
	if v, want := half.GrayAt(4, 0).Y, uint8((7*4+7*5+1)/2); v != want {
		t.Errorf("half-pixel sample %d, want %d", v, want)
	}
	// A source off its origin is read from its own bounds.
	sub := src.SubImage(image.Rect(5, 3, 15, 8)).(*image.Gray)
	if v := WarpGray(sub, Identity, 10, 5, 0).GrayAt(0, 0).Y; v != src.GrayAt(5, 3).Y {
		t.Errorf("sub-image origin %d", v)
	}
	// Points sent to infinity are fill, not a crash.
	if v := WarpGray(src, Homography{1, 0, 0, 0, 1, 0, 0, 0, 0}, 3, 3, 42).GrayAt(0, 0).Y; v != 42 {
		t.Errorf("point at infinity %d", v)
	}
}

func TestWarpImageKeepsColour(t *testing.T) {
	src := image.NewNRGBA(image.Rect(0, 0, 8, 8))
	for i := 0; i < len(src.Pix); i += 4 {
		src.Pix[i], src.Pix[i+1], src.Pix[i+2], src.Pix[i+3] = 200, 30, 10, 255
	}
	out := WarpImage(src, Identity, 8, 8, 255)
	if c := color.RGBAModel.Convert(out.At(3, 3)).(color.RGBA); c != (color.RGBA{200, 30, 10, 255}) {
		t.Errorf("colour %v", c)
	}
	if c := color.RGBAModel.Convert(WarpImage(src, Homography{1, 0, 100, 0, 1, 0, 0, 0, 1}, 2, 2, 77).At(0, 0)).(color.RGBA); c != (color.RGBA{77, 77, 77, 255}) {
		t.Errorf("fill %v", c)
	}
	if _, ok := WarpImage(gradient(4, 4), Identity, 4, 4, 0).(*image.Gray); !ok {
		t.Error("a grey image came back in colour")
	}
}
