package trainer

import (
	"fmt"
	"testing"

	"github.com/latent-ai/latent/trainer/internal/kernels"
)

// BenchmarkGemm times gemm on the float32 products of a training step of
// the notebook's models at batch 64, and reports GFLOPS. Its first case,
// peak, is a large square product: its GFLOPS are this machine's measured
// fp32 peak through the trainer's gemm (GOMAXPROCS goroutines), which
// bench/go_vs_torch.sh compares a training step with. The products that
// gemm can run on the trainer's own kernel (kernels.Sgemm) run twice: on
// the BLAS ("blas") and on the kernel ("own").
func BenchmarkGemm(b *testing.B) {
	b.Logf("BLAS: %s", BLAS())
	shapes := []struct {
		name           string
		transA, transB bool
		m, n, k        int
	}{
		{"peak/square", false, false, 1536, 1536, 1536},
		{"classic/linear-784-512", false, false, 64, 512, 784},
		{"classic/linear-784-512-dx", false, true, 64, 784, 512},
		{"classic/linear-784-512-dW", true, false, 784, 512, 64},
		{"classic/linear-512-512", false, false, 64, 512, 512},
		{"conv/linear-1568-128", false, false, 64, 128, 1568},
		{"conv/linear-1568-128-dW", true, false, 1568, 128, 64},
		{"conv/conv2-sample", false, false, 32, 196, 144},
		{"conv/conv2-sample-dW", false, true, 32, 144, 196},
		{"conv/conv2-sample-dx", true, false, 144, 196, 32},
		{"conv/conv1-sample", false, false, 16, 784, 9},
	}
	for _, s := range shapes {
		lda, ldb := s.k, s.n
		if s.transA {
			lda = s.m
		}
		if s.transB {
			ldb = s.k
		}
		a, x, c := make([]float32, s.m*s.k), make([]float32, s.k*s.n), make([]float32, s.m*s.n)
		for i := range a {
			a[i] = float32(i%13) * 0.1
		}
		for i := range x {
			x[i] = float32(i%7) * 0.1
		}
		for _, own := range []bool{false, true} {
			if own && (!kernels.Vector || s.transA) {
				continue
			}
			which := "blas"
			if own {
				which = "own"
			}
			b.Run(fmt.Sprintf("%s-%dx%dx%d/%s", s.name, s.m, s.n, s.k, which), func(b *testing.B) {
				defer func(v bool) { ownGemm = v }(ownGemm)
				ownGemm = own
				for i := 0; i < b.N; i++ {
					gemm(s.transA, s.transB, s.m, s.n, s.k, a, lda, x, ldb, 0, c, s.n)
				}
				b.ReportMetric(float64(2*s.m*s.n*s.k)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOPS")
			})
		}
	}
}
