package trainer

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/latent-ai/latent/models"
)

// tiny architectures that each exercise some layer kinds on small shapes,
// so that finite differences in float64 are cheap and precise.
var gradArchs = []struct {
	name string
	arch models.Arch
}{
	{"linear", models.Arch{Kind: "t", Bottleneck: 3, Input: []int{1, 2, 3},
		Encoder: []models.Layer{{Op: models.Flatten}, {Op: models.Linear, In: 6, Out: 4}, {Op: models.ReLU}, {Op: models.Linear, In: 4, Out: 3}},
		Decoder: []models.Layer{{Op: models.Linear, In: 3, Out: 6}, {Op: models.Sigmoid}, {Op: models.Unflatten, Shape: []int{1, 2, 3}}}}},
	{"conv-maxpool", models.Arch{Kind: "t", Bottleneck: 2, Input: []int{2, 4, 4},
		Encoder: []models.Layer{{Op: models.Conv2d, In: 2, Out: 3, Kernel: 3, Stride: 1, Pad: 1}, {Op: models.ReLU},
			{Op: models.MaxPool2d, Kernel: 2, Stride: 2}, {Op: models.Flatten}, {Op: models.Linear, In: 12, Out: 2}},
		Decoder: []models.Layer{{Op: models.Linear, In: 2, Out: 32}, {Op: models.Sigmoid}, {Op: models.Unflatten, Shape: []int{2, 4, 4}}}}},
	{"convtranspose", models.Arch{Kind: "t", Bottleneck: 4, Input: []int{2, 4, 4},
		Encoder: []models.Layer{{Op: models.Flatten}, {Op: models.Linear, In: 32, Out: 4}},
		Decoder: []models.Layer{{Op: models.Linear, In: 4, Out: 12}, {Op: models.ReLU}, {Op: models.Unflatten, Shape: []int{3, 2, 2}},
			{Op: models.ConvTranspose2d, In: 3, Out: 5, Kernel: 2, Stride: 2}, {Op: models.ReLU},
			{Op: models.ConvTranspose2d, In: 5, Out: 2, Kernel: 1, Stride: 1}, {Op: models.Sigmoid}}}},
}

// TestGradientsFiniteDifference checks the gradient of the loss with
// respect to every parameter of every layer kind (gradArchs) and every path
// of the trainer's ops (opArchs) against central finite differences, in
// float64.
func TestGradientsFiniteDifference(t *testing.T) {
	for _, tc := range slices.Concat(gradArchs, opArchs) {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.arch.Validate(); err != nil {
				t.Fatal(err)
			}
			checkFiniteDifferences(t, tc.arch, 3)
		})
	}
}

// TestAdamMatchesFormula runs three steps of Adam on fixed gradients and
// compares every value with the formula computed in float64.
func TestAdamMatchesFormula(t *testing.T) {
	p := []float32{0.5, -1.25, 3, 0}
	grads := [][]float32{{0.1, -0.2, 3, 0}, {-0.3, 0.05, -1, 1e-3}, {0.2, 0.2, 0.5, -2}}
	a := NewAdam(1e-3, []int{len(p)})
	want := make([]float64, len(p))
	m := make([]float64, len(p))
	v := make([]float64, len(p))
	for i := range p {
		want[i] = float64(p[i])
	}
	for step, g := range grads {
		a.Update([][]float32{p}, [][]float32{g})
		tt := float64(step + 1)
		for i := range want {
			gi := float64(g[i])
			m[i] = 0.9*m[i] + 0.1*gi
			v[i] = 0.999*v[i] + 0.001*gi*gi
			mhat := m[i] / (1 - math.Pow(0.9, tt))
			vhat := v[i] / (1 - math.Pow(0.999, tt))
			// lr/bc1 · m / (sqrt(v)/sqrt(bc2) + eps), as PyTorch writes it.
			want[i] -= 1e-3 * mhat / (math.Sqrt(vhat) + 1e-8)
		}
		for i := range p {
			if d := math.Abs(float64(p[i]) - want[i]); d > 1e-6 {
				t.Fatalf("step %d value %d: got %v want %v", step+1, i, p[i], want[i])
			}
		}
	}
	if a.Step != 3 {
		t.Fatalf("step count %d, want 3", a.Step)
	}
}

// TestAdamKernelsAgree checks that the update Adam runs (in C, vectorised,
// in the openblas build) gives the same bits as the Go loop adamUpdate, for
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
			return float32(rng.NormFloat64() * 2 * minNormal32)
		case 4: // a gradient whose square underflows
			return float32(rng.NormFloat64() * 1e-21)
		case 5:
			return float32(math.NaN())
		default:
			return float32(rng.NormFloat64())
		}
	}
	for _, n := range []int{1, 7, 8, 9, 15, 16, 17, 31, 33, 100, 1000 + 13} {
		for step := 1; step <= 3; step++ {
			p, g, m, v := make([]float32, n), make([]float32, n), make([]float32, n), make([]float32, n)
			for i := range p {
				p[i], g[i], m[i] = value(), value(), value()
				v[i] = float32(math.Abs(float64(value())))
			}
			p2, m2, v2 := slices.Clone(p), slices.Clone(m), slices.Clone(v)
			bc1, bc2 := 1-math.Pow(0.9, float64(step)), 1-math.Pow(0.999, float64(step))
			stepSize, inv := float32(1e-3/bc1), float32(1/math.Sqrt(bc2))
			adamKernel(p, g, m, v, stepSize, inv, 0.9, 0.999, 1e-8)
			adamUpdate(p2, g, m2, v2, stepSize, inv, 0.9, 0.999, 1e-8)
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
		f    func(p, g, m, v []float32, stepSize, invBC2Sqrt, b1, b2, eps float32)
	}{{"adamUpdate", adamUpdate}, {"adamKernel", adamKernel}}
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
				k.f(p, g, m, v, 1e-3, 1, 0.9, 0.999, 1e-8)
				for i, x := range m {
					if x != 0 && math.Abs(float64(x)) < minNormal32 {
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
