package ann

// Dot is the dot product of two equally long vectors: the cosine
// similarity of unit vectors. On amd64 with AVX2 and FMA it runs an
// assembly kernel (dot_amd64.s) over the multiple-of-8 prefix; everywhere
// else, and for the tail, dotGeneric.
func Dot(a, b []float32) float32 {
	n := len(a)
	b = b[:n]
	if useAsm && n >= 8 {
		m := n &^ 7
		s := dotAsm(&a[0], &b[0], m)
		for i := m; i < n; i++ {
			s += a[i] * b[i]
		}
		return s
	}
	return dotGeneric(a, b)
}

// dotGeneric is unrolled by eight, which the compiler turns into
// independent multiply-add chains.
func dotGeneric(a, b []float32) float32 {
	n := len(a)
	b = b[:n]
	var s0, s1, s2, s3, s4, s5, s6, s7 float32
	i := 0
	for ; i+8 <= n; i += 8 {
		aa, bb := a[i:i+8:i+8], b[i:i+8:i+8]
		s0 += aa[0] * bb[0]
		s1 += aa[1] * bb[1]
		s2 += aa[2] * bb[2]
		s3 += aa[3] * bb[3]
		s4 += aa[4] * bb[4]
		s5 += aa[5] * bb[5]
		s6 += aa[6] * bb[6]
		s7 += aa[7] * bb[7]
	}
	for ; i < n; i++ {
		s0 += a[i] * b[i]
	}
	return (s0 + s1) + (s2 + s3) + (s4 + s5) + (s6 + s7)
}
