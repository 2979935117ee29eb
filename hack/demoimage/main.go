// Command demoimage writes a PNG of a few lines of text set in the Go
// font, for the quick start on a machine without the shared test data.
//
//	go run ./hack/demoimage > demo.png
package main

import (
	"fmt"
	"image"
	"image/draw"
	"image/png"
	"os"

	"golang.org/x/image/font"
	"golang.org/x/image/font/gofont/goregular"
	"golang.org/x/image/font/opentype"
	"golang.org/x/image/math/fixed"
)

var lines = []string{
	"visionserve reads this page.",
	"The quick brown fox jumps over the lazy dog.",
	"Invoice 2026-11-21: 3 items, total 42.50 EUR",
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "demoimage:", err)
		os.Exit(1)
	}
}

func run() error {
	f, err := opentype.Parse(goregular.TTF)
	if err != nil {
		return err
	}
	face, err := opentype.NewFace(f, &opentype.FaceOptions{Size: 28, DPI: 72, Hinting: font.HintingFull})
	if err != nil {
		return err
	}
	defer face.Close()
	const margin, lineHeight = 40, 48
	img := image.NewGray(image.Rect(0, 0, 900, 2*margin+lineHeight*len(lines)))
	draw.Draw(img, img.Bounds(), image.White, image.Point{}, draw.Src)
	d := font.Drawer{Dst: img, Src: image.Black, Face: face}
	for i, l := range lines {
		d.Dot = fixed.P(margin, margin+lineHeight*i+30)
		d.DrawString(l)
	}
	return png.Encode(os.Stdout, img)
}
