//go:build !openblas

package trainer

import (
	"fmt"
)

// BLAS describes the BLAS that the trainer uses, for logs and benchmarks.
func BLAS() string {
	return fmt.Sprintf("gonum (pure Go, %d goroutines)", workPool.size())
}

// gemmTransBSlow is false: convGradWOp keeps the products that gonum's
// gemm sums in the order the trainer has always had (see blas_openblas.go).
const gemmTransBSlow = false
