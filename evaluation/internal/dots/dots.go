// Package dots computes tiles of dot products between the rows of two
// float32 matrices: the inner loop of package evaluation's pixel-space
// distances (‖a−b‖² = ‖a‖² + ‖b‖² − 2a·b).
//
// The rows are first packed into panels (Pack, PackBytes) and a Kernel
// multiplies two packed blocks into a tile of C = A·Bᵀ. Where cgo and amd64
// are available (dots_amd64.go), the kernels are C with AVX-512 (12×32
// values a step) or AVX2 and FMA (6×16), chosen at start from the CPU's
// features; elsewhere, and on CPUs without AVX2, a Go kernel (4×4) runs.
//
// Every kernel sums each dot product over k in order, one fused or
// rounded multiply-add a term, in float32. Kernels differ from each other
// and from a float64 sum by rounding only: by at most γ_d·Σ|aₖbₖ|, where
// γ_d = d·2⁻²⁴/(1−d·2⁻²⁴) (ErrorFactor), which the tests check. Callers
// that need exact decisions recompute the close calls in float64.
package dots

import (
	"math"
	"slices"
)

// Kernel multiplies packed blocks. The zero Kernel is not usable: take
// one from Best or All.
type Kernel struct {
	// Name is "avx512", "avx2" or "go".
	Name string
	// MR and NR are the rows of a panel of A and of B: blocks are packed
	// with Pack(…, MR) and Pack(…, NR).
	MR, NR int
	tile   func(ap []float32, m int, bp []float32, n, d int, c []float32, ldc int)
}

// Tile sets c[i·ldc+j] = Σₖ aᵢₖ·bⱼₖ for i < m and j < n, where ap holds
// the m rows of A packed with Pack(…, k.MR) and bp the n rows of B packed
// with Pack(…, k.NR), both with d values a row. It writes nothing else of
// c and keeps no slice. It panics if a slice is too short (a bug of the
// caller, as with a slice index).
func (k Kernel) Tile(ap []float32, m int, bp []float32, n, d int, c []float32, ldc int) {
	if m <= 0 || n <= 0 {
		return
	}
	if d <= 0 || ldc < n || len(ap) < PackedLen(m, d, k.MR) || len(bp) < PackedLen(n, d, k.NR) || len(c) < (m-1)*ldc+n {
		panic("dots: Tile: bad sizes")
	}
	k.tile(ap, m, bp, n, d, c, ldc)
}

// PackedLen is the length of rows rows of d values packed into panels of
// w rows: whole panels, the last one padded with zero rows.
func PackedLen(rows, d, w int) int { return (rows + w - 1) / w * w * d }

// Pack packs rows rows of x (row-major, d values each) into panels of w
// rows, in dst's memory when it is large enough, and returns the packed
// block, PackedLen(rows, d, w) values: panel p holds for each k, in order,
// the w values x[(p·w+r)·d+k], r < w, with zeros for rows past the last.
// With centre (d values) not nil, it packs x[(p·w+r)·d+k] − centre[k],
// rounded to float32, instead.
func Pack(dst, x, centre []float32, rows, d, w int) []float32 {
	dst = grow(dst, PackedLen(rows, d, w))
	for p := 0; p*w < rows; p++ {
		panel := dst[p*w*d : (p+1)*w*d]
		n := min(w, rows-p*w)
		if n < w {
			clear(panel)
		}
		// Written in order, w rows read side by side.
		src := x[p*w*d : (p*w+n)*d]
		if centre == nil {
			for k := range d {
				out := panel[k*w : k*w+n]
				for r := range out {
					out[r] = src[r*d+k]
				}
			}
			continue
		}
		centre := centre[:d]
		for k, c := range centre {
			out := panel[k*w : k*w+n]
			for r := range out {
				out[r] = src[r*d+k] - c
			}
		}
	}
	return dst
}

// PackBytes is Pack of pixel bytes: each byte b becomes b/255 in float32,
// the value that package dataset's Floats gives.
func PackBytes(dst []float32, x []uint8, rows, d, w int) []float32 {
	dst = grow(dst, PackedLen(rows, d, w))
	for p := 0; p*w < rows; p++ {
		panel := dst[p*w*d : (p+1)*w*d]
		n := min(w, rows-p*w)
		if n < w {
			clear(panel)
		}
		for r := range n {
			row := x[(p*w+r)*d : (p*w+r+1)*d]
			for k, b := range row {
				panel[k*w+r] = byteValue[b]
			}
		}
	}
	return dst
}

// byteValue maps a pixel byte to b/255 in float32.
var byteValue = func() (t [256]float32) {
	for b := range t {
		t[b] = float32(b) / 255
	}
	return t
}()

// ByteValue returns b/255 in float32, the value PackBytes gives b.
func ByteValue(b uint8) float32 { return byteValue[b] }

func grow(s []float32, n int) []float32 {
	if cap(s) < n {
		return make([]float32, n)
	}
	return s[:n]
}

// ErrorFactor returns γ_d = d·u/(1−d·u) with u = 2⁻²⁴: a kernel's dot
// product of two rows of d values differs from the exact one by at most
// ErrorFactor(d)·Σₖ|aₖbₖ| (barring overflow and underflow). It is +Inf
// for d ≥ 2²⁴, where the bound says nothing.
func ErrorFactor(d int) float64 {
	u := 0x1p-24 * float64(d)
	if u >= 1 {
		return math.Inf(1)
	}
	return u / (1 - u)
}

// Best returns the fastest kernel this build and CPU can run.
func Best() Kernel { return All()[0] }

// All returns every kernel this build and CPU can run, fastest first; the
// Go kernel is always last.
func All() []Kernel { return append(slices.Clip(vectorKernels()), goKernel) }

// goKernel is the Go kernel: 4×4 values a step, one multiply and one
// addition each, in float32.
var goKernel = Kernel{Name: "go", MR: 4, NR: 4, tile: tileGo}

func tileGo(ap []float32, m int, bp []float32, n, d int, c []float32, ldc int) {
	const mr, nr = 4, 4
	var out [mr * nr]float32
	for i0 := 0; i0 < m; i0 += mr {
		a := ap[i0*d : (i0+mr)*d]
		for j0 := 0; j0 < n; j0 += nr {
			b := bp[j0*d : (j0+nr)*d]
			var c00, c01, c02, c03, c10, c11, c12, c13, c20, c21, c22, c23, c30, c31, c32, c33 float32
			for k := range d {
				ak := a[k*mr : k*mr+mr : k*mr+mr]
				bk := b[k*nr : k*nr+nr : k*nr+nr]
				a0, a1, a2, a3 := ak[0], ak[1], ak[2], ak[3]
				b0, b1, b2, b3 := bk[0], bk[1], bk[2], bk[3]
				c00 += a0 * b0
				c01 += a0 * b1
				c02 += a0 * b2
				c03 += a0 * b3
				c10 += a1 * b0
				c11 += a1 * b1
				c12 += a1 * b2
				c13 += a1 * b3
				c20 += a2 * b0
				c21 += a2 * b1
				c22 += a2 * b2
				c23 += a2 * b3
				c30 += a3 * b0
				c31 += a3 * b1
				c32 += a3 * b2
				c33 += a3 * b3
			}
			out = [mr * nr]float32{c00, c01, c02, c03, c10, c11, c12, c13, c20, c21, c22, c23, c30, c31, c32, c33}
			for r := range min(mr, m-i0) {
				copy(c[(i0+r)*ldc+j0:(i0+r)*ldc+min(j0+nr, n)], out[r*nr:])
			}
		}
	}
}
