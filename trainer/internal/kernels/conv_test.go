//go:build cgo && amd64

package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// conv3x3Exact is the definition of Conv3x3 in float64: each value of y
// and the sum of its terms' magnitudes.
func conv3x3Exact(x, w []float32, cin, cout, h, wd int) (y, mag []float64) {
	y, mag = make([]float64, cout*h*wd), make([]float64, cout*h*wd)
	for co := range cout {
		for r := range h {
			for c := range wd {
				for ci := range cin {
					for ky := range 3 {
						for kx := range 3 {
							iy, ix := r+ky-1, c+kx-1
							if iy < 0 || iy >= h || ix < 0 || ix >= wd {
								continue
							}
							t := float64(w[((co*cin+ci)*3+ky)*3+kx]) * float64(x[(ci*h+iy)*wd+ix])
							y[(co*h+r)*wd+c] += t
							mag[(co*h+r)*wd+c] += math.Abs(t)
						}
					}
				}
			}
		}
	}
	return y, mag
}

// TestConv3x3 checks the convolution, in each form the CPU runs (AVX-512,
// AVX2), against its scalar reference,
// bit for bit, on shapes that exercise every edge (one row, an odd number
// of rows, rows of 1 to 14 values, one and many input channels), and the
// reference against the float64 definition, within the rounding bound of a
// float32 sum of n terms in any order, (n−1)·2⁻²⁴·Σ|terms|.
func TestConv3x3(t *testing.T) {
	if !DirectConv {
		t.Skip("no AVX-512 or AVX2 and FMA on this CPU: the trainer convolves with im2col and a product")
	}
	for _, width := range widths() {
		t.Run(fmt.Sprintf("width=%d", width), func(t *testing.T) { testConv3x3(t, width) })
	}
}

func testConv3x3(t *testing.T, width int) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, s := range []struct{ cin, cout, h, wd int }{
		{16, 32, 14, 14}, {32, 16, 14, 14}, {1, 8, 5, 7}, {3, 16, 13, 13}, {2, 8, 1, 1}, {5, 24, 9, 14}, {4, 8, 14, 3}, {1, 8, 2, 14},
		// Rows of 15 to 30 values: two registers a row, blocks of 4 channels.
		{1, 16, 28, 28}, {2, 4, 7, 15}, {3, 12, 5, 30}, {1, 4, 1, 16}, {4, 8, 9, 22},
	} {
		const n = 3 // samples, each with its own values
		x := make([]float32, n*s.cin*s.h*s.wd)
		w := make([]float32, s.cout*s.cin*9)
		for i := range x {
			if rng.IntN(4) > 0 { // a quarter are zeros, as after a ReLU
				x[i] = float32(rng.NormFloat64())
			}
		}
		for i := range w {
			w[i] = float32(rng.NormFloat64() * 0.1)
		}
		size, in := s.cout*s.h*s.wd, s.cin*s.h*s.wd
		got, want := make([]float32, n*size), make([]float32, size)
		for i := range got {
			got[i] = float32(math.NaN()) // every value must be written
		}
		if !conv3x3Width(width, got, x, w, n, s.cin, s.cout, s.h, s.wd) {
			t.Fatalf("%+v: Conv3x3 refused", s)
		}
		for smp := range n {
			xs := x[smp*in : (smp+1)*in]
			Conv3x3Ref(want, xs, w, s.cin, s.cout, s.h, s.wd)
			exact, mag := conv3x3Exact(xs, w, s.cin, s.cout, s.h, s.wd)
			terms := float64(s.cin * 9)
			for i, g := range got[smp*size : (smp+1)*size] {
				if math.Float32bits(g) != math.Float32bits(want[i]) {
					t.Fatalf("%+v: sample %d: y[%d] = %v, reference %v", s, smp, i, g, want[i])
				}
				if d := math.Abs(float64(want[i]) - exact[i]); d > (terms-1)*0x1p-24*mag[i] {
					t.Fatalf("%+v: y[%d] = %v, exact %v: off by %g, over the bound %g", s, i, want[i], exact[i], d, (terms-1)*0x1p-24*mag[i])
				}
			}
		}
	}
}

// TestConv3x3Special checks that an infinite weight gives NaN at the border
// (its product with the padding's zeros), as im2col's columns do, and
// that the kernel refuses what it does not handle.
func TestConv3x3Special(t *testing.T) {
	if !DirectConv {
		t.Skip("no AVX-512 or AVX2 and FMA on this CPU")
	}
	for _, width := range widths() {
		t.Run(fmt.Sprintf("width=%d", width), func(t *testing.T) { testConv3x3Special(t, width) })
	}
}

func testConv3x3Special(t *testing.T, width int) {
	x := make([]float32, 3*3)
	for i := range x {
		x[i] = 1
	}
	w := make([]float32, 8*9)
	w[0] = float32(math.Inf(1)) // channel 0, ky = kx = 0: the top-left neighbour
	got, want := make([]float32, 8*9), make([]float32, 8*9)
	conv3x3Width(width, got, x, w, 1, 1, 8, 3, 3)
	Conv3x3Ref(want, x, w, 1, 8, 3, 3)
	for i := range 9 {
		border := i < 3 || i%3 == 0
		if g := got[i]; border != math.IsNaN(float64(g)) || math.IsNaN(float64(want[i])) != border {
			t.Errorf("y[0, %d] = %v (reference %v), want NaN: %v", i, g, want[i], border)
		}
	}
	for _, s := range []struct{ cin, cout, h, wd int }{{1, 8, 3, 31}, {1, 6, 3, 20}, {1, 12, 3, 3}, {1, 0, 3, 3}, {64, 8, 14, 14}, {32, 4, 14, 28}, {64, 32, 1, 1}} {
		if conv3x3Width(width, make([]float32, max(1, s.cout)*s.h*s.wd), make([]float32, s.cin*s.h*s.wd), make([]float32, max(1, s.cout)*s.cin*9), 1, s.cin, s.cout, s.h, s.wd) {
			t.Errorf("%+v: Conv3x3 accepted it", s)
		}
	}
}

// TestConv3x3ReLUPool checks the fused convolution, bias, ReLU and 2×2
// pooling against Conv3x3, BiasReLUScalar and MaxPool2x2 run one after the
// other, bit for bit in y, the pooled values and the codes of where, with
// ties (the ReLU's zeros, repeated values) and NaNs in the input.
func TestConv3x3ReLUPool(t *testing.T) {
	if !DirectConv {
		t.Skip("no AVX-512 or AVX2 and FMA on this CPU")
	}
	for _, width := range widths() {
		t.Run(fmt.Sprintf("width=%d", width), func(t *testing.T) { testConv3x3ReLUPool(t, width) })
	}
	// The AVX2 form's other way for layers of 16 output channels or more:
	// the rows as the lanes.
	if slices.Contains(widths(), 8) {
		t.Run("width=8/rows", func(t *testing.T) {
			setConvPoolCL(false)
			defer setConvPoolCL(true)
			testConv3x3ReLUPool(t, 8)
		})
	}
}

func testConv3x3ReLUPool(t *testing.T, width int) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, s := range []struct{ cin, cout, h, wd int }{
		{16, 32, 14, 14}, {1, 16, 28, 28}, {3, 8, 6, 10}, {2, 4, 4, 30}, {1, 8, 2, 2}, {2, 12, 8, 16},
		{4, 48, 6, 10}, {2, 16, 2, 2},
	} {
		for _, withWhere := range []bool{true, false} {
			const smp = 2 // samples
			x := make([]float32, smp*s.cin*s.h*s.wd)
			w := make([]float32, s.cout*s.cin*9)
			bias := make([]float32, s.cout)
			for i := range x {
				switch rng.IntN(8) {
				case 0, 1:
				case 2:
					x[i] = 0.5 // repeated values tie in a window
				default:
					x[i] = float32(rng.NormFloat64())
				}
			}
			if s.cin*s.h*s.wd > 40 {
				x[37] = float32(math.NaN())
			}
			for i := range w {
				w[i] = float32(rng.NormFloat64() * 0.3)
			}
			// Channel 0 passes the first input channel through (the centre
			// tap alone), so its windows tie wherever x repeats a value.
			clear(w[:s.cin*9])
			w[4] = 1
			for i := range bias {
				bias[i] = float32(rng.NormFloat64() * 0.5)
			}
			n, pn := smp*s.cout*s.h*s.wd, smp*s.cout*s.h*s.wd/4
			y, pooled := make([]float32, n), make([]float32, pn)
			wantY, wantPooled := make([]float32, n), make([]float32, pn)
			var where, wantWhere []uint8
			if withWhere {
				where, wantWhere = make([]uint8, pn), make([]uint8, pn)
			}
			if !conv3x3ReLUPoolWidth(width, y, x, w, bias, smp, s.cin, s.cout, s.h, s.wd, pooled, where) {
				t.Fatalf("%+v: Conv3x3ReLUPool refused", s)
			}
			size, in := s.cout*s.h*s.wd, s.cin*s.h*s.wd
			for i := range smp {
				Conv3x3Ref(wantY[i*size:(i+1)*size], x[i*in:(i+1)*in], w, s.cin, s.cout, s.h, s.wd)
			}
			for p := range smp * s.cout {
				BiasReLUScalar(wantY[p*s.h*s.wd:(p+1)*s.h*s.wd], bias[p%s.cout])
			}
			MaxPool2x2(wantY, smp*s.cout, s.wd, s.h*s.wd, s.h/2, s.wd/2, wantPooled, wantWhere)
			for i := range y {
				if math.Float32bits(y[i]) != math.Float32bits(wantY[i]) {
					t.Fatalf("%+v: y[%d] = %v, want %v", s, i, y[i], wantY[i])
				}
			}
			for i := range pooled {
				// A NaN's payload is not Go's to keep: its max ORs the bits
				// (the C kernels add them), so any NaN matches a NaN.
				bothNaN := pooled[i] != pooled[i] && wantPooled[i] != wantPooled[i]
				if math.Float32bits(pooled[i]) != math.Float32bits(wantPooled[i]) && !bothNaN {
					t.Fatalf("%+v: pooled[%d] = %v, want %v", s, i, pooled[i], wantPooled[i])
				}
				if where != nil && where[i] != wantWhere[i] {
					t.Fatalf("%+v: where[%d] = %d, want %d", s, i, where[i], wantWhere[i])
				}
			}
			// Without y, the same pooled values and positions.
			pooledOnly, whereOnly := make([]float32, pn), slices.Clone(where)
			if !conv3x3ReLUPoolWidth(width, nil, x, w, bias, smp, s.cin, s.cout, s.h, s.wd, pooledOnly, whereOnly) {
				t.Fatalf("%+v: Conv3x3ReLUPool refused a nil y", s)
			}
			for i := range pooled {
				if math.Float32bits(pooledOnly[i]) != math.Float32bits(pooled[i]) || (where != nil && whereOnly[i] != where[i]) {
					t.Fatalf("%+v: without y, pooled[%d] = %v (where %v), with y %v", s, i, pooledOnly[i], whereOnly, pooled[i])
				}
			}
		}
	}
	if conv3x3ReLUPoolWidth(width, make([]float32, 8*3*4), make([]float32, 3*4), make([]float32, 8*9), make([]float32, 8), 1, 1, 8, 3, 4, make([]float32, 8*2), nil) {
		t.Error("an odd number of rows was accepted")
	}
}

// TestConv3x3GradW checks the weight gradient against its scalar
// reference, bit for bit, for whole and partial ranges of input channels
// (the values outside the range must stay as they were), and the
// reference against the float64 definition within the rounding bound of
// its sums (a sum of h·wd terms for each sample, then of the n samples'),
// (h·wd+n)·2⁻²⁴·Σ|terms|. An infinite input must give the reference's
// infinities and NaNs.
func TestConv3x3GradW(t *testing.T) {
	if !DirectConv {
		t.Skip("no AVX-512 or AVX2 and FMA on this CPU: the trainer takes the weight gradient with im2col and a product")
	}
	for _, width := range widths() {
		t.Run(fmt.Sprintf("width=%d", width), func(t *testing.T) { testConv3x3GradW(t, width) })
	}
}

func testConv3x3GradW(t *testing.T, width int) {
	rng := rand.New(rand.NewPCG(7, 8))
	for _, s := range []struct{ cin, cout, h, wd, ci0, ci1 int }{
		{16, 32, 14, 14, 0, 16}, {16, 32, 14, 14, 4, 12}, {1, 16, 28, 28, 0, 1}, {3, 16, 5, 7, 1, 3},
		{2, 48, 6, 30, 0, 2}, {1, 16, 1, 1, 0, 1}, {5, 32, 3, 40, 2, 5},
	} {
		for _, inf := range []bool{false, true} {
			const n = 3
			hw := s.h * s.wd
			x := make([]float32, n*s.cin*hw)
			dz, dzT := make([]float32, n*s.cout*hw), make([]float32, n*s.cout*hw)
			for i := range x {
				if rng.IntN(4) > 0 {
					x[i] = float32(rng.NormFloat64())
				}
			}
			for i := range dz {
				dz[i] = float32(rng.NormFloat64() * 0.01)
			}
			for smp := range n {
				for co := range s.cout {
					for p := range hw {
						dzT[(smp*hw+p)*s.cout+co] = dz[(smp*s.cout+co)*hw+p]
					}
				}
			}
			if inf {
				x[s.ci0*hw+(s.h-1)*s.wd] = float32(math.Inf(1)) // sample 0, the first value of the last row
			}
			got, want := make([]float32, s.cout*s.cin*9), make([]float32, s.cout*s.cin*9)
			for i := range got {
				got[i], want[i] = 7, 7
			}
			scratch := make([]float32, Conv3x3GradWScratch(s.ci1-s.ci0, s.cout, s.h, s.wd))
			if !conv3x3GradWWidth(width, got, x, dzT, n, s.cin, s.cout, s.h, s.wd, s.ci0, s.ci1, scratch) {
				t.Fatalf("%+v: Conv3x3GradW refused", s)
			}
			Conv3x3GradWRef(want, x, dzT, n, s.cin, s.cout, s.h, s.wd, s.ci0, s.ci1)
			for i := range got {
				ci := i / 9 % s.cin
				if (ci < s.ci0 || ci >= s.ci1) && (got[i] != 7 || want[i] != 7) {
					t.Fatalf("%+v: dw[%d] of input channel %d, outside the range, became %v (reference %v)", s, i, ci, got[i], want[i])
				}
				g, w := got[i], want[i]
				if math.IsNaN(float64(g)) || math.IsNaN(float64(w)) {
					if math.IsNaN(float64(g)) != math.IsNaN(float64(w)) {
						t.Fatalf("%+v inf %v: dw[%d] = %v, reference %v", s, inf, i, g, w)
					}
					continue
				}
				if math.Float32bits(g) != math.Float32bits(w) {
					t.Fatalf("%+v inf %v: dw[%d] = %v, reference %v", s, inf, i, g, w)
				}
			}
			if inf {
				continue
			}
			for co := range s.cout {
				for ci := s.ci0; ci < s.ci1; ci++ {
					for tap := range 9 {
						ky, kx := tap/3, tap%3
						var exact, mag float64
						for smp := range n {
							for r := range s.h {
								for c := range s.wd {
									iy, ix := r+ky-1, c+kx-1
									if iy < 0 || iy >= s.h || ix < 0 || ix >= s.wd {
										continue
									}
									v := float64(dz[(smp*s.cout+co)*hw+r*s.wd+c]) * float64(x[(smp*s.cin+ci)*hw+iy*s.wd+ix])
									exact += v
									mag += math.Abs(v)
								}
							}
						}
						i := (co*s.cin+ci)*9 + tap
						if d, bound := math.Abs(float64(want[i])-exact), float64(hw+n)*0x1p-24*mag; d > bound {
							t.Fatalf("%+v: dw[%d] = %v, exact %v: off by %g, over the bound %g", s, i, want[i], exact, d, bound)
						}
					}
				}
			}
		}
	}
	for _, c := range []struct{ cout, ci0, ci1 int }{{8, 0, 16}, {24, 0, 16}, {32, 4, 4}, {32, 0, 17}, {32, -1, 3}} {
		if conv3x3GradWWidth(width, make([]float32, c.cout*16*9), make([]float32, 16*14*14), make([]float32, c.cout*14*14), 1, 16, c.cout, 14, 14, c.ci0, c.ci1,
			make([]float32, Conv3x3GradWScratch(16, c.cout, 14, 14))) {
			t.Errorf("%+v: Conv3x3GradW accepted it", c)
		}
	}
}

// TestConv3x3GradWAccuracy checks that the weight gradient kernel rounds
// no worse than a product would: on a batch of 64 samples of the 16→32
// layer, with gradients of one sign on average (as a step's are), its
// relative RMS error against float64 is at most twice that of summing each
// sample in float32 and then the samples' sums. Summing all 12,544 terms
// of a value in one run, as Conv3x3GradW first did, had ten times the
// error.
func TestConv3x3GradWAccuracy(t *testing.T) {
	if !DirectConv {
		t.Skip("no AVX-512 or AVX2 and FMA on this CPU")
	}
	rng := rand.New(rand.NewPCG(1, 2))
	const n, cin, cout, h, wd = 64, 16, 32, 14, 14
	hw := h * wd
	x := make([]float32, n*cin*hw)
	dz, dzT := make([]float32, n*cout*hw), make([]float32, n*cout*hw)
	for i := range x {
		x[i] = float32(math.Max(0, rng.NormFloat64()+0.3))
	}
	for i := range dz {
		dz[i] = float32(rng.NormFloat64()*1e-3 + 2e-4)
	}
	for s := range n {
		for co := range cout {
			for p := range hw {
				dzT[(s*hw+p)*cout+co] = dz[(s*cout+co)*hw+p]
			}
		}
	}
	got := make([]float32, cout*cin*9)
	Conv3x3GradW(got, x, dzT, n, cin, cout, h, wd, 0, cin, make([]float32, Conv3x3GradWScratch(cin, cout, h, wd)))
	// A product's way: a float32 sum for each sample, then their sum.
	var eK, eS, norm float64
	for co := range cout {
		for ci := range cin {
			for tap := range 9 {
				ky, kx := tap/3, tap%3
				var exact float64
				var blocked float32
				for s := range n {
					var ps float32
					for r := range h {
						for c := range wd {
							iy, ix := r+ky-1, c+kx-1
							if iy < 0 || iy >= h || ix < 0 || ix >= wd {
								continue
							}
							v := dz[(s*cout+co)*hw+r*wd+c] * x[(s*cin+ci)*hw+iy*wd+ix]
							exact += float64(dz[(s*cout+co)*hw+r*wd+c]) * float64(x[(s*cin+ci)*hw+iy*wd+ix])
							ps += v
						}
					}
					blocked += ps
				}
				i := (co*cin+ci)*9 + tap
				eK += math.Pow(float64(got[i])-exact, 2)
				eS += math.Pow(float64(blocked)-exact, 2)
				norm += exact * exact
			}
		}
	}
	k, ref := math.Sqrt(eK/norm), math.Sqrt(eS/norm)
	t.Logf("relative RMS error: Conv3x3GradW %.3g, a sum for each sample %.3g", k, ref)
	if k > 2*ref {
		t.Errorf("Conv3x3GradW's error is over twice a product's")
	}
}

// BenchmarkConv3x3 times the 16→32 layer of the conv model on 64 samples of
// 14×14, on one goroutine and split over two, and prints its GFLOPS.
func BenchmarkConv3x3(b *testing.B) {
	if !DirectConv {
		b.Skip("no AVX-512 or AVX2 and FMA")
	}
	const n, cin, cout, h, wd = 64, 16, 32, 14, 14
	x := make([]float32, n*cin*h*wd)
	w := make([]float32, cout*cin*9)
	y := make([]float32, n*cout*h*wd)
	for i := range x {
		x[i] = float32(i%7) * 0.1
	}
	for i := range w {
		w[i] = float32(i%5) * 0.01
	}
	flops := float64(2 * n * cout * h * wd * cin * 9)
	for _, parts := range []int{1, 2} {
		for _, width := range widths() {
			b.Run(fmt.Sprintf("width=%d/%s", width, map[int]string{1: "one", 2: "two"}[parts]), func(b *testing.B) {
				for range b.N {
					done := make(chan bool, parts)
					for p := range parts {
						go func() {
							lo, hi := p*n/parts, (p+1)*n/parts
							conv3x3Width(width, y[lo*cout*h*wd:], x[lo*cin*h*wd:], w, hi-lo, cin, cout, h, wd)
							done <- true
						}()
					}
					for range parts {
						<-done
					}
				}
				b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOPS")
			})
		}
		for _, width := range widths() {
			b.Run(fmt.Sprintf("width=%d/%s", width, map[int]string{1: "grad-w-one", 2: "grad-w-two"}[parts]), func(b *testing.B) {
				dw := make([]float32, cout*cin*9)
				accs := make([][]float32, parts)
				for p := range parts {
					accs[p] = make([]float32, Conv3x3GradWScratch(cin/parts, cout, h, wd))
				}
				for range b.N {
					done := make(chan bool, parts)
					for p := range parts {
						go func() {
							lo, hi := p*cin/parts, (p+1)*cin/parts
							conv3x3GradWWidth(width, dw, x, y, n, cin, cout, h, wd, lo, hi, accs[p])
							done <- true
						}()
					}
					for range parts {
						<-done
					}
				}
				b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOPS")
			})
		}
	}
}

// TestConv3x3PoolGrad checks Conv3x3PoolGrad and Conv3x3PoolGradTotal bit
// for bit against the weight and bias gradients of the dense dz that
// MaxPool2x2GradGo writes: Conv3x3PoolGradRef's sums and ChannelSumsGo's,
// added up over the samples from zero. dy has NaN, infinities, ±0 and
// subnormals among its values.
func TestConv3x3PoolGrad(t *testing.T) {
	if !Conv3x3PoolGradFits() {
		t.Skip("no AVX-512 or AVX2 and FMA on this CPU: the trainer takes the first layer's gradients from dz")
	}
	for _, width := range poolGradWidths() {
		t.Run(fmt.Sprintf("width=%d", width), func(t *testing.T) { testConv3x3PoolGrad(t, width) })
	}
}

func testConv3x3PoolGrad(t *testing.T, width int) {
	rng := rand.New(rand.NewPCG(9, 10))
	for _, s := range []struct{ cout, h, wd, n int }{
		{16, 28, 28, 5}, {20, 6, 8, 3}, {5, 2, 2, 2}, {32, 14, 10, 4}, {1, 4, 30, 1},
	} {
		for _, relu := range []bool{true, false} {
			hw, ohw := s.h*s.wd, s.h/2*s.wd/2
			x := make([]float32, s.n*hw)
			for i := range x {
				if rng.IntN(4) > 0 {
					x[i] = float32(rng.NormFloat64())
				}
			}
			dy, where := randomPoolGrad(rng, s.n*s.cout*ohw, 50)
			// The dense reference: dz, then the sums.
			dz := make([]float32, s.n*s.cout*hw)
			MaxPool2x2GradGo(dz, s.n*s.cout, s.wd, hw, s.h/2, s.wd/2, dy, where, relu)
			wantW, wantB := make([]float32, s.cout*9), make([]float32, s.cout)
			Conv3x3PoolGradRef(wantW, x, dz, s.n, s.cout, s.h, s.wd)
			for smp := range s.n {
				ChannelSumsGo(wantB, dz[smp*s.cout*hw:(smp+1)*s.cout*hw], hw)
			}

			part := make([]float32, s.n*10*s.cout)
			scratch := make([]float32, Conv3x3PoolGradScratch(s.cout, s.h, s.wd))
			mid := s.n / 2
			for _, r := range [][2]int{{0, mid}, {mid, s.n}} {
				if r[1] > r[0] && !conv3x3PoolGradWidth(width, part[r[0]*10*s.cout:], x, dy, where, relu, r[0], r[1], s.cout, s.h, s.wd, scratch) {
					t.Fatalf("%+v: Conv3x3PoolGrad refused", s)
				}
			}
			gotW, gotB := make([]float32, s.cout*9), make([]float32, s.cout)
			Conv3x3PoolGradTotal(gotW, gotB, part, s.n, s.cout)
			for _, c := range []struct {
				name      string
				got, want []float32
			}{{"dw", gotW, wantW}, {"db", gotB, wantB}} {
				for i, g := range c.got {
					w := c.want[i]
					if math.Float32bits(g) != math.Float32bits(w) && !(g != g && w != w) {
						t.Fatalf("%+v relu %v: %s[%d] = %v, reference %v", s, relu, c.name, i, g, w)
					}
				}
			}
		}
	}
}

// BenchmarkConv3x3PoolGrad times Conv3x3PoolGrad on 64 samples of the conv
// model's first layer (16 channels of 28×28) on one core, and beside it
// the dense path that it replaces but for the weight product: the pooling's
// gradient written out (MaxPool2x2Grad) and the bias sums (ChannelSums).
func BenchmarkConv3x3PoolGrad(b *testing.B) {
	if !Conv3x3PoolGradFits() {
		b.Skip("no AVX-512 or AVX2 and FMA on this CPU")
	}
	const n, cout, h, wd = 64, 16, 28, 28
	rng := rand.New(rand.NewPCG(3, 4))
	x := make([]float32, n*h*wd)
	for i := range x {
		x[i] = rng.Float32()
	}
	dy, where := benchPoolGrad(rng, n*cout*(h/2)*(wd/2))
	for _, width := range poolGradWidths() {
		b.Run(fmt.Sprintf("width=%d/fused", width), func(b *testing.B) {
			part := make([]float32, n*10*cout)
			scratch := make([]float32, Conv3x3PoolGradScratch(cout, h, wd))
			for b.Loop() {
				conv3x3PoolGradWidth(width, part, x, dy, where, true, 0, n, cout, h, wd, scratch)
			}
		})
	}
	b.Run("dense-dz-and-bias", func(b *testing.B) {
		dz, db := make([]float32, n*cout*h*wd), make([]float32, cout)
		for b.Loop() {
			MaxPool2x2Grad(dz, n*cout, wd, h*wd, h/2, wd/2, dy, where, true)
			for s := range n {
				ChannelSums(db, dz[s*cout*h*wd:(s+1)*cout*h*wd], h*wd)
			}
		}
	})
}

// benchPoolGrad returns a pooling's gradient for n windows, normal, and
// their codes, uniform over all eight (half of them above zero).
func benchPoolGrad(rng *rand.Rand, n int) ([]float32, []uint8) {
	dy, where := make([]float32, n), make([]uint8, n)
	for i := range dy {
		dy[i] = float32(rng.NormFloat64())
		where[i] = uint8(rng.IntN(8))
	}
	return dy, where
}

// BenchmarkConv3x3PoolGradSparse times Conv3x3PoolGradW and
// Conv3x3PoolGradX on 64 samples of the conv model's 16→32 layer (14×14),
// on one core, in each form the CPU has. Half the windows get a gradient,
// as the ReLU passes about half of them in training.
func BenchmarkConv3x3PoolGradSparse(b *testing.B) {
	const n, cin, cout, h, wd = 64, 16, 32, 14, 14
	if !Conv3x3PoolGradSparseFits(cin, h, wd) {
		b.Skip("no AVX-512 or AVX2 and FMA on this CPU")
	}
	rng := rand.New(rand.NewPCG(5, 6))
	x, w := make([]float32, n*cin*h*wd), make([]float32, cout*cin*9)
	for i := range x {
		x[i] = rng.Float32()
	}
	for i := range w {
		w[i] = float32(rng.NormFloat64())
	}
	dy, where := benchPoolGrad(rng, n*cout*(h/2)*(wd/2))
	for _, width := range poolGradWidths() {
		b.Run(fmt.Sprintf("width=%d/w", width), func(b *testing.B) {
			dw, db := make([]float32, cout*cin*9), make([]float32, cout)
			scratch := make([]float32, Conv3x3PoolGradWScratch(cin, h, wd, cout))
			for b.Loop() {
				conv3x3PoolGradWWidth(width, dw, db, x, dy, where, n, cin, cout, h, wd, 0, cout, scratch)
			}
		})
		b.Run(fmt.Sprintf("width=%d/x", width), func(b *testing.B) {
			dx := make([]float32, n*cin*h*wd)
			scratch := make([]float32, Conv3x3PoolGradXScratch(cin, cout, h, wd))
			for b.Loop() {
				conv3x3PoolGradXWidth(width, dx, w, dy, where, 0, n, cin, cout, h, wd, scratch)
			}
		})
	}
}

// TestConv3x3PoolGradSparse checks Conv3x3PoolGradW and Conv3x3PoolGradX
// bit for bit against the dense path they replace: the dz that
// MaxPool2x2GradGo writes (with the ReLU's gradient), then
// Conv3x3GradWRef's weight sums, ChannelSumsGo's bias sums and Conv3x3Ref's
// convolution of dz by the weights flipped, each from +0. x and w are
// finite, with zeros and -0 among them; dy has NaN, infinities, ±0 and
// subnormals, and the codes all eight values (the maximum's place, and
// whether the ReLU passes it). Several splits of the channels and of the
// samples, as the trainer's goroutines take them, give the same values.
func TestConv3x3PoolGradSparse(t *testing.T) {
	if !Conv3x3PoolGradSparseFits(16, 14, 14) {
		t.Skip("no AVX-512 or AVX2 and FMA on this CPU: the trainer takes the layer's gradients from dz")
	}
	for _, width := range poolGradWidths() {
		t.Run(fmt.Sprintf("width=%d", width), func(t *testing.T) { testConv3x3PoolGradSparse(t, width) })
	}
}

func testConv3x3PoolGradSparse(t *testing.T, width int) {
	rng := rand.New(rand.NewPCG(11, 12))
	finite := func() float32 {
		switch rng.IntN(8) {
		case 0:
			return 0
		case 1:
			return float32(math.Copysign(0, -1))
		}
		return float32(rng.NormFloat64())
	}
	for _, s := range []struct{ cin, cout, h, wd, n int }{
		{16, 32, 14, 14, 5}, {32, 3, 6, 8, 3}, {16, 1, 2, 2, 2}, {16, 5, 10, 4, 4}, {16, 2, 28, 18, 2},
	} {
		hw, ohw := s.h*s.wd, s.h/2*s.wd/2
		x, w := make([]float32, s.n*s.cin*hw), make([]float32, s.cout*s.cin*9)
		for i := range x {
			x[i] = finite()
		}
		for i := range w {
			w[i] = finite()
		}
		dy, where := randomPoolGrad(rng, s.n*s.cout*ohw, 40)
		// The dense reference.
		dz, dzT := make([]float32, s.n*s.cout*hw), make([]float32, s.n*s.cout*hw)
		MaxPool2x2GradGo(dz, s.n*s.cout, s.wd, hw, s.h/2, s.wd/2, dy, where, true)
		for smp := range s.n {
			TransposeGo(dzT[smp*s.cout*hw:(smp+1)*s.cout*hw], dz[smp*s.cout*hw:(smp+1)*s.cout*hw], s.cout, hw)
		}
		wantW, wantB, wantX := make([]float32, len(w)), make([]float32, s.cout), make([]float32, len(x))
		Conv3x3GradWRef(wantW, x, dzT, s.n, s.cin, s.cout, s.h, s.wd, 0, s.cin)
		for smp := range s.n {
			ChannelSumsGo(wantB, dz[smp*s.cout*hw:(smp+1)*s.cout*hw], hw)
		}
		flipped := make([]float32, len(w))
		for co := range s.cout {
			for ci := range s.cin {
				for k := range 9 {
					flipped[(ci*s.cout+co)*9+8-k] = w[(co*s.cin+ci)*9+k]
				}
			}
		}
		for smp := range s.n {
			Conv3x3Ref(wantX[smp*s.cin*hw:], dz[smp*s.cout*hw:], flipped, s.cout, s.cin, s.h, s.wd)
		}

		for _, parts := range []int{1, 2, 3} {
			gotW, gotB, gotX := make([]float32, len(w)), make([]float32, s.cout), make([]float32, len(x))
			for p := range parts {
				if co0, co1 := p*s.cout/parts, (p+1)*s.cout/parts; co1 > co0 {
					scratch := make([]float32, Conv3x3PoolGradWScratch(s.cin, s.h, s.wd, co1-co0))
					if !conv3x3PoolGradWWidth(width, gotW, gotB, x, dy, where, s.n, s.cin, s.cout, s.h, s.wd, co0, co1, scratch) {
						t.Fatalf("%+v: Conv3x3PoolGradW refused", s)
					}
				}
				if s0, s1 := p*s.n/parts, (p+1)*s.n/parts; s1 > s0 {
					scratch := make([]float32, Conv3x3PoolGradXScratch(s.cin, s.cout, s.h, s.wd))
					if !conv3x3PoolGradXWidth(width, gotX, w, dy, where, s0, s1, s.cin, s.cout, s.h, s.wd, scratch) {
						t.Fatalf("%+v: Conv3x3PoolGradX refused", s)
					}
				}
			}
			for _, c := range []struct {
				name      string
				got, want []float32
			}{{"dw", gotW, wantW}, {"db", gotB, wantB}, {"dx", gotX, wantX}} {
				for i, g := range c.got {
					w := c.want[i]
					if math.Float32bits(g) != math.Float32bits(w) && !(g != g && w != w) {
						t.Fatalf("%+v in %d parts: %s[%d] = %v, reference %v", s, parts, c.name, i, g, w)
					}
				}
			}
		}
	}
}

// randomPoolGrad returns a 2×2 pooling's gradient dy and the codes of its
// windows for n windows: small normal values, about one in every "every"
// NaN, an infinity, ±0 or a subnormal, and codes of all eight kinds (the
// maximum's place, and whether the ReLU before passes it).
func randomPoolGrad(rng *rand.Rand, n, every int) (dy []float32, where []uint8) {
	special := []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1)), 0, float32(math.Copysign(0, -1)), 1e-41, -3e-39}
	dy, where = make([]float32, n), make([]uint8, n)
	for i := range dy {
		dy[i] = float32(rng.NormFloat64() * 0.01)
		if rng.IntN(every) == 0 {
			dy[i] = special[rng.IntN(len(special))]
		}
		where[i] = uint8(rng.IntN(8))
	}
	return dy, where
}

// BenchmarkConv3x3ReLUPool times Conv3x3ReLUPool on 64 samples of each of
// the conv model's two layers (1→16 on 28×28, 16→32 on 14×14), as the
// trainer runs them (no dense output, the pooling's codes kept), on one
// core, in each form the CPU has, and prints its GFLOPS.
func BenchmarkConv3x3ReLUPool(b *testing.B) {
	if !DirectConv {
		b.Skip("no AVX-512 or AVX2 and FMA")
	}
	rng := rand.New(rand.NewPCG(7, 8))
	for _, l := range []struct{ cin, cout, hw int }{{1, 16, 28}, {16, 32, 14}} {
		const n = 64
		x, w, bias := make([]float32, n*l.cin*l.hw*l.hw), make([]float32, l.cout*l.cin*9), make([]float32, l.cout)
		for i := range x {
			x[i] = rng.Float32()
		}
		for i := range w {
			w[i] = float32(rng.NormFloat64()) * 0.3
		}
		for i := range bias {
			bias[i] = float32(rng.NormFloat64()) * 0.1
		}
		np := n * l.cout * l.hw * l.hw / 4
		pooled, where := make([]float32, np), make([]uint8, np)
		flops := float64(2 * n * l.cout * l.hw * l.hw * l.cin * 9)
		for _, width := range widths() {
			b.Run(fmt.Sprintf("width=%d/%d-%d", width, l.cin, l.cout), func(b *testing.B) {
				for b.Loop() {
					conv3x3ReLUPoolWidth(width, nil, x, w, bias, n, l.cin, l.cout, l.hw, l.hw, pooled, where)
				}
				b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOPS")
			})
			if width == 8 && l.cout%16 == 0 && l.cin >= 2 {
				// The AVX2 form's other way for this layer: the rows as the lanes.
				b.Run(fmt.Sprintf("width=8/%d-%d/rows", l.cin, l.cout), func(b *testing.B) {
					setConvPoolCL(false)
					defer setConvPoolCL(true)
					for b.Loop() {
						conv3x3ReLUPoolWidth(width, nil, x, w, bias, n, l.cin, l.cout, l.hw, l.hw, pooled, where)
					}
					b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOPS")
				})
			}
		}
	}
}
