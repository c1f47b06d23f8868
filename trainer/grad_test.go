package trainer

import (
	"math"
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
	// A VAE: the loss is the binary cross-entropy plus β·KL, through z = μ + σ·ε.
	{"variational", models.Arch{Kind: "t", Bottleneck: 3, Input: []int{1, 2, 3}, Variational: true,
		Encoder: []models.Layer{{Op: models.Flatten}, {Op: models.Linear, In: 6, Out: 4}, {Op: models.ReLU}},
		Decoder: []models.Layer{{Op: models.Linear, In: 3, Out: 6}, {Op: models.Sigmoid}, {Op: models.Unflatten, Shape: []int{1, 2, 3}}}}},
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
