package trainer

import (
	"math/rand/v2"
	"testing"

	"github.com/latent-ai/latent/models"
)

// BenchmarkStep times Trainer.Step on the real-size models at the notebook's
// batch of 64, on random images, and reports samples/s and allocations per
// step. bench/go_vs_torch.sh compares it with PyTorch.
func BenchmarkStep(b *testing.B) {
	const batch = 64
	for _, kind := range []string{"classic", "conv"} {
		b.Run(kind, func(b *testing.B) {
			arch, err := models.New(kind, models.DefaultBottleneck)
			if err != nil {
				b.Fatal(err)
			}
			t, err := New(DefaultConfig(arch))
			if err != nil {
				b.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(1, 2))
			images := make([]float32, batch*784)
			for i := range images {
				images[i] = rng.Float32()
			}
			// Warm up: build the graph and let the first steps allocate.
			for i := 0; i < 3; i++ {
				if _, err := t.Step(images, batch); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := t.Step(images, batch); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "samples/s")
		})
	}
}
