//go:build openblas

package trainer

// The openblas build links C already, so its Adam runs the per-value update
// in C, 16 values at a time with AVX-512 or 8 with AVX2 where the CPU has
// them: Go computes one value at a time and waits on the CPU's divider for
// a square root and a division per value. The arithmetic is adamUpdate's,
// in the same order, rounded the same way and without fused multiply-adds
// (the pragma), with the same flush of subnormal moments to zero, so every
// build gives the same bits (TestAdamKernelsAgree).
//
// With AVX-512 it also fuses a Linear layer's weight gradient with Adam
// (linearWeightStep): it computes dW a block at a time in registers and
// updates the weight from them, so the gradient is never written out to
// memory and read back. Its multiply-adds are explicit fused ones, each
// value summed over the batch in order: the bits of its scalar reference
// (latent_linear_dw_adam_ref, TestLinearWeightStep) on every CPU with
// AVX-512, whichever kernels OpenBLAS runs. They may differ from OpenBLAS's
// gemm by rounding (TestDeferredLinearSameSteps states the tolerance).

/*
#pragma GCC optimize("fp-contract=off")
#include <float.h>
#include <immintrin.h>
#include <math.h>

typedef struct {
	float step_size, inv_bc2_sqrt, b1, b2, eps;
} latent_adam_hyper;

// latent_adam_scalar updates values [j, n) one at a time.
static void latent_adam_scalar(float *p, const float *g, float *m, float *v, long j, long n, latent_adam_hyper h) {
	for (; j < n; j++) {
		float gj = g[j];
		float mj = h.b1 * m[j] + (1 - h.b1) * gj;
		float vj = h.b2 * v[j] + (1 - h.b2) * gj * gj;
		if (mj < FLT_MIN && mj > -FLT_MIN) mj = 0;
		if (vj < FLT_MIN) vj = 0;
		m[j] = mj;
		v[j] = vj;
		float denom = __builtin_sqrtf(vj) * h.inv_bc2_sqrt + h.eps;
		p[j] -= h.step_size * mj / denom;
	}
}

// latent_adam512 holds Adam's scalars of one step in vector registers.
typedef struct {
	__m512 ss, ib, eps, b1, b2, c1, c2, tiny;
} latent_adam512;

__attribute__((target("avx512f")))
static inline latent_adam512 latent_adam512_init(latent_adam_hyper h) {
	latent_adam512 c;
	c.ss = _mm512_set1_ps(h.step_size);
	c.ib = _mm512_set1_ps(h.inv_bc2_sqrt);
	c.eps = _mm512_set1_ps(h.eps);
	c.b1 = _mm512_set1_ps(h.b1);
	c.b2 = _mm512_set1_ps(h.b2);
	c.c1 = _mm512_set1_ps(1 - h.b1);
	c.c2 = _mm512_set1_ps(1 - h.b2);
	c.tiny = _mm512_set1_ps(FLT_MIN);
	return c;
}

// latent_adam512_step updates the values of p, m and v in the lanes of k
// (up to 16 from the pointers) with the gradients gj.
__attribute__((target("avx512f")))
static inline void latent_adam512_step(const latent_adam512 *c, float *p, float *m, float *v, __m512 gj, __mmask16 k) {
	__m512 mj = _mm512_add_ps(_mm512_mul_ps(c->b1, _mm512_maskz_loadu_ps(k, m)), _mm512_mul_ps(c->c1, gj));
	__m512 vj = _mm512_add_ps(_mm512_mul_ps(c->b2, _mm512_maskz_loadu_ps(k, v)), _mm512_mul_ps(_mm512_mul_ps(c->c2, gj), gj));
	// Zero where |m| < FLT_MIN or v < FLT_MIN (false for NaN).
	mj = _mm512_maskz_mov_ps(~_mm512_cmp_ps_mask(_mm512_abs_ps(mj), c->tiny, _CMP_LT_OQ), mj);
	vj = _mm512_maskz_mov_ps(~_mm512_cmp_ps_mask(vj, c->tiny, _CMP_LT_OQ), vj);
	_mm512_mask_storeu_ps(m, k, mj);
	_mm512_mask_storeu_ps(v, k, vj);
	__m512 denom = _mm512_add_ps(_mm512_mul_ps(_mm512_sqrt_ps(vj), c->ib), c->eps);
	_mm512_mask_storeu_ps(p, k, _mm512_sub_ps(_mm512_maskz_loadu_ps(k, p), _mm512_div_ps(_mm512_mul_ps(c->ss, mj), denom)));
}

// latent_adam_avx512 updates the values 16 at a time and returns how many
// it updated.
__attribute__((target("avx512f")))
static long latent_adam_avx512(float *p, const float *g, float *m, float *v, long n, latent_adam_hyper h) {
	latent_adam512 c = latent_adam512_init(h);
	long j = 0;
	for (; j + 16 <= n; j += 16) {
		latent_adam512_step(&c, p + j, m + j, v + j, _mm512_loadu_ps(g + j), 0xffff);
	}
	return j;
}

// latent_linear_block computes a block of R rows (from i) and 64 columns
// (from j, the lanes of k) of a Linear layer's weight gradient
// dW = xᵀ·dz, x [n, in] and dz [n, out] row-major: each value is summed
// over the n samples in order, one fused multiply-add each (the sums of
// latent_linear_dw_adam_ref). Then it applies Adam to the same values of the weight
// p [in, out] and its moments, from the registers.
// With FULL, all 64 columns are in the block and its loads take no mask.
#define LATENT_LOAD(FULL, k, d) ((FULL) ? _mm512_loadu_ps(d) : _mm512_maskz_loadu_ps(k, d))
#define LATENT_LINEAR_BLOCK(NAME, R, FULL) \
__attribute__((target("avx512f"))) \
static inline void NAME(const float *x, const float *dz, long n, long in, long out, long i, long j, \
		const __mmask16 k[4], float *p, float *m, float *v, const latent_adam512 *c) { \
	__m512 acc[R][4]; \
	_Pragma("GCC unroll 4") for (int r = 0; r < R; r++) \
		_Pragma("GCC unroll 4") for (int q = 0; q < 4; q++) acc[r][q] = _mm512_setzero_ps(); \
	__mmask16 k0 = k[0], k1 = k[1], k2 = k[2], k3 = k[3]; \
	for (long b = 0; b < n; b++) { \
		const float *d = dz + b * out + j; \
		__m512 d0 = LATENT_LOAD(FULL, k0, d), d1 = LATENT_LOAD(FULL, k1, d + 16); \
		__m512 d2 = LATENT_LOAD(FULL, k2, d + 32), d3 = LATENT_LOAD(FULL, k3, d + 48); \
		_Pragma("GCC unroll 4") for (int r = 0; r < R; r++) { \
			__m512 xr = _mm512_set1_ps(x[b * in + i + r]); \
			acc[r][0] = _mm512_fmadd_ps(xr, d0, acc[r][0]); \
			acc[r][1] = _mm512_fmadd_ps(xr, d1, acc[r][1]); \
			acc[r][2] = _mm512_fmadd_ps(xr, d2, acc[r][2]); \
			acc[r][3] = _mm512_fmadd_ps(xr, d3, acc[r][3]); \
		} \
	} \
	_Pragma("GCC unroll 4") for (int r = 0; r < R; r++) { \
		long at = (i + r) * out + j; \
		_Pragma("GCC unroll 4") for (int q = 0; q < 4; q++) \
			if (k[q]) latent_adam512_step(c, p + at + 16 * q, m + at + 16 * q, v + at + 16 * q, acc[r][q], k[q]); \
	} \
}
LATENT_LINEAR_BLOCK(latent_linear_block4, 4, 0)
LATENT_LINEAR_BLOCK(latent_linear_block1, 1, 0)
LATENT_LINEAR_BLOCK(latent_linear_block4_full, 4, 1)
LATENT_LINEAR_BLOCK(latent_linear_block1_full, 1, 1)

// latent_linear_dw_adam512 computes rows [r0, r1) of dW = xᵀ·dz and applies
// Adam to the same rows of p, m and v, a block of 4 rows and 64 columns at
// a time, so that the gradient never leaves the registers. The blocks go
// along the rows, so that p, m and v are read in order.
__attribute__((target("avx512f")))
static void latent_linear_dw_adam512(const float *x, const float *dz, long n, long in, long out, long r0, long r1,
		float *p, float *m, float *v, latent_adam_hyper h) {
	latent_adam512 c = latent_adam512_init(h);
	for (long i = r0; i < r1; ) {
		long rows = r1 - i >= 4 ? 4 : 1;
		for (long j = 0; j < out; j += 64) {
			__mmask16 k[4];
			for (int q = 0; q < 4; q++) {
				long left = out - j - 16 * q;
				k[q] = left >= 16 ? 0xffff : left <= 0 ? 0 : (__mmask16)((1u << left) - 1);
			}
			int full = j + 64 <= out;
			if (rows == 4 && full) latent_linear_block4_full(x, dz, n, in, out, i, j, k, p, m, v, &c);
			else if (rows == 4) latent_linear_block4(x, dz, n, in, out, i, j, k, p, m, v, &c);
			else if (full) latent_linear_block1_full(x, dz, n, in, out, i, j, k, p, m, v, &c);
			else latent_linear_block1(x, dz, n, in, out, i, j, k, p, m, v, &c);
		}
		i += rows;
	}
}

// latent_linear_dw_adam_ref is latent_linear_dw_adam512's scalar
// reference: rows [r0, r1) of dW = xᵀ·dz, each value summed over the n
// samples in order from zero with one correctly rounded fused multiply-add
// (fmaf) a sample, then Adam's update one value at a time
// (latent_adam_scalar, whose bits the vector updates share). The kernel
// must give its bits on every CPU (TestLinearWeightStep).
static void latent_linear_dw_adam_ref(const float *x, const float *dz, long n, long in, long out, long r0, long r1,
		float *p, float *m, float *v, latent_adam_hyper h) {
	for (long i = r0; i < r1; i++) {
		for (long j = 0; j < out; j++) {
			float g = 0;
			for (long b = 0; b < n; b++) g = fmaf(x[b * in + i], dz[b * out + j], g);
			latent_adam_scalar(p + i * out + j, &g, m + i * out + j, v + i * out + j, 0, 1, h);
		}
	}
}

// latent_adam_avx2 updates the values 8 at a time and returns how many it
// updated.
__attribute__((target("avx2")))
static long latent_adam_avx2(float *p, const float *g, float *m, float *v, long n, latent_adam_hyper h) {
	__m256 ss = _mm256_set1_ps(h.step_size), ib = _mm256_set1_ps(h.inv_bc2_sqrt), eps = _mm256_set1_ps(h.eps);
	__m256 b1 = _mm256_set1_ps(h.b1), b2 = _mm256_set1_ps(h.b2), c1 = _mm256_set1_ps(1 - h.b1), c2 = _mm256_set1_ps(1 - h.b2);
	__m256 tiny = _mm256_set1_ps(FLT_MIN), absMask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
	long j = 0;
	for (; j + 8 <= n; j += 8) {
		__m256 gj = _mm256_loadu_ps(g + j);
		__m256 mj = _mm256_add_ps(_mm256_mul_ps(b1, _mm256_loadu_ps(m + j)), _mm256_mul_ps(c1, gj));
		__m256 vj = _mm256_add_ps(_mm256_mul_ps(b2, _mm256_loadu_ps(v + j)), _mm256_mul_ps(_mm256_mul_ps(c2, gj), gj));
		// Zero where |m| < FLT_MIN or v < FLT_MIN (false for NaN).
		mj = _mm256_andnot_ps(_mm256_cmp_ps(_mm256_and_ps(mj, absMask), tiny, _CMP_LT_OQ), mj);
		vj = _mm256_andnot_ps(_mm256_cmp_ps(vj, tiny, _CMP_LT_OQ), vj);
		_mm256_storeu_ps(m + j, mj);
		_mm256_storeu_ps(v + j, vj);
		__m256 denom = _mm256_add_ps(_mm256_mul_ps(_mm256_sqrt_ps(vj), ib), eps);
		_mm256_storeu_ps(p + j, _mm256_sub_ps(_mm256_loadu_ps(p + j), _mm256_div_ps(_mm256_mul_ps(ss, mj), denom)));
	}
	return j;
}

// latent_adam_width is 16 with AVX-512, 8 with AVX2, else 1.
static int latent_adam_width(void) {
	__builtin_cpu_init();
	if (__builtin_cpu_supports("avx512f")) return 16;
	if (__builtin_cpu_supports("avx2")) return 8;
	return 1;
}

static void latent_adam_update(int width, float *p, const float *g, float *m, float *v, long n, latent_adam_hyper h) {
	long j = 0;
	if (width == 16) j = latent_adam_avx512(p, g, m, v, n, h);
	else if (width == 8) j = latent_adam_avx2(p, g, m, v, n, h);
	latent_adam_scalar(p, g, m, v, j, n, h);
}
*/
import "C"

// adamWidth is how many values the C update computes at once.
var adamWidth = C.latent_adam_width()

// adamKernel is adamUpdate in C.
func adamKernel(p, g, m, v []float32, stepSize, invBC2Sqrt, b1, b2, eps float32) {
	if len(p) == 0 {
		return
	}
	g, m, v = g[:len(p)], m[:len(p)], v[:len(p)]
	h := C.latent_adam_hyper{C.float(stepSize), C.float(invBC2Sqrt), C.float(b1), C.float(b2), C.float(eps)}
	C.latent_adam_update(adamWidth, (*C.float)(&p[0]), (*C.float)(&g[0]), (*C.float)(&m[0]), (*C.float)(&v[0]), C.long(len(p)), h)
}

// fusedKernel is whether linearWeightStep runs: the CPU has AVX-512,
// whichever kernels OpenBLAS chose (tests turn it off to check the band
// path of deferredLinear.step).
var fusedKernel = adamWidth == 16

// linearWeightStep computes rows [r0, r1) of a Linear layer's weight
// gradient dW = xᵀ·dz (x [n, in], dz [n, out]) and applies Adam's step s to
// the same rows of the weight p [in, out] and of its moments m and v, with
// the gradient in registers: the AVX-512 kernel above. Each value of dW is
// summed over the n samples in order, with one fused multiply-add a sample:
// the bits of linearWeightStepRef on every CPU, which may differ from a
// BLAS's gemm by rounding (OpenBLAS's kernels sum in other orders on
// different CPUs). It reports false, doing nothing, where the CPU lacks
// AVX-512.
func linearWeightStep(x, dz []float32, n, in, out, r0, r1 int, p, m, v []float32, s adamStep) bool {
	if !fusedKernel {
		return false
	}
	if r0 >= r1 || n == 0 || out == 0 {
		return true
	}
	_, _ = x[(n-1)*in+r1-1], dz[n*out-1]
	_, _, _ = p[in*out-1], m[in*out-1], v[in*out-1]
	h := C.latent_adam_hyper{C.float(s.stepSize), C.float(s.invBC2Sqrt), C.float(s.b1), C.float(s.b2), C.float(s.eps)}
	C.latent_linear_dw_adam512((*C.float)(&x[0]), (*C.float)(&dz[0]), C.long(n), C.long(in), C.long(out), C.long(r0), C.long(r1),
		(*C.float)(&p[0]), (*C.float)(&m[0]), (*C.float)(&v[0]), h)
	return true
}

// linearWeightStepRef is linearWeightStep's scalar reference in C: the
// same sums in the same order, one value at a time.
func linearWeightStepRef(x, dz []float32, n, in, out, r0, r1 int, p, m, v []float32, s adamStep) {
	if r0 >= r1 || n == 0 || out == 0 {
		return
	}
	_, _ = x[(n-1)*in+r1-1], dz[n*out-1]
	_, _, _ = p[in*out-1], m[in*out-1], v[in*out-1]
	h := C.latent_adam_hyper{C.float(s.stepSize), C.float(s.invBC2Sqrt), C.float(s.b1), C.float(s.b2), C.float(s.eps)}
	C.latent_linear_dw_adam_ref((*C.float)(&x[0]), (*C.float)(&dz[0]), C.long(n), C.long(in), C.long(out), C.long(r0), C.long(r1),
		(*C.float)(&p[0]), (*C.float)(&m[0]), (*C.float)(&v[0]), h)
}
