//go:build !openblas

package trainer

import (
	"fmt"
	"runtime"
)

// BLAS describes the BLAS that the trainer uses, for logs and benchmarks.
func BLAS() string {
	return fmt.Sprintf("gonum (pure Go, %d goroutines)", runtime.GOMAXPROCS(0))
}

// gemmTransBSlow is false: convGradWOp keeps the products that gonum's
// gemm sums in the order the trainer has always had (see blas_openblas.go).
const gemmTransBSlow = false
