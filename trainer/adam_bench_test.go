package trainer

import (
	"testing"

	"github.com/latent-ai/latent/models"
)

// BenchmarkAdam times one Adam step over the classic model's parameters
// and reports the memory traffic it implies (4 arrays read, 3 written).
func BenchmarkAdam(b *testing.B) {
	arch, err := models.New("classic", models.DefaultBottleneck)
	if err != nil {
		b.Fatal(err)
	}
	t, err := New(DefaultConfig(arch))
	if err != nil {
		b.Fatal(err)
	}
	params := t.w.Values
	grads := make([][]float32, len(params))
	sizes := make([]int, len(params))
	total := 0
	for i, p := range params {
		grads[i] = make([]float32, len(p))
		for j := range grads[i] {
			grads[i][j] = float32(j%17-8) * 1e-3
		}
		sizes[i] = len(p)
		total += len(p)
	}
	a := NewAdam(1e-3, sizes)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		a.Update(params, grads)
	}
	b.ReportMetric(float64(7*4*total)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
}
