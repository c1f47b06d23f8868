//go:build !openblas

package trainer

// adamKernel is the per-value Adam update: adamUpdate in pure-Go builds.
var adamKernel = adamUpdate
