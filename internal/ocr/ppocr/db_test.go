package ppocr

import (
	"encoding/binary"
	"math"
	"testing"
)

// probMap is a w×h map at background value bg with rectangles painted in.
type rect struct {
	x0, y0, x1, y1 int // inclusive pixel range
	v              float32
}

func probMap(w, h int, bg float32, rs ...rect) []float32 {
	m := make([]float32, w*h)
	for i := range m {
		m[i] = bg
	}
	for _, r := range rs {
		for y := r.y0; y <= r.y1; y++ {
			for x := r.x0; x <= r.x1; x++ {
				m[y*w+x] = r.v
			}
		}
	}
	return m
}

func TestDBBoxes(t *testing.T) {
	p := DefaultParams().Det
	// A kernel over pixels x 20..79, y 10..19 has pixel centres spanning
	// 59×9; unclip grows each side by 59·9·1.5/136 ≈ 5.857.
	d := 59.0 * 9 * 1.5 / (2 * (59 + 9))
	for _, tc := range []struct {
		name      string
		rects     []rect
		dstW      int
		dstH      int
		want      [][4]vec // expected boxes, in order of discovery
		wantScore []float64
	}{
		{
			name:  "one kernel, same scale",
			rects: []rect{{20, 10, 79, 19, 0.9}},
			dstW:  128, dstH: 64,
			want:      [][4]vec{{{math.Round(20 - d), math.Round(10 - d)}, {math.Round(79 + d), math.Round(10 - d)}, {math.Round(79 + d), math.Round(19 + d)}, {math.Round(20 - d), math.Round(19 + d)}}},
			wantScore: []float64{0.9},
		},
		{
			name:  "scaled to a twice larger image",
			rects: []rect{{20, 10, 79, 19, 0.9}},
			dstW:  256, dstH: 128,
			want: [][4]vec{{{math.Round(2 * (20 - d)), math.Round(2 * (10 - d))}, {math.Round(2 * (79 + d)), math.Round(2 * (10 - d))},
				{math.Round(2 * (79 + d)), math.Round(2 * (19 + d))}, {math.Round(2 * (20 - d)), math.Round(2 * (19 + d))}}},
			wantScore: []float64{0.9},
		},
		{
			name:  "weak region above thresh but below box thresh is dropped",
			rects: []rect{{20, 10, 79, 19, 0.5}},
			dstW:  128, dstH: 64,
		},
		{
			name:  "region too thin is dropped",
			rects: []rect{{20, 10, 79, 11, 0.9}},
			dstW:  128, dstH: 64,
		},
		{
			name:  "boxes are clipped to the image",
			rects: []rect{{0, 0, 40, 9, 0.9}},
			dstW:  128, dstH: 64,
			want: func() [][4]vec {
				d := 40.0 * 9 * 1.5 / (2 * (40 + 9))
				return [][4]vec{{{0, 0}, {math.Round(40 + d), 0}, {math.Round(40 + d), math.Round(9 + d)}, {0, math.Round(9 + d)}}}
			}(),
			wantScore: []float64{0.9},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := dbBoxes(probMap(128, 64, 0.01, tc.rects...), 128, 64, tc.dstW, tc.dstH, p)
			if len(got) != len(tc.want) {
				t.Fatalf("got %d boxes %+v, want %d", len(got), got, len(tc.want))
			}
			for i, b := range got {
				if [4]vec(b.q) != tc.want[i] {
					t.Errorf("box %d = %v, want %v", i, b.q, tc.want[i])
				}
				if math.Abs(b.score-tc.wantScore[i]) > 1e-6 {
					t.Errorf("box %d score %v, want %v", i, b.score, tc.wantScore[i])
				}
			}
		})
	}

	t.Run("two kernels, and max candidates caps them", func(t *testing.T) {
		m := probMap(128, 64, 0, rect{10, 5, 60, 14, 0.8}, rect{10, 35, 100, 44, 0.95})
		if got := dbBoxes(m, 128, 64, 128, 64, p); len(got) != 2 {
			t.Errorf("got %d boxes, want 2", len(got))
		}
		capped := p
		capped.MaxCandidates = 1
		if got := dbBoxes(m, 128, 64, 128, 64, capped); len(got) != 1 {
			t.Errorf("with max_candidates 1 got %d boxes, want 1", len(got))
		}
	})
}

func TestBoxScore(t *testing.T) {
	m := probMap(20, 10, 0.2, rect{0, 0, 9, 9, 1})
	for _, tc := range []struct {
		name string
		box  quad
		want float64
	}{
		{"inside the bright half", quad{{1, 1}, {8, 1}, {8, 8}, {1, 8}}, 1},
		{"inside the dim half", quad{{11, 1}, {18, 1}, {18, 8}, {11, 8}}, 0.2},
		// Columns 5..14 over rows 0..9: half at 1, half at 0.2.
		{"straddling both", quad{{5, 0}, {14, 0}, {14, 9}, {5, 9}}, 0.6},
		{"clipped at the border", quad{{-5, -5}, {4, -5}, {4, 4}, {-5, 4}}, 1},
		{"entirely outside the map scores 0", quad{{30, 30}, {40, 30}, {40, 40}, {30, 40}}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := boxScore(m, 20, 10, tc.box); math.Abs(got-tc.want) > 1e-6 {
				t.Errorf("score %v, want %v", got, tc.want)
			}
		})
	}
}

// FuzzDBBoxes runs the DB post-processing on arbitrary probability maps and
// image sizes: it must not panic, and every box must lie inside the image
// with a score in [0,1].
func FuzzDBBoxes(f *testing.F) {
	f.Add(uint8(32), uint8(32), uint16(640), uint16(480), []byte{0xff, 0x80, 0x00, 0xff})
	f.Add(uint8(7), uint8(3), uint16(1), uint16(1), []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	f.Add(uint8(64), uint8(16), uint16(33), uint16(2000), []byte("text text text text"))
	f.Fuzz(func(t *testing.T, w, h uint8, dstW, dstH uint16, seed []byte) {
		mw, mh := int(w)%96+1, int(h)%96+1
		pred := make([]float32, mw*mh)
		if len(seed) > 0 {
			// Blocky maps grow connected regions, which random pixels rarely do.
			for i := range pred {
				x, y := i%mw, i/mw
				b := seed[((y/4)*((mw+3)/4)+x/4)%len(seed)]
				pred[i] = float32(b) / 255
			}
		}
		p := DefaultParams().Det
		if len(seed) > 1 {
			p.UnclipRatio = float64(binary.BigEndian.Uint16(seed[:2])%400) / 100
		}
		boxes := dbBoxes(pred, mw, mh, int(dstW), int(dstH), p)
		for _, b := range boxes {
			if b.score < 0 || b.score > 1 || math.IsNaN(b.score) {
				t.Fatalf("score %v out of [0,1]", b.score)
			}
			for _, c := range b.q {
				if !finite(c) || c.X < 0 || c.Y < 0 || c.X > float64(dstW)-1 || c.Y > float64(dstH)-1 {
					t.Fatalf("corner %v outside the %dx%d image (map %dx%d): %v", c, dstW, dstH, mw, mh, b.q)
				}
			}
		}
	})
}
