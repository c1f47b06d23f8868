package evaluation_test

import (
	"fmt"
	"math"
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

func ExamplePrecisionRecall() {
	// Real points on a ring; fake ones on the same ring, and on half of it:
	// those cover half the real points, and a few just past its ends.
	const n, d = 200, 2
	ring := func(n int, arc float64) []float32 {
		x := make([]float32, 0, n*d)
		for i := range n {
			t := arc * float64(i) / float64(n)
			x = append(x, float32(math.Cos(t)), float32(math.Sin(t)))
		}
		return x
	}
	real := ring(n, 2*math.Pi)
	for _, fake := range []struct {
		name string
		x    []float32
	}{{"the whole ring", ring(n, 2*math.Pi)}, {"half of it", ring(n, math.Pi)}} {
		p, r, err := evaluation.PrecisionRecall(real, fake.x, n, n, d, 3)
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Printf("%s: precision %.2f, recall %.2f\n", fake.name, p, r)
	}
	// Output:
	// the whole ring: precision 1.00, recall 1.00
	// half of it: precision 1.00, recall 0.52
}

func ExamplePixelKNN() {
	// Four training images of 2 pixels, two dark (label 0), two bright (1).
	train := []uint8{0, 10, 20, 0, 250, 240, 230, 255}
	labels := []uint8{0, 0, 1, 1}
	c, err := evaluation.NewPixelKNN(train, labels, 2, 1)
	if err != nil {
		fmt.Println(err)
		return
	}
	// Queries as the models give them: values in [0, 1].
	got, err := c.Classify([]float32{0.05, 0.02, 0.9, 0.95}, 2)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(got, evaluation.ClassShares(got, c.Classes()))
	// Output: [0 1] [0.5 0.5]
}
