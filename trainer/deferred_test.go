package trainer

import (
	"math"
	"testing"

	"github.com/latent-ai/latent/models"
)

// TestDeferredLinearSameSteps checks that Trainer.Step, which computes the
// Linear weights' gradients itself a band at a time and updates each band
// at once (deferredLinear), gives the same bits as the plain way: a graph
// that computes every gradient, then Adam.Update. It runs a few steps of
// each model from the same weights and compares every weight and both
// Adam moments.
func TestDeferredLinearSameSteps(t *testing.T) {
	const batch, steps = 64, 4
	images, _ := benchImages(batch)
	for _, kind := range []string{"classic", "conv"} {
		t.Run(kind, func(t *testing.T) {
			arch, err := models.New(kind, models.DefaultBottleneck)
			if err != nil {
				t.Fatal(err)
			}
			fused, err := New(DefaultConfig(arch))
			if err != nil {
				t.Fatal(err)
			}
			plain, err := New(DefaultConfig(arch))
			if err != nil {
				t.Fatal(err)
			}
			gr, err := newGraph(arch, partAutoencoder, batch, plain.tensors, allGradients)
			if err != nil {
				t.Fatal(err)
			}
			deferred := 0
			for s := 0; s < steps; s++ {
				x := images[s*batch*784 : (s+1)*batch*784]
				lossF, err := fused.Step(x, batch)
				if err != nil {
					t.Fatal(err)
				}
				deferred = len(fused.train[batch].deferred)
				copy(gr.inputData(), x)
				if err := gr.run(); err != nil {
					t.Fatal(err)
				}
				grads := make([][]float32, len(gr.params))
				for i, p := range gr.params {
					g, err := p.Grad()
					if err != nil {
						t.Fatal(err)
					}
					grads[i] = g.Data().([]float32)
				}
				plain.adam.Update(plain.w.Values, grads)
				if lossP := scalar(gr.lossVal); lossF != lossP {
					t.Fatalf("step %d: loss %v, plain graph %v", s+1, lossF, lossP)
				}
			}
			if want := map[string]int{"classic": 6, "conv": 4}[kind]; deferred != want {
				t.Fatalf("%d Linear weights deferred, want %d", deferred, want)
			}
			for i, p := range fused.w.Params {
				for _, c := range []struct {
					what      string
					got, want []float32
				}{
					{"weight", fused.w.Values[i], plain.w.Values[i]},
					{"m", fused.adam.M[i], plain.adam.M[i]},
					{"v", fused.adam.V[i], plain.adam.V[i]},
				} {
					for j := range c.got {
						if math.Float32bits(c.got[j]) != math.Float32bits(c.want[j]) {
							t.Fatalf("%s %s[%d] after %d steps: %v, plain graph %v", p.Name, c.what, j, steps, c.got[j], c.want[j])
						}
					}
				}
			}
		})
	}
}
