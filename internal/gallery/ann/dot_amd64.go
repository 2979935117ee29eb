package ann

import "golang.org/x/sys/cpu"

// useAsm selects the AVX2/FMA kernel when the CPU has both.
var useAsm = cpu.X86.HasAVX2 && cpu.X86.HasFMA

// dotAsm returns the dot product of the n float32s at a and b; n must be a
// multiple of 8.
//
//go:noescape
func dotAsm(a, b *float32, n int) float32
