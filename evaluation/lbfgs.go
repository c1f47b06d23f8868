package evaluation

import (
	"errors"
	"math"

	"gonum.org/v1/gonum/floats"
)

// L-BFGS settings of minimizeLBFGS.
const (
	lbfgsMemory   = 10    // correction pairs kept
	lbfgsArmijo   = 1e-4  // sufficient-decrease constant of the line search
	lbfgsHalvings = 50    // most step halvings per line search
	lbfgsGradTol  = 1e-8  // stop when max |gradient| is below this
	lbfgsFuncTol  = 1e-12 // stop when the relative decrease is below this
)

// minimizeLBFGS minimises a smooth function from x, which it overwrites with
// the minimiser found, by at most maxIter iterations of L-BFGS with a
// backtracking (Armijo) line search. f returns the function value at x and
// sets grad, of the length of x, to its gradient; it must not keep either
// slice. The iterations are deterministic. It returns an error only when f
// gives a NaN or an infinity at the starting point.
//
// (gonum.org/v1/gonum/optimize would do, but it imports packages whose
// go.sum entries this module does not carry.)
func minimizeLBFGS(f func(grad, x []float64) float64, x []float64, maxIter int) error {
	dim := len(x)
	g := make([]float64, dim)
	fx := f(g, x)
	if math.IsNaN(fx) || math.IsInf(fx, 0) {
		return errors.New("L-BFGS: the function is not finite at the starting point")
	}

	// History of steps s = x' - x and gradient changes y = g' - g, oldest
	// first, and rho = 1/(y·s).
	var s, y [][]float64
	var rho []float64
	alpha := make([]float64, lbfgsMemory)
	dir := make([]float64, dim)
	xNew := make([]float64, dim)
	gNew := make([]float64, dim)
	sTmp := make([]float64, dim)
	yTmp := make([]float64, dim)

	for it := 0; it < maxIter; it++ {
		if floats.Norm(g, math.Inf(1)) < lbfgsGradTol {
			return nil
		}
		// Two-loop recursion: dir = -H·g.
		copy(dir, g)
		for i := len(s) - 1; i >= 0; i-- {
			alpha[i] = rho[i] * floats.Dot(s[i], dir)
			floats.AddScaled(dir, -alpha[i], y[i])
		}
		if last := len(s) - 1; last >= 0 {
			floats.Scale(floats.Dot(s[last], y[last])/floats.Dot(y[last], y[last]), dir)
		}
		for i := range s {
			beta := rho[i] * floats.Dot(y[i], dir)
			floats.AddScaled(dir, alpha[i]-beta, s[i])
		}
		floats.Scale(-1, dir)

		slope := floats.Dot(g, dir)
		if !(slope < 0) {
			// Not a descent direction: forget the history.
			s, y, rho = s[:0], y[:0], rho[:0]
			copy(dir, g)
			floats.Scale(-1, dir)
			slope = -floats.Dot(g, g)
		}
		step := 1.0
		if len(s) == 0 {
			// Without curvature information, take a first step of length 1.
			step = 1 / math.Sqrt(-slope)
		}

		// Backtracking line search for sufficient decrease.
		var fNew float64
		ok := false
		for range lbfgsHalvings {
			floats.AddScaledTo(xNew, x, step, dir)
			fNew = f(gNew, xNew)
			if fNew <= fx+lbfgsArmijo*step*slope {
				ok = true
				break
			}
			step /= 2
		}
		if !ok {
			// No decrease to be found at this precision.
			return nil
		}

		// Keep the new correction pair if it has positive curvature,
		// dropping the oldest when the memory is full.
		floats.SubTo(sTmp, xNew, x)
		floats.SubTo(yTmp, gNew, g)
		if sy := floats.Dot(sTmp, yTmp); sy > 0 {
			var sNew, yNew []float64
			if len(s) == lbfgsMemory {
				sNew, yNew = s[0], y[0]
				s, y, rho = s[1:], y[1:], rho[1:]
			} else {
				sNew, yNew = make([]float64, dim), make([]float64, dim)
			}
			copy(sNew, sTmp)
			copy(yNew, yTmp)
			s, y, rho = append(s, sNew), append(y, yNew), append(rho, 1/sy)
		}

		decrease := fx - fNew
		copy(x, xNew)
		copy(g, gNew)
		prev := fx
		fx = fNew
		if decrease <= lbfgsFuncTol*math.Max(1, math.Max(math.Abs(prev), math.Abs(fx))) {
			return nil
		}
	}
	return nil
}
