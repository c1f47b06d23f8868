//go:build openblas

package trainer

// The openblas build runs the element-wise loops that follow a Linear
// layer's matrix products in C, 16 values at a time with AVX-512 (masked
// loads and stores for the last few): the bias and ReLU after the forward
// product, the ReLU's gradient and the bias gradient's column sums after
// the backward one. Each is exact (a select, or one addition per value in
// the Go loop's order), so the results are the Go loops' to the bit
// (TestElementwiseKernels).

/*
#include <immintrin.h>

static inline __mmask16 latent_tail(long left) {
	return left >= 16 ? 0xffff : (__mmask16)((1u << left) - 1);
}

// latent_bias_relu sets v[j] = v[j] + b[j] where that is > 0 or NaN, else +0.
__attribute__((target("avx512f")))
static void latent_bias_relu(float *v, const float *b, long n) {
	for (long j = 0; j < n; j += 16) {
		__mmask16 k = latent_tail(n - j);
		__m512 x = _mm512_add_ps(_mm512_maskz_loadu_ps(k, v + j), _mm512_maskz_loadu_ps(k, b + j));
		__mmask16 keep = _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_NLE_UQ);
		_mm512_mask_storeu_ps(v + j, k, _mm512_maskz_mov_ps(keep, x));
	}
}

// latent_relu_grad sets dz[j] = dy[j] where y[j] > 0 or NaN, else +0.
__attribute__((target("avx512f")))
static void latent_relu_grad(float *dz, const float *y, const float *dy, long n) {
	for (long j = 0; j < n; j += 16) {
		__mmask16 k = latent_tail(n - j);
		__mmask16 keep = _mm512_cmp_ps_mask(_mm512_maskz_loadu_ps(k, y + j), _mm512_setzero_ps(), _CMP_NLE_UQ);
		_mm512_mask_storeu_ps(dz + j, k, _mm512_maskz_mov_ps(keep, _mm512_maskz_loadu_ps(k, dy + j)));
	}
}

// latent_add_rows adds rows rows of v (n values each, ld apart), in order,
// to s: s[j] += v[r][j].
__attribute__((target("avx512f")))
static void latent_add_rows(float *s, const float *v, long rows, long n, long ld) {
	for (long j = 0; j < n; j += 16) {
		__mmask16 k = latent_tail(n - j);
		__m512 acc = _mm512_maskz_loadu_ps(k, s + j);
		for (long r = 0; r < rows; r++) acc = _mm512_add_ps(acc, _mm512_maskz_loadu_ps(k, v + r * ld + j));
		_mm512_mask_storeu_ps(s + j, k, acc);
	}
}
*/
import "C"

// elementwiseC is whether the CPU runs the kernels above.
var elementwiseC = adamWidth == 16

// biasReLU32 sets v[j] = max(v[j]+b[j], 0), with NaN kept and -0 made +0.
func biasReLU32(v, b []float32) {
	if len(v) == 0 {
		return
	}
	if !elementwiseC {
		biasReLUGo(v, b)
		return
	}
	_ = b[len(v)-1]
	C.latent_bias_relu((*C.float)(&v[0]), (*C.float)(&b[0]), C.long(len(v)))
}

// reluGrad32 sets dz[j] = dy[j] where y[j] > 0 or is NaN, else 0.
func reluGrad32(dz, y, dy []float32) {
	if len(dz) == 0 {
		return
	}
	if !elementwiseC {
		activationGradSerial(actReLU, dz, y, dy)
		return
	}
	_, _ = y[len(dz)-1], dy[len(dz)-1]
	C.latent_relu_grad((*C.float)(&dz[0]), (*C.float)(&y[0]), (*C.float)(&dy[0]), C.long(len(dz)))
}

// addRows32 adds rows rows of v, len(s) values each and ld apart, to s, a
// row at a time.
func addRows32(s, v []float32, rows, ld int) {
	if len(s) == 0 || rows == 0 {
		return
	}
	if !elementwiseC {
		addRowsGo(s, v, rows, ld)
		return
	}
	_ = v[(rows-1)*ld+len(s)-1]
	C.latent_add_rows((*C.float)(&s[0]), (*C.float)(&v[0]), C.long(rows), C.long(len(s)), C.long(ld))
}
