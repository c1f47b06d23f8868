//go:build openblas

package trainer

// The openblas build links C already, so its Adam runs the per-value update
// in C, 16 values at a time with AVX-512 or 8 with AVX2 where the CPU has
// them: Go computes one value at a time and waits on the CPU's divider for
// a square root and a division per value. The arithmetic is adamUpdate's,
// in the same order, rounded the same way and without fused multiply-adds
// (the pragma), with the same flush of subnormal moments to zero, so every
// build gives the same bits (TestAdamKernelsAgree).

/*
#pragma GCC optimize("fp-contract=off")
#include <float.h>
#include <immintrin.h>

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

// latent_adam_avx512 updates the values 16 at a time and returns how many
// it updated.
__attribute__((target("avx512f")))
static long latent_adam_avx512(float *p, const float *g, float *m, float *v, long n, latent_adam_hyper h) {
	__m512 ss = _mm512_set1_ps(h.step_size), ib = _mm512_set1_ps(h.inv_bc2_sqrt), eps = _mm512_set1_ps(h.eps);
	__m512 b1 = _mm512_set1_ps(h.b1), b2 = _mm512_set1_ps(h.b2), c1 = _mm512_set1_ps(1 - h.b1), c2 = _mm512_set1_ps(1 - h.b2);
	__m512 tiny = _mm512_set1_ps(FLT_MIN);
	long j = 0;
	for (; j + 16 <= n; j += 16) {
		__m512 gj = _mm512_loadu_ps(g + j);
		__m512 mj = _mm512_add_ps(_mm512_mul_ps(b1, _mm512_loadu_ps(m + j)), _mm512_mul_ps(c1, gj));
		__m512 vj = _mm512_add_ps(_mm512_mul_ps(b2, _mm512_loadu_ps(v + j)), _mm512_mul_ps(_mm512_mul_ps(c2, gj), gj));
		// Zero where |m| < FLT_MIN or v < FLT_MIN (false for NaN).
		mj = _mm512_maskz_mov_ps(~_mm512_cmp_ps_mask(_mm512_abs_ps(mj), tiny, _CMP_LT_OQ), mj);
		vj = _mm512_maskz_mov_ps(~_mm512_cmp_ps_mask(vj, tiny, _CMP_LT_OQ), vj);
		_mm512_storeu_ps(m + j, mj);
		_mm512_storeu_ps(v + j, vj);
		__m512 denom = _mm512_add_ps(_mm512_mul_ps(_mm512_sqrt_ps(vj), ib), eps);
		_mm512_storeu_ps(p + j, _mm512_sub_ps(_mm512_loadu_ps(p + j), _mm512_div_ps(_mm512_mul_ps(ss, mj), denom)));
	}
	return j;
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
