package kernels

import (
	"fmt"
	"math"
	"testing"
)

// TestSgemm checks Sgemm against its scalar reference, bit for bit, on the
// Linear layers' shapes and on edges of its blocks (rows in runs of 6 and
// 4, columns in panels of 64, sums in blocks of 128 terms), in both
// layouts of b and with leading dimensions wider than the rows; and the
// reference against float64 sums within the error bound of a float32 sum.
func TestSgemm(t *testing.T) {
	if !Vector {
		t.Skip("no product kernel: pure-Go build, or a CPU without AVX-512")
	}
	tests := []struct{ m, n, k int }{
		{64, 256, 784}, // the classic model's first layer, a goroutine's columns
		{64, 392, 512}, // its last layer's input gradient, a goroutine's columns
		{64, 64, 1568},
		{64, 10, 512},
		{100, 5, 10},
		{1, 1, 1},
		{2, 3, 0},
		{3, 17, 5},
		{5, 63, 127},
		{7, 65, 128},
		{10, 130, 129},
		{13, 200, 257},
	}
	for _, tc := range tests {
		for _, transB := range []bool{false, true} {
			for _, pad := range []int{0, 3} {
				name := fmt.Sprintf("%dx%dx%d/transB=%v/pad=%d", tc.m, tc.n, tc.k, transB, pad)
				lda, ldb, ldc := tc.k+pad, tc.n+pad, tc.n+pad
				brows := tc.k
				if transB {
					ldb, brows = tc.k+pad, tc.n
				}
				a := make([]float32, tc.m*lda)
				for i := range a {
					a[i] = float32(math.Sin(float64(i)*0.37)) * 2
				}
				b := make([]float32, brows*ldb)
				for i := range b {
					b[i] = float32(math.Cos(float64(i)*0.11)) * 0.05
				}
				got, want := make([]float32, tc.m*ldc), make([]float32, tc.m*ldc)
				for i := range got {
					got[i], want[i] = -7, -7 // the gaps between rows keep this
				}
				if !Sgemm(transB, tc.m, tc.n, tc.k, a, lda, b, ldb, got, ldc) {
					t.Fatalf("%s: no product on a CPU with AVX-512", name)
				}
				SgemmRef(transB, tc.m, tc.n, tc.k, a, lda, b, ldb, want, ldc)
				for i := range got {
					if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
						t.Fatalf("%s: c[%d][%d] = %v, reference %v", name, i/ldc, i%ldc, got[i], want[i])
					}
				}
				gamma := float64(tc.k+1) * 0x1p-24 / (1 - float64(tc.k+1)*0x1p-24)
				for i := range tc.m {
					for j := range tc.n {
						sum, abs := 0.0, 0.0
						for p := range tc.k {
							var bv float32
							if transB {
								bv = b[j*ldb+p]
							} else {
								bv = b[p*ldb+j]
							}
							prod := float64(a[i*lda+p]) * float64(bv)
							sum += prod
							abs += math.Abs(prod)
						}
						if d := math.Abs(float64(want[i*ldc+j]) - sum); d > gamma*abs {
							t.Fatalf("%s: c[%d][%d] = %v, float64 %v: error %.3g over the bound %.3g", name, i, j, want[i*ldc+j], sum, d, gamma*abs)
						}
					}
				}
			}
		}
	}
}

// TestSgemmSpecial checks Sgemm's bits against the reference where a and b
// hold infinities, NaNs, signed zeros and subnormals.
func TestSgemmSpecial(t *testing.T) {
	if !Vector {
		t.Skip("no product kernel: pure-Go build, or a CPU without AVX-512")
	}
	special := []float32{float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN()), float32(math.Copysign(0, -1)), 0, 0x1p-130, 1e30}
	m, n, k := 9, 70, 140
	for _, transB := range []bool{false, true} {
		a, b := make([]float32, m*k), make([]float32, k*n)
		for i := range a {
			a[i] = float32(i%7) - 3
			if i%23 == 0 {
				a[i] = special[i%len(special)]
			}
		}
		for i := range b {
			b[i] = float32(i%5) - 2 // many exact zeros: -0 sums and 0·∞
			if i%97 == 0 {
				b[i] = special[i%len(special)]
			}
		}
		ldb := n
		if transB {
			ldb = k
		}
		got, want := make([]float32, m*n), make([]float32, m*n)
		Sgemm(transB, m, n, k, a, k, b, ldb, got, n)
		SgemmRef(transB, m, n, k, a, k, b, ldb, want, n)
		for i := range got {
			if math.Float32bits(got[i]) != math.Float32bits(want[i]) && !(got[i] != got[i] && want[i] != want[i]) {
				t.Fatalf("transB=%v: c[%d] = %v, reference %v", transB, i, got[i], want[i])
			}
		}
	}
}

// BenchmarkLinearWeightStep times the fused weight gradient and Adam step
// of the classic model's first layer (784×512 at batch 64) and the conv
// model's two large Linear layers (1568×128 and 128×1568) on one
// goroutine, and BenchmarkSgemm the classic model's first forward product,
// a goroutine's half (64×256×784), and its last layer's input gradient, a
// goroutine's half (64×392×512 with b transposed).
func BenchmarkLinearWeightStep(b *testing.B) {
	if !Vector {
		b.Skip("no fused kernel")
	}
	for _, tc := range []struct{ n, in, out int }{{64, 784, 512}, {64, 1568, 128}, {64, 128, 1568}} {
		b.Run(fmt.Sprintf("%dx%dx%d", tc.n, tc.in, tc.out), func(b *testing.B) {
			n, in, out := tc.n, tc.in, tc.out
			x, dz := make([]float32, n*in), make([]float32, n*out)
			for i := range x {
				x[i] = float32(math.Sin(float64(i)))
			}
			for i := range dz {
				dz[i] = float32(math.Cos(float64(i))) * 1e-2
			}
			p, m, v := make([]float32, in*out), make([]float32, in*out), make([]float32, in*out)
			s := AdamStep{StepSize: 1e-3, InvBC2Sqrt: 1, B1: 0.9, B2: 0.999, Eps: 1e-8}
			for i := 0; i < b.N; i++ {
				LinearWeightStep(x, dz, n, in, out, 0, in, p, m, v, s)
			}
			b.ReportMetric(float64(2*n*in*out)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOPS")
		})
	}
}

func BenchmarkSgemm(b *testing.B) {
	if !Vector {
		b.Skip("no product kernel")
	}
	for _, tc := range []struct {
		m, n, k int
		transB  bool
	}{{64, 256, 784, false}, {64, 392, 512, true}} {
		b.Run(fmt.Sprintf("%dx%dx%d/transB=%v", tc.m, tc.n, tc.k, tc.transB), func(b *testing.B) {
			a, w, c := make([]float32, tc.m*tc.k), make([]float32, tc.k*tc.n), make([]float32, tc.m*tc.n)
			for i := range a {
				a[i] = float32(i%13) * 0.1
			}
			for i := range w {
				w[i] = float32(i%7) * 0.1
			}
			ldb := tc.n
			if tc.transB {
				ldb = tc.k
			}
			for i := 0; i < b.N; i++ {
				Sgemm(tc.transB, tc.m, tc.n, tc.k, a, tc.k, w, ldb, c, tc.n)
			}
			b.ReportMetric(float64(2*tc.m*tc.n*tc.k)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOPS")
		})
	}
}
