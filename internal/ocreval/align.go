package ocreval

// AlignWords aligns hypothesis words to reference words by minimum word
// edit distance and reports, for each hypothesis word, whether it was
// aligned to an identical reference word. It is how a word's confidence is
// scored as right or wrong for calibration.
func AlignWords(hyp, ref []string) []bool {
	n, m := len(hyp), len(ref)
	d := make([][]int, n+1)
	for i := range d {
		d[i] = make([]int, m+1)
		d[i][0] = i
	}
	for j := 0; j <= m; j++ {
		d[0][j] = j
	}
	sub := func(i, j int) int {
		if hyp[i-1] == ref[j-1] {
			return 0
		}
		return 1
	}
	for i := 1; i <= n; i++ {
		for j := 1; j <= m; j++ {
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+sub(i, j))
		}
	}
	ok := make([]bool, n)
	for i, j := n, m; i > 0 && j > 0; {
		switch {
		case d[i][j] == d[i-1][j-1]+sub(i, j):
			ok[i-1] = hyp[i-1] == ref[j-1]
			i, j = i-1, j-1
		case d[i][j] == d[i-1][j]+1:
			i--
		default:
			j--
		}
	}
	return ok
}
