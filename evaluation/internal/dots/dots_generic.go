//go:build !(cgo && amd64)

package dots

// Without cgo on amd64 there are no vector kernels: the Go kernel runs.

func vectorKernels() []Kernel { return nil }
