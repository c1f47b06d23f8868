package trainer

import (
	"runtime"
	"sync"

	"gonum.org/v1/gonum/blas"
	G "gorgonia.org/gorgonia"
)

// float is the element type of the trainer's custom ops: float32 for
// training, float64 for the finite-difference gradient test.
type float interface{ ~float32 | ~float64 }

// gemm computes C = op(A)·op(B) + beta·C with the BLAS that Gorgonia uses
// (G.WhichBLAS: gonum's pure-Go BLAS by default, OpenBLAS with the openblas
// build tag), where op(X) is X or Xᵀ. C is m×n, op(A) m×k, op(B) k×n, all
// row-major with leading dimensions lda, ldb and ldc.
func gemm[T float](transA, transB bool, m, n, k int, a []T, lda int, b []T, ldb int, beta T, c []T, ldc int) {
	if m == 0 || n == 0 {
		return
	}
	tA, tB := blas.NoTrans, blas.NoTrans
	if transA {
		tA = blas.Trans
	}
	if transB {
		tB = blas.Trans
	}
	switch a := any(a).(type) {
	case []float32:
		G.WhichBLAS().Sgemm(tA, tB, m, n, k, 1, a, lda, any(b).([]float32), ldb, float32(beta), any(c).([]float32), ldc)
	case []float64:
		G.WhichBLAS().Dgemm(tA, tB, m, n, k, 1, a, lda, any(b).([]float64), ldb, float64(beta), any(c).([]float64), ldc)
	}
}

// parallelFor calls body(lo, hi) on contiguous parts of [0, n) that cover
// it, concurrently on up to GOMAXPROCS goroutines when n is at least grain.
// Each index is handled by exactly one call, so bodies that write only to
// the indices they are given stay deterministic.
func parallelFor(n, grain int, body func(lo, hi int)) {
	workers := min(runtime.GOMAXPROCS(0), n/max(grain, 1))
	if workers <= 1 {
		body(0, n)
		return
	}
	var wg sync.WaitGroup
	wg.Add(workers - 1)
	for w := 1; w < workers; w++ {
		lo, hi := w*n/workers, (w+1)*n/workers
		go func() {
			defer wg.Done()
			body(lo, hi)
		}()
	}
	body(0, n/workers)
	wg.Wait()
}
