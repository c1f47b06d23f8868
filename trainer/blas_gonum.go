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
