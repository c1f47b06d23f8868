//go:build cgo

package trainer

// spareProc is whether the pool keeps a processor to spare (see workPool):
// in a build with cgo, whose kernels and BLAS are C calls.
const spareProc = true
