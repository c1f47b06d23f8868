package latentstats_test

import (
	"fmt"
	"math/rand/v2"

	"github.com/latent-ai/latent/pca"
)

func Example() {
	// Codes of size 2 spread along the diagonal, with a little noise across.
	rng := rand.New(rand.NewPCG(1, 2))
	const n = 10_000
	codes := make([]float32, 0, 2*n)
	for i := 0; i < n; i++ {
		a, b := 2*rng.NormFloat64(), 0.1*rng.NormFloat64()
		codes = append(codes, float32(a+b), float32(a-b))
	}
	s, err := pca.Fit(codes, n, 2)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("variances along the principal directions: %.1f %.2f\n", s.Eigenvalues[0], s.Eigenvalues[1])
	fmt.Printf("first direction: [%.2f %.2f]\n", s.Eigenvectors[0][0], s.Eigenvectors[0][1])

	// New codes from the fitted Gaussian.
	fmt.Println(len(s.Sample(rng, 3)), "samples")
	// Output:
	// variances along the principal directions: 8.1 0.02
	// first direction: [0.71 0.71]
	// 3 samples
}
