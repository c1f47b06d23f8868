package evaluation

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestSoftmaxGradient checks the gradient of the probe's loss against
// central finite differences.
func TestSoftmaxGradient(t *testing.T) {
	const n, d, c = 5000, 3, 4 // n > probeBlock: several blocks
	rng := rand.New(rand.NewPCG(7, 7))
	x := make([]float64, n*d)
	for i := range x {
		x[i] = rng.NormFloat64()
	}
	y := make([]int, n)
	for i := range y {
		y[i] = rng.IntN(c)
	}
	p := newSoftmaxProblem(x, y, d, c, 0.1)
	w := make([]float64, c*(d+1))
	for i := range w {
		w[i] = rng.NormFloat64()
	}
	grad := make([]float64, len(w))
	p.evaluate(grad, w)
	scratch := make([]float64, len(w))
	const h = 1e-6
	for i := range w {
		wi := w[i]
		w[i] = wi + h
		fp := p.evaluate(scratch, w)
		w[i] = wi - h
		fm := p.evaluate(scratch, w)
		w[i] = wi
		if fd := (fp - fm) / (2 * h); math.Abs(fd-grad[i]) > 1e-6 {
			t.Errorf("parameter %d: gradient %v, finite difference %v", i, grad[i], fd)
		}
	}
}

func TestMinimizeLBFGS(t *testing.T) {
	for _, tc := range []struct {
		name string
		f    func(grad, x []float64) float64
		x0   []float64
		want []float64
	}{
		{
			name: "ill-conditioned quadratic",
			f: func(grad, x []float64) float64 {
				s := 0.0
				for i, v := range x {
					a := math.Pow(10, float64(i)) // condition number 1e4
					s += a * (v - 1) * (v - 1) / 2
					grad[i] = a * (v - 1)
				}
				return s
			},
			x0:   []float64{5, -3, 2, 0, 7},
			want: []float64{1, 1, 1, 1, 1},
		},
		{
			name: "Rosenbrock",
			f: func(grad, x []float64) float64 {
				a, b := 1-x[0], x[1]-x[0]*x[0]
				grad[0] = -2*a - 400*x[0]*b
				grad[1] = 200 * b
				return a*a + 100*b*b
			},
			x0:   []float64{-1.2, 1},
			want: []float64{1, 1},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x := slices.Clone(tc.x0)
			if err := minimizeLBFGS(tc.f, x, 1000); err != nil {
				t.Fatal(err)
			}
			for i := range x {
				if math.Abs(x[i]-tc.want[i]) > 1e-5 {
					t.Fatalf("minimiser %v, want %v", x, tc.want)
				}
			}
		})
	}
	bad := func(grad, x []float64) float64 { return math.NaN() }
	if err := minimizeLBFGS(bad, []float64{0}, 10); err == nil {
		t.Error("no error for a NaN function")
	}
}

func TestSelectNth(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 8))
	for trial := range 2000 {
		n := 1 + rng.IntN(50)
		keys := make([]float32, n)
		idx := make([]int32, n)
		for i := range keys {
			keys[i] = float32(rng.IntN(1 + trial%7)) // many equal keys
			idx[i] = int32(i)
		}
		orig := slices.Clone(keys)
		nth := rng.IntN(n)
		selectNth(keys, idx, nth)
		for i := range keys {
			if orig[idx[i]] != keys[i] {
				t.Fatalf("indices not moved with the keys")
			}
			if (i < nth && keys[i] > keys[nth]) || (i > nth && keys[i] < keys[nth]) {
				t.Fatalf("keys %v not split at %d", keys, nth)
			}
		}
	}
}
