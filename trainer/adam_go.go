//go:build !openblas

package trainer

// adamKernel is the per-value Adam update: adamUpdate in pure-Go builds.
var adamKernel = adamUpdate

// fusedKernel is whether linearWeightStep runs: never in pure-Go builds.
var fusedKernel = false

// linearWeightStep is the fused weight-gradient and Adam kernel of the
// openblas build (adam_c.go); pure-Go builds have none and report false.
func linearWeightStep(x, dz []float32, n, in, out, r0, r1 int, p, m, v []float32, s adamStep) bool {
	return false
}

// linearWeightStepRef is the fused kernel's reference; with no kernel, it
// is never called.
func linearWeightStepRef(x, dz []float32, n, in, out, r0, r1 int, p, m, v []float32, s adamStep) {
	panic("trainer: no fused kernel in pure-Go builds")
}

// adamWidth is how many values the update computes at once.
const adamWidth = 1
