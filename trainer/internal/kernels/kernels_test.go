package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"
)

// TestAdamKernelsAgree checks that the update Adam runs (in C, vectorised,
// where the build has cgo on amd64) gives the same bits as the Go loop AdamGo, for
// lengths around the vector widths and values from zero to large.
func TestAdamKernelsAgree(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	value := func() float32 {
		switch rng.IntN(9) {
		case 0:
			return 0
		case 1:
			return float32(rng.NormFloat64() * 1e-6)
		case 2:
			return float32(rng.NormFloat64() * 100)
		case 3: // around the smallest normal float32, where the flush acts
			return float32(rng.NormFloat64() * 2 * MinNormal32)
		case 4: // a gradient whose square underflows
			return float32(rng.NormFloat64() * 1e-21)
		case 5:
			return float32(math.NaN())
		default:
			return float32(rng.NormFloat64())
		}
	}
	for _, n := range []int{1, 7, 8, 9, 15, 16, 17, 31, 33, 100, 1000 + 13} {
		for step := 1; step <= 4; step++ {
			wd := float32(0)
			if step == 4 {
				wd = 1e-3 * 0.01 // AdamW: lr·λ
			}
			p, g, m, v := make([]float32, n), make([]float32, n), make([]float32, n), make([]float32, n)
			for i := range p {
				p[i], g[i], m[i] = value(), value(), value()
				v[i] = float32(math.Abs(float64(value())))
			}
			p2, m2, v2 := slices.Clone(p), slices.Clone(m), slices.Clone(v)
			bc1, bc2 := 1-math.Pow(0.9, float64(step)), 1-math.Pow(0.999, float64(step))
			stepSize, inv := float32(1e-3/bc1), float32(1/math.Sqrt(bc2))
			Adam(p, g, m, v, AdamStep{stepSize, inv, 0.9, 0.999, 1e-8, wd})
			AdamGo(p2, g, m2, v2, AdamStep{stepSize, inv, 0.9, 0.999, 1e-8, wd})
			for i := range p {
				if math.IsNaN(float64(p[i])) && math.IsNaN(float64(p2[i])) {
					continue // NaN payloads may differ between C and Go
				}
				if math.Float32bits(p[i]) != math.Float32bits(p2[i]) ||
					math.Float32bits(m[i]) != math.Float32bits(m2[i]) ||
					math.Float32bits(v[i]) != math.Float32bits(v2[i]) {
					t.Fatalf("n=%d step %d value %d: kernel p,m,v = %v,%v,%v; Go loop %v,%v,%v",
						n, step, i, p[i], m[i], v[i], p2[i], m2[i], v2[i])
				}
			}
		}
	}
}

// TestAdamFlushesSubnormalMoments checks that a moment decaying under a zero
// gradient goes from normal straight to zero, never through the subnormal
// numbers that slow the CPU down, in every kernel, and that the weight it
// moves still follows the formula.
func TestAdamFlushesSubnormalMoments(t *testing.T) {
	kernels := []struct {
		name string
		f    func(p, g, m, v []float32, s AdamStep)
	}{{"AdamGo", AdamGo}, {"Adam", Adam}}
	for _, k := range kernels {
		t.Run(k.name, func(t *testing.T) {
			const n = 37 // vector lanes and a scalar tail
			p, g, m, v := make([]float32, n), make([]float32, n), make([]float32, n), make([]float32, n)
			for i := range p {
				p[i], m[i], v[i] = 1, float32(i+1)*1e-3, 1e-6
			}
			steps := 0
			for ; m[0] != 0 || m[n-1] != 0; steps++ {
				if steps > 2000 {
					t.Fatalf("m still %v after %d steps of zero gradient", m[n-1], steps)
				}
				k.f(p, g, m, v, AdamStep{1e-3, 1, 0.9, 0.999, 1e-8, 0})
				for i, x := range m {
					if x != 0 && math.Abs(float64(x)) < MinNormal32 {
						t.Fatalf("step %d: m[%d] = %g is subnormal", steps+1, i, x)
					}
				}
			}
			// 0.9ᵏ·1e-3 reaches 2⁻¹²⁶ after about 765 steps.
			if steps < 700 || steps > 850 {
				t.Errorf("m reached zero after %d steps, want about 765", steps)
			}
			if p[0] >= 1 || p[0] < 0.9 {
				t.Errorf("p = %v after the decay, want a little under 1", p[0])
			}
		})
	}
}

// TestSigmoid32 checks the float32 sigmoid against float64's math.Exp,
// rounded: at most one unit in the last place apart, and equal for nearly
// all inputs, over the whole range and at the edges.
func TestSigmoid32(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	xs := []float32{0, float32(math.Copysign(0, -1)), 1e-30, -1e-30, 87, -87, 88.7, -88.7, 103, -103, 104, -104,
		109.9, -109.9, 110, -110, 111, -111, float32(math.MaxFloat32), -float32(math.MaxFloat32),
		float32(math.Inf(1)), float32(math.Inf(-1))}
	for range 1_000_000 {
		xs = append(xs, float32((rng.Float64()*2-1)*120))
	}
	for range 100_000 {
		xs = append(xs, float32(rng.NormFloat64()))
	}
	off := 0
	for _, x := range xs {
		got := Sigmoid32(x)
		want := float32(1 / (1 + math.Exp(-float64(x))))
		d := int64(math.Float32bits(got)) - int64(math.Float32bits(want))
		if d < -1 || d > 1 {
			t.Fatalf("Sigmoid32(%v) = %v, want %v (%d units apart)", x, got, want, d)
		}
		if d != 0 {
			off++
		}
	}
	if off > len(xs)/1000 {
		t.Errorf("%d of %d values one unit off, want at most 0.1%%", off, len(xs))
	}
	if got := Sigmoid32(float32(math.NaN())); !math.IsNaN(float64(got)) {
		t.Errorf("Sigmoid32(NaN) = %v, want NaN", got)
	}
}

// TestSigmoidKernelAgrees checks that biasSigmoid32, the slice form that
// the ops call (vectorised in C where the build has it), gives the bits of
// Sigmoid32(x + b) for every value: special ones, every float32 bit pattern
// at a stride (all signs, exponents and mantissa patterns), with and
// without a bias, at every offset from a vector's start.
func TestSigmoidKernelAgrees(t *testing.T) {
	xs := []float32{0, float32(math.Copysign(0, -1)), 1e-45, -1e-45, 1e-40, -1e-40, 0x1p-126, -0x1p-126,
		87, -87, 110, -110, 109.99999, -109.99999, 110.00001, -110.00001,
		float32(math.MaxFloat32), -float32(math.MaxFloat32), float32(math.Inf(1)), float32(math.Inf(-1)),
		float32(math.NaN()), math.Float32frombits(0x7f800001), math.Float32frombits(0xffc00123)}
	for bits := uint64(0); bits < 1<<32; bits += 4093 {
		xs = append(xs, math.Float32frombits(uint32(bits)))
	}
	for _, width := range sigmoidWidths() {
		for _, b := range []float32{0, 0.25, -3} {
			for _, offset := range []int{0, 3} {
				got := slices.Clone(xs[offset:])
				biasSigmoidWidth(width, got, b)
				for i, x := range xs[offset:] {
					want := Sigmoid32(x + b)
					if math.Float32bits(got[i]) != math.Float32bits(want) {
						t.Fatalf("width %d, b=%v: sigmoid of %v (bits %#x) = %v, sigmoid32 gives %v", width, b, x, math.Float32bits(x), got[i], want)
					}
				}
			}
		}
	}
}

// TestElementwiseKernels checks the element-wise loops after a Linear
// layer's products (in C where the build has them) against the Go loops, bit
// for bit, on lengths around the vector width and on special values.
func TestElementwiseKernels(t *testing.T) { eachElemWidth(t, testElementwiseKernels) }

func testElementwiseKernels(t *testing.T) {
	specials := []float32{0, float32(math.Copysign(0, -1)), 1e-45, -1e-45, 0x1p-126, -3, 2.5,
		float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN())}
	rng := rand.New(rand.NewPCG(5, 6))
	value := func() float32 {
		if rng.IntN(3) == 0 {
			return specials[rng.IntN(len(specials))]
		}
		return float32(rng.NormFloat64())
	}
	same := func(a, b []float32) bool { // NaN payloads may differ between C and Go
		for i := range a {
			if math.IsNaN(float64(a[i])) && math.IsNaN(float64(b[i])) {
				continue
			}
			if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
				return false
			}
		}
		return len(a) == len(b)
	}
	for n := 0; n <= 40; n++ {
		v, b, y := make([]float32, n), make([]float32, n), make([]float32, n)
		for i := range v {
			v[i], b[i], y[i] = value(), value(), value()
		}
		got, want := slices.Clone(v), slices.Clone(v)
		BiasReLU(got, b)
		BiasReLUGo(want, b)
		if !same(got, want) {
			t.Fatalf("n=%d: BiasReLU %v, Go loop %v (v %v, b %v)", n, got, want, v, b)
		}
		got, want = make([]float32, n), make([]float32, n)
		for _, k := range []float32{2.0 / 50176, -1e-3, 3} {
			okGot, okWant := MSESigmoidGrad(got, y, v, k), MSESigmoidGradGo(want, y, v, k)
			if !same(got, want) || okGot != okWant {
				t.Fatalf("n=%d k=%v: MSESigmoidGrad %v (finite %v), Go loop %v (%v) (y %v, x %v)", n, k, got, okGot, want, okWant, y, v)
			}
			// The sigmoid's outputs, the images and the loss's gradient of
			// a trained model: y in [0, 1], saturated ones among them, and
			// products near SigmoidGradFloor.
			sy, sx := make([]float32, n), make([]float32, n)
			for i := range sy {
				sy[i] = []float32{0, 1, 1 - 0x1p-24, 0x1p-90, 0x1p-60, rng.Float32()}[rng.IntN(6)]
				sx[i] = []float32{0, 1, rng.Float32()}[rng.IntN(3)]
			}
			okGot, okWant = MSESigmoidGrad(got, sy, sx, k), MSESigmoidGradGo(want, sy, sx, k)
			if !same(got, want) || okGot != okWant || !okWant {
				t.Fatalf("n=%d k=%v: MSESigmoidGrad %v (finite %v), Go loop %v (%v) (y %v, x %v)", n, k, got, okGot, want, okWant, sy, sx)
			}
		}
		ReLUGrad(got, y, v)
		ReLUGradGo(want, y, v)
		if !same(got, want) {
			t.Fatalf("n=%d: ReLUGrad %v, Go loop %v", n, got, want)
		}
		const rows, ld = 5, 43
		m := make([]float32, rows*ld)
		for i := range m {
			m[i] = value()
		}
		got, want = slices.Clone(b), slices.Clone(b)
		AddRows(got, m, rows, ld)
		AddRowsGo(want, m, rows, ld)
		if !same(got, want) {
			t.Fatalf("n=%d: AddRows %v, Go loop %v", n, got, want)
		}
	}
}

// TestLinearWeightStep checks the fused weight-gradient and Adam kernel against its scalar reference in C (the same sums in
// the same order), to the bit, on shapes with row and column remainders, a
// range of rows and batches of up to 1000; and its gradients against gonum's gemm's
// within the error bound of a float32 sum, as the BLAS may sum in another
// order (OpenBLAS's Haswell and SkylakeX kernels do).
func TestLinearWeightStep(t *testing.T) {
	if !Vector {
		t.Skip("no fused kernel: pure-Go build, or a CPU without AVX-512")
	}
	tests := []struct{ n, in, out, r0, r1 int }{
		{64, 784, 512, 0, 784},
		{64, 784, 512, 101, 390},
		{64, 13, 10, 0, 13},
		{3, 7, 70, 2, 7},
		{1, 5, 16, 0, 5},
		{64, 128, 1568, 0, 128},
		{130, 9, 65, 0, 9},
		{384, 20, 100, 0, 20},
		{1000, 20, 100, 0, 20},
	}
	for _, tc := range tests {
		x, dz := make([]float32, tc.n*tc.in), make([]float32, tc.n*tc.out)
		for i := range x {
			x[i] = float32(math.Sin(float64(i)))
		}
		for i := range dz {
			dz[i] = float32(math.Cos(float64(i)*0.7)) * 1e-2
		}
		size := tc.in * tc.out
		p, m, v := make([]float32, size), make([]float32, size), make([]float32, size)
		for i := range p {
			p[i], m[i], v[i] = float32(i%11)*0.01, float32(i%5-2)*1e-3, float32(i%3+1)*1e-6
		}
		pr, mr, vr := slices.Clone(p), slices.Clone(m), slices.Clone(v)
		pb, mb, vb := slices.Clone(p), slices.Clone(m), slices.Clone(v) // before the step
		s := AdamStep{StepSize: 1e-3 / 0.1, InvBC2Sqrt: 31.6, B1: 0.9, B2: 0.999, Eps: 1e-8, WeightDecay: 1e-5}
		if !LinearWeightStep(x, dz, tc.n, tc.in, tc.out, tc.r0, tc.r1, p, m, v, s) {
			t.Fatalf("%+v: no fused step on a CPU with AVX-512", tc)
		}
		LinearWeightStepRef(x, dz, tc.n, tc.in, tc.out, tc.r0, tc.r1, pr, mr, vr, s)
		for i := range p {
			if math.Float32bits(p[i]) != math.Float32bits(pr[i]) || math.Float32bits(m[i]) != math.Float32bits(mr[i]) ||
				math.Float32bits(v[i]) != math.Float32bits(vr[i]) {
				t.Fatalf("%+v: value %d (row %d): fused p,m,v = %v,%v,%v; scalar reference %v,%v,%v",
					tc, i, i/tc.out, p[i], m[i], v[i], pr[i], mr[i], vr[i])
			}
		}
		// With β1 = 0, m holds the gradient itself: compare it with gemm's
		// within the error bound of a float32 sum of n products, for any
		// order of summation, twice over (each side's error).
		s0 := s
		s0.B1 = 0
		pg, mg, vg := slices.Clone(pb), slices.Clone(mb), slices.Clone(vb)
		if !LinearWeightStep(x, dz, tc.n, tc.in, tc.out, tc.r0, tc.r1, pg, mg, vg, s0) {
			t.Fatal("no fused step")
		}
		rows := tc.r1 - tc.r0
		g := make([]float32, rows*tc.out)
		gonum.Implementation{}.Sgemm(blas.Trans, blas.NoTrans, rows, tc.out, tc.n, 1, x[tc.r0:], tc.in, dz, tc.out, 0, g, tc.out)
		gamma := float64(tc.n) * 0x1p-24 / (1 - float64(tc.n)*0x1p-24)
		for r := range rows {
			for j := range tc.out {
				abs := 0.0 // Σ|x·dz| over the batch
				for b := range tc.n {
					abs += math.Abs(float64(x[b*tc.in+tc.r0+r]) * float64(dz[b*tc.out+j]))
				}
				got, want := mg[(tc.r0+r)*tc.out+j], g[r*tc.out+j]
				if d := math.Abs(float64(got) - float64(want)); d > 2*gamma*abs+MinNormal32 {
					t.Fatalf("%+v: dW[%d][%d] = %v, gemm %v: %.3g apart, more than the bound %.3g",
						tc, tc.r0+r, j, got, want, d, 2*gamma*abs)
				}
			}
		}
	}
}

// TestMaxPool2x2 compares MaxPool2x2 with MaxPool2x2Go bit for bit, outputs
// and recorded positions, on planes of odd and even sizes (every tail of a
// 16-wide vector), with ties, zeros of both signs and negative values; and
// checks that a NaN in a window gives NaN.
func TestMaxPool2x2(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	values := []float32{0, float32(math.Copysign(0, -1)), 1, -1, 0.5, 2, -3}
	for _, shape := range [][2]int{{2, 2}, {4, 6}, {6, 34}, {28, 28}, {14, 14}, {3, 65}, {10, 30}} {
		h, w := shape[0], shape[1]
		oh, ow := h/2, w/2
		const planes = 3
		x := make([]float32, planes*h*w)
		for i := range x {
			if rng.IntN(3) == 0 {
				x[i] = values[rng.IntN(len(values))]
			} else {
				x[i] = float32(rng.NormFloat64())
			}
		}
		for _, withWhere := range []bool{false, true} {
			got, want := make([]float32, planes*oh*ow), make([]float32, planes*oh*ow)
			var gw, ww []uint8
			if withWhere {
				gw, ww = make([]uint8, len(got)), make([]uint8, len(got))
			}
			MaxPool2x2(x, planes, w, h*w, oh, ow, got, gw)
			MaxPool2x2Go(x, planes, w, h*w, oh, ow, want, ww)
			for i := range got {
				if math.Float32bits(got[i]) != math.Float32bits(want[i]) || (withWhere && gw[i] != ww[i]) {
					t.Fatalf("%dx%d, where %v: output %d is %v (%v), want %v (%v)", h, w, withWhere, i, got[i], gw, want[i], ww)
				}
			}
		}
		x[w+1] = float32(math.NaN())
		y, where := make([]float32, planes*oh*ow), make([]uint8, planes*oh*ow)
		MaxPool2x2(x, planes, w, h*w, oh, ow, y, where)
		if !math.IsNaN(float64(y[0])) || where[0]&4 == 0 {
			t.Errorf("%dx%d: a NaN in the first window gives %v (where %d)", h, w, y[0], where[0])
		}
	}
}

// TestConvKernels compares Col2Im1 and BiasReLUScalar with their Go
// references, bit for bit, on shapes with every tail of a 16-wide vector,
// paddings of 0 to 2, and values with zeros of both signs and NaN.
func TestConvKernels(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 4))
	fill := func(v []float32) {
		for i := range v {
			switch rng.IntN(8) {
			case 0:
				v[i] = float32(math.Copysign(0, -1))
			case 1:
				v[i] = 0
			default:
				v[i] = float32(rng.NormFloat64())
			}
		}
	}
	for _, g := range [][5]int{{1, 3, 28, 28, 1}, {16, 3, 14, 14, 1}, {2, 3, 5, 33, 0}, {3, 5, 7, 17, 2}, {4, 1, 3, 3, 0}, {2, 3, 2, 2, 1}, {1, 2, 6, 20, 2}, {1, 3, 1, 1, 1}, {2, 3, 17, 16, 1}, {1, 4, 9, 40, 3}} {
		c, k, h, w, pad := g[0], g[1], g[2], g[3], g[4]
		oh, ow := h+2*pad-k+1, w+2*pad-k+1
		cols := make([]float32, c*k*k*oh*ow)
		fill(cols)
		got, want := make([]float32, c*h*w), make([]float32, c*h*w)
		fill(got) // Col2Im1 overwrites it all
		Col2Im1(got, cols, c, k, h, w, oh, ow, pad)
		Col2Im1Go(want, cols, c, k, h, w, oh, ow, pad)
		for i := range got {
			if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
				t.Fatalf("col2im %v: value %d is %v, want %v", g, i, got[i], want[i])
			}
		}
	}
	for n := range 40 {
		v := make([]float32, n)
		fill(v)
		if n > 3 {
			v[3] = float32(math.NaN())
		}
		w := slices.Clone(v)
		BiasReLUScalar(v, 0.25)
		BiasReLUScalarGo(w, 0.25)
		for i := range v {
			if math.Float32bits(v[i]) != math.Float32bits(w[i]) {
				t.Fatalf("bias+ReLU of %d: value %d is %v, want %v", n, i, v[i], w[i])
			}
		}
	}
}

// TestMaxPool2x2Grad compares MaxPool2x2Grad with MaxPool2x2GradGo bit for
// bit, with and without the ReLU's gradient, on planes of odd and even
// sizes, with the positions that MaxPool2x2Go records.
func TestMaxPool2x2Grad(t *testing.T) { eachElemWidth(t, testMaxPool2x2Grad) }

func testMaxPool2x2Grad(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	for _, shape := range [][2]int{{2, 2}, {4, 6}, {6, 34}, {28, 28}, {14, 14}, {3, 65}, {7, 29}} {
		h, w := shape[0], shape[1]
		oh, ow := h/2, w/2
		const planes = 3
		x, dy := make([]float32, planes*h*w), make([]float32, planes*oh*ow)
		for i := range x {
			x[i] = float32(rng.NormFloat64())
		}
		for i := range dy {
			dy[i] = float32(rng.NormFloat64())
		}
		where := make([]uint8, planes*oh*ow)
		MaxPool2x2Go(x, planes, w, h*w, oh, ow, make([]float32, planes*oh*ow), where)
		for _, relu := range []bool{false, true} {
			got, want := make([]float32, planes*h*w), make([]float32, planes*h*w)
			for i := range got {
				got[i] = 9 // every value must be written
			}
			MaxPool2x2Grad(got, planes, w, h*w, oh, ow, dy, where, relu)
			MaxPool2x2GradGo(want, planes, w, h*w, oh, ow, dy, where, relu)
			for i := range got {
				if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
					t.Fatalf("%dx%d relu %v: value %d is %v, want %v", h, w, relu, i, got[i], want[i])
				}
			}
		}
	}
}

// TestChannelSums compares ChannelSums with ChannelSumsGo bit for bit, for
// channel counts around its 8 at a time and lengths around its 4 lanes.
func TestChannelSums(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	for _, channels := range []int{1, 3, 7, 8, 9, 16, 17, 32} {
		for _, inner := range []int{1, 2, 3, 4, 5, 7, 49, 196, 784} {
			block := make([]float32, channels*inner)
			for i := range block {
				block[i] = float32(rng.NormFloat64() * math.Exp(4*rng.NormFloat64()))
			}
			if len(block) > 5 {
				block[5] = float32(math.Copysign(0, -1))
			}
			got, want := make([]float32, channels), make([]float32, channels)
			for i := range got {
				got[i] = float32(i) - 2.5
				want[i] = got[i]
			}
			ChannelSums(got, block, inner)
			ChannelSumsGo(want, block, inner)
			for i := range got {
				if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
					t.Fatalf("%d channels of %d: channel %d sums to %v, want %v", channels, inner, i, got[i], want[i])
				}
			}
		}
	}
}

// TestTranspose compares Transpose with TransposeGo bit for bit (NaNs and
// -0 included), and TransposeGo with the definition, for shapes around
// the 8×8 blocks and the trainer's convolution sizes.
func TestTranspose(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 2))
	for _, shape := range [][2]int{{1, 1}, {1, 9}, {9, 1}, {7, 9}, {8, 8}, {16, 24}, {13, 17}, {32, 196}, {144, 32}, {144, 196}} {
		rows, cols := shape[0], shape[1]
		src := make([]float32, rows*cols)
		for i := range src {
			src[i] = float32(rng.NormFloat64())
		}
		src[0] = float32(math.NaN())
		src[len(src)-1] = float32(math.Copysign(0, -1))
		got, want := make([]float32, len(src)), make([]float32, len(src))
		Transpose(got, src, rows, cols)
		TransposeGo(want, src, rows, cols)
		for r := range rows {
			for c := range cols {
				v := src[r*cols+c]
				if g, w := math.Float32bits(got[c*rows+r]), math.Float32bits(want[c*rows+r]); g != w || w != math.Float32bits(v) {
					t.Fatalf("%dx%d: [%d,%d] is %v (Go %v), want %v", rows, cols, c, r, got[c*rows+r], want[c*rows+r], v)
				}
			}
		}
	}
}

// TestInterleave2 compares Interleave2 and Deinterleave2 with their Go
// references bit for bit (NaNs, ±0 and each activation's gradient
// included), and the references with their definitions, for the conv
// model's two ConvTranspose2d layers and odd sizes.
func TestInterleave2(t *testing.T) { eachElemWidth(t, testInterleave2) }

func testInterleave2(t *testing.T) {
	rng := rand.New(rand.NewPCG(2, 7))
	for _, hw := range [][2]int{{7, 7}, {14, 14}, {1, 1}, {3, 5}, {2, 20}, {3, 33}} {
		h, w := hw[0], hw[1]
		n := 4 * h * w
		src, y, dy := make([]float32, n), make([]float32, n), make([]float32, n)
		for i := range src {
			src[i] = float32(rng.NormFloat64())
			y[i] = float32(rng.NormFloat64())
			dy[i] = float32(rng.NormFloat64())
		}
		src[0], y[0] = float32(math.NaN()), float32(math.NaN())
		y[1], dy[1] = 0.5, 0x1p-98 // a sigmoid gradient of exactly SigmoidGradFloor
		y[n-1], dy[n/2], dy[h*w] = float32(math.Copysign(0, -1)), float32(math.Copysign(0, -1)), float32(math.Copysign(0, -1))
		if n > 8 {
			// A saturated sigmoid: gradients under SigmoidGradFloor, subnormal
			// and normal, each flushed to +0.
			y[3], dy[3] = 1e-20, -1e-25
			y[5], dy[5] = 1e-16, 1e-16
		}
		got, want := make([]float32, n), make([]float32, n)
		Interleave2(got, src, 1, h, w, []float32{0.25}, false)
		Interleave2Go(want, src, h, w, 0.25)
		for p := range 2 {
			for q := range 2 {
				for i := range h {
					for j := range w {
						at := (2*i+p)*2*w + 2*j + q
						v := src[(p*2+q)*h*w+i*w+j] + 0.25
						if math.Float32bits(got[at]) != math.Float32bits(want[at]) || math.Float32bits(want[at]) != math.Float32bits(v) {
							t.Fatalf("%dx%d: Interleave2 puts %v (Go %v) at %d, want %v", h, w, got[at], want[at], at, v)
						}
					}
				}
			}
		}
		// Three planes at once, each with its bias, with and without the
		// ReLU after.
		for _, relu := range []bool{false, true} {
			bias := []float32{0.25, -0.5, float32(math.Copysign(0, -1))}
			src3 := slices.Concat(src, y, dy)
			got3, want3 := make([]float32, 3*n), make([]float32, 3*n)
			Interleave2(got3, src3, 3, h, w, bias, relu)
			for p := range 3 {
				Interleave2Go(want3[p*n:], src3[p*n:], h, w, bias[p])
				if relu {
					BiasReLUScalarGo(want3[p*n:(p+1)*n], 0)
				}
			}
			for i := range got3 {
				if math.Float32bits(got3[i]) != math.Float32bits(want3[i]) {
					t.Fatalf("%dx%d, relu %v: Interleave2 of 3 planes gives %v at %d, want %v", h, w, relu, got3[i], i, want3[i])
				}
			}
		}
		for _, act := range []Act{ActNone, ActReLU, ActSigmoid} {
			Deinterleave2(got, y, dy, 1, h, w, act)
			Deinterleave2Go(want, y, dy, h, w, act)
			for p := range 2 {
				for q := range 2 {
					for i := range h {
						for j := range w {
							at, k := (2*i+p)*2*w+2*j+q, (p*2+q)*h*w+i*w+j
							v := dy[at]
							switch {
							case act == ActReLU && y[at] <= 0:
								v = 0
							case act == ActSigmoid:
								v = dy[at] * y[at] * (1 - y[at])
								if v != 0 && math.Abs(float64(v)) < 0x1p-100 {
									v = 0
								}
							}
							if math.Float32bits(got[k]) != math.Float32bits(want[k]) || math.Float32bits(want[k]) != math.Float32bits(v) {
								t.Fatalf("%dx%d, act %d: Deinterleave2 gives %v (Go %v) at %d, want %v", h, w, act, got[k], want[k], k, v)
							}
						}
					}
				}
			}
		}
	}
}

// TestIm2ColSame compares Im2ColSame with Im2ColSameGo bit for bit, for
// the conv model's two layers, other kernels and paddings, and row ranges
// that start and end inside a channel; and Im2ColSameGo with a direct
// reading of its definition.
func TestIm2ColSame(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 1))
	for _, g := range []struct{ c, h, w, k, pad int }{
		{16, 14, 14, 3, 1}, {1, 28, 28, 3, 1}, {2, 5, 7, 5, 2}, {3, 4, 4, 1, 0}, {2, 17, 33, 3, 1},
	} {
		x := make([]float32, g.c*g.h*g.w)
		for i := range x {
			x[i] = float32(rng.NormFloat64())
		}
		x[0] = float32(math.NaN())
		K, hw := g.c*g.k*g.k, g.h*g.w
		for _, rows := range [][2]int{{0, K}, {K / 3, K - 1}, {1, 2}} {
			r0, r1 := rows[0], rows[1]
			got, want := make([]float32, (r1-r0)*hw), make([]float32, (r1-r0)*hw)
			for i := range got {
				got[i] = 7
			}
			if !Im2ColSame(got, x, g.c, g.h, g.w, g.k, g.pad, r0, r1) {
				t.Logf("%+v: no kernel on this CPU or in this build: the caller's loop runs", g)
				Im2ColSameGo(got, x, g.c, g.h, g.w, g.k, g.pad, r0, r1)
			}
			Im2ColSameGo(want, x, g.c, g.h, g.w, g.k, g.pad, r0, r1)
			for r := r0; r < r1; r++ {
				ch, i, j := r/(g.k*g.k), r/g.k%g.k, r%g.k
				for oy := range g.h {
					for ox := range g.w {
						var v float32
						if iy, ix := oy+i-g.pad, ox+j-g.pad; iy >= 0 && iy < g.h && ix >= 0 && ix < g.w {
							v = x[ch*hw+iy*g.w+ix]
						}
						at := (r-r0)*hw + oy*g.w + ox
						if math.Float32bits(got[at]) != math.Float32bits(want[at]) || math.Float32bits(want[at]) != math.Float32bits(v) {
							t.Fatalf("%+v rows [%d,%d): row %d at (%d,%d) is %v (Go %v), want %v", g, r0, r1, r, oy, ox, got[at], want[at], v)
						}
					}
				}
			}
		}
	}
}

// TestSigmoidGrad checks the flush of the sigmoid's gradient under
// SigmoidGradFloor, in both element types.
func TestSigmoidGrad(t *testing.T) {
	negZero, nan := math.Copysign(0, -1), math.NaN()
	for _, tc := range []struct{ dy, y, want32, want64 float64 }{
		{0.5, 0.5, 0.125, 0.125},
		{-1e-25, 1e-20, 0, 0},                                // −1e-45: subnormal in float32; +0
		{1e-16, 1e-16, 0, 0},                                 // 1e-32: normal, but under the floor
		{0x1p-50, 0x1p-49, 0x1p-99, 0x1p-99 * (1 - 0x1p-49)}, // just over the floor: kept
		{negZero, 0.5, negZero, negZero},                     // ±0 stays as it is
		{nan, 0.5, nan, nan},                                 // NaN passes
	} {
		for _, c := range []struct {
			name      string
			got, want float64
		}{
			{"float32", float64(SigmoidGrad(float32(tc.dy), float32(tc.y))), tc.want32},
			{"float64", SigmoidGrad(tc.dy, tc.y), tc.want64},
		} {
			same := c.got == c.want && math.Signbit(c.got) == math.Signbit(c.want) || math.IsNaN(c.got) && math.IsNaN(c.want)
			if !same {
				t.Errorf("%s SigmoidGrad(%g, %g) = %g, want %g", c.name, tc.dy, tc.y, c.got, c.want)
			}
		}
	}
}

// eachElemWidth runs f as a subtest for each form of the element-wise
// kernels that this CPU runs (AVX-512, AVX2, the Go or scalar C loops),
// elemWidth set to it.
func eachElemWidth(t *testing.T, f func(t *testing.T)) {
	defer func(w int) { elemWidth = w }(elemWidth)
	for _, w := range elemWidths() {
		elemWidth = w
		t.Run(fmt.Sprintf("width=%d", w), f)
	}
}
