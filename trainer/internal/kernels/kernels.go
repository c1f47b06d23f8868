// Package kernels holds the trainer's hand-written float32 loops: Adam's
// update, Adam fused with a Linear layer's weight gradient, the sigmoid, the
// bias+ReLU after a Linear product, the ReLU's gradient and the column sums
// of a bias gradient.
//
// Each has a Go reference in this file. Where cgo and amd64 are available
// (kernels_amd64.go), the CPU's AVX-512 or AVX2 instructions run them in C,
// chosen at start from the CPU's features; elsewhere (kernels_generic.go)
// the Go references run. The C kernels give their references' bits: the
// same operations in the same order, without fused multiply-adds, except
// LinearWeightStep, whose sums use one fused multiply-add a sample, in
// order, and whose reference (LinearWeightStepRef) is scalar C with fmaf.
// The tests compare each kernel with its reference, bit for bit, and the
// fused gradient with gonum's gemm within the error bound of a float32 sum.
//
// Which BLAS the trainer multiplies with (OpenBLAS with the openblas build
// tag, gonum's pure Go without) is the trainer's choice, not this
// package's.
package kernels

import "math"

// float is the element type of the loops written for both float32 and
// float64 (the trainer's float64 graphs check gradients).
type float interface{ ~float32 | ~float64 }

// AdamStep holds the scalars of one step of Adam, the same for every
// value: lr/(1-β1ᵗ), 1/sqrt(1-β2ᵗ), β1, β2 and ε.
type AdamStep struct {
	StepSize, InvBC2Sqrt, B1, B2, Eps float32
}

// MinNormal32 is the smallest normal float32, 2⁻¹²⁶.
const MinNormal32 = 0x1p-126

// AdamGo is Adam's per-value update in Go: the reference for Adam's C
// kernel, which must give the same bits, and the fallback where there is
// none.
func AdamGo(p, g, m, v []float32, s AdamStep) {
	stepSize, invBC2Sqrt, b1, b2, eps := s.StepSize, s.InvBC2Sqrt, s.B1, s.B2, s.Eps
	g, m, v = g[:len(p)], m[:len(p)], v[:len(p)]
	for j := range p {
		gj := g[j]
		mj := b1*m[j] + (1-b1)*gj
		vj := b2*v[j] + (1-b2)*gj*gj
		// Subnormal moments are stored as zero (see Adam). NaN stays NaN.
		if mj < MinNormal32 && mj > -MinNormal32 {
			mj = 0
		}
		if vj < MinNormal32 {
			vj = 0
		}
		m[j], v[j] = mj, vj
		denom := float32(math.Sqrt(float64(vj)))*invBC2Sqrt + eps
		p[j] -= stepSize * mj / denom
	}
}

// Sigmoid32 is 1/(1+e^-x) rounded to float32: the same value as
// float32(1/(1+math.Exp(-float64(x)))) or one unit in the last place from
// it (TestSigmoid32), at a fraction of the cost. It computes e^-x in
// float64 as 2^(k/32)·e^r, with 2^(j/32) from a table and |r| ≤ ln2/64, so
// that e^r needs only its Taylor series to r^4 (relative error below 1e-12,
// against float32's 6e-8).
//
// It widens x to float64 from its bits: the CPU's conversion instruction
// keeps the upper half of its destination register, which ties each call
// to the arithmetic of the one before and made the function several times
// slower in a loop.
func Sigmoid32(x float32) float32 {
	b := math.Float32bits(x)
	exp := b >> 23 & 0xff
	switch {
	case exp == 0xff && b&0x7fffff != 0: // NaN
		return x
	case exp == 0: // zero or subnormal: the exact value rounds to 1/2
		return 0.5
	}
	// z = -x, exactly: the sign flipped, the exponent rebiased, the
	// mantissa widened.
	z := math.Float64frombits(uint64(b&0x80000000^0x80000000)<<32 | uint64(exp+1023-127)<<52 | uint64(b&0x7fffff)<<29)
	switch {
	case z > 110: // the exact value is below float32's smallest (and x = -Inf)
		return 0
	case z < -110: // the exact value rounds to 1 (and x = +Inf)
		return 1
	}
	const (
		n     = float64(len(exp2Table))
		ln2   = 0.6931471805599453
		round = 0x1.8p52 // adding and subtracting it rounds to an integer
	)
	kf := (z*(n/ln2) + round) - round
	r := z - kf*(ln2/n)
	k := int64(kf)
	r2 := r * r
	p := (1 + r) + r2*((1./2+r*(1./6))+r2*(1./24))
	e := p * exp2Table[k&(1<<exp2Bits-1)] * math.Float64frombits(uint64(k>>exp2Bits+1023)<<52)
	return float32(1 / (1 + e))
}

// exp2Table holds 2^(j/32) for j in [0, 32).
var exp2Table = func() (t [1 << exp2Bits]float64) {
	for j := range t {
		t[j] = math.Exp2(float64(j) / float64(len(t)))
	}
	return t
}()

const exp2Bits = 5

// BiasSigmoidGo sets v[i] = Sigmoid32(v[i] + b).
func BiasSigmoidGo(v []float32, b float32) {
	for i, x := range v {
		v[i] = Sigmoid32(x + b)
	}
}

// BiasReLUGo sets v[j] = max(v[j]+b[j], 0), with NaN kept and -0 made +0.
func BiasReLUGo[T float](v, b []T) {
	b = b[:len(v)]
	for j, x := range v {
		v[j] = max(x+b[j], 0)
	}
}

// ReLUGradGo sets dz[j] = dy[j] where y[j] > 0 or is NaN, else +0.
func ReLUGradGo(dz, y, dy []float32) {
	y, dy = y[:len(dz)], dy[:len(dz)]
	for j, v := range y {
		if v <= 0 {
			dz[j] = 0
		} else {
			dz[j] = dy[j]
		}
	}
}

// AddRowsGo adds rows rows of v, len(s) values each and ld apart, to s, a
// row at a time.
func AddRowsGo[T float](s, v []T, rows, ld int) {
	for r := 0; r < rows; r++ {
		for j, x := range v[r*ld : r*ld+len(s)] {
			s[j] += x
		}
	}
}
