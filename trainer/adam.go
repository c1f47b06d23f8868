package trainer

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/latent-ai/latent/trainer/internal/kernels"
)

// Adam is the Adam optimizer with PyTorch's semantics (torch.optim.Adam,
// no weight decay, no amsgrad):
//
//	m ← β1·m + (1-β1)·g
//	v ← β2·v + (1-β2)·g²
//	p ← p - lr/(1-β1ᵗ) · m / (sqrt(v)/sqrt(1-β2ᵗ) + ε)
//
// with one difference: a moment that falls below the smallest normal
// float32 (about 1.2e-38) is stored as zero. Where a gradient stays zero (a
// dead ReLU unit, an always-black pixel), m decays by β1 a step and would
// otherwise spend some 150 steps as a subnormal number, on which the CPU's
// arithmetic is a hundred times slower: with enough such values, a training
// step past step 800 or so took 40% longer. What the flush changes in p is
// under 1e-33 (lr · 1.2e-38 / ε), far below a float32 rounding of any
// weight but the tiniest.
//
// It updates parameters in place, on the trainer's goroutines for large
// tensors, and allocates no tensor memory.
type Adam struct {
	LR, Beta1, Beta2, Eps float64
	// WeightDecay is AdamW's decoupled weight decay λ: each step scales
	// every value by 1-LR·λ before Adam's update, as PyTorch's AdamW
	// does (0: Adam, the notebook's optimizer).
	WeightDecay float64
	// Step is the number of steps taken (t above, before the next step).
	Step int
	// M and V are the first and second moments, one slice per parameter,
	// with the parameters' layout.
	M, V [][]float32
	// Scale, when not nil, holds a factor for each parameter: its step
	// size lr/(1-β1ᵗ) and its decay lr·λ are multiplied by it (in float32),
	// so that it learns at Scale[i]·LR, as a PyTorch parameter group with
	// its own lr does (within a float32 rounding of the step size). A
	// factor of 1 leaves the step's bits alone.
	Scale []float32
}

// NewAdam returns an optimizer for parameters of the given sizes with
// PyTorch's default betas (0.9, 0.999) and eps (1e-8).
func NewAdam(lr float64, sizes []int) *Adam {
	a := &Adam{LR: lr, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8}
	for _, n := range sizes {
		a.M = append(a.M, make([]float32, n))
		a.V = append(a.V, make([]float32, n))
	}
	return a
}

// Update takes one step: params[i] -= … using grads[i]. params and grads
// must have the sizes given to NewAdam.
func (a *Adam) Update(params, grads [][]float32) {
	s := a.begin()
	for i, p := range params {
		a.updateParam(s, i, p, grads[i])
	}
}

// updateParam applies step s to all of parameter i, p, with its gradient g,
// on the trainer's goroutines where it is large. Each value is updated alone,
// so the split does not change the result.
func (a *Adam) updateParam(s kernels.AdamStep, i int, p, g []float32) {
	s = a.stepOf(s, i)
	g = g[:len(p)]
	parallelFor(len(p), 1<<15, func(lo, hi int) { a.update(s, i, p[lo:hi], g[lo:hi], lo) })
}

// begin starts a step: it advances Step and returns the step's scalars, for
// update to use on every parameter.
func (a *Adam) begin() kernels.AdamStep {
	a.Step++
	bc1 := 1 - math.Pow(a.Beta1, float64(a.Step))
	bc2 := 1 - math.Pow(a.Beta2, float64(a.Step))
	return kernels.AdamStep{
		StepSize: float32(a.LR / bc1),
		// A multiplication by 1/sqrt(1-β2ᵗ) where PyTorch divides by
		// sqrt(1-β2ᵗ): a float rounding apart, and one division per value
		// fewer (a CPU has one divider, which both sqrt and division use).
		InvBC2Sqrt: float32(1 / math.Sqrt(bc2)),
		B1:         float32(a.Beta1),
		B2:         float32(a.Beta2),
		Eps:        float32(a.Eps),
		// lr·λ, 0 for Adam: the kernels scale by 1-lr·λ, which is then
		// exactly 1, so Adam's bits do not change.
		WeightDecay: float32(a.LR * a.WeightDecay),
	}
}

// stepOf is step s for parameter i: s with its step size and decay
// multiplied by Scale[i], where that is not 1.
func (a *Adam) stepOf(s kernels.AdamStep, i int) kernels.AdamStep {
	if i < len(a.Scale) && a.Scale[i] != 1 {
		s.StepSize *= a.Scale[i]
		s.WeightDecay *= a.Scale[i]
	}
	return s
}

// update applies step s to the values of parameter i from offset off: p and
// g are the parameter's and its gradient's values [off, off+len(p)).
func (a *Adam) update(s kernels.AdamStep, i int, p, g []float32, off int) {
	end := off + len(p)
	kernels.Adam(p, g[:len(p)], a.M[i][off:end], a.V[i][off:end], s)
}

// fusedKernel is whether deferredLinear.step uses kernels.LinearWeightStep
// where the CPU has it (tests turn it off to check the band path).
var fusedKernel = kernels.Vector

// ParseLRScale reads the learning-rate factors of Config.LRScale from
// their command-line form, NAME=F pairs separated by commas, such as
// "encoder.7.weight=0.1,decoder.2=0.3". An empty string gives nil. It does
// not check the names, which depend on the model (Config.check does).
func ParseLRScale(s string) (map[string]float64, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	m := map[string]float64{}
	for _, pair := range strings.Split(s, ",") {
		name, v, ok := strings.Cut(strings.TrimSpace(pair), "=")
		if !ok || name == "" {
			return nil, fmt.Errorf("learning-rate factor %q: want NAME=FACTOR, such as encoder.7.weight=0.1", pair)
		}
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || !(f > 0) || math.IsInf(f, 0) {
			return nil, fmt.Errorf("learning-rate factor %q: want a positive number after the =", pair)
		}
		if _, dup := m[name]; dup {
			return nil, fmt.Errorf("learning-rate factor for %s given twice", name)
		}
		m[name] = f
	}
	return m, nil
}

// LRScaleString is ParseLRScale's form of m, its names in order ("" for
// none).
func LRScaleString(m map[string]float64) string {
	var parts []string
	for _, name := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, name+"="+strconv.FormatFloat(m[name], 'g', -1, 64))
	}
	return strings.Join(parts, ",")
}
