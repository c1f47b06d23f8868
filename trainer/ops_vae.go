package trainer

import (
	"fmt"
	"math"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// gaussOp is the bottleneck of a variational model: its two Linear heads
// and the reparameterisation, in one op. From h [n, in] (the encoder's
// output) and the heads' weights Wμ, Wσ [in, b] (the trainer's layout) and
// biases bμ, bσ [b],
//
//	μ = h·Wμ + bμ,  log σ² = h·Wσ + bσ,  z = μ + exp(½·log σ²)·ε
//
// with ε [n, b] the noise the trainer draws before each run (eps), or z = μ
// without sample. The op keeps μ and log σ² of its last run, and their
// KL divergence from N(0, I), summed over a code and averaged over the
// batch:
//
//	KL = −½ Σ (1 + log σ² − μ² − σ²) / n
//
// Its backward pass (SymDiff) takes the loss to be the reconstruction loss
// plus Beta·KL: the KL term's gradient is added to what comes from z, so
// the graph's loss node stays the reconstruction loss and the trainer adds
// Beta·KL to the value it reports. That holds for a loss gradient of 1, as
// the graph's root has.
type gaussOp struct {
	opBase
	n, in, b int
	// sample says whether z is drawn (training, the ELBO) or μ (the code).
	sample bool
	// beta weighs the KL term in the gradient.
	beta float64
	// eps is ε, n·b values, drawn by the trainer before a run with sample.
	eps []float64
	// mu and logVar hold μ and log σ² of the last run ([]T of n·b values).
	mu, logVar any
	// kl is the KL term of the last run.
	kl float64
}

func newGaussOp(h, wMu, bMu, wLv, bLv *G.Node) (*gaussOp, error) {
	hs, ws := h.Shape(), wMu.Shape()
	if hs.Dims() != 2 || ws.Dims() != 2 || hs[1] != ws[0] || !ws.Eq(wLv.Shape()) ||
		bMu.Shape().TotalSize() != ws[1] || bLv.Shape().TotalSize() != ws[1] {
		return nil, fmt.Errorf("variational heads: h %v, W %v and %v, b %v and %v", hs, ws, wLv.Shape(), bMu.Shape(), bLv.Shape())
	}
	n, in, b := hs[0], ws[0], ws[1]
	return &gaussOp{opBase: newBase("gauss", tensor.Shape{n, b}, h, wMu, bMu, wLv, bLv), n: n, in: in, b: b,
		eps: make([]float64, n*b)}, nil
}

func (op *gaussOp) Do(in ...G.Value) (G.Value, error) {
	return do(&op.opBase, in, op, gaussForward[float32], gaussForward[float64])
}

func gaussForward[T float](op *gaussOp, z []T, a [6][]T) {
	h, wMu, bMu, wLv, bLv := a[0], a[1], a[2], a[3], a[4]
	mu := scratch[T](&op.mu, op.n*op.b)
	lv := scratch[T](&op.logVar, op.n*op.b)
	gemm(false, false, op.n, op.b, op.in, h, op.in, wMu, op.b, 0, mu, op.b)
	gemm(false, false, op.n, op.b, op.in, h, op.in, wLv, op.b, 0, lv, op.b)
	var kl float64
	for i := 0; i < op.n; i++ {
		for j := 0; j < op.b; j++ {
			k := i*op.b + j
			mu[k] += bMu[j]
			lv[k] += bLv[j]
			m, v := float64(mu[k]), float64(lv[k])
			kl += 1 + v - m*m - math.Exp(v)
			z[k] = mu[k]
			if op.sample {
				z[k] = mu[k] + T(math.Exp(0.5*v))*T(op.eps[k])
			}
		}
	}
	op.kl = -0.5 * kl / float64(op.n)
}

// The input h needs a gradient unless it is the graph's input; the
// parameters always do.
func (op *gaussOp) DiffWRT(int) []bool { return []bool{true, true, true, true, true} }

// SymDiff builds, from dz:
//
//	dμ = dz + β·μ/n                                  (gaussGradOp)
//	dlog σ² = dz·½·σ·ε + β·½·(σ² − 1)/n             (gaussGradOp)
//	dh = dμ·Wμᵀ + dlog σ²·Wσᵀ                        (two matMulOps)
//	dWμ = hᵀ·dμ, dWσ = hᵀ·dlog σ², and the biases' column sums.
func (op *gaussOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	h, wMu, wLv := inputs[0], inputs[1], inputs[3]
	dMu, err := G.ApplyOp(&gaussGradOp{opBase: newBase("gauss-grad-mu", output.Shape().Clone(), grad), g: op}, grad)
	if err != nil {
		return nil, err
	}
	dLv, err := G.ApplyOp(&gaussGradOp{opBase: newBase("gauss-grad-logvar", output.Shape().Clone(), grad), g: op, logVar: true}, grad)
	if err != nil {
		return nil, err
	}
	grads := make(G.Nodes, 5)
	part, err := applyMatMul(dMu, wMu, false, true, nil)
	if err != nil {
		return nil, err
	}
	if grads[0], err = applyMatMulAdd(dLv, wLv, part); err != nil {
		return nil, err
	}
	for i, d := range []*G.Node{dMu, dLv} {
		if grads[1+2*i], err = applyMatMul(h, d, true, false, nil); err != nil {
			return nil, err
		}
		if grads[2+2*i], err = G.ApplyOp(newBiasGradOp(d, op.n, op.b, 1), d); err != nil {
			return nil, err
		}
	}
	return grads, nil
}

// gaussGradOp is dμ (or, with logVar, dlog σ²) of a gaussOp's backward
// pass, from dz and what the forward pass kept (see gaussOp).
type gaussGradOp struct {
	opBase
	g      *gaussOp
	logVar bool
}

func (op *gaussGradOp) Do(in ...G.Value) (G.Value, error) {
	return do(&op.opBase, in, op, gaussGrad[float32], gaussGrad[float64])
}

func gaussGrad[T float](op *gaussGradOp, d []T, a [6][]T) {
	dz, g := a[0], op.g
	k := g.beta / float64(g.n)
	if !op.logVar {
		mu := g.mu.([]T)
		for i := range d {
			d[i] = dz[i] + T(k*float64(mu[i]))
		}
		return
	}
	lv := g.logVar.([]T)
	for i := range d {
		v := float64(lv[i])
		var fromZ T
		if g.sample {
			fromZ = dz[i] * T(0.5*math.Exp(0.5*v)*g.eps[i])
		}
		d[i] = fromZ + T(0.5*k*(math.Exp(v)-1))
	}
}

// applyMatMulAdd adds the node c + a·bᵀ, for a [m, k], b [n, k] and c
// [m, n] (c's values are copied, not changed).
func applyMatMulAdd(a, b, c *G.Node) (*G.Node, error) {
	m, k := rowsCols(a.Shape())
	n, k2 := rowsCols(b.Shape())
	if k != k2 || c.Shape().TotalSize() != m*n {
		return nil, fmt.Errorf("matmul-add: %v, %v and %v do not match", a.Shape(), b.Shape(), c.Shape())
	}
	op := &matMulAddOp{opBase: newBase("matmul-add", c.Shape().Clone(), a, b, c), m: m, n: n, k: k}
	return G.ApplyOp(op, a, b, c)
}

// matMulAddOp is C + A·Bᵀ into its own output (see applyMatMulAdd).
type matMulAddOp struct {
	opBase
	m, n, k int
}

func (op *matMulAddOp) Do(in ...G.Value) (G.Value, error) {
	return do(&op.opBase, in, op, matMulAdd[float32], matMulAdd[float64])
}

func matMulAdd[T float](op *matMulAddOp, y []T, a [6][]T) {
	copy(y, a[2])
	gemm(false, true, op.m, op.n, op.k, a[0], op.k, a[1], op.k, 1, y, op.n)
}
