// Package kernels holds the trainer's hand-written float32 loops: Adam's
// update, Adam fused with a Linear layer's weight gradient, the sigmoid, the
// bias+ReLU after a Linear product or a convolution's channel, the ReLU's
// gradient, the column sums of a bias gradient, and, for the convolutions,
// the im2col of a stride-1 "same" convolution, the 2×2 max pooling, the
// stride-1 col2im of an input gradient, the interleaving of a kernel-2
// ConvTranspose2d's output and its gradient (with SigmoidGrad's flush),
// the transpose of a matrix, a direct 3×3 convolution with its fused
// bias, ReLU and pooling and its weight gradient (Conv3x3,
// Conv3x3ReLUPool, Conv3x3GradW: in C only), the gradients of such a
// convolution taken from its pooling's gradient (Conv3x3PoolGrad for one
// input channel, Conv3x3PoolGradW and Conv3x3PoolGradX for 16 or more: in
// C only, held to the dense path's references), and a float32 matrix
// product for the Linear layers' forward pass and input gradient (Sgemm:
// in C only).
//
// Each has a Go reference in this file. Where cgo and amd64 are available
// (kernels_amd64.go), the CPU's AVX-512 or AVX2 instructions run them in C,
// chosen at start from the CPU's features; elsewhere (kernels_generic.go)
// the Go references run. The C kernels give their references' bits: the
// same operations in the same order, without fused multiply-adds, except
// LinearWeightStep, whose sums use one fused multiply-add a sample, in
// order, and whose reference (LinearWeightStepRef) is scalar C with fmaf,
// and Sgemm, the same with SgemmRef.
// The tests compare each kernel with its reference, bit for bit, in each
// form the CPU runs (an AVX-512 CPU runs the AVX2 forms too), and the
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
// value: lr/(1-β1ᵗ), 1/sqrt(1-β2ᵗ), β1, β2 and ε; and WeightDecay, lr·λ
// of AdamW's decoupled weight decay (0: Adam), which scales each value by
// 1-lr·λ before the step, as PyTorch's AdamW does.
type AdamStep struct {
	StepSize, InvBC2Sqrt, B1, B2, Eps float32
	WeightDecay                       float32
}

// MinNormal32 is the smallest normal float32, 2⁻¹²⁶.
const MinNormal32 = 0x1p-126

// AdamGo is Adam's per-value update in Go: the reference for Adam's C
// kernel, which must give the same bits, and the fallback where there is
// none.
func AdamGo(p, g, m, v []float32, s AdamStep) {
	stepSize, invBC2Sqrt, b1, b2, eps, keep := s.StepSize, s.InvBC2Sqrt, s.B1, s.B2, s.Eps, 1-s.WeightDecay
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
		// The conversion rounds the product, as the C kernels do: Go may
		// not fuse it with the subtraction.
		p[j] = float32(p[j]*keep) - stepSize*mj/denom
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

// BiasReLUScalarGo sets v[j] = v[j] + b where that is above zero or NaN,
// else +0: a ReLU after a bias that is the same for all of v (a channel of
// a convolution).
func BiasReLUScalarGo(v []float32, b float32) {
	for j, x := range v {
		x += b
		if x <= 0 {
			x = 0
		}
		v[j] = x
	}
}

// ChannelSumsGo adds to d[ch] the sum of each of the len(d) channels of
// block, inner values each and one after the other: a convolution's bias
// gradient over one sample. Each channel's sum is Sum4Go's.
func ChannelSumsGo[T float](d, block []T, inner int) {
	for ch := range d {
		d[ch] += Sum4Go(block[ch*inner : (ch+1)*inner])
	}
}

// Sum4Go adds v up in four interleaved partial sums, s_l of the values at
// l, l+4, l+8, …, the values past the last multiple of 4 going to s_0, and
// returns (s_0+s_1)+(s_2+s_3).
func Sum4Go[T float](v []T) T {
	var s0, s1, s2, s3 T
	i := 0
	for ; i+4 <= len(v); i += 4 {
		s0 += v[i]
		s1 += v[i+1]
		s2 += v[i+2]
		s3 += v[i+3]
	}
	for ; i < len(v); i++ {
		s0 += v[i]
	}
	return (s0 + s1) + (s2 + s3)
}

// Col2Im1Go is the inverse of im2col for a stride of 1: it sets dx, c
// planes of h×w, to the sum of the columns cols, c·k·k rows of oh·ow
// values, each at its place in its plane,
// dx[ch, oy-pad+i, ox-pad+j] += cols[(ch·k+i)·k+j, oy·ow+ox] where that
// is inside the plane, adding the rows in order.
func Col2Im1Go[T float](dx, cols []T, c, k, h, w, oh, ow, pad int) {
	ohw, hw := oh*ow, h*w
	clear(dx[:c*hw])
	for r := 0; r < c*k*k; r++ {
		ch, i, j := r/(k*k), r/k%k, r%k
		ylo, yhi := max(0, pad-i), min(oh, h+pad-i)
		xlo, xhi := max(0, pad-j), min(ow, w+pad-j)
		ylo, xlo = min(ylo, oh), min(xlo, ow)
		yhi, xhi = max(yhi, ylo), max(xhi, xlo)
		src := cols[r*ohw : (r+1)*ohw]
		dst := dx[ch*hw : (ch+1)*hw]
		for oy := ylo; oy < yhi; oy++ {
			in := src[oy*ow+xlo : oy*ow+xhi]
			out := dst[(oy-pad+i)*w+xlo-pad+j:]
			out = out[:len(in)]
			for t, v := range in {
				out[t] += v
			}
		}
	}
}

// MaxPool2x2Go pools planes planes of x, each of hw values apart with rows
// of w values, in 2×2 windows of stride 2, into oh×ow values each of y,
// plane after plane. Each output is Go's max of its window (NaN when one is
// NaN, +0 for +0 and -0). With where not nil, it also records, a byte per
// output, which of the window's values (0-3, row-major) is the first
// maximum, plus 4 when the maximum is above zero or NaN: what the
// gradient of the pooling, and of a ReLU before it, need.
func MaxPool2x2Go[T float](x []T, planes, w, hw, oh, ow int, y []T, where []uint8) {
	b2i := func(b bool) int {
		if b {
			return 1
		}
		return 0
	}
	ohw := oh * ow
	for p := range planes {
		src, yp := x[p*hw:], y[p*ohw:(p+1)*ohw]
		for oy := 0; oy < oh; oy++ {
			r0 := src[2*oy*w : 2*oy*w+2*ow]
			r1 := src[(2*oy+1)*w : (2*oy+1)*w+2*ow]
			yr := yp[oy*ow : (oy+1)*ow]
			if where == nil {
				for ox := range yr {
					yr[ox] = max(max(r0[2*ox], r0[2*ox+1]), max(r1[2*ox], r1[2*ox+1]))
				}
				continue
			}
			wr := where[p*ohw+oy*ow : p*ohw+(oy+1)*ow]
			for ox := range yr {
				a, b, c, e := r0[2*ox], r0[2*ox+1], r1[2*ox], r1[2*ox+1]
				m0, m1 := max(a, b), max(c, e)
				m := max(m0, m1)
				yr[ox] = m
				// The first maximum in row-major order: a, b, c, e.
				s0, s1 := b2i(b > a), 2+b2i(e > c)
				wr[ox] = uint8(s0 + (s1-s0)*b2i(m1 > m0) + b2i(!(m <= 0))<<2)
			}
		}
	}
}

// MaxPool2x2GradGo writes the gradient of MaxPool2x2Go into grad, planes
// planes of hw values with rows of w: each output's gradient in dy goes
// to the window's position that where recorded, every other value is +0.
// With relu, an output whose maximum was not above zero (nor NaN) passes
// +0: the gradient of a ReLU before the pooling too.
func MaxPool2x2GradGo[T float](grad []T, planes, w, hw, oh, ow int, dy []T, where []uint8, relu bool) {
	ohw := oh * ow
	for p := range planes {
		gp := grad[p*hw : (p+1)*hw]
		clear(gp)
		for oy := 0; oy < oh; oy++ {
			g := gp[2*oy*w : (2*oy+2)*w]
			wr := where[p*ohw+oy*ow : p*ohw+(oy+1)*ow]
			for ox, d := range dy[p*ohw+oy*ow : p*ohw+(oy+1)*ow] {
				c := int(wr[ox])
				right, down := c&1, (c>>1)&1 // where in the window
				if relu && c&4 == 0 {
					d = 0
				}
				g[down*w+2*ox+right] = d
			}
		}
	}
}

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

// TransposeGo sets dst [cols, rows] to the transpose of src [rows, cols],
// both row-major, in blocks of 8×8 values so that both stay in cache lines.
func TransposeGo[T float](dst, src []T, rows, cols int) {
	const b = 8
	_, _ = dst[rows*cols-1], src[rows*cols-1]
	for r0 := 0; r0 < rows; r0 += b {
		r1 := min(r0+b, rows)
		for c0 := 0; c0 < cols; c0 += b {
			c1 := min(c0+b, cols)
			for r := r0; r < r1; r++ {
				row := src[r*cols+c0 : r*cols+c1]
				for i, v := range row {
					dst[(c0+i)*rows+r] = v
				}
			}
		}
	}
}

// Act names the activation whose gradient Deinterleave2 applies.
type Act int

const (
	ActNone    Act = iota // the gradient passes unchanged
	ActReLU               // dy where y > 0 or is NaN, else +0
	ActSigmoid            // SigmoidGrad(dy, y)
)

// SigmoidGradFloor is the magnitude under which SigmoidGrad gives +0.
const SigmoidGradFloor = 0x1p-100

// SigmoidGrad is the sigmoid's gradient dy·y·(1 − y) at its output y, but
// +0 where that is under SigmoidGradFloor (2⁻¹⁰⁰, about 8·10⁻³¹) in
// magnitude (±0 stays as it is). Where a pixel's sigmoid saturates,
// dy·y·(1 − y) falls to float32's subnormal range, or just above it, and
// the decoder's backward products then run on subnormal values (theirs or
// their products with weights under 1), each a microcode assist on x86
// CPUs: a conv step of a trained model took 25–30% longer. Flushed at
// 2⁻¹⁰⁰, the values a few layers down stay normal. A gradient that small
// moves no weight: Adam's step for it is about lr·g/ε, under 10⁻²²·lr.
func SigmoidGrad[T float](dy, y T) T {
	g := dy * y * (1 - y)
	if g != 0 && math.Abs(float64(g)) < SigmoidGradFloor {
		return 0
	}
	return g
}

// MSESigmoidGradGo sets dz[i] = SigmoidGrad(k·(y[i] − x[i]), y[i]): the
// gradient at a sigmoid's input z of the loss k/2·Σ(y − x)², y the
// sigmoid's output, the loss's gradient k·(y − x) rounded to T first. It
// reports whether every y[i] − x[i] is finite. y and x hold at least
// len(dz) values.
func MSESigmoidGradGo[T float](dz, y, x []T, k T) bool {
	var sum T // NaN once any difference is not finite
	for i, v := range y[:len(dz)] {
		d := v - x[i]
		sum += d - d
		dz[i] = SigmoidGrad(k*d, v)
	}
	return sum == 0
}

// Interleave2Go writes one channel's output plane dst [2h, 2w] of a
// ConvTranspose2d with kernel and stride 2 from its four rows of the
// product Y = Wᵀ·x, src [4, h·w], row p·2+q holding the values of the
// positions (2i+p, 2j+q), adding bias to each:
//
//	dst[(2i+p)·2w + 2j+q] = src[(p·2+q)·h·w + i·w + j] + bias
func Interleave2Go[T float](dst, src []T, h, w int, bias T) {
	hw, ow := h*w, 2*w
	_, _ = dst[4*hw-1], src[4*hw-1]
	for p := range 2 {
		for i := range h {
			row := dst[(2*i+p)*ow : (2*i+p+1)*ow]
			a, b := src[2*p*hw+i*w:][:w], src[(2*p+1)*hw+i*w:][:w]
			for j := range w {
				row[2*j] = a[j] + bias
				row[2*j+1] = b[j] + bias
			}
		}
	}
}

// Deinterleave2Go is Interleave2Go's way back, for the gradient: from a
// channel's output plane y [2h, 2w] and its gradient dy it writes the
// gradient of the four rows of Y, dz [4, h·w], through the activation:
//
//	dz[(p·2+q)·h·w + i·w + j] = act'(y[t])·dy[t], t = (2i+p)·2w + 2j+q
//
// with act' as Act says (for the sigmoid, SigmoidGrad).
func Deinterleave2Go[T float](dz, y, dy []T, h, w int, act Act) {
	hw, ow := h*w, 2*w
	_, _, _ = dz[4*hw-1], y[4*hw-1], dy[4*hw-1]
	for p := range 2 {
		for i := range h {
			yr, dr := y[(2*i+p)*ow:(2*i+p+1)*ow], dy[(2*i+p)*ow:(2*i+p+1)*ow]
			for q := range 2 {
				d := dz[(2*p+q)*hw+i*w:][:w]
				switch act {
				case ActReLU:
					for j := range d {
						g := dr[2*j+q]
						if yr[2*j+q] <= 0 {
							g = 0
						}
						d[j] = g
					}
				case ActSigmoid:
					for j := range d {
						d[j] = SigmoidGrad(dr[2*j+q], yr[2*j+q])
					}
				default:
					for j := range d {
						d[j] = dr[2*j+q]
					}
				}
			}
		}
	}
}

// Im2ColSameGo writes rows [r0, r1) of the im2col columns of one sample x
// [c, h, w] for a stride-1 convolution with a k×k kernel and padding pad
// whose output is the size of its input (h + 2·pad = h + k − 1), into dst
// [r1−r0, h·w]:
//
//	dst[r−r0, oy·w+ox] = x[ch, oy+i−pad, ox+j−pad], 0 outside x,
//
// where r = (ch·k+i)·k+j.
func Im2ColSameGo[T float](dst, x []T, c, h, w, k, pad, r0, r1 int) {
	hw := h * w
	_ = x[c*hw-1]
	for r := r0; r < r1; r++ {
		ch, i, j := r/(k*k), r/k%k, r%k
		d := dst[(r-r0)*hw : (r-r0+1)*hw]
		for oy := range h {
			iy := oy + i - pad
			for ox := range w {
				ix := ox + j - pad
				var v T
				if iy >= 0 && iy < h && ix >= 0 && ix < w {
					v = x[ch*hw+iy*w+ix]
				}
				d[oy*w+ox] = v
			}
		}
	}
}

// Conv3x3PoolGradTotal adds up the per-sample sums that Conv3x3PoolGrad
// wrote into part [n, 10, cout]: dw [cout, 1, 3, 3] becomes the first
// sample's sums plus each other's in order, as OpenBLAS's product adds
// them up (beta 0, then 1), and db [cout] the samples' sums added in order
// from zero, as the bias gradient does.
func Conv3x3PoolGradTotal(dw, db, part []float32, n, cout int) {
	dw, db = dw[:9*cout], db[:cout]
	clear(db)
	for s := range n {
		ps := part[s*10*cout : (s+1)*10*cout]
		for c := range cout {
			for t := range 9 {
				if s == 0 {
					dw[c*9+t] = ps[t*cout+c]
				} else {
					dw[c*9+t] += ps[t*cout+c]
				}
			}
			db[c] += ps[9*cout+c]
		}
	}
}
