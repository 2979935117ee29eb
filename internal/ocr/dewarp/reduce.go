package dewarp

import "image"

// shrink returns g reduced by the smallest integer factor k that brings
// its longer side to at most maxSide, each output pixel the mean of a k x k
// block (partial blocks at the right and bottom edges average what they
// have). Pixel (x, y) of the result covers [kx, kx+k) x [ky, ky+k) of g.
func shrink(g *image.Gray, maxSide int) (*image.Gray, int) {
	b := g.Bounds()
	w, h := b.Dx(), b.Dy()
	k := max(1, (max(w, h)+maxSide-1)/maxSide)
	sw, sh := (w+k-1)/k, (h+k-1)/k
	out := image.NewGray(image.Rect(0, 0, sw, sh))
	sums := make([]int, sw)
	for by := range sh {
		clear(sums)
		y1 := min(h, (by+1)*k)
		for y := by * k; y < y1; y++ {
			row := g.Pix[g.PixOffset(b.Min.X, b.Min.Y+y):][:w]
			for bx := range sums {
				s := 0
				for _, v := range row[bx*k : min(w, (bx+1)*k)] {
					s += int(v)
				}
				sums[bx] += s
			}
		}
		rows := y1 - by*k
		for bx := range sw {
			cols := min(w, (bx+1)*k) - bx*k
			out.Pix[by*out.Stride+bx] = uint8((sums[bx] + rows*cols/2) / (rows * cols))
		}
	}
	return out, k
}

// histogram counts the grey levels of g.
func histogram(g *image.Gray) (hist [256]int, n int) {
	b := g.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for _, v := range g.Pix[g.PixOffset(b.Min.X, y):][:b.Dx()] {
			hist[v]++
		}
	}
	return hist, b.Dx() * b.Dy()
}

// otsuLevel returns the grey level t that splits hist into the classes
// <= t and > t with the largest between-class variance (Otsu, 1979).
func otsuLevel(hist *[256]int) int {
	var n, total float64
	for v, c := range hist {
		n += float64(c)
		total += float64(v * c)
	}
	best, bestScore := 127, -1.0
	var n0, sum0 float64
	for t := range 255 {
		n0 += float64(hist[t])
		sum0 += float64(t * hist[t])
		n1 := n - n0
		if n0 == 0 || n1 == 0 {
			continue
		}
		diff := sum0/n0 - (total-sum0)/n1
		if score := n0 * n1 * diff * diff; score > bestScore {
			best, bestScore = t, score
		}
	}
	return best
}

// percentile returns the smallest grey level with at least frac of the
// counted samples at or below it (0 when nothing was counted).
func percentile(hist *[256]int, frac float64) uint8 {
	n := 0
	for _, c := range hist {
		n += c
	}
	want, seen := frac*float64(n), 0
	for v, c := range hist {
		seen += c
		if c > 0 && float64(seen) >= want {
			return uint8(v)
		}
	}
	return 0
}
