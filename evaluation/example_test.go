package evaluation_test

import (
	"fmt"
	"math/rand/v2"

	"github.com/latent-ai/latent/evaluation"
)

func ExampleEvaluate() {
	// Codes of size 2 in three well-separated blobs, one per label.
	rng := rand.New(rand.NewPCG(1, 2))
	centres := [][2]float64{{0, 0}, {5, 0}, {0, 5}}
	split := func(n int) evaluation.Split {
		var s evaluation.Split
		for i := range n {
			l := i % 3
			c := centres[l]
			s.Codes = append(s.Codes, float32(c[0]+0.3*rng.NormFloat64()), float32(c[1]+0.3*rng.NormFloat64()))
			s.Labels = append(s.Labels, uint8(l))
		}
		return s
	}
	train, test := split(300), split(90)

	rep, err := evaluation.Evaluate(train, test, 2, evaluation.Options{K: 5, Clusters: 3, Restarts: 2, Seed: 1})
	if err != nil {
		fmt.Println(err)
		return
	}
	rep.TestMSE = 0.01 // from the reconstructions
	rep.PSNR = evaluation.PSNR(rep.TestMSE)
	fmt.Printf("k-NN (k=%d) accuracy: %.2f\n", rep.KNNK, rep.KNNAccuracy)
	fmt.Printf("linear probe accuracy: %.2f\n", rep.LinearProbeAccuracy)
	fmt.Printf("k-means accuracy: %.2f, NMI: %.2f\n", rep.KMeansAccuracy, rep.KMeansNMI)
	fmt.Printf("PSNR: %.1f dB\n", rep.PSNR)
	// Output:
	// k-NN (k=5) accuracy: 1.00
	// linear probe accuracy: 1.00
	// k-means accuracy: 1.00, NMI: 1.00
	// PSNR: 20.0 dB
}
