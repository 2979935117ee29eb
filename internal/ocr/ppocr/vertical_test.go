package ppocr

import (
	"context"
	"image"
	"image/color"
	"math"
	"slices"
	"testing"

	"github.com/visionserve/visionserve/internal/engine"
	"github.com/visionserve/visionserve/internal/ocr"
)

// columnPage is a white 200×400 image holding one column of three
// "glyphs" 40 px wide at x 80..120: a solid block, a glyph of three
// horizontal bands (三, which must stay one glyph), and a block again,
// each 40 px tall with 20 px between them, from y=60.
func columnPage() (*image.RGBA, []image.Rectangle) {
	img := image.NewRGBA(image.Rect(0, 0, 200, 400))
	for i := range img.Pix {
		img.Pix[i] = 255
	}
	fill := func(r image.Rectangle) {
		for y := r.Min.Y; y < r.Max.Y; y++ {
			for x := r.Min.X; x < r.Max.X; x++ {
				img.Set(x, y, color.Black)
			}
		}
	}
	glyphs := []image.Rectangle{image.Rect(80, 60, 120, 100), image.Rect(80, 120, 120, 160), image.Rect(80, 180, 120, 220)}
	fill(glyphs[0])
	for _, dy := range []int{0, 17, 34} {
		fill(image.Rect(80, 120+dy, 120, 126+dy))
	}
	fill(glyphs[2])
	return img, glyphs
}

func TestStackColumn(t *testing.T) {
	img, glyphs := columnPage()
	src := toRGB(img)
	// The column box with a 10 px margin, corners from the top-left.
	q := quad{{70, 50}, {130, 50}, {130, 230}, {70, 230}}
	c, ok := stackColumn(src, q)
	if !ok {
		t.Fatal("stackColumn failed on a clean column")
	}
	if c.stack == nil || len(c.stack.cells) != 3 {
		t.Fatalf("cells %+v, want 3 glyphs (三's three bands are one)", c.stack)
	}
	if c.img.w != 3*60 {
		t.Errorf("row is %d px wide, want 3 glyphs of the column's 60", c.img.w)
	}
	// Each glyph's cell is its ink with a margin of a sixth of the glyph
	// width (6 px), in the column crop's coordinates (10 px inside q).
	for i, k := range c.stack.cells {
		g := glyphs[i]
		if math.Abs(k.y0-float64(g.Min.Y-50-6)) > 1 || math.Abs(k.y1-float64(g.Max.Y-50+6)) > 1 {
			t.Errorf("cell %d spans column rows [%v,%v), want about [%d,%d)", i, k.y0, k.y1, g.Min.Y-56, g.Max.Y-44)
		}
		// The glyph's ink is in its slot of the row.
		mid := int(k.x0+k.x1) / 2
		if v := c.img.pix[3*(c.img.h/2*c.img.w+mid)]; v > 64 {
			t.Errorf("row pixel at the middle of cell %d is %d, want ink", i, v)
		}
	}
	// A word over the second cell of the row maps back to the second glyph
	// across the column's width.
	quadOf := cropRectQuad(c, 65, 0, 115, float64(c.img.h), vec{})
	if b := quadOf.Bounds(); b.Min.Y > glyphs[1].Min.Y || b.Max.Y < glyphs[1].Max.Y || b.Min.Y < glyphs[0].Max.Y || b.Dx() != 60 {
		t.Errorf("word over the second cell maps to %v, want the column around %v", b, glyphs[1])
	}
	if _, ok := stackColumn(toRGB(image.NewGray(image.Rect(0, 0, 50, 200))), quad{{0, 0}, {49, 0}, {49, 199}, {0, 199}}); ok {
		t.Error("stackColumn succeeded on a blank column")
	}
}

// A tall box is read both as a turned line and as a column; the more
// confident reading wins and the line is flagged vertical either way.
func TestVerticalReading(t *testing.T) {
	img, glyphs := columnPage()
	kernel := glyphs[0].Union(glyphs[2]).Inset(8)
	for _, tc := range []struct {
		name   string
		column bool
	}{
		{"column reads better", true},
		{"turned line reads better", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The box is read turned first, then as a column.
			tess := &fakeTess{}
			tr := recognizerFunc(func(ctx context.Context, g *image.Gray, mode engine.SegMode) ([]engine.TextLine, error) {
				lines, err := tess.RecognizeText(ctx, g, mode)
				if column := len(tess.calls) == 2; column == tc.column {
					lines[0].Confidence = 0.97
				}
				return lines, err
			})
			pl := newTestPipeline(t, Models{Det: fakeDet(200, 400, kernel)}, nil)
			lines, err := pl.RecognizeHybrid(context.Background(), img, tr)
			if err != nil {
				t.Fatal(err)
			}
			if len(lines) != 1 || len(tess.calls) != 2 {
				t.Fatalf("%d lines from %d readings, want 1 from 2", len(lines), len(tess.calls))
			}
			l := lines[0]
			if !l.Vertical || l.Confidence != 0.97 {
				t.Errorf("line vertical=%v confidence %v, want vertical and the better reading's 0.97", l.Vertical, l.Confidence)
			}
			// Either way the box starts at the column's top-right and
			// its first edge runs down the column.
			if l.Box[0][0] < l.Box[3][0] || l.Box[1][1] < l.Box[0][1]+100 {
				t.Errorf("vertical line box %v does not start at the top-right and run down", l.Box)
			}
			// The words ("hello", "world") follow the column down.
			if len(l.Words) != 2 || l.Words[0].Box.Bounds().Min.Y >= l.Words[1].Box.Bounds().Min.Y {
				t.Errorf("words %+v do not run down the column", l.Words)
			}
		})
	}
}

type recognizerFunc func(ctx context.Context, img *image.Gray, mode engine.SegMode) ([]engine.TextLine, error)

func (f recognizerFunc) RecognizeText(ctx context.Context, img *image.Gray, mode engine.SegMode) ([]engine.TextLine, error) {
	return f(ctx, img, mode)
}

// Columns of CJK text are read right to left, each top to bottom; a page
// of horizontal lines, or of vertical lines in another script (a turned
// Latin page), keeps the horizontal order.
func TestColumnOrder(t *testing.T) {
	col := func(text string, x, y, w, h float64) ocr.Line {
		return ocr.Line{Text: text, Vertical: true, Box: ocr.Quad{{x + w, y}, {x + w, y + h}, {x, y + h}, {x, y}}}
	}
	// Three columns 40 px wide; the middle one in two pieces, the lower
	// one given first and slightly off to the right.
	right, midTop, midLow, left := col("一二三", 200, 10, 40, 300), col("四五", 100, 10, 40, 100), col("六七", 104, 150, 40, 100), col("八九", 0, 10, 40, 200)
	lines := []ocr.Line{left, midLow, right, midTop}
	if !cjkColumns(lines) {
		t.Fatal("columns of ideographs not taken for vertical text")
	}
	columnOrder(lines, 0.5)
	var got []string
	for _, l := range lines {
		got = append(got, l.Text)
	}
	if want := []string{"一二三", "四五", "六七", "八九"}; !slices.Equal(got, want) {
		t.Fatalf("order %q, want %q", got, want)
	}
	latin := []ocr.Line{col("turned page", 0, 0, 40, 300), col("of Latin text", 100, 0, 40, 300)}
	if cjkColumns(latin) {
		t.Error("vertical lines of Latin text taken for CJK columns")
	}
	across := []ocr.Line{{Text: "一二三"}, {Text: "四五"}, col("六七", 0, 0, 40, 100)}
	if cjkColumns(across) {
		t.Error("a page of mostly horizontal lines taken for columns")
	}
	up := func(l ocr.Line) ocr.Line { l.Box = ocr.Quad{l.Box[2], l.Box[3], l.Box[0], l.Box[1]}; return l }
	if cjkColumns([]ocr.Line{up(right), up(midTop), up(left)}) {
		t.Error("lines running up the page (a page turned counter-clockwise) taken for columns")
	}
	if cjkColumns([]ocr.Line{col("一二三", 0, 0, 40, 300)}) {
		t.Error("one column is not a page of columns: its order is already right")
	}
}
