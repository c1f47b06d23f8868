//go:build cgo && amd64

package kernels

import (
	"math"
	"math/rand/v2"
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

// TestConv3x3 checks the AVX-512 convolution against its scalar reference,
// bit for bit, on shapes that exercise every edge (one row, an odd number
// of rows, rows of 1 to 14 values, one and many input channels), and the
// reference against the float64 definition, within the rounding bound of a
// float32 sum of n terms in any order, (n−1)·2⁻²⁴·Σ|terms|.
func TestConv3x3(t *testing.T) {
	if !Vector {
		t.Skip("no AVX-512 on this CPU: the trainer convolves with im2col and a product")
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for _, s := range []struct{ cin, cout, h, wd int }{
		{16, 32, 14, 14}, {32, 16, 14, 14}, {1, 8, 5, 7}, {3, 16, 13, 13}, {2, 8, 1, 1}, {5, 24, 9, 14}, {4, 8, 14, 3}, {1, 8, 2, 14},
	} {
		x := make([]float32, s.cin*s.h*s.wd)
		w := make([]float32, s.cout*s.cin*9)
		for i := range x {
			if rng.IntN(4) > 0 { // a quarter are zeros, as after a ReLU
				x[i] = float32(rng.NormFloat64())
			}
		}
		for i := range w {
			w[i] = float32(rng.NormFloat64() * 0.1)
		}
		got, want := make([]float32, s.cout*s.h*s.wd), make([]float32, s.cout*s.h*s.wd)
		for i := range got {
			got[i] = float32(math.NaN()) // every value must be written
		}
		if !Conv3x3(got, x, w, s.cin, s.cout, s.h, s.wd) {
			t.Fatalf("%+v: Conv3x3 refused", s)
		}
		Conv3x3Ref(want, x, w, s.cin, s.cout, s.h, s.wd)
		exact, mag := conv3x3Exact(x, w, s.cin, s.cout, s.h, s.wd)
		n := float64(s.cin * 9)
		for i := range got {
			if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
				t.Fatalf("%+v: y[%d] = %v, reference %v", s, i, got[i], want[i])
			}
			if d := math.Abs(float64(want[i]) - exact[i]); d > (n-1)*0x1p-24*mag[i] {
				t.Fatalf("%+v: y[%d] = %v, exact %v: off by %g, over the bound %g", s, i, want[i], exact[i], d, (n-1)*0x1p-24*mag[i])
			}
		}
	}
}

// TestConv3x3Special checks that an infinite weight gives NaN at the border
// (its product with the padding's zeros), as im2col's columns do, and
// that the kernel refuses what it does not handle.
func TestConv3x3Special(t *testing.T) {
	if !Vector {
		t.Skip("no AVX-512 on this CPU")
	}
	x := make([]float32, 3*3)
	for i := range x {
		x[i] = 1
	}
	w := make([]float32, 8*9)
	w[0] = float32(math.Inf(1)) // channel 0, ky = kx = 0: the top-left neighbour
	got, want := make([]float32, 8*9), make([]float32, 8*9)
	Conv3x3(got, x, w, 1, 8, 3, 3)
	Conv3x3Ref(want, x, w, 1, 8, 3, 3)
	for i := range 9 {
		border := i < 3 || i%3 == 0
		if g := got[i]; border != math.IsNaN(float64(g)) || math.IsNaN(float64(want[i])) != border {
			t.Errorf("y[0, %d] = %v (reference %v), want NaN: %v", i, g, want[i], border)
		}
	}
	for _, s := range []struct{ cin, cout, h, wd int }{{1, 8, 3, 15}, {1, 12, 3, 3}, {1, 0, 3, 3}, {64, 8, 14, 14}} {
		if Conv3x3(make([]float32, max(1, s.cout)*s.h*s.wd), make([]float32, s.cin*s.h*s.wd), make([]float32, max(1, s.cout)*s.cin*9), s.cin, s.cout, s.h, s.wd) {
			t.Errorf("%+v: Conv3x3 accepted it", s)
		}
	}
}
