package ppocr_test

import (
	"context"
	"image"
	"image/color"
	"image/draw"
	"testing"
	"unicode"

	"github.com/visionserve/visionserve/internal/ocr"
	"github.com/visionserve/visionserve/internal/ocr/ppocr"
	"github.com/visionserve/visionserve/internal/ocreval"
	"github.com/visionserve/visionserve/internal/testenv"
)

// allHan reports whether s is all CJK ideographs: glyphs of one advance,
// so the line can be cut into its characters at equal steps (punctuation
// ink is narrower than its advance and would shift the cuts).
func allHan(s string) bool {
	for _, r := range s {
		if !unicode.Is(unicode.Han, r) {
			return false
		}
	}
	return s != ""
}

// inkSpan returns the columns [x0,x1) of img holding dark pixels.
func inkSpan(img image.Image) (int, int) {
	b := img.Bounds()
	x0, x1 := b.Max.X, b.Min.X
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			if color.GrayModel.Convert(img.At(x, y)).(color.Gray).Y < 128 {
				x0, x1 = min(x0, x), max(x1, x+1)
			}
		}
	}
	return x0, x1
}

// verticalPage sets a line of n full-width glyphs as a column: the ink is
// cut into n equal cells (CJK glyphs are all one advance wide) stacked top
// to bottom a fifth of a cell apart, on a white page with a wide margin.
func verticalPage(line image.Image, n int) *image.Gray {
	b := line.Bounds()
	x0, x1 := inkSpan(line)
	cw := float64(x1-x0) / float64(n)
	cellH := b.Dy()
	step := int(cw * 1.2)
	page := image.NewGray(image.Rect(0, 0, cellH+160, n*step+160))
	draw.Draw(page, page.Bounds(), image.White, image.Point{}, draw.Src)
	for i := range n {
		// Cell i spans [x0+i·cw, x0+(i+1)·cw) of the line; it goes to
		// row i of the column, turned so the line's height is across.
		cx0, cx1 := x0+int(float64(i)*cw), x0+int(float64(i+1)*cw)
		for y := b.Min.Y; y < b.Max.Y; y++ {
			for x := cx0; x < cx1; x++ {
				page.Set(80+(x-cx0)+(cellH-(cx1-cx0))/2, 80+i*step+(y-b.Min.Y)-(cellH-step)/2, line.At(x, y))
			}
		}
	}
	return page
}

// Vertical text is read, not garbled, and flagged: lines of zh-lines set
// as columns, and the same lines turned 90° (a turned page), come back
// with their text and flagged vertical; as they are, they are not.
func TestIntegrationVerticalText(t *testing.T) {
	pl := realV4Pipeline(t, 1, ppocr.V4Params())
	samples, err := ocreval.LoadLines(testenv.Shared(t, "data/ocr/zh-lines"))
	if err != nil {
		t.Fatal(err)
	}
	vertical := ocreval.Score{Norm: ocreval.NormalizeNoSpace}
	turned := ocreval.Score{Norm: ocreval.NormalizeNoSpace}
	across := ocreval.Score{Norm: ocreval.NormalizeNoSpace}
	n := 0
	for _, smp := range samples {
		if !allHan(smp.Truth) || n == 6 {
			continue
		}
		n++
		line := decode(t, smp.Image)
		read := func(img image.Image, wantVertical bool, s *ocreval.Score) {
			t.Helper()
			lines, err := pl.Recognize(context.Background(), img)
			if err != nil {
				t.Fatal(err)
			}
			text := ocr.PlainText([]ocr.Page{{Lines: lines}})
			d := s.Add(text, smp.Truth)
			t.Logf("%s vertical=%v: %q (%d edits)", smp.Image[len(smp.Image)-8:], wantVertical, text, d)
			for _, l := range lines {
				if l.Vertical != wantVertical {
					t.Errorf("%s: line %q vertical=%v, want %v", smp.Image, l.Text, l.Vertical, wantVertical)
				}
			}
		}
		read(verticalPage(line, len([]rune(smp.Truth))), true, &vertical)
		read(rotate90(line), true, &turned)
		read(onPage(line), false, &across)
	}
	t.Logf("columns: %s; turned lines: %s; lines: %s", vertical, turned, across)
	if n < 6 {
		t.Fatalf("found %d lines of ideographs alone, want 6", n)
	}
	for name, s := range map[string]ocreval.Score{"columns": vertical, "turned lines": turned, "lines": across} {
		if s.CER() > 0.03 {
			t.Errorf("%s: CER %.2f%%, want at most 3%%", name, 100*s.CER())
		}
	}
}

// onPage puts img on a white page with a margin.
func onPage(img image.Image) *image.Gray {
	b := img.Bounds()
	out := image.NewGray(image.Rect(0, 0, b.Dx()+120, b.Dy()+120))
	draw.Draw(out, out.Bounds(), image.White, image.Point{}, draw.Src)
	draw.Draw(out, b.Sub(b.Min).Add(image.Pt(60, 60)), img, b.Min, draw.Src)
	return out
}

// rotate90 turns img 90° clockwise onto a white page with a margin.
func rotate90(img image.Image) *image.Gray {
	b := img.Bounds()
	const m = 60
	out := image.NewGray(image.Rect(0, 0, b.Dy()+2*m, b.Dx()+2*m))
	draw.Draw(out, out.Bounds(), image.White, image.Point{}, draw.Src)
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			out.Set(m+b.Max.Y-1-y, m+x-b.Min.X, img.At(x, y))
		}
	}
	return out
}

// A page of two columns is read right column first: the text of the
// right column, then of the left.
func TestIntegrationVerticalColumnsRightToLeft(t *testing.T) {
	pl := realV4Pipeline(t, 1, ppocr.V4Params())
	samples, err := ocreval.LoadLines(testenv.Shared(t, "data/ocr/zh-lines"))
	if err != nil {
		t.Fatal(err)
	}
	var cols []*image.Gray
	var truth []string
	for _, smp := range samples {
		if allHan(smp.Truth) && len(cols) < 2 {
			cols = append(cols, verticalPage(decode(t, smp.Image), len([]rune(smp.Truth))))
			truth = append(truth, smp.Truth)
		}
	}
	if len(cols) < 2 {
		t.Fatal("zh-lines has fewer than two lines of ideographs alone")
	}
	// truth[0]'s column on the right, truth[1]'s on the left.
	right, left := cols[0].Bounds(), cols[1].Bounds()
	page := image.NewGray(image.Rect(0, 0, left.Dx()+right.Dx(), max(left.Dy(), right.Dy())))
	draw.Draw(page, page.Bounds(), image.White, image.Point{}, draw.Src)
	draw.Draw(page, left, cols[1], image.Point{}, draw.Src)
	draw.Draw(page, right.Add(image.Pt(left.Dx(), 0)), cols[0], image.Point{}, draw.Src)
	lines, err := pl.Recognize(context.Background(), page)
	if err != nil {
		t.Fatal(err)
	}
	if len(lines) != 2 {
		t.Fatalf("read %d lines, want the 2 columns: %+v", len(lines), lines)
	}
	s := ocreval.Score{Norm: ocreval.NormalizeNoSpace}
	for i, l := range lines {
		d := s.Add(l.Text, truth[i])
		t.Logf("line %d: %q, truth %q (%d edits)", i, l.Text, truth[i], d)
	}
	if s.CER() > 0.1 {
		t.Errorf("columns read out of order or badly: CER %.2f%%", 100*s.CER())
	}
}
