//go:build openblas

package trainer

// With the openblas build tag, Gorgonia and the trainer's ops multiply
// matrices with OpenBLAS through cgo (gonum's netlib binding) instead of
// gonum's pure-Go BLAS:
//
//	go build -tags openblas ./cmd/latent     (Debian: apt-get install libopenblas-dev)
//
// OpenBLAS is linked statically, so that the constructor below runs before
// OpenBLAS's own and can choose its kernels: OpenBLAS 0.3.21 (Debian 12)
// does not know CPUs newer than it and falls back to its Prescott (SSE3)
// kernels on them, ten times slower than its SkylakeX (AVX-512) ones. The
// constructor sets OPENBLAS_CORETYPE from the CPU's features unless it is
// set already.
//
// By default each OpenBLAS call runs on one thread, and the trainer shares
// the work among the pool's goroutines (workPool): gemm splits large products, and the
// convolutions share their samples. OpenBLAS's own threads spin while they
// wait for work, taking the CPU from the trainer's other loops and from
// other processes; on a busy machine this halves the CPU time of a step.
// With OPENBLAS_NUM_THREADS > 1 in the environment, OpenBLAS runs each call
// on that many threads instead, and the ops call it from one goroutine.

/*
#cgo LDFLAGS: -l:libopenblas.a -lm -lpthread
#include <stdlib.h>

void openblas_set_num_threads(int num_threads);
int openblas_get_num_threads(void);
char *openblas_get_corename(void);

__attribute__((constructor(101))) static void latent_openblas_coretype(void) {
	__builtin_cpu_init();
	if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
	    __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
	    __builtin_cpu_supports("avx512cd")) {
		setenv("OPENBLAS_CORETYPE", "SkylakeX", 0);
	} else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
		setenv("OPENBLAS_CORETYPE", "Haswell", 0);
	}
}
*/
import "C"

import (
	"fmt"
	"os"

	"gonum.org/v1/netlib/blas/netlib"
	G "gorgonia.org/gorgonia"
)

func init() {
	if os.Getenv("OPENBLAS_NUM_THREADS") == "" {
		C.openblas_set_num_threads(1)
	}
	if C.openblas_get_num_threads() > 1 {
		blasThreaded = true
	} else {
		gemmSplit = true
	}
	G.Use(netlib.Implementation{})
}

// gemmTransBSlow says that OpenBLAS's kernels run a convolution's small
// products with a transposed second operand at about half the rate of
// those without, so convGradWOp transposes dZ first. That holds for the
// SkylakeX kernels (on one core, 32×72×196 with Bᵀ: 45–61 GFLOPS; the same
// sums as 72×32×196 with no operand transposed: 91–126). The Haswell
// kernels run both at 53–63 GFLOPS, and round them differently, so with
// those (and any other) the trainer keeps the product it always had.
var gemmTransBSlow = C.GoString(C.openblas_get_corename()) == "SkylakeX"

// BLAS describes the BLAS that the trainer uses, for logs and benchmarks.
func BLAS() string {
	how := fmt.Sprintf("%d threads per call", int(C.openblas_get_num_threads()))
	if gemmSplit {
		how = fmt.Sprintf("1 thread per call, split among %d goroutines", workPool.size())
	}
	return fmt.Sprintf("OpenBLAS (%s kernels, %s)", C.GoString(C.openblas_get_corename()), how)
}
