package evaluation

import (
	"fmt"
	"math"
	"runtime"
	"sync"
	"sync/atomic"

	"gonum.org/v1/gonum/floats"
)

// ProbeL2 is the L2 penalty on the weights (not the biases) of the linear
// probe: the loss is the mean cross-entropy plus ProbeL2/2·‖W‖².
const ProbeL2 = 1e-4

// probeMaxIterations caps the L-BFGS iterations of the linear probe.
const probeMaxIterations = 500

// LinearProbeAccuracy returns the test accuracy of a linear probe: a
// multinomial logistic regression (softmax with biases, L2 penalty ProbeL2
// on the weights) fitted on the training codes and scored on the test codes.
//
// trainCodes holds len(trainLabels) codes of size d and testCodes holds
// len(testLabels) codes of size d, both row-major. Both sets are
// standardised with the mean and standard deviation of each coordinate of
// the training codes (a constant coordinate is only centred). The classes
// are the labels present in the training set; a test code whose label is
// not among them is always misclassified. It is an error for either set to
// be empty or for a code to hold a NaN or an infinity.
//
// The fit starts from zero weights and runs L-BFGS for at most
// probeMaxIterations iterations, so it is deterministic; the loss and
// gradient are summed over fixed blocks of training codes in parallel and
// the blocks added in order, so the result does not depend on GOMAXPROCS.
func LinearProbeAccuracy(trainCodes []float32, trainLabels []uint8, testCodes []float32, testLabels []uint8, d int) (float64, error) {
	n, err := checkCodes("train", trainCodes, trainLabels, d)
	if err != nil {
		return 0, fmt.Errorf("linear probe: %w", err)
	}
	m, err := checkCodes("test", testCodes, testLabels, d)
	if err != nil {
		return 0, fmt.Errorf("linear probe: %w", err)
	}

	// Number the classes present in the training set in increasing order.
	var present [256]bool
	for _, l := range trainLabels {
		present[l] = true
	}
	var classOf [256]int // class of each present label
	var labelOf []uint8  // label of each class
	for l, ok := range present {
		if ok {
			classOf[l] = len(labelOf)
			labelOf = append(labelOf, uint8(l))
		}
	}
	c := len(labelOf)

	// Standardise with the statistics of the training codes.
	mean := make([]float64, d)
	std := make([]float64, d)
	for i := range n {
		for j := range d {
			mean[j] += float64(trainCodes[i*d+j])
		}
	}
	floats.Scale(1/float64(n), mean)
	for i := range n {
		for j := range d {
			t := float64(trainCodes[i*d+j]) - mean[j]
			std[j] += t * t
		}
	}
	for j := range std {
		std[j] = math.Sqrt(std[j] / float64(n))
		if std[j] == 0 {
			std[j] = 1
		}
	}
	standardise := func(codes []float32) []float64 {
		x := toFloat64(codes)
		for i := range x {
			x[i] = (x[i] - mean[i%d]) / std[i%d]
		}
		return x
	}

	w := make([]float64, c*(d+1))
	if c > 1 {
		y := make([]int, n)
		for i, l := range trainLabels {
			y[i] = classOf[l]
		}
		p := newSoftmaxProblem(standardise(trainCodes), y, d, c, ProbeL2)
		if err := minimizeLBFGS(p.evaluate, w, probeMaxIterations); err != nil {
			return 0, fmt.Errorf("linear probe: fitting the softmax regression: %w", err)
		}
	}

	x := standardise(testCodes)
	z := make([]float64, c)
	correct := 0
	for i := range m {
		logits(z, w, x[i*d:(i+1)*d])
		if labelOf[floats.MaxIdx(z)] == testLabels[i] {
			correct++
		}
	}
	return float64(correct) / float64(m), nil
}

// logits sets z[j] = W_j·x + b_j for the c = len(z) classes, where the
// parameters w hold, for each class, d = len(x) weights then a bias.
func logits(z, w, x []float64) {
	d := len(x)
	for j := range z {
		row := w[j*(d+1) : (j+1)*(d+1)]
		z[j] = floats.Dot(row[:d], x) + row[d]
	}
}

// softmaxProblem is the loss of a softmax regression of the classes y of
// the n rows of x (n×d, row-major), with parameters laid out as in logits.
type softmaxProblem struct {
	x      []float64
	y      []int
	d, c   int
	lambda float64

	blockLoss []float64   // loss summed over each block of rows
	blockGrad [][]float64 // gradient summed over each block of rows
}

// probeBlock is the number of rows per block of a softmaxProblem.
const probeBlock = 2048

func newSoftmaxProblem(x []float64, y []int, d, c int, lambda float64) *softmaxProblem {
	blocks := (len(y) + probeBlock - 1) / probeBlock
	p := &softmaxProblem{
		x: x, y: y, d: d, c: c, lambda: lambda,
		blockLoss: make([]float64, blocks),
		blockGrad: make([][]float64, blocks),
	}
	for b := range p.blockGrad {
		p.blockGrad[b] = make([]float64, c*(d+1))
	}
	return p
}

// evaluate returns the loss at w and sets grad to its gradient.
func (p *softmaxProblem) evaluate(grad, w []float64) float64 {
	blocks := len(p.blockLoss)
	workers := min(runtime.GOMAXPROCS(0), blocks)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			z := make([]float64, p.c)
			for {
				b := int(next.Add(1)) - 1
				if b >= blocks {
					return
				}
				p.blockLoss[b] = p.block(p.blockGrad[b], z, w, b)
			}
		}()
	}
	wg.Wait()

	n := float64(len(p.y))
	loss := 0.0
	clear(grad)
	for b := range blocks {
		loss += p.blockLoss[b]
		floats.Add(grad, p.blockGrad[b])
	}
	loss /= n
	floats.Scale(1/n, grad)
	// L2 penalty on the weights, not the biases.
	d := p.d
	for j := range p.c {
		row := w[j*(d+1) : j*(d+1)+d]
		loss += p.lambda / 2 * floats.Dot(row, row)
		floats.AddScaled(grad[j*(d+1):j*(d+1)+d], p.lambda, row)
	}
	return loss
}

// block returns the cross-entropy summed over the rows of block b and sets
// g to its gradient; z is scratch of length c.
func (p *softmaxProblem) block(g, z, w []float64, b int) float64 {
	clear(g)
	d := p.d
	loss := 0.0
	for i := b * probeBlock; i < min((b+1)*probeBlock, len(p.y)); i++ {
		x := p.x[i*d : (i+1)*d]
		logits(z, w, x)
		// Stable softmax: subtract the largest logit.
		zmax := floats.Max(z)
		yi := p.y[i]
		zy := z[yi] - zmax
		sum := 0.0
		for j, v := range z {
			z[j] = math.Exp(v - zmax)
			sum += z[j]
		}
		loss += math.Log(sum) - zy
		for j := range z {
			r := z[j] / sum
			if j == yi {
				r--
			}
			row := g[j*(d+1) : (j+1)*(d+1)]
			floats.AddScaled(row[:d], r, x)
			row[d] += r
		}
	}
	return loss
}
